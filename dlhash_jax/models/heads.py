"""Hash heads: layers that map backbone features ``[B, D]`` to ``L`` relaxed bits.

Every head is called as ``head(features, beta=...)`` and returns a dict with at least

- ``"pre"``: ``[B, L]`` real outputs before the relaxation, centred so that the binary code is
  ``codes.sign(pre)`` (bit ``+1`` exactly when ``pre ≥ 0``);
- ``"relaxed"``: ``[B, L]`` the relaxation of ``sgn`` applied to ``pre``, on the ±1 scale that
  every loss of :mod:`dlhash_jax.losses` expects (values in ``[-1, 1]``, or unbounded for
  ``relaxation="none"``);

and heads with a classifier add ``"logits"``: ``[B, C]``. ``beta`` is the sharpness of
:func:`dlhash_jax.relaxations.scaled_tanh` (e.g. the value of a continuation schedule at the
current step); heads and relaxations that have no sharpness accept and ignore it, so a training
loop can pass it to any head.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlhash_jax import codes
from dlhash_jax import relaxations

HASH_RELAXATIONS = ("none", "tanh", "scaled_tanh", "ste", "ste_clipped")
DIVIDE_AND_ENCODE_RELAXATIONS = ("threshold", "sigmoid")


def check_positive_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def check_choice(value, choices: tuple[str, ...], name: str) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")


def _check_features(features, head: str) -> jax.Array:
    features = jnp.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"{head} expects features [B, D], got shape {features.shape}.")
    return features


class HashHead(nn.Module):
    """Fully connected hash layer: ``pre = Dense(L)(features)``, then a relaxation of ``sgn``.

    Relaxations (survey §4.5):

    - ``"none"``: ``relaxed = pre``; for methods whose loss binarises through a penalty
      (quantization, eq 2; hash constraints, eqs 7–9), e.g. DPSH, DSH.
    - ``"tanh"``: ``relaxed = tanh(pre)``.
    - ``"scaled_tanh"``: ``relaxed = tanh(β · pre)`` (eq 23, HashNet), ``β`` from
      :func:`dlhash_jax.relaxations.continuation_schedule` passed at call time.
    - ``"ste"``: ``relaxed = sgn(pre)`` in the forward pass with an identity gradient
      (straight-through estimator); ``"ste_clipped"`` passes the gradient only where
      ``|pre| ≤ 1``. Not in the survey; see :func:`dlhash_jax.relaxations.sign_ste`.

    Attributes:
      bits: code length ``L``.
      relaxation: one of ``HASH_RELAXATIONS``.
      num_classes: if set, a classifier ``Dense(num_classes)`` on the relaxed bits adds
        ``"logits"`` (codes that must predict the labels: survey eqs 20–22, 26).
      use_bias: bias of the hash layer. Without it ``pre`` of a zero feature vector is 0.

    Call:
      ``features``: ``[B, D]``.
      ``beta``: sharpness for ``"scaled_tanh"`` (scalar, may be traced); ignored otherwise.

    Returns:
      ``{"pre": [B, L], "relaxed": [B, L]}``, plus ``"logits": [B, num_classes]`` if
      ``num_classes`` is set.
    """

    bits: int
    relaxation: str = "tanh"
    num_classes: int | None = None
    use_bias: bool = True

    def __post_init__(self):
        check_positive_int(self.bits, "bits")
        check_choice(self.relaxation, HASH_RELAXATIONS, "HashHead relaxation")
        if self.num_classes is not None:
            check_positive_int(self.num_classes, "num_classes")
        super().__post_init__()

    @nn.compact
    def __call__(
        self, features: jax.typing.ArrayLike, *, beta: jax.typing.ArrayLike = 1.0
    ) -> dict[str, jax.Array]:
        features = _check_features(features, "HashHead")
        pre = nn.Dense(self.bits, use_bias=self.use_bias, name="hash")(features)
        if self.relaxation == "none":
            relaxed = pre
        elif self.relaxation == "tanh":
            relaxed = jnp.tanh(pre)
        elif self.relaxation == "scaled_tanh":
            relaxed = relaxations.scaled_tanh(pre, beta)
        else:
            relaxed = relaxations.sign_ste(pre, clipped=self.relaxation == "ste_clipped")
        out = {"pre": pre, "relaxed": relaxed}
        if self.num_classes is not None:
            out["logits"] = nn.Dense(self.num_classes, name="classifier")(relaxed)
        return out


class DivideAndEncode(nn.Module):
    """DNNH's divide-and-encode module: ``L`` equal slices of the features, one unit each.

    The ``D`` features are split into ``L`` contiguous slices of ``D / L``; slice ``k`` is
    connected only to bit ``k`` (a ``Dense(1)`` per slice, computed as one batched contraction),
    so the bits are computed from disjoint inputs, which DNNH uses to reduce their redundancy.

    DNNH feeds each unit through a sigmoid ``s = σ(z)`` and then a piecewise threshold
    ``g(s) = 0`` if ``s < 0.5 − ε``, ``s`` if ``|s − 0.5| ≤ ε``, ``1`` if ``s > 0.5 + ε``, and
    reads bit ``k`` as ``g(s_k) > 0.5``. Here:

    - ``"pre"`` is the unit's input ``z`` (the logit), so the code ``sgn(z)`` is the same bit as
      ``σ(z) ≥ 0.5``;
    - ``"relaxed"`` is DNNH's output moved to the ±1 scale of our losses, ``2 g(σ(z)) − 1``:
      with ``t = 2σ(z) − 1 = tanh(z / 2)``, it is ``t`` where ``|t| ≤ 2ε`` and ``sgn(t)``
      (exactly ±1, zero gradient) elsewhere for ``relaxation="threshold"``, and ``t`` for
      ``relaxation="sigmoid"``. DNNH's ``[0, 1]`` output is ``(relaxed + 1) / 2``.

    Attributes:
      bits: code length ``L``; must divide the feature dimension ``D``.
      relaxation: ``"threshold"`` (DNNH) or ``"sigmoid"`` (no threshold).
      epsilon: half-width ``ε`` of the linear band of the threshold, in ``(0, 0.5)``; a small
        positive hyper-parameter in DNNH, 0.1 here by default.

    Call:
      ``features``: ``[B, D]`` with ``D`` divisible by ``bits``.
      ``beta``: ignored (accepted so every head has the same call).

    Returns:
      ``{"pre": [B, L], "relaxed": [B, L]}``.

    Raises:
      ValueError: if ``D`` is not a multiple of ``bits`` (at ``init``/``apply``).

    References:
      Lai, Pan, Liu & Yan, "Simultaneous feature learning and hash coding with deep neural
      networks", CVPR 2015 (DNNH); survey ref [19].
    """

    bits: int
    relaxation: str = "threshold"
    epsilon: float = 0.1

    def __post_init__(self):
        check_positive_int(self.bits, "bits")
        check_choice(self.relaxation, DIVIDE_AND_ENCODE_RELAXATIONS, "DivideAndEncode relaxation")
        if not 0.0 < self.epsilon < 0.5:
            raise ValueError(f"epsilon must be in (0, 0.5), got {self.epsilon!r}.")
        super().__post_init__()

    @nn.compact
    def __call__(
        self, features: jax.typing.ArrayLike, *, beta: jax.typing.ArrayLike = 1.0
    ) -> dict[str, jax.Array]:
        del beta
        features = _check_features(features, "DivideAndEncode")
        batch, dim = features.shape
        if dim % self.bits:
            raise ValueError(
                f"DivideAndEncode splits the features into {self.bits} equal slices, but the "
                f"feature dimension {dim} is not a multiple of {self.bits} (features shape "
                f"{features.shape})."
            )
        width = dim // self.bits
        # Kernel [L, D/L]: row k holds the weights of bit k; fan-in is the slice width D/L.
        kernel = self.param(
            "kernel",
            nn.initializers.lecun_normal(in_axis=-1, out_axis=-2),
            (self.bits, width),
            jnp.float32,
        )
        bias = self.param("bias", nn.initializers.zeros, (self.bits,), jnp.float32)
        slices = features.reshape(batch, self.bits, width)
        pre = jnp.einsum("blw,lw->bl", slices, kernel) + bias
        centred = jnp.tanh(0.5 * pre)
        if self.relaxation == "threshold":
            relaxed = jnp.where(jnp.abs(centred) <= 2.0 * self.epsilon, centred, codes.sign(pre))
        else:
            relaxed = centred
        return {"pre": pre, "relaxed": relaxed}


class LatentLayer(nn.Module):
    """DLBHC / SSDH latent layer: sigmoid latent bits ``H`` and a classifier on them.

    ``pre = Dense(L)(features)``, ``H = σ(pre) ∈ (0, 1)`` (the latent layer, ``"latent"``), and
    ``logits = Dense(C)(H)``: as in DLBHC the classifier reads the sigmoid activations, so the
    classification loss (survey eq 20) shapes the bits. The code bit is ``H > 0.5`` in DLBHC,
    i.e. ``sgn(pre)`` here. ``"relaxed"`` is ``2H − 1 = tanh(pre / 2)``, the latent on the ±1
    scale shared by our losses; SSDH's terms written on ``H`` (push ``H`` away from 0.5, balance
    its mean at 0.5) are our ``hash_constraint_*`` and ``balance_loss`` applied to it.

    Attributes:
      bits: code length ``L``.
      num_classes: number of classes ``C``.

    Call:
      ``features``: ``[B, D]``.
      ``beta``: ignored (accepted so every head has the same call).

    Returns:
      ``{"pre": [B, L], "relaxed": [B, L], "latent": [B, L], "logits": [B, C]}``.

    References:
      Lin, Yang, Hsiao & Chen, "Deep learning of binary hash codes for fast image retrieval",
      CVPRW 2015 (DLBHC), survey ref [22]; Yang, Lin & Chen, "Supervised learning of
      semantics-preserving hash via deep convolutional neural networks", TPAMI 2018 (SSDH).
    """

    bits: int
    num_classes: int

    def __post_init__(self):
        check_positive_int(self.bits, "bits")
        check_positive_int(self.num_classes, "num_classes")
        super().__post_init__()

    @nn.compact
    def __call__(
        self, features: jax.typing.ArrayLike, *, beta: jax.typing.ArrayLike = 1.0
    ) -> dict[str, jax.Array]:
        del beta
        features = _check_features(features, "LatentLayer")
        pre = nn.Dense(self.bits, name="latent")(features)
        latent = jax.nn.sigmoid(pre)
        # tanh(z/2) equals 2σ(z) − 1 without the cancellation of 2σ(z) − 1 near z = 0.
        relaxed = jnp.tanh(0.5 * pre)
        logits = nn.Dense(self.num_classes, name="classifier")(latent)
        return {"pre": pre, "relaxed": relaxed, "latent": latent, "logits": logits}
