"""ResNet-50 as torchvision builds it (bottleneck v1.5), up to the pooled features.

Not to be confused with :class:`dlhash_jax.models.backbones.ResNet`, the small CIFAR-style network
trained from scratch; this one exists to load ImageNet weights.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlhash_jax.models.alexnet import check_rgb_images

# (bottleneck width, number of blocks) of torchvision's layer1 to layer4; each block's output has
# 4× the width.
RESNET50_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))


def _batch_norm(train: bool, axis_name: str | None, name: str) -> nn.BatchNorm:
    # PyTorch's BatchNorm: epsilon 1e-5, running averages updated with weight 0.1.
    return nn.BatchNorm(
        use_running_average=not train, momentum=0.9, epsilon=1e-5, axis_name=axis_name, name=name
    )


class _Bottleneck(nn.Module):
    """1×1 → 3×3 (stride here: torchvision's v1.5) → 1×1 convolutions with a shortcut."""

    width: int
    strides: int
    project: bool
    bn_axis_name: str | None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        norm = functools.partial(_batch_norm, train, self.bn_axis_name)
        strides = (self.strides, self.strides)
        y = nn.Conv(self.width, (1, 1), use_bias=False, name="conv1")(x)
        y = nn.relu(norm("bn1")(y))
        y = nn.Conv(
            self.width, (3, 3), strides, ((1, 1), (1, 1)), use_bias=False, name="conv2"
        )(y)
        y = nn.relu(norm("bn2")(y))
        y = nn.Conv(4 * self.width, (1, 1), use_bias=False, name="conv3")(y)
        y = norm("bn3")(y)
        if self.project:
            x = nn.Conv(4 * self.width, (1, 1), strides, use_bias=False, name="downsample_conv")(x)
            x = norm("downsample_bn")(x)
        return nn.relu(x + y)


class ResNet50(nn.Module):
    """ResNet-50 as in ``torchvision.models.resnet50``, pooled: ``[B, H, W, 3] → [B, 2048]``.

    A 7×7 stride-2 stem convolution with BatchNorm and ReLU, 3×3 stride-2 max pooling, four
    stages of 3, 4, 6 and 3 bottleneck blocks (``RESNET50_STAGES``; the second to fourth stage
    start with stride 2, put on the 3×3 convolution as torchvision's "v1.5" does, and every
    stage's first block has a 1×1 projection shortcut), then global average pooling: the
    input of torchvision's 1000-way ``fc``. Block ``j`` of stage ``s`` is ``layer{s}_{j}``.

    BatchNorm follows PyTorch (epsilon 1e-5, running averages updated with weight 0.1, i.e.
    flax momentum 0.9); its statistics live in the mutable ``"batch_stats"`` collection: apply
    with ``train=False`` to normalise with the running averages (the pretrained behaviour), and
    with ``train=True, mutable=["batch_stats"]`` to normalise with the batch and update them.
    Under ``pmap``/``shard_map`` set ``bn_axis_name`` (e.g. with ``module.clone(bn_axis_name=
    "batch")`` on the module that :func:`~dlhash_jax.models.pretrained.load_pretrained` returns).

    Attributes:
      bn_axis_name: axis name over which BatchNorm averages batch statistics, or ``None``.

    Call:
      ``x``: ``[B, H, W, 3]`` RGB images normalised with the ImageNet mean and standard deviation
        (``PRETRAINED_BACKBONES["resnet50"]``), ``H, W ≥ 32``; 224×224 is the size it was
        trained at.
      ``train``: use batch statistics in BatchNorm and update the running averages.

    Returns:
      ``[B, 2048]`` pooled features.

    References:
      He, Zhang, Ren & Sun, "Deep residual learning for image recognition", CVPR 2016.
    """

    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.typing.ArrayLike, *, train: bool) -> jax.Array:
        x = check_rgb_images(x, "ResNet50", 32)
        x = nn.Conv(64, (7, 7), (2, 2), ((3, 3), (3, 3)), use_bias=False, name="conv1")(x)
        x = nn.relu(_batch_norm(train, self.bn_axis_name, "bn1")(x))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        for stage, (width, blocks) in enumerate(RESNET50_STAGES, start=1):
            for block in range(blocks):
                strides = 2 if stage > 1 and block == 0 else 1
                x = _Bottleneck(
                    width, strides, block == 0, self.bn_axis_name, name=f"layer{stage}_{block}"
                )(x, train=train)
        return jnp.mean(x, axis=(1, 2))
