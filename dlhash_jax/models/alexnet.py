"""AlexNet as torchvision builds it, and the two helpers of the ImageNet backbones.

The ImageNet backbones (:class:`AlexNet` here, ``VGG16``, ``ResNet50``, ``ViTB16`` in their own
modules) reproduce a reference implementation layer for layer so that its published weights,
loaded by :func:`dlhash_jax.models.pretrained.load_pretrained`, give the same features. They take
NHWC images normalised as the reference expects (``PRETRAINED_BACKBONES[name].mean`` / ``.std``)
and return the reference's feature layer ``[B, D]``; :func:`check_rgb_images` checks such input
and :func:`adaptive_avg_pool` is PyTorch's ``AdaptiveAvgPool2d``, which AlexNet and VGG put
between their convolutions and their fully connected layers.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlhash_jax.models.backbones import check_rate


def check_rgb_images(x: jax.typing.ArrayLike, name: str, min_size: int) -> jax.Array:
    """``x`` as a float32 ``[B, H, W, 3]`` batch, both sides at least ``min_size``.

    Raises:
      ValueError: naming the module ``name`` and the shape, for any other rank, a channel count
        other than 3, or a side below ``min_size``.
    """
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"{name} expects RGB images [B, H, W, 3], got shape {x.shape}.")
    if x.shape[1] < min_size or x.shape[2] < min_size:
        raise ValueError(
            f"{name} needs images of at least {min_size}x{min_size}, got shape {x.shape}."
        )
    return x


def _pool_matrix(size_in: int, size_out: int) -> np.ndarray:
    """``[size_out, size_in]`` averaging weights of PyTorch's adaptive pooling along one axis.

    Output ``i`` averages inputs ``floor(i * n / m)`` up to (excluding) ``ceil((i + 1) * n / m)``
    for ``n`` inputs and ``m`` outputs: bins overlap when ``n`` is not a multiple of ``m``, and
    inputs repeat when ``n < m``.
    """
    weights = np.zeros((size_out, size_in), np.float32)
    for i in range(size_out):
        start = (i * size_in) // size_out
        end = -(-((i + 1) * size_in) // size_out)
        weights[i, start:end] = 1.0 / (end - start)
    return weights


def adaptive_avg_pool(x: jax.typing.ArrayLike, output_size: tuple[int, int]) -> jax.Array:
    """PyTorch's ``AdaptiveAvgPool2d(output_size)`` on NHWC maps.

    Args:
      x: ``[B, H, W, C]`` feature maps of any positive ``H``, ``W``.
      output_size: ``(h, w)`` of the output.

    Returns:
      ``[B, h, w, C]``: cell ``(i, j)`` is the mean of rows ``floor(i H / h)`` to
      ``ceil((i + 1) H / h) - 1`` and columns ``floor(j W / w)`` to ``ceil((j + 1) W / w) - 1``
      of ``x``, PyTorch's definition, including sizes that do not divide (overlapping bins) and
      outputs larger than the input (repeated cells).

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.arange(3.0).reshape(1, 1, 3, 1)
      >>> adaptive_avg_pool(x, (1, 2))[0, 0, :, 0].tolist()
      [0.5, 1.5]
    """
    x = jnp.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"adaptive_avg_pool expects maps [B, H, W, C], got shape {x.shape}.")
    rows = _pool_matrix(x.shape[1], output_size[0])
    cols = _pool_matrix(x.shape[2], output_size[1])
    # Average pooling is linear and separable: one averaging matrix per spatial axis.
    return jnp.einsum("ih,bhwc,jw->bijc", rows, x, cols)


class AlexNet(nn.Module):
    """AlexNet as in ``torchvision.models.alexnet``, up to fc7: ``[B, H, W, 3] → [B, 4096]``.

    torchvision's variant of Krizhevsky et al. (2012) is the single-tower network of "One weird
    trick" (Krizhevsky, 2014): five convolutions (64, 192, 384, 256, 256 channels; 11×11 stride 4,
    5×5, then 3×3) with ReLU, max pooling 3×3 stride 2 after the first, second and fifth,
    adaptive average pooling to 6×6, then ``Dropout → fc6 → ReLU → Dropout → fc7 → ReLU``. The
    output is fc7 after its ReLU (torchvision's ``classifier[:6]``, everything before the 1000-way
    fc8), the layer that deep hashing methods put their hash layer on.

    Attributes:
      dropout_rate: dropout before fc6 and before fc7 in training mode (torchvision's 0.5);
        ``apply`` then needs ``rngs={"dropout": key}``.

    Call:
      ``x``: ``[B, H, W, 3]`` RGB images normalised with the ImageNet mean and standard deviation
        (``PRETRAINED_BACKBONES["alexnet"]``), ``H, W ≥ 63``; 224×224 is the size it was trained
        at.
      ``train``: enables dropout.

    Returns:
      ``[B, 4096]`` fc7 features.

    References:
      Krizhevsky, "One weird trick for parallelizing convolutional neural networks", 2014.
      Krizhevsky, Sutskever & Hinton, "ImageNet classification with deep convolutional neural
      networks", NeurIPS 2012.
    """

    dropout_rate: float = 0.5

    def __post_init__(self):
        check_rate(self.dropout_rate)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.typing.ArrayLike, *, train: bool) -> jax.Array:
        x = check_rgb_images(x, "AlexNet", 63)
        layers = ((64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1))
        for i, (channels, kernel, stride, pad) in enumerate(layers, start=1):
            x = nn.Conv(
                channels, (kernel, kernel), (stride, stride), ((pad, pad), (pad, pad)),
                name=f"conv{i}",
            )(x)
            x = nn.relu(x)
            if i in (1, 2, 5):
                x = nn.max_pool(x, (3, 3), strides=(2, 2))
        # Flattened in (H, W, C) order; the loader permutes fc6 from torchvision's (C, H, W).
        x = adaptive_avg_pool(x, (6, 6)).reshape(x.shape[0], -1)
        for name in ("fc6", "fc7"):
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
            x = nn.relu(nn.Dense(4096, name=name)(x))
        return x
