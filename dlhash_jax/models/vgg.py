"""VGG-16 as torchvision builds it (configuration D, no BatchNorm), up to fc7."""

from __future__ import annotations

import flax.linen as nn
import jax

from dlhash_jax.models.alexnet import adaptive_avg_pool
from dlhash_jax.models.alexnet import check_rgb_images
from dlhash_jax.models.backbones import check_rate

# Channels of the 3×3 convolutions of each of the five stages of configuration D.
VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


class VGG16(nn.Module):
    """VGG-16 as in ``torchvision.models.vgg16``, up to fc7: ``[B, H, W, 3] → [B, 4096]``.

    Thirteen 3×3 convolutions (padding 1, ReLU) in five stages of ``VGG16_STAGES`` channels, each
    stage ending in 2×2 max pooling; adaptive average pooling to 7×7; then
    ``fc6 → ReLU → Dropout → fc7 → ReLU → Dropout``. That is torchvision's ``classifier[:6]``,
    everything before the 1000-way fc8: in evaluation mode the output is fc7 after its ReLU, in
    training mode with the dropout that torchvision applies before fc8 (as HashNet's VGG
    feature extractor keeps it). Convolution ``conv{s}_{i}`` is the ``i``-th of stage ``s``.

    Attributes:
      dropout_rate: dropout after fc6 and after fc7 in training mode (torchvision's 0.5);
        ``apply`` then needs ``rngs={"dropout": key}``.

    Call:
      ``x``: ``[B, H, W, 3]`` RGB images normalised with the ImageNet mean and standard deviation
        (``PRETRAINED_BACKBONES["vgg16"]``), ``H, W ≥ 32``; 224×224 is the size it was trained
        at.
      ``train``: enables dropout.

    Returns:
      ``[B, 4096]`` fc7 features.

    References:
      Simonyan & Zisserman, "Very deep convolutional networks for large-scale image
      recognition", ICLR 2015.
    """

    dropout_rate: float = 0.5

    def __post_init__(self):
        check_rate(self.dropout_rate)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.typing.ArrayLike, *, train: bool) -> jax.Array:
        x = check_rgb_images(x, "VGG16", 2 ** len(VGG16_STAGES))
        for stage, widths in enumerate(VGG16_STAGES, start=1):
            for i, channels in enumerate(widths, start=1):
                conv = nn.Conv(channels, (3, 3), padding=((1, 1), (1, 1)), name=f"conv{stage}_{i}")
                x = nn.relu(conv(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        # Flattened in (H, W, C) order; the loader permutes fc6 from torchvision's (C, H, W).
        x = adaptive_avg_pool(x, (7, 7)).reshape(x.shape[0], -1)
        for name in ("fc6", "fc7"):
            x = nn.relu(nn.Dense(4096, name=name)(x))
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return x
