"""DCH's Cauchy terms: a pairwise cross-entropy and a quantization on normalised Hamming distance.

Beyond the survey's catalogue (Deep Cauchy Hashing, CVPR 2018, postdates the methods it lists).
Both terms measure codes by DCH's normalised Hamming distance of real outputs,

    d(a, a') = (L / 2) · (1 − cos(a, a')),

which equals the Hamming distance ``(L − b·b') / 2`` when ``a`` and ``a'`` are ±1 codes ``b``,
``b'``, and turn it into a probability of similarity with the Cauchy kernel ``γ / (γ + d)``.
Its heavy tail keeps penalising similar pairs far outside a small Hamming ball, where the
sigmoid of the inner product (eq 15) has already saturated.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
from jax import lax

from dlhash_jax.losses._pairwise import _float_operands
from dlhash_jax.losses._pairwise import _guarded_mean
from dlhash_jax.losses._validation import check_pair_block
from dlhash_jax.losses._validation import check_rank

# A row whose norm is below this is treated as having this norm (the cosine of a zero row is 0).
_NORM_FLOOR = 1e-12
# Smallest distance the dissimilar term sees: a dissimilar pair at distance 0 has probability 1
# of being similar, i.e. an infinite loss; the floor keeps the value and gradient finite.
_DISTANCE_FLOOR = 1e-6


def _check_gamma(gamma) -> None:
    """Raises ValueError unless a static ``gamma`` is positive (a traced one passes unchecked)."""
    if isinstance(gamma, jax.Array):
        if jnp.ndim(gamma) != 0:
            raise ValueError(f"gamma must be a scalar, got shape {jnp.shape(gamma)}.")
        return
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not gamma > 0:
        raise ValueError(f"gamma must be a positive number, got {gamma!r}.")


def _unit_rows(A: jax.Array) -> jax.Array:
    """Rows scaled to unit L2 norm; a zero row stays 0 (with a finite, zero gradient)."""
    squared = jnp.sum(A**2, axis=1, keepdims=True)
    return A / jnp.sqrt(jnp.maximum(squared, _NORM_FLOOR**2))


def _normalized_hamming_block(A1: jax.Array, A2: jax.Array) -> jax.Array:
    """``[N, M]`` matrix of ``(L/2)(1 − cos(a_i, a'_j))``, in ``[0, L]`` up to rounding.

    The cosines come from one matmul of unit rows at the highest precision: the distance of a
    near pair (exactly the similar ones) is a small difference, which reduced-precision matmuls
    (TF32, bf16 passes) would turn into noise.
    """
    cosine = jnp.matmul(_unit_rows(A1), _unit_rows(A2).T, precision=lax.Precision.HIGHEST)
    return 0.5 * A1.shape[1] * (1.0 - cosine)


def cauchy_cross_entropy_loss(
    A1: jax.typing.ArrayLike,
    A2: jax.typing.ArrayLike,
    S: jax.typing.ArrayLike,
    *,
    gamma: float,
    balanced: bool = True,
) -> jax.Array:
    """Cross-entropy of the pairwise labels under DCH's Cauchy model of code similarity.

    With ``d_ij = (L/2)(1 − cos(a_i, a'_j))`` and ``p(s_ij = 1) = γ / (γ + d_ij)``, the loss of a
    pair is ``−log p`` for a similar pair and ``−log(1 − p)`` for a dissimilar one:

        ℓ_ij = s_ij log(1 + d_ij / γ) + (1 − s_ij) log(1 + γ / d_ij),

    which is DCH's ``s_ij log(d_ij / γ) + log(1 + γ / d_ij)`` written without the terms that
    cancel (and so without ``log 0`` at ``d_ij = 0`` for a similar pair).

    - ``balanced=True`` (DCH): ``mean_{s=1} ℓ + mean_{s=0} ℓ``, the paper's weighted sum
      ``Σ_ij w_ij ℓ_ij`` with ``w_ij = |S| / |S_1|`` for similar and ``|S| / |S_0|`` for
      dissimilar pairs of the block, divided by the number of pairs ``|S|``. A kind of pair
      absent from the block contributes 0 (no NaN, zero gradient). Fractional ``S`` weights
      each pair by ``s`` in the first mean and ``1 − s`` in the second.
    - ``balanced=False``: ``mean_ij ℓ_ij`` over all ``N·M`` pairs.

    The dissimilar part sees ``max(d_ij, 1e-6)``: a dissimilar pair at distance 0 has an
    infinite loss in the paper, a large finite one here (about ``log(γ · 10⁶)``). Rows are
    normalised with their norms floored at ``1e-12``, so a zero row has cosine 0 with
    everything instead of a NaN. When ``A2`` is ``A1`` the pairs ``(i, i)`` count like any
    other (similar, at distance 0, loss 0).

    Beyond the survey (its eq 15 is the logistic counterpart on inner products).

    References:
      Cao, Long, Liu & Wang, "Deep Cauchy hashing for Hamming space retrieval" (DCH),
      CVPR 2018.

    Args:
      A1: ``[N, L]`` real network outputs.
      A2: ``[M, L]`` real network outputs (may be ``A1``).
      S: ``[N, M]`` similarity, 1 for similar pairs and 0 otherwise (any real, int or bool dtype).
      gamma: ``γ > 0``, the Cauchy scale: the distance at which a pair is as likely similar as
        not.
      balanced: weight similar and dissimilar pairs to equal total weight (DCH's ``w_ij``).

    Returns:
      Float scalar (≥ 0 for ``S ∈ {0, 1}``).

    Raises:
      ValueError: if the shapes are not ``[N, L]``, ``[M, L]`` and ``[N, M]``, or ``gamma`` is
        not a positive number.

    Examples:
      >>> a = jnp.array([[1.0, 1.0], [1.0, -1.0]])
      >>> round(float(cauchy_cross_entropy_loss(a, a, jnp.eye(2), gamma=1.0)), 6)
      0.693147
    """
    _check_gamma(gamma)
    check_pair_block(A1, A2, S)
    A1, A2, S = _float_operands(A1, A2, S)
    distance = _normalized_hamming_block(A1, A2)
    similar = jnp.log1p(jnp.maximum(distance, 0.0) / gamma)
    floored = jnp.maximum(distance, _DISTANCE_FLOOR)
    dissimilar = jnp.log(floored + gamma) - jnp.log(floored)
    if balanced:
        return _guarded_mean(similar, S) + _guarded_mean(dissimilar, 1.0 - S)
    return jnp.mean(S * similar + (1.0 - S) * dissimilar)


def cauchy_quantization_loss(A: jax.typing.ArrayLike, *, gamma: float) -> jax.Array:
    """DCH's Cauchy quantization: how far each output's direction is from a ±1 code's.

    ``(1/N) Σ_i log(1 + d(|a_i|, 1) / γ)`` with ``d(|a_i|, 1) = (L/2)(1 − cos(|a_i|, 1))``, the
    normalised Hamming distance between the magnitudes ``|a_i|`` and the all-ones vector. It is
    0 exactly when every bit of ``a_i`` has the same magnitude (``a_i`` is a multiple of a ±1
    code, in particular a code), and it depends only on the direction of ``a_i``. A zero row
    (norm floored at ``1e-12``) has cosine 0, i.e. ``d = L/2``.

    DCH writes the sum over the ``N`` images; ours is the mean. Beyond the survey.

    References:
      Cao, Long, Liu & Wang, "Deep Cauchy hashing for Hamming space retrieval" (DCH),
      CVPR 2018.

    Args:
      A: ``[N, L]`` real network outputs.
      gamma: ``γ > 0``, the Cauchy scale (the same ``γ`` as the cross-entropy's in DCH).

    Returns:
      Float scalar (≥ 0).

    Raises:
      ValueError: if ``A`` is not ``[N, L]`` or ``gamma`` is not a positive number.

    Examples:
      >>> round(float(cauchy_quantization_loss(jnp.array([[0.5, -0.5]]), gamma=2.0)), 6)
      0.0
      >>> round(float(cauchy_quantization_loss(jnp.array([[1.0, 0.0]]), gamma=1.0)), 6)
      0.256883
    """
    _check_gamma(gamma)
    check_rank(A, 2, "A", "[N, L]")
    A = jnp.asarray(A, jnp.result_type(A, jnp.float32))
    ones = jnp.ones((1, A.shape[1]), A.dtype)
    distance = _normalized_hamming_block(jnp.abs(A), ones)[:, 0]
    return jnp.mean(jnp.log1p(jnp.maximum(distance, 0.0) / gamma))
