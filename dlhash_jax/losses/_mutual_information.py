"""MIHash's objective: mutual information between neighbourhood and Hamming distance.

Not in the survey's catalogue. For a query, the items of a set are neighbours (``C = +``) or not
(``C = −``); their Hamming distances to the query form two distributions, ``p(D | +)`` and
``p(D | −)``. Codes retrieve well when the two barely overlap, that is when the distance tells a
lot about the neighbour indicator: MIHash maximises ``I(C; D)``. Hamming distances of relaxed codes
are binned into a histogram with triangular kernels, which makes the estimate differentiable.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlhash_jax import _checks
from dlhash_jax.losses._validation import check_pair_block


def _entropy_bits(p: jax.Array) -> jax.Array:
    """``−Σ_k p_k log2 p_k`` over the last axis, with ``0 log 0 = 0`` and no NaN gradient."""
    positive = p > 0
    safe = jnp.where(positive, p, 1.0)
    return -jnp.sum(jnp.where(positive, p * jnp.log2(safe), 0.0), axis=-1)


def _ratio(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
    """``numerator / denominator``, and 0 where the denominator is 0."""
    nonzero = denominator > 0
    return jnp.where(nonzero, numerator / jnp.where(nonzero, denominator, 1.0), 0.0)


def mutual_information_loss(
    A1: jax.typing.ArrayLike,
    A2: jax.typing.ArrayLike,
    S: jax.typing.ArrayLike,
    valid: jax.typing.ArrayLike | None = None,
    *,
    num_bins: int,
) -> jax.Array:
    """Minus the mutual information between neighbour indicator and relaxed Hamming distance.

    Each row ``a_i`` of ``A1`` is a query and the rows ``a'_j`` of ``A2`` its retrieval set; the
    relaxed Hamming distance is ``d_ij = (L − a_iᵀ a'_j) / 2`` (in ``[0, L]`` for entries in
    ``[−1, 1]``). The distances are binned into ``K + 1`` bins centred at ``c_k = kΔ``,
    ``Δ = L / K``, ``k = 0..K``, by the triangular kernel ``δ_k(d) = max(0, 1 − |d − c_k| / Δ)``
    (which sums to 1 over the bins for any ``d`` in ``[0, L]``). Over the pairs that count
    (``valid``, all by default), with ``n_i`` of them, ``n⁺_i`` neighbours (``s_ij = 1``) and
    ``n⁻_i`` non-neighbours,

        p_i(D = k | +) = (1/n⁺_i) Σ_{j: s_ij = 1} δ_k(d_ij),   p_i(D = k | −) likewise,
        p_i(D = k)     = (1/n_i) Σ_j δ_k(d_ij),               p_i(±) = n^±_i / n_i,
        I_i = H(p_i(D)) − p_i(+) H(p_i(D | +)) − p_i(−) H(p_i(D | −))   (entropies in bits),

    and the loss is ``−(1/N) Σ_i I_i``. A query whose valid pairs are all neighbours, or all
    non-neighbours, or that has none, has ``I_i = 0`` and no gradient.

    MIHash (Cakir, He, Bargal & Sclaroff, ICCV 2017; the batch version of their TPAMI 2019
    paper): relaxed codes ``φ = 2σ(a x) − 1``, every item of a mini-batch a query against the
    rest of the batch (``A1 = A2 = φ``, ``valid`` all pairs but ``i = j``), and ``log2`` in the
    entropies as in the authors' code. The authors sum ``I_i`` over the queries; we take the
    mean, so the term does not scale with the batch size.

    References:
      Cakir, He, Bargal & Sclaroff, "MIHash: online hashing with mutual information", ICCV 2017
      (arXiv:1703.08919); "Hashing with mutual information", TPAMI 2019 (arXiv:1803.00974).

    Args:
      A1: ``[N, L]`` relaxed codes of the queries, entries in ``[−1, 1]``.
      A2: ``[M, L]`` relaxed codes of the retrieval set, entries in ``[−1, 1]``.
      S: ``[N, M]`` neighbour indicator in {0, 1}.
      valid: optional ``[N, M]`` weights in {0, 1} of the pairs that count (e.g. ``1 − I`` to
        leave out each item's pair with itself when ``A2`` is ``A1``); ``None``: every pair.
      num_bins: ``K``, a positive integer (keyword-only); ``K + 1`` bin centres span
        ``[0, L]``. The authors' default is ``L / 2``.

    Returns:
      Float scalar in ``[−1, 0]`` (the mutual information of a binary variable is at most one
      bit).

    Raises:
      ValueError: if ``A1``, ``A2``, ``S`` are not ``[N, L]``, ``[M, L]``, ``[N, M]``, ``valid``
        is not ``[N, M]``, or ``num_bins`` is not a positive integer.

    Examples:
      >>> a = jnp.array([[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0]])
      >>> s = jnp.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]])
      >>> valid = 1.0 - jnp.eye(3)
      >>> round(float(mutual_information_loss(a, a, s, valid, num_bins=2)), 6)  # separated
      -0.666667
    """
    num_bins = _checks.check_int(num_bins, "num_bins")
    check_pair_block(A1, A2, S)
    if valid is not None and tuple(jnp.shape(valid)) != tuple(jnp.shape(S)):
        raise ValueError(
            f"valid must have the shape of S, [N, M] = {jnp.shape(S)}, got {jnp.shape(valid)}."
        )
    dtype = jnp.result_type(A1, A2, jnp.float32)
    A1, A2, S = (jnp.asarray(x, dtype) for x in (A1, A2, S))
    valid = jnp.ones_like(S) if valid is None else jnp.asarray(valid, dtype)
    bits = A1.shape[1]
    width = bits / num_bins
    centers = jnp.arange(num_bins + 1, dtype=dtype) * width
    distance = (bits - A1 @ A2.T) / 2
    kernel = jnp.maximum(0.0, 1.0 - jnp.abs(distance[..., None] - centers) / width)  # [N, M, K+1]
    positive = S * valid
    negative = (1 - S) * valid
    hist_positive = jnp.einsum("nmk,nm->nk", kernel, positive)
    hist_negative = jnp.einsum("nmk,nm->nk", kernel, negative)
    count = jnp.sum(valid, axis=1)
    count_positive = jnp.sum(positive, axis=1)
    count_negative = jnp.sum(negative, axis=1)
    p_distance = _ratio(hist_positive + hist_negative, count[:, None])
    p_given_positive = _ratio(hist_positive, count_positive[:, None])
    p_given_negative = _ratio(hist_negative, count_negative[:, None])
    prior_positive = _ratio(count_positive, count)
    prior_negative = _ratio(count_negative, count)
    information = (
        _entropy_bits(p_distance)
        - prior_positive * _entropy_bits(p_given_positive)
        - prior_negative * _entropy_bits(p_given_negative)
    )
    return -jnp.mean(information)
