"""LCDSH's locality constraint: the pairwise probabilities of the real outputs kept at those of
their codes.

Beyond the survey's catalogue (Locality-constrained deep supervised hashing, IJCAI 2017). Where
a quantization term (survey eq 2) pulls every output towards its code, and so changes the
distribution of the features, this term asks only that each pair be as similar under the
logistic model of survey eq 15 when it is scored by the real outputs as when it is scored by the
binary codes: the neighbourhood structure (the locality) of the features survives binarisation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from dlhash_jax import codes
from dlhash_jax.losses._validation import check_rank


def _codes_or_default(A: jax.Array, B, name: str, a_name: str) -> jax.Array:
    """``B`` cast to ``A``'s dtype after a shape check, or ``stop_gradient(sgn(A))``."""
    if B is None:
        return lax.stop_gradient(codes.sign(A))
    if jnp.shape(B) != A.shape:
        raise ValueError(
            f"{name} must have the shape of {a_name}, got shapes {jnp.shape(B)} and {A.shape}."
        )
    return jnp.asarray(B, A.dtype)


def locality_constraint_loss(
    A1: jax.typing.ArrayLike,
    A2: jax.typing.ArrayLike,
    B1: jax.typing.ArrayLike | None = None,
    B2: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """Squared gap between the pair probabilities of the real outputs and of their codes.

    With ``θ_ij = ½ a_i·a'_j`` on the real outputs and ``φ_ij = ½ b_i·b'_j`` on the codes, the
    loss is ``mean_ij (σ(θ_ij) − σ(φ_ij))²`` over all ``N·M`` pairs. ``σ(θ_ij)`` is the
    probability that the pair is similar under the logistic model of
    :func:`~dlhash_jax.losses.pairwise_likelihood_loss` (survey eq 15/24); since
    ``p(s = 0) = 1 − p(s = 1)``, the gap is the same whichever label the pair has, so the term
    needs no similarity matrix. The codes default to ``b = sgn(a)`` (``sgn(0) = +1``) under
    ``stop_gradient``: the gradient reaches the real outputs through ``σ(θ)`` only, pulling
    each pair's probability towards the one its codes give. When ``A2`` is ``A1`` the pairs
    ``(i, i)`` count like any other pair.

    LCDSH writes the term as a sum over the training pairs; we take the mean, so its weight
    ``λ`` does not depend on the number of pairs (the common re-implementations also take the
    mean). Beyond the survey: LCDSH puts this term where other methods put the quantization
    loss of survey eq 2 (:func:`~dlhash_jax.losses.quantization_loss`).

    References:
      Hao Zhu & Shenghua Gao, "Locality constrained deep supervised hashing for image
      retrieval" (LCDSH), IJCAI 2017.

    Args:
      A1: ``[N, L]`` real network outputs.
      A2: ``[M, L]`` real network outputs (may be ``A1``, or a memory bank).
      B1: ``[N, L]`` codes of ``A1``; default ``stop_gradient(sgn(A1))``.
      B2: ``[M, L]`` codes of ``A2``; default ``stop_gradient(sgn(A2))``.

    Returns:
      Float scalar in ``[0, 1]``.

    Raises:
      ValueError: if ``A1`` or ``A2`` is not a matrix, their numbers of bits differ, or a code
        matrix does not have the shape of its outputs.

    Examples:
      >>> a = jnp.array([[1.0, 1.0], [1.0, -1.0]])
      >>> float(locality_constraint_loss(a, a))
      0.0
      >>> # θ = 0 but the codes sgn(0) = +1 give φ = 2: (σ(0) − σ(2))².
      >>> round(float(locality_constraint_loss(jnp.zeros((1, 4)), jnp.zeros((1, 4)))), 6)
      0.145006
    """
    check_rank(A1, 2, "A1", "[N, L]")
    check_rank(A2, 2, "A2", "[M, L]")
    if jnp.shape(A1)[1] != jnp.shape(A2)[1]:
        raise ValueError(
            f"A1 and A2 must have the same number of bits (last axis), got shapes "
            f"{jnp.shape(A1)} and {jnp.shape(A2)}."
        )
    dtype = jnp.result_type(A1, A2, jnp.float32)
    A1, A2 = jnp.asarray(A1, dtype), jnp.asarray(A2, dtype)
    B1 = _codes_or_default(A1, B1, "B1", "A1")
    B2 = _codes_or_default(A2, B2, "B2", "A2")
    relaxed = jax.nn.sigmoid(0.5 * (A1 @ A2.T))
    binary = jax.nn.sigmoid(0.5 * (B1 @ B2.T))
    return jnp.mean((relaxed - binary) ** 2)
