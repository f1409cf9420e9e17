"""Hashing autoencoder: an encoder to ``L`` relaxed bits and a decoder back to the input."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlhash_jax.models.backbones import MLP, check_widths
from dlhash_jax.models.heads import HASH_RELAXATIONS, HashHead, check_choice, check_positive_int


class Autoencoder(nn.Module):
    """MLP encoder → :class:`HashHead` → MLP decoder, for reconstruction-based hashing.

    For the unsupervised single-sample methods of the survey (§5: UDH's stacked autoencoder,
    fingerprint hashing): the training objective combines ``reconstruction_loss(x,
    out["reconstruction"])`` (eq 1) with code terms on ``out["relaxed"]`` (quantization,
    balance, Laplacian, ...). The decoder reads the relaxed bits, so with ``relaxation="ste"`` it
    reconstructs from the binary codes themselves, and with ``hidden=()`` and
    ``decoder_hidden=()`` it is the linear decoder ``X̂ = B W + c`` of eq 1.

    Attributes:
      bits: code length ``L``.
      hidden: encoder hidden widths (ReLU).
      relaxation: the hash layer's relaxation, one of ``heads.HASH_RELAXATIONS``.
      decoder_hidden: decoder hidden widths; ``None`` mirrors ``hidden`` (reversed).
      output_activation: applied to the reconstruction, e.g. ``jax.nn.sigmoid`` for inputs in
        ``[0, 1]``; ``None`` keeps it linear.

    Call:
      ``x``: ``[B, ...]`` inputs of any shape (flattened inside).
      ``train``: training mode (accepted for the common call; the MLPs have no dropout here).
      ``beta``: sharpness for ``relaxation="scaled_tanh"``.

    Returns:
      ``{"pre": [B, L], "relaxed": [B, L], "features": [B, hidden[-1]], "reconstruction":
      [B, ...]}`` with the reconstruction in the shape of ``x``. The codes are
      ``codes.sign(out["pre"])``, so :func:`dlhash_jax.models.encode` works on it.

    References:
      Hinton & Salakhutdinov, "Reducing the dimensionality of data with neural networks",
      Science 2006; survey §4.1 (eq 1) and §5.
    """

    bits: int
    hidden: Sequence[int] = (256,)
    relaxation: str = "tanh"
    decoder_hidden: Sequence[int] | None = None
    output_activation: Callable[[jax.Array], jax.Array] | None = None

    def __post_init__(self):
        check_positive_int(self.bits, "bits")
        check_widths(self.hidden, "Autoencoder hidden")
        if self.decoder_hidden is not None:
            check_widths(self.decoder_hidden, "Autoencoder decoder_hidden")
        check_choice(self.relaxation, HASH_RELAXATIONS, "Autoencoder relaxation")
        super().__post_init__()

    @nn.compact
    def __call__(
        self, x: jax.typing.ArrayLike, *, train: bool, beta: jax.typing.ArrayLike = 1.0
    ) -> dict[str, jax.Array]:
        x = jnp.asarray(x)
        if x.ndim < 2:
            raise ValueError(f"Autoencoder expects inputs [B, ...], got shape {x.shape}.")
        flat = x.reshape(x.shape[0], -1)
        features = MLP(tuple(self.hidden), name="encoder")(flat, train=train)
        out = dict(HashHead(self.bits, self.relaxation, name="hash")(features, beta=beta))
        decoder_hidden = (
            tuple(reversed(tuple(self.hidden)))
            if self.decoder_hidden is None
            else tuple(self.decoder_hidden)
        )
        decoded = MLP(decoder_hidden, name="decoder")(out["relaxed"], train=train)
        reconstruction = nn.Dense(flat.shape[1], name="output")(decoded)
        if self.output_activation is not None:
            reconstruction = self.output_activation(reconstruction)
        out["features"] = features
        out["reconstruction"] = reconstruction.reshape(x.shape)
        return out
