"""Backbones: networks that map inputs ``[B, ...]`` to feature vectors ``[B, D]``.

Every backbone is a ``flax.linen`` module called as ``backbone(x, train=...)``. A hash head
(:mod:`dlhash_jax.models.heads`) turns the features into ``L`` relaxed bits; the two are composed
by :class:`dlhash_jax.models.network.HashNetwork`.

Sizes are chosen for the small inputs this library is tested on (8×8 digits, 28×28 MNIST, 32×32
CIFAR); for ImageNet-scale images plug in any flax module with the same call signature.

Only :class:`ResNet` has state besides its parameters (BatchNorm statistics in the mutable
``"batch_stats"`` collection); :class:`MLP` and :class:`ConvNet` have none, so they need no
``mutable=`` argument when applied.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def check_widths(widths: Sequence[int], name: str) -> None:
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(f"{name} must be a sequence of positive integers, got {tuple(widths)!r}.")


def _as_images(x: jax.typing.ArrayLike, name: str) -> jax.Array:
    """``x`` as ``[B, H, W, C]``: a grey-level batch ``[B, H, W]`` gains a channel axis.

    Raises:
      ValueError: for any other rank, naming the module ``name`` and the shape.
    """
    x = jnp.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"{name} expects images [B, H, W, C] or [B, H, W], got shape {x.shape}.")
    return x


def check_rate(rate: float) -> None:
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), got {rate!r}.")


class MLP(nn.Module):
    """Fully connected network on flattened inputs.

    For feature vectors (``.npz`` protocols, pre-extracted CNN features) and flattened small
    images. Each hidden layer is ``Dense → activation → Dropout``; the output is the last hidden
    layer's activations.

    Attributes:
      features: widths of the hidden layers, e.g. ``(256, 256)``; the output dimension ``D`` is
        ``features[-1]``. An empty tuple makes the MLP the identity on flattened inputs.
      activation: elementwise non-linearity applied after every layer.
      dropout_rate: dropout probability after every hidden layer in training mode. When it is
        positive, ``apply`` needs ``rngs={"dropout": key}`` with ``train=True``.

    Call:
      ``x``: ``[B, ...]`` inputs of any rank ≥ 1, flattened to ``[B, prod(...)]``.
      ``train``: enables dropout.

    Returns:
      ``[B, D]`` features.
    """

    features: Sequence[int] = (256, 256)
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    dropout_rate: float = 0.0

    def __post_init__(self):
        check_widths(self.features, "MLP features")
        check_rate(self.dropout_rate)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.typing.ArrayLike, *, train: bool) -> jax.Array:
        x = jnp.asarray(x)
        if x.ndim < 2:
            raise ValueError(
                f"MLP expects inputs [B, ...] with a batch axis and a feature axis, got shape "
                f"{x.shape}."
            )
        x = x.reshape(x.shape[0], -1)
        for width in self.features:
            x = self.activation(nn.Dense(width)(x))
            if self.dropout_rate > 0:
                x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return x


class ConvNet(nn.Module):
    """Small CNN for 8×8 to 32×32 images: ``[Conv3×3 → ReLU → MaxPool2×2]`` stages, then Dense.

    With the default two stages an 8×8 image reaches the dense layer as 2×2, a 28×28 one as 7×7
    and a 32×32 one as 8×8; the dense layer sees the flattened map, so its parameter count
    depends on the input size (flax infers it at ``init``).

    Attributes:
      conv_features: channels of each convolutional stage; each stage halves height and width.
      dense_features: width of the fully connected layer after the convolutions (the output
        dimension ``D``).
      dropout_rate: dropout before the dense layer in training mode (needs a ``"dropout"`` rng
        when positive).

    Call:
      ``x``: ``[B, H, W, C]`` images (NHWC, any number of channels) or ``[B, H, W]`` grey-scale
        images, which get one channel. ``H`` and ``W`` must be at least ``2**len(conv_features)``.
      ``train``: enables dropout.

    Returns:
      ``[B, dense_features]`` features.
    """

    conv_features: Sequence[int] = (32, 64)
    dense_features: int = 256
    dropout_rate: float = 0.0

    def __post_init__(self):
        check_widths(self.conv_features, "ConvNet conv_features")
        check_widths((self.dense_features,), "ConvNet dense_features")
        check_rate(self.dropout_rate)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.typing.ArrayLike, *, train: bool) -> jax.Array:
        x = _as_images(x, "ConvNet")
        smallest = 2 ** len(self.conv_features)
        if x.shape[1] < smallest or x.shape[2] < smallest:
            raise ValueError(
                f"ConvNet with {len(self.conv_features)} pooling stages needs images of at least "
                f"{smallest}x{smallest}, got shape {x.shape}."
            )
        for channels in self.conv_features:
            x = nn.relu(nn.Conv(channels, (3, 3), padding="SAME")(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        if self.dropout_rate > 0:
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.relu(nn.Dense(self.dense_features)(x))


class _BasicBlock(nn.Module):
    """Two 3×3 convolutions with BatchNorm and an identity or 1×1-projection shortcut."""

    channels: int
    strides: int
    bn_axis_name: str | None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        norm = functools.partial(
            nn.BatchNorm, use_running_average=not train, momentum=0.9, axis_name=self.bn_axis_name
        )
        strides = (self.strides, self.strides)
        y = nn.Conv(self.channels, (3, 3), strides=strides, padding="SAME", use_bias=False)(x)
        y = nn.relu(norm()(y))
        y = nn.Conv(self.channels, (3, 3), padding="SAME", use_bias=False)(y)
        # Zero-initialised last scale: each block starts as the identity, which makes deep
        # residual networks train stably from the first step (Goyal et al., 2017).
        y = norm(scale_init=nn.initializers.zeros)(y)
        if x.shape != y.shape:
            x = nn.Conv(self.channels, (1, 1), strides=strides, use_bias=False)(x)
            x = norm()(x)
        return nn.relu(x + y)


class ResNet(nn.Module):
    """CIFAR-style residual network (He et al., 2016, §4.2): depth ``6n + 2``.

    A 3×3 stem convolution, then three stages of ``n`` basic blocks with ``widths`` channels
    (the second and third stage start with stride 2), then global average pooling. ``depth=20``
    is ResNet-20 (0.27 M parameters with the default widths). Shortcuts that change shape use a
    1×1 projection (the paper's option B) rather than zero padding. The last BatchNorm of each
    block starts with scale 0, so every block starts as the identity (Goyal et al., "Accurate,
    large minibatch SGD", 2017); BatchNorm momentum is 0.9 (PyTorch's 0.1).

    BatchNorm statistics live in the mutable ``"batch_stats"`` collection: apply with
    ``mutable=["batch_stats"]`` and ``train=True`` to update them, and with ``train=False`` to
    use the running averages. Under ``pmap``/``shard_map`` set ``bn_axis_name`` to the mapped
    axis name so batch statistics are averaged across devices.

    Attributes:
      depth: total number of weighted layers, ``6n + 2`` with ``n ≥ 1`` (8, 14, 20, 32, 44, 56,
        110, ...).
      widths: channels of the three stages.
      bn_axis_name: axis name over which BatchNorm averages batch statistics, or ``None``.

    Call:
      ``x``: ``[B, H, W, C]`` images (or ``[B, H, W]`` grey-scale, given one channel).
      ``train``: use batch statistics and update the running averages.

    Returns:
      ``[B, widths[-1]]`` features.

    Raises:
      ValueError: at construction, if ``depth`` is not ``6n + 2`` or ``widths`` is not three
        positive integers.

    References:
      He, Zhang, Ren & Sun, "Deep residual learning for image recognition", CVPR 2016.
    """

    depth: int = 20
    widths: Sequence[int] = (16, 32, 64)
    bn_axis_name: str | None = None

    def __post_init__(self):
        if (
            isinstance(self.depth, bool)
            or not isinstance(self.depth, int)
            or self.depth < 8
            or (self.depth - 2) % 6
        ):
            raise ValueError(
                f"ResNet depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, ...), got {self.depth!r}."
            )
        check_widths(self.widths, "ResNet widths")
        if len(self.widths) != 3:
            raise ValueError(f"ResNet widths must hold 3 stage widths, got {tuple(self.widths)!r}.")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.typing.ArrayLike, *, train: bool) -> jax.Array:
        x = _as_images(x, "ResNet")
        blocks_per_stage = (self.depth - 2) // 6
        x = nn.Conv(self.widths[0], (3, 3), padding="SAME", use_bias=False)(x)
        x = nn.BatchNorm(
            use_running_average=not train, momentum=0.9, axis_name=self.bn_axis_name
        )(x)
        x = nn.relu(x)
        for stage, channels in enumerate(self.widths):
            for block in range(blocks_per_stage):
                strides = 2 if stage > 0 and block == 0 else 1
                x = _BasicBlock(channels, strides, self.bn_axis_name)(x, train=train)
        return jnp.mean(x, axis=(1, 2))

