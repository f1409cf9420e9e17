"""Triplet label likelihood: a logistic model of which of two items lies nearer an anchor (DTSH).

DTSH (Wang, Shi & Kitani, ACCV 2016) carries DPSH's pairwise likelihood over to triplets. With
``θ_ij = ½ a_i·a_j`` (for ±1 codes ``θ_ij = L/2 − d_H(i, j)``), a triplet ``(q, p, n)`` — an anchor,
a positive similar to it and a negative dissimilar to it — is modelled as

    p(t | A) = σ(θ_qp − θ_qn − α),

so the negative log-likelihood of a triplet is ``softplus(−(θ_qp − θ_qn − α))``: large unless the
positive is nearer the anchor than the negative by the margin ``α`` (in units of θ, i.e. bits).
The term here takes every valid triplet a labelled batch contains, built per anchor on the
``[N, N]`` (positive, negative) grid and mapped over anchors with ``jax.vmap``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from dlhash_jax.losses._validation import check_rank, check_same_rows


def _guarded_ratio(total: jax.Array, count: jax.Array) -> jax.Array:
    """``total / count``, and 0 (with a zero gradient) when nothing was counted."""
    return total / jnp.where(count > 0, count, 1)


def triplet_likelihood_loss(
    A: jax.typing.ArrayLike, Y: jax.typing.ArrayLike, *, margin: float
) -> jax.Array:
    """Negative log-likelihood of every triplet label of a batch under DTSH's logistic model.

    Every sample ``q`` is an anchor; its positives ``p`` are the other samples that share at least
    one label with it (``Y_q·Y_p > 0``, never ``q`` itself), its negatives ``n`` the samples that
    share none. With ``θ_ij = ½ a_i·a_j`` the loss is

        mean over all valid (q, p, n) of  softplus(−(θ_qp − θ_qn − α))
                                        = −log σ(θ_qp − θ_qn − α),

    computed as a ``softplus`` so it stays finite for any ``|θ|`` (the printed
    ``log(1 + e^x)`` overflows in float32 once ``x`` exceeds about 88). 0, with a zero gradient,
    when the batch holds no valid triplet (all samples alike, all pairwise different, or
    unlabelled). Memory is ``O(N³)``: one ``[N, N]`` grid per anchor.

    Wang, Shi & Kitani write the objective as the sum over the triplet labels of
    ``−(Θ_qp − Θ_qn − α − log(1 + e^{Θ_qp − Θ_qn − α}))``, with ``Θ_ij = ½ b_iᵀb_j`` on the
    codes, relaxed to the real outputs ``u`` (``Ψ_ij = ½ u_iᵀu_j``); the quantization term
    ``λ Σ_n ‖b_n − u_n‖²`` that goes with it is :func:`quantization_loss` (survey eq 2). We take
    the mean over triplets instead of the sum, and form the triplets inside the batch instead of
    sampling them from the training set. The survey prints no equation for it (§5.2.3 describes
    the triplet-input methods).

    References:
      Wang, Shi & Kitani, "Deep supervised hashing with triplet labels" (DTSH), ACCV 2016
      (arXiv:1612.03900); Li, Wang & Kang, "Feature learning based deep supervised hashing with
      pairwise labels" (DPSH), IJCAI 2016 (the pairwise likelihood it extends).

    Args:
      A: ``[N, L]`` real network outputs of the batch.
      Y: ``[N, C]`` multi-hot labels (one-hot for single-label data; any real, int or bool dtype).
      margin: ``α``, by how much ``θ_qp`` must exceed ``θ_qn`` (in bits for ±1 codes, where
        ``θ_qp − θ_qn = d_H(q, n) − d_H(q, p)``) before a triplet is likely.

    Returns:
      Float scalar (≥ 0).

    Raises:
      ValueError: if ``A`` is not ``[N, L]`` or ``Y`` is not ``[N, C]`` with the same ``N``.

    Examples:
      >>> a = jnp.array([[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0]])
      >>> y = jnp.array([[1, 0], [1, 0], [0, 1]])
      >>> # Anchors 0 and 1: θ_qp − θ_qn − α = 1 − (−1) − 2 = 0, so each costs log 2.
      >>> round(float(triplet_likelihood_loss(a, y, margin=2.0)), 6)
      0.693147
    """
    check_rank(A, 2, "A", "[N, L]")
    check_rank(Y, 2, "Y", "[N, C]")
    check_same_rows(A, Y, ("A", "Y"))
    dtype = jnp.result_type(A, jnp.float32)
    A = jnp.asarray(A, dtype)
    Y = jnp.asarray(Y, dtype)
    n = A.shape[0]
    theta = 0.5 * jnp.matmul(A, A.T, precision=lax.Precision.HIGHEST)
    shares = (Y @ Y.T) > 0
    positive = shares & ~jnp.eye(n, dtype=bool)
    negative = ~shares

    def per_anchor(theta_q, pos_q, neg_q):
        valid = pos_q[:, None] & neg_q[None, :]
        nll = jax.nn.softplus(margin - (theta_q[:, None] - theta_q[None, :]))
        return jnp.sum(jnp.where(valid, nll, 0.0)), jnp.sum(valid, dtype=dtype)

    totals, counts = jax.vmap(per_anchor)(theta, positive, negative)
    return _guarded_ratio(jnp.sum(totals), jnp.sum(counts))
