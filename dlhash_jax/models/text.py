"""Text encoder for the text modality of cross-modal hashing."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlhash_jax.models.backbones import MLP, check_rate, check_widths


class TextEncoder(nn.Module):
    """Bag-of-words MLP: ``[B, V]`` word counts (or a multi-hot vocabulary) → ``[B, D]``.

    The text branch of DCMH-style cross-modal hashing (survey eq 24): a fully connected network
    on the bag-of-words vector (DCMH uses one hidden layer of 8,192 units), followed by a hash
    head (``HashHead(bits, relaxation="none")`` for DCMH) in a :class:`HashNetwork`. Pair it with
    an image network of the same ``bits`` and train both on the cross-modal similarity ``S``.

    Attributes:
      features: hidden widths (ReLU); the output dimension is ``features[-1]``.
      log_counts: feed ``log(1 + counts)`` instead of raw counts, which keeps frequent words
        from dominating; leave ``False`` for binary bag-of-words.
      dropout_rate: dropout after every hidden layer in training mode (needs a ``"dropout"``
        rng when positive).

    Call:
      ``x``: ``[B, V]`` non-negative bag-of-words vectors.
      ``train``: enables dropout.

    Returns:
      ``[B, features[-1]]`` features.

    References:
      Jiang & Li, "Deep cross-modal hashing", CVPR 2017 (DCMH); survey ref [41].
    """

    features: Sequence[int] = (512,)
    log_counts: bool = False
    dropout_rate: float = 0.0

    def __post_init__(self):
        check_widths(self.features, "TextEncoder features")
        check_rate(self.dropout_rate)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.typing.ArrayLike, *, train: bool) -> jax.Array:
        x = jnp.asarray(x)
        if x.ndim != 2:
            raise ValueError(
                f"TextEncoder expects bag-of-words vectors [B, V], got shape {x.shape}."
            )
        if self.log_counts:
            x = jnp.log1p(x)
        return MLP(tuple(self.features), dropout_rate=self.dropout_rate, name="mlp")(x, train=train)
