"""OrthoHash's objective: cosine-margin cross-entropy of the codes against a fixed codebook.

Not in the survey's catalogue (the paper appeared a year later). It replaces the linear classifier
of survey eq 20 by the cosine similarity to one fixed binary code per class, with an additive
cosine margin (CosFace's), so that maximising the class score is at once classification and
quantization: the cosine of a real output to a ±1 code is 1 exactly when the output's signs are
that code.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import optax

from dlhash_jax.losses._validation import check_rank
from dlhash_jax.losses._validation import check_same_bits

def _check_real(value, name: str, *, positive: bool) -> None:
    """Raises ValueError unless ``value`` is a real number (``> 0`` or ``≥ 0``); traced: scalar."""
    if isinstance(value, jax.Array):
        if jnp.ndim(value) != 0:
            raise ValueError(f"{name} must be a scalar, got shape {jnp.shape(value)}.")
        return
    bad = isinstance(value, bool) or not isinstance(value, numbers.Real)
    if bad or not (value > 0 if positive else value >= 0):
        kind = "a positive real number" if positive else "a real number >= 0"
        raise ValueError(f"{name} must be {kind}, got {value!r}.")


def _unit_rows(x: jax.Array) -> jax.Array:
    """Rows of ``x`` divided by their Euclidean norms; a zero row stays zero, with zero gradient."""
    squared = jnp.sum(x * x, axis=1, keepdims=True)
    positive = squared > 0
    # The inner where keeps the unused branch finite, so the gradient of a zero row is 0, not NaN.
    return jnp.where(positive, x * jax.lax.rsqrt(jnp.where(positive, squared, 1.0)), 0.0)


def cosine_margin_loss(
    A: jax.typing.ArrayLike,
    C: jax.typing.ArrayLike,
    Y: jax.typing.ArrayLike,
    *,
    scale: float = 8.0,
    margin: float = 0.2,
) -> jax.Array:
    """Softmax cross-entropy of scaled, margin-shifted cosines to one fixed code per class.

    With ``cos_ik = a_iᵀ c_k / (‖a_i‖ ‖c_k‖)`` and the target ``q_i = y_i / Σ_k y_ik``,

        ℓ = −(1/N) Σ_i Σ_k q_ik log softmax_k(s (cos_ik − m y_ik)),

    the mean over samples. For a one-hot row this is CosFace's large-margin cosine loss with the
    class weights frozen to the codebook: the true class must win by ``m`` in cosine. For a
    multi-hot row the target is spread uniformly over the item's classes and every one of them
    carries the margin (OrthoHash's "label smoothing" form for multi-label data). A row without
    labels contributes 0 (it still counts in the mean), as in
    :func:`~dlhash_jax.losses.softmax_loss`.

    OrthoHash (Hoe et al., NeurIPS 2021) takes ``C`` to be ±1 codes, one per class, chosen once
    and never trained; the cosine of ``a_i`` to a ±1 code is 1 exactly when ``sgn(a_i)`` is that
    code and ``|a_i|`` is constant, so the single objective also drives the quantization error
    down. A zero row of ``A`` (or ``C``) has cosine 0 to everything, with a zero gradient.

    References:
      Hoe, Ng, Gu, Fan, Chan, Tan & Chan, "One loss for all: deep hashing with a single cosine
      similarity based learning objective", NeurIPS 2021; Wang et al.,
      "CosFace: large margin cosine loss for deep face recognition", CVPR 2018.

    Args:
      A: ``[N, L]`` real network outputs (OrthoHash: the batch-normalised code layer).
      C: ``[K, L]`` class codes (OrthoHash: fixed ±1 codes; any non-zero rows work).
      Y: ``[N, K]`` labels in {0, 1}, one-hot or multi-hot.
      scale: ``s > 0``, the inverse temperature of the softmax (keyword-only).
      margin: ``m ≥ 0``, subtracted from the cosine of every label of an item (keyword-only).
        A traced ``scale`` or ``margin`` is accepted unchecked (shape only).

    Returns:
      Float scalar (≥ 0).

    Raises:
      ValueError: if ``A`` is not ``[N, L]``, ``C`` not ``[K, L]`` with the same ``L``, ``Y`` not
        ``[N, K]``, or ``scale`` / ``margin`` is not a positive / non-negative real number.

    Examples:
      >>> codes = jnp.array([[1.0, 1.0], [1.0, -1.0]])
      >>> a = jnp.array([[2.0, 2.0]])  # cosine 1 to class 0, 0 to class 1
      >>> round(float(cosine_margin_loss(a, codes, jnp.array([[1.0, 0.0]]), margin=0.0)), 6)
      0.000335
    """
    _check_real(scale, "scale", positive=True)
    _check_real(margin, "margin", positive=False)
    check_rank(A, 2, "A", "[N, L]")
    check_rank(C, 2, "C", "[K, L]")
    check_rank(Y, 2, "Y", "[N, K]")
    check_same_bits(A, C, ("A", "C"))
    expected = (jnp.shape(A)[0], jnp.shape(C)[0])
    if tuple(jnp.shape(Y)) != expected:
        raise ValueError(
            f"Y must have shape [N, K] = {expected} for A of shape {jnp.shape(A)} and C of "
            f"shape {jnp.shape(C)}, got {jnp.shape(Y)}."
        )
    dtype = jnp.result_type(A, C, jnp.float32)
    A, C, Y = (jnp.asarray(x, dtype) for x in (A, C, Y))
    cosine = _unit_rows(A) @ _unit_rows(C).T
    logits = scale * (cosine - margin * Y)
    mass = jnp.sum(Y, axis=1, keepdims=True)
    # An unlabelled row has no target; dividing by 1 keeps it all-zero instead of 0/0.
    target = Y / jnp.where(mass > 0, mass, 1.0)
    return jnp.mean(optax.losses.softmax_cross_entropy(logits, target))
