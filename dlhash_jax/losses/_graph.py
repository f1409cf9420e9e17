"""Similarity preservation through a graph over the batch (survey §4.3.1 eq 13, §4.3.2 eq 18).

Both terms take the batch's outputs ``A`` (``[N, L]``) and an ``[N, N]`` weight matrix over the
same batch: an affinity ``R`` (e.g. ``similarity.gaussian_affinity``) for the Laplacian term, the
common-label counts ``G`` (``similarity.common_labels(Y, Y)``) for the KL term.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp, xlogy

from dlhash_jax import codes
from dlhash_jax.losses._validation import check_rank


def _check_graph(A, W, name: str) -> None:
    check_rank(A, 2, "A", "[N, L]")
    check_rank(W, 2, name, "[N, N]")
    n = jnp.shape(A)[0]
    if tuple(jnp.shape(W)) != (n, n):
        raise ValueError(
            f"{name} must have shape [N, N] = {(n, n)} for A of shape {jnp.shape(A)}, got "
            f"{jnp.shape(W)}."
        )


def laplacian_loss(A: jax.typing.ArrayLike, R: jax.typing.ArrayLike) -> jax.Array:
    """Graph-Laplacian smoothness: neighbours in input space get nearby outputs.

    ``(1/N²) tr(Aᵀ (D − R) A) = (1/(2N²)) Σ_ij R_ij ‖a_i − a_j‖²`` with ``D = diag(Σ_j R_ij)``.
    The two forms are equal for a symmetric ``R``; for a non-symmetric one we compute the pairwise
    form, which equals the trace form with ``R`` replaced by its symmetric part ``(R + Rᵀ)/2``.
    Evaluated without forming the ``[N, N, L]`` differences, as
    ``(1/N²) [Σ_i deg_i ‖a_i‖² − Σ_ij R_ij a_i·a_j]`` with ``deg_i = (Σ_j R_ij + Σ_j R_ji)/2``.

    Survey eq 13 (§4.3.1), printed as ``tr(A L Aᵀ)`` in the ``L × N`` orientation, without the
    ``1/N²`` we add so that the weight of the term does not depend on the batch size.

    References:
      Bai et al., "Deep learning compact binary codes for fingerprint indexing", Frontiers of
      Information Technology & Electronic Engineering 2018.

    Args:
      A: ``[N, L]`` real network outputs.
      R: ``[N, N]`` non-negative affinities within the batch, e.g.
        ``exp(−‖x_i − x_j‖² / (2σ²))``.

    Returns:
      Float scalar (≥ 0 for non-negative ``R``).

    Raises:
      ValueError: if ``A`` is not ``[N, L]`` or ``R`` is not ``[N, N]``.

    Examples:
      >>> float(laplacian_loss(jnp.array([[1.0], [-1.0]]), jnp.array([[0.0, 1.0], [1.0, 0.0]])))
      1.0
    """
    _check_graph(A, R, "R")
    A = jnp.asarray(A)
    R = jnp.asarray(R)
    n = A.shape[0]
    degree = 0.5 * (jnp.sum(R, axis=1) + jnp.sum(R, axis=0))
    smoothness = jnp.sum(degree * jnp.sum(A**2, axis=1)) - jnp.sum(A * (R @ A))
    return smoothness / n**2


def bipartite_laplacian_loss(
    A: jax.typing.ArrayLike, U: jax.typing.ArrayLike, R: jax.typing.ArrayLike
) -> jax.Array:
    """Laplacian smoothness of a batch against a fixed set: ``(1/(2NM)) Σ_ij R_ij ‖a_i − u_j‖²``.

    The Laplacian term of eq 13 (see :func:`laplacian_loss`) restricted to the rows of a batch
    ``A`` against every item ``U`` of the training set (a memory bank of outputs, no gradient
    through it in a training loop). For a symmetric ``R``, the gradient of the full-set term
    ``½ Σ_ij R_ij ‖a_i − a_j‖²`` with respect to ``a_i`` is ``2 Σ_j R_ij (a_i − a_j)``, which is
    the gradient of this term with ``U`` the current outputs, up to the ``1/(NM)`` scale; with
    ``U = A`` and ``M = N`` the two losses are equal.

    Evaluated without forming the ``[N, M, L]`` differences, as
    ``(1/(2NM)) [Σ_i r_i ‖a_i‖² + Σ_j c_j ‖u_j‖² − 2 Σ_ij R_ij a_i·u_j]`` with row sums ``r`` and
    column sums ``c`` of ``R``.

    References:
      Bai et al., "Deep learning compact binary codes for fingerprint indexing", Frontiers of
      Information Technology & Electronic Engineering 2018 (eq 13 over the training set).

    Args:
      A: ``[N, L]`` real network outputs of the batch.
      U: ``[M, L]`` real outputs of the other set (e.g. the whole training split).
      R: ``[N, M]`` non-negative affinities between the batch and that set.

    Returns:
      Float scalar (≥ 0 for non-negative ``R``).

    Raises:
      ValueError: if the shapes are not ``[N, L]``, ``[M, L]`` and ``[N, M]``.

    Examples:
      >>> a = jnp.array([[1.0], [-1.0]])
      >>> float(bipartite_laplacian_loss(a, a, jnp.array([[0.0, 1.0], [1.0, 0.0]])))
      1.0
    """
    check_rank(A, 2, "A", "[N, L]")
    check_rank(U, 2, "U", "[M, L]")
    check_rank(R, 2, "R", "[N, M]")
    n, m = jnp.shape(A)[0], jnp.shape(U)[0]
    if jnp.shape(A)[1] != jnp.shape(U)[1] or tuple(jnp.shape(R)) != (n, m):
        raise ValueError(
            f"Expected A [N, L], U [M, L] and R [N, M]; got A {jnp.shape(A)}, U {jnp.shape(U)} "
            f"and R {jnp.shape(R)}."
        )
    A = jnp.asarray(A)
    U = jnp.asarray(U)
    R = jnp.asarray(R)
    smoothness = (
        jnp.sum(jnp.sum(R, axis=1) * jnp.sum(A**2, axis=1))
        + jnp.sum(jnp.sum(R, axis=0) * jnp.sum(U**2, axis=1))
        - 2.0 * jnp.sum(A * (R @ U))
    )
    return smoothness / (2.0 * n * m)


def kl_similarity_loss(A: jax.typing.ArrayLike, G: jax.typing.ArrayLike) -> jax.Array:
    """KL divergence between the label-overlap distribution and the Hamming-space distribution.

    Over the ordered pairs ``i ≠ j`` of the batch, ``p_ij = G_ij / Σ_{k≠m} G_km`` and
    ``v_ij = exp(−d_ij) / Σ_{k≠m} exp(−d_km)`` with the relaxed Hamming distance
    ``d_ij = (L − a_i·a_j)/2``; the loss is ``KL(P‖V) = Σ_{i≠j} p_ij log(p_ij / v_ij)``.
    ``0·log 0`` is taken as 0, the normaliser of ``V`` is a ``logsumexp``, and a batch in which no
    two samples share a label (no off-diagonal mass in ``G``) gives 0 with a zero gradient.

    Survey eq 18 (§4.3.2), printed with the Hamming distance of the codes ``B``; we use the
    relaxed distance of the outputs ``A``, which equals it on ±1 codes and is differentiable.

    References:
      Ma et al., "Global and local semantics-preserving based deep hashing for cross-modal
      retrieval", Neurocomputing 2018.

    Args:
      A: ``[N, L]`` real network outputs.
      G: ``[N, N]`` non-negative weights, the number of labels samples ``i`` and ``j`` share
        (``Y Yᵀ`` for multi-hot labels ``Y``); the diagonal is ignored.

    Returns:
      Float scalar (≥ 0).

    Raises:
      ValueError: if ``A`` is not ``[N, L]`` or ``G`` is not ``[N, N]``.

    Examples:
      >>> round(float(kl_similarity_loss(jnp.ones((2, 3)), jnp.ones((2, 2)))), 6)
      0.0
    """
    _check_graph(A, G, "G")
    A = jnp.asarray(A)
    G = jnp.asarray(G)
    n = A.shape[0]
    if n < 2:
        # No pair i != j exists, so both distributions are empty.
        return jnp.zeros((), jnp.result_type(A.dtype, float))
    off_diagonal = ~jnp.eye(n, dtype=bool)
    weights = jnp.where(off_diagonal, G, 0)
    mass = jnp.sum(weights)
    # Guarded denominator: with no off-diagonal mass P is all zeros and the loss is 0.
    p = weights / jnp.where(mass > 0, mass, 1)
    neg_distance = -codes.relaxed_hamming_distance(A, A)
    log_normaliser = logsumexp(jnp.where(off_diagonal, neg_distance, -jnp.inf))
    log_v = jnp.where(off_diagonal, neg_distance - log_normaliser, 0)
    return jnp.sum(xlogy(p, p) - p * log_v)
