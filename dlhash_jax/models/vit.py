"""ViT-B/16 as timm builds it (``vit_base_patch16_224``), up to the class token's features."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlhash_jax.models.alexnet import check_rgb_images

VIT_B16_PATCH = 16
VIT_B16_WIDTH = 768
VIT_B16_DEPTH = 12
VIT_B16_HEADS = 12
VIT_B16_MLP = 3072


def _layer_norm(name: str) -> nn.LayerNorm:
    # timm's epsilon; the two-pass variance, as PyTorch computes it, rather than E[x²] - E[x]²,
    # which loses digits on the residual stream's large values.
    return nn.LayerNorm(epsilon=1e-6, use_fast_variance=False, name=name)


class _Attention(nn.Module):
    """timm's ``Attention``: one fused qkv projection, softmax(q kᵀ / √d) v per head, proj."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch, tokens, width = x.shape
        head_dim = width // VIT_B16_HEADS
        # timm splits the 3·width outputs as (q|k|v, head, head_dim), in that order.
        qkv = nn.Dense(3 * width, name="qkv")(x).reshape(batch, tokens, 3, VIT_B16_HEADS, head_dim)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        logits = jnp.einsum("bqhd,bkhd->bhqk", q * head_dim**-0.5, k)
        weights = jax.nn.softmax(logits, axis=-1)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(batch, tokens, width)
        return nn.Dense(width, name="proj")(out)


class _Mlp(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        # PyTorch's nn.GELU is the exact (erf) form; jax's default is the tanh approximation.
        x = nn.gelu(nn.Dense(VIT_B16_MLP, name="fc1")(x), approximate=False)
        return nn.Dense(VIT_B16_WIDTH, name="fc2")(x)


class _Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x + _Attention(name="attn")(_layer_norm("norm1")(x))
        return x + _Mlp(name="mlp")(_layer_norm("norm2")(x))


class ViTB16(nn.Module):
    """ViT-B/16 as in timm's ``vit_base_patch16_224``: ``[B, S, S, 3] → [B, 768]``.

    The image is cut into 16×16 patches (a 16×16 stride-16 convolution to 768 channels), the
    patches are read row by row, a learned class token is put in front, learned position
    embeddings are added, and 12 pre-norm transformer blocks (12 heads, MLP width 3072, exact
    GELU, LayerNorm epsilon 1e-6) follow; the output is the class token after the final
    LayerNorm: timm's pre-logits features with ``global_pool="token"``
    (``model.forward_head(model.forward_features(x), pre_logits=True)``). Block ``i`` is
    ``blocks_{i}``.

    The position embeddings fix the image size: ``image_size = 16 × grid`` for the
    ``1 + grid²`` embeddings of the weights (224 for the published ones;
    :func:`~dlhash_jax.models.pretrained.load_pretrained` reads it off the file). Other sizes
    would need timm's interpolation of the embeddings, which is not implemented.

    Attributes:
      image_size: side ``S`` of the square input, a multiple of 16.

    Call:
      ``x``: ``[B, S, S, 3]`` RGB images normalised with mean 0.5 and standard deviation 0.5 per
        channel (``PRETRAINED_BACKBONES["vit_b16"]``).
      ``train``: accepted for the backbone interface and ignored: timm's ViT-B/16 has no dropout
        or stochastic depth by default.

    Returns:
      ``[B, 768]`` class-token features.

    References:
      Dosovitskiy et al., "An image is worth 16x16 words: transformers for image recognition at
      scale", ICLR 2021.
    """

    image_size: int = 224

    def __post_init__(self):
        size = self.image_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 16 or size % 16:
            raise ValueError(f"ViTB16 image_size must be a positive multiple of 16, got {size!r}.")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.typing.ArrayLike, *, train: bool) -> jax.Array:
        del train  # No dropout: see the class docstring.
        x = check_rgb_images(x, "ViTB16", VIT_B16_PATCH)
        if x.shape[1:3] != (self.image_size, self.image_size):
            raise ValueError(
                f"ViTB16 with image_size={self.image_size} expects images [B, {self.image_size}, "
                f"{self.image_size}, 3] (its position embeddings fix the size), got shape "
                f"{x.shape}."
            )
        patch = (VIT_B16_PATCH, VIT_B16_PATCH)
        x = nn.Conv(VIT_B16_WIDTH, patch, patch, padding="VALID", name="patch_embed")(x)
        x = x.reshape(x.shape[0], -1, VIT_B16_WIDTH)
        init = nn.initializers.normal(0.02)
        cls_token = self.param("cls_token", init, (1, 1, VIT_B16_WIDTH))
        pos_embed = self.param("pos_embed", init, (1, 1 + x.shape[1], VIT_B16_WIDTH))
        cls_tokens = jnp.broadcast_to(cls_token, (x.shape[0], 1, VIT_B16_WIDTH))
        x = jnp.concatenate([cls_tokens, x], axis=1) + pos_embed
        for i in range(VIT_B16_DEPTH):
            x = _Block(name=f"blocks_{i}")(x)
        return _layer_norm("norm")(x)[:, 0]
