"""Soft pairwise similarity: cross-entropy on hard pairs, squared error on fractional ones (IDHN).

IDHN (Zhang, Zou, Lin, Chen & Wang, IEEE TMM 2019) measures how similar two multi-label images
are by a number in ``[0, 1]`` (the cosine of their label vectors) instead of DPSH's "share a label
or not". A pair whose similarity is exactly 0 or 1 (no shared label; the same label set) keeps the
pairwise likelihood of DPSH, on a scaled inner product; a pair in between is fitted by regressing
the codes' fraction of agreeing bits onto the similarity. The term takes one ``[N, M]`` block of
pairs, like the pairwise terms (``dlhash_jax.losses._pairwise``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from dlhash_jax.losses._validation import check_pair_block


def soft_similarity_loss(
    A1: jax.typing.ArrayLike,
    A2: jax.typing.ArrayLike,
    S: jax.typing.ArrayLike,
    *,
    beta: float,
    gamma: float,
    tolerance: float = 0.01,
) -> jax.Array:
    """IDHN's pairwise loss: logistic on hard pairs, squared error on soft (fractional) pairs.

    For every pair ``(i, j)`` of the ``[N, M]`` block, with ``L`` bits, ``ω_ij = a_i·a'_j`` and the
    scaled inner product ``θ_ij = (β / L) ω_ij``:

    - hard pair (``s_ij ≤ tolerance`` or ``s_ij ≥ 1 − tolerance``): the cross-entropy
      ``softplus(θ_ij) − s_ij θ_ij`` (DPSH's pairwise likelihood, survey eq 15/24, on ``θ``);
    - soft pair (in between): ``γ L (c_ij − s_ij)²`` with ``c_ij = (ω_ij + L) / (2L)``, the
      fraction of bits on which two ±1 codes agree (``1 − d_H / L``), i.e.
      ``(γ / L) ((ω_ij + L)/2 − L s_ij)²`` in numbers of agreeing bits;

    and the loss is the mean over all ``N·M`` pairs. The scale ``β / L`` keeps ``θ`` in
    ``[−β, β]`` for outputs in ``[−1, 1]`` whatever the code length, so the sigmoid does not
    saturate. ``softplus`` keeps the hard term finite for any ``|θ|``.

    IDHN's loss (Zhang et al.) is the cross-entropy over the pairs with similarity 0 or 1
    plus ``γ`` times the mean squared error over the pairs with fractional similarity; the scale
    ``β / L``, the factor ``L`` of the squared term, the thresholds (similarity below 0.01 or above
    0.99 counts as 0 or 1) and the mean over every pair of the batch follow the authors' released
    code (pectinid16/IDHN, ``train.py``). The quantization term that goes with it is
    :func:`hash_constraint_l1` (survey eq 7, 25); the term itself is not in the survey.

    References:
      Zhang, Zou, Lin, Chen & Wang, "Improved deep hashing with soft pairwise similarity for
      multi-label image retrieval" (IDHN), IEEE Transactions on Multimedia, 2019
      (arXiv:1803.02987).

    Args:
      A1: ``[N, L]`` real network outputs (IDHN: softsign outputs in ``(−1, 1)``).
      A2: ``[M, L]`` real network outputs (may be ``A1``).
      S: ``[N, M]`` similarity in ``[0, 1]``, e.g. the cosine of the label vectors.
      beta: ``β``, the scale of the inner product in the cross-entropy (``θ = β ω / L``).
      gamma: ``γ``, the weight of the squared error of the soft pairs.
      tolerance: how far from 0 or 1 a similarity may be and still count as hard.

    Returns:
      Float scalar (≥ 0 for ``S`` in ``[0, 1]``).

    Raises:
      ValueError: if the shapes are not ``[N, L]``, ``[M, L]`` and ``[N, M]``.

    Examples:
      >>> a = jnp.array([[1.0, 1.0], [1.0, -1.0]])
      >>> s = jnp.array([[1.0, 0.5], [0.5, 1.0]])
      >>> # Soft pairs: the codes agree on 1/2 of the bits and s = 1/2, so they cost nothing.
      >>> round(float(soft_similarity_loss(a, a, s, beta=2.0, gamma=0.1)), 6)  # softplus(2) - 2
      0.063464
    """
    check_pair_block(A1, A2, S)
    dtype = jnp.result_type(A1, A2, jnp.float32)
    A1, A2, S = (jnp.asarray(x, dtype) for x in (A1, A2, S))
    num_bits = A1.shape[1]
    inner = jnp.matmul(A1, A2.T, precision=lax.Precision.HIGHEST)
    theta = (beta / num_bits) * inner
    cross_entropy = jax.nn.softplus(theta) - S * theta
    agreement = (inner + num_bits) / (2.0 * num_bits)
    squared = gamma * num_bits * (agreement - S) ** 2
    hard = (S <= tolerance) | (S >= 1.0 - tolerance)
    return jnp.mean(jnp.where(hard, cross_entropy, squared))
