"""Ranking and triplet terms: a more relevant item must be nearer than a less relevant one.

Survey §4.3.2 eq 19, §5.3.3 eq 27 and the triplet methods of §5.2.3. Distances are the relaxed
Hamming distance ``d(a, a') = (L − a·a')/2`` of real outputs (equal to the Hamming distance on
±1 codes, differentiable everywhere) unless a term says otherwise. Each term is built per anchor
(query) and mapped over anchors with ``jax.vmap``; it returns the mean over the valid triplets of
the whole batch, and exactly 0 (with a zero gradient) when the batch holds no valid triplet.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlhash_jax import codes
from dlhash_jax.losses._pairwise import _squared_l2_block
from dlhash_jax.losses._validation import check_rank, check_same_bits, check_same_rows

_TRIPLET_DISTANCES = ("hamming", "squared_l2")
_MINING = ("all", "hard")


def _check_choice(value: str, choices: tuple[str, ...], name: str) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")


def _as_float(x, like) -> jax.Array:
    return jnp.asarray(x, jnp.result_type(like, jnp.float32))


def _guarded_ratio(total: jax.Array, count: jax.Array) -> jax.Array:
    """``total / count``, and 0 (zero gradient) when no triplet was counted."""
    return total / jnp.where(count > 0, count, 1)


def ranking_loss(
    Aq: jax.typing.ArrayLike,
    Adb: jax.typing.ArrayLike,
    R: jax.typing.ArrayLike,
    *,
    margin: float,
    weights: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """Triplet ranking loss over graded relevance: items sharing more labels must rank higher.

    For every query ``q`` and every pair of items ``(i, j)`` with ``R_qi > R_qj`` (``i`` shares
    more labels with ``q`` than ``j`` does), the loss is ``w_qij [d_qi − d_qj + m]₊`` with the
    relaxed Hamming distance ``d_qi = (L − a_q·a_i)/2``; the result is the mean over all such
    triplets ``(q, i, j)`` of the batch (the weights scale terms, they do not renormalise the
    mean), and 0 when there is none (every query sees equal relevance everywhere).

    Built per query and mapped over queries with ``jax.vmap``; the per-query ``[M, M]`` triplet
    grid makes the memory ``O(Q·M²)``. Items equal to the query (when ``Adb`` contains the
    batch) are ordinary items: give them the relevance you want them ranked by.

    Survey eq 19 (§4.3.2), printed for one query as a sum over ``i`` and ``j: r_j < r_i`` of
    ``[d_H(q, i) − d_H(q, j) + M]₊`` on the codes; we use the relaxed distance of the outputs
    and the mean over triplets. With ``weights=ndcg_pair_weights(R)`` it is the order-sensitive
    loss of survey eq 27 (see :func:`ndcg_pair_weights`).

    References:
      Zhao, Huang, Wang & Tan, "Deep semantic ranking based hashing for multi-label image
      retrieval" (DSRH), CVPR 2015; Chen et al., "Order-sensitive deep hashing for
      multimorbidity medical image retrieval", MICCAI 2018 (eq 27).

    Args:
      Aq: ``[Q, L]`` real outputs of the queries (anchors).
      Adb: ``[M, L]`` real outputs of the items ranked for each query.
      R: ``[Q, M]`` graded relevance, e.g. the number of shared labels
        (``similarity.common_labels(Yq, Ydb)``); only its order within a row matters.
      margin: ``m``, the distance (in bits) by which a more relevant item must be nearer.
      weights: optional ``[Q, M, M]`` weights ``w_qij`` (entries where ``R_qi ≤ R_qj`` are
        ignored); 1 when omitted.

    Returns:
      Float scalar (≥ 0 for non-negative weights).

    Raises:
      ValueError: if ``Aq`` is not ``[Q, L]``, ``Adb`` is not ``[M, L]`` with the same ``L``,
        ``R`` is not ``[Q, M]`` or ``weights`` is not ``[Q, M, M]``.

    Examples:
      >>> q = jnp.array([[1.0, 1.0]])
      >>> db = jnp.array([[1.0, -1.0], [1.0, 1.0]])
      >>> float(ranking_loss(q, db, jnp.array([[1, 0]]), margin=1.0))
      2.0
    """
    check_rank(Aq, 2, "Aq", "[Q, L]")
    check_rank(Adb, 2, "Adb", "[M, L]")
    check_rank(R, 2, "R", "[Q, M]")
    check_same_bits(Aq, Adb, ("Aq", "Adb"))
    expected = (jnp.shape(Aq)[0], jnp.shape(Adb)[0])
    if tuple(jnp.shape(R)) != expected:
        raise ValueError(
            f"R must have shape [Q, M] = {expected} for Aq of shape {jnp.shape(Aq)} and Adb of "
            f"shape {jnp.shape(Adb)}, got {jnp.shape(R)}."
        )
    if weights is not None:
        expected_w = (*expected, expected[1])
        if tuple(jnp.shape(weights)) != expected_w:
            raise ValueError(
                f"weights must have shape [Q, M, M] = {expected_w} for Aq of shape "
                f"{jnp.shape(Aq)} and Adb of shape {jnp.shape(Adb)}, got {jnp.shape(weights)}."
            )
    dist = codes.relaxed_hamming_distance(jnp.asarray(Aq), jnp.asarray(Adb))
    R = jnp.asarray(R)

    def per_query(d_q, r_q, w_q):
        valid = r_q[:, None] > r_q[None, :]
        hinge = jax.nn.relu(d_q[:, None] - d_q[None, :] + margin)
        return jnp.sum(jnp.where(valid, w_q * hinge, 0.0)), jnp.sum(valid, dtype=d_q.dtype)

    if weights is None:
        totals, counts = jax.vmap(per_query, in_axes=(0, 0, None))(dist, R, 1.0)
    else:
        totals, counts = jax.vmap(per_query)(dist, R, _as_float(weights, dist))
    return _guarded_ratio(jnp.sum(totals), jnp.sum(counts))


def ndcg_pair_weights(R: jax.typing.ArrayLike) -> jax.Array:
    """NDCG-style weights of the ranking triplets: larger for pairs further apart in relevance.

    ``w_qij = (2^{R_qi} − 2^{R_qj}) / IDCG_q`` where ``R_qi > R_qj`` and 0 elsewhere, with
    ``IDCG_q = Σ_k (2^{r_(k)} − 1) / log2(k + 1)`` over query ``q``'s relevances sorted in
    descending order (``k = 1..M``), the ideal DCG of its list. A row of all-zero relevance has
    ``IDCG = 0`` and no pair with ``R_qi > R_qj``; its weights are 0, with no NaN. Relevance is a
    count of shared labels, so ``2^R`` stays finite in float32 up to ``R = 127``.

    Survey eq 27 (§5.3.3) prints the weight as ``(2^{r_i} − 2^{r_j}) / Z`` with "Z a constant
    related to the length of the list", and the hinge as ``d_H(b_i, b_j) − d_H(b_i, b_j) + M``,
    a typo for ``d_H(b_q, b_i) − d_H(b_q, b_j) + M``; we take ``Z = IDCG_q``, the normaliser of
    NDCG, and the hinge of :func:`ranking_loss`, which these weights feed.

    References:
      Chen et al., "Order-sensitive deep hashing for multimorbidity medical image retrieval",
      MICCAI 2018; Zhao et al., "Deep semantic ranking based hashing for multi-label image
      retrieval", CVPR 2015 (the same weights inside DSRH).

    Args:
      R: ``[Q, M]`` non-negative graded relevance (shared-label counts).

    Returns:
      ``[Q, M, M]`` float weights, non-negative.

    Raises:
      ValueError: if ``R`` is not ``[Q, M]``.

    Examples:
      >>> ndcg_pair_weights(jnp.array([[1.0, 0.0]]))
      Array([[[0., 1.],
              [0., 0.]]], dtype=float32)
    """
    check_rank(R, 2, "R", "[Q, M]")
    R = _as_float(R, R)
    gains = jnp.exp2(R)
    ranked = -jnp.sort(-R, axis=1)
    discounts = jnp.log2(jnp.arange(2, R.shape[1] + 2, dtype=R.dtype))
    idcg = jnp.sum((jnp.exp2(ranked) - 1.0) / discounts, axis=1)
    # An all-zero row has IDCG 0 and no valid pair; divide by 1 there instead of 0.
    safe_idcg = jnp.where(idcg > 0, idcg, 1.0)[:, None, None]
    valid = R[:, :, None] > R[:, None, :]
    return jnp.where(valid, (gains[:, :, None] - gains[:, None, :]) / safe_idcg, 0.0)


def _check_triplet_operand(x, name: str, anchor) -> None:
    check_rank(x, 2, name, "[N, L]")
    if jnp.shape(x) != jnp.shape(anchor):
        raise ValueError(
            f"Aa and {name} must have the same shape [N, L], got shapes {jnp.shape(anchor)} and "
            f"{jnp.shape(x)}."
        )


def triplet_loss(
    Aa: jax.typing.ArrayLike,
    Ap: jax.typing.ArrayLike,
    An: jax.typing.ArrayLike,
    *,
    margin: float,
    distance: str = "hamming",
) -> jax.Array:
    """Triplet ranking hinge: each anchor nearer its positive than its negative by a margin.

    ``mean_i [d(a_i, p_i) − d(a_i, n_i) + m]₊`` over the ``N`` given triplets, with ``d``

    - ``"hamming"`` (default): the relaxed Hamming distance ``(L − a·a')/2``, the surrogate of
      the Hamming distance in the ranking loss of DSRH (Zhao et al.). It is the distance
      retrieval ranks by, so the margin is counted in bits, and it is the distance of
      :func:`ranking_loss`.
    - ``"squared_l2"``: ``‖a − a'‖²``, the distance of DNNH's triplet ranking loss (with
      ``m = 1``). For ±1 codes it is ``4 d_H``, so margin ``4m`` here matches ``m`` bits.

    Survey §5.2.3 (triplet input methods); the survey prints no equation for it.

    References:
      Lai, Pan, Liu & Yan, "Simultaneous feature learning and hash coding with deep neural
      networks" (DNNH), CVPR 2015; Yao et al., "Deep semantic-preserving and ranking-based
      hashing for image retrieval", IJCAI 2016; Zhao et al., "Deep semantic ranking based
      hashing for multi-label image retrieval" (DSRH), CVPR 2015.

    Args:
      Aa: ``[N, L]`` real outputs of the anchors.
      Ap: ``[N, L]`` outputs of the positives (similar to their anchor).
      An: ``[N, L]`` outputs of the negatives (dissimilar to their anchor).
      margin: ``m``, in the units of the chosen distance.
      distance: ``"hamming"`` or ``"squared_l2"``.

    Returns:
      Float scalar (≥ 0).

    Raises:
      ValueError: if the three inputs are not ``[N, L]`` of one shape, or ``distance`` is not
        one of the two names.

    Examples:
      >>> a = jnp.array([[1.0, 1.0]])
      >>> float(triplet_loss(a, a, jnp.array([[1.0, -1.0]]), margin=2.0))
      1.0
    """
    _check_choice(distance, _TRIPLET_DISTANCES, "distance")
    check_rank(Aa, 2, "Aa", "[N, L]")
    _check_triplet_operand(Ap, "Ap", Aa)
    _check_triplet_operand(An, "An", Aa)
    dtype = jnp.result_type(Aa, Ap, An, jnp.float32)
    Aa, Ap, An = (jnp.asarray(x, dtype) for x in (Aa, Ap, An))

    def row_distance(other):
        if distance == "hamming":
            return 0.5 * (Aa.shape[1] - jnp.sum(Aa * other, axis=1))
        return jnp.sum((Aa - other) ** 2, axis=1)

    return jnp.mean(jax.nn.relu(row_distance(Ap) - row_distance(An) + margin))


def batch_triplet_loss(
    A: jax.typing.ArrayLike,
    Y: jax.typing.ArrayLike,
    *,
    margin: float,
    mining: str = "all",
    distance: str = "hamming",
) -> jax.Array:
    """Triplet loss over the triplets a labelled batch contains, all of them or the hardest.

    Every sample is an anchor. Its positives are the other samples that share at least one
    label with it (``Y_a·Y_p > 0``, never the anchor itself); its negatives share none. With the
    distance ``d`` of :func:`triplet_loss`:

    - ``mining="all"``: the mean of ``[d(a, p) − d(a, n) + m]₊`` over every valid
      ``(anchor, positive, negative)`` triplet of the batch (memory ``O(N³)``, from the
      per-anchor ``[N, N]`` grid).
    - ``mining="hard"``: per anchor with at least one positive and one negative, the hardest
      positive (largest distance) and hardest negative (smallest distance),
      ``[max_p d(a, p) − min_n d(a, n) + m]₊``, averaged over those anchors ("batch hard").

    Built per anchor and mapped over anchors with ``jax.vmap``; 0 with a zero gradient when the
    batch has no valid triplet (all samples alike, or all pairwise different).

    Survey §5.2.3 and §5.3.3 (triplet input methods); the survey prints no equation for it.
    With multi-hot labels the positive/negative split is "shares a label", as in the survey's
    multi-label similarity; graded multi-label orders are :func:`ranking_loss`.

    References:
      Lai et al., "Simultaneous feature learning and hash coding with deep neural networks"
      (DNNH), CVPR 2015; Yao et al., "Deep semantic-preserving and ranking-based hashing for
      image retrieval", IJCAI 2016; Hermans, Beyer & Leibe, "In defense of the triplet
      loss for person re-identification", arXiv:1703.07737 (batch-hard mining).

    Args:
      A: ``[N, L]`` real network outputs of the batch.
      Y: ``[N, C]`` multi-hot labels (one-hot for single-label data; any real, int or bool dtype).
      margin: ``m``, in the units of the chosen distance.
      mining: ``"all"`` or ``"hard"``.
      distance: ``"hamming"`` (relaxed Hamming, default) or ``"squared_l2"``.

    Returns:
      Float scalar (≥ 0).

    Raises:
      ValueError: if ``A`` is not ``[N, L]``, ``Y`` is not ``[N, C]`` with the same ``N``, or
        ``mining`` / ``distance`` is not one of its names.

    Examples:
      >>> a = jnp.array([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
      >>> y = jnp.array([[1, 0], [1, 0], [0, 1]])
      >>> float(batch_triplet_loss(a, y, margin=1.0))
      0.5
    """
    _check_choice(mining, _MINING, "mining")
    _check_choice(distance, _TRIPLET_DISTANCES, "distance")
    check_rank(A, 2, "A", "[N, L]")
    check_rank(Y, 2, "Y", "[N, C]")
    check_same_rows(A, Y, ("A", "Y"))
    A = _as_float(A, A)
    Y = _as_float(Y, A)
    n = A.shape[0]
    if distance == "hamming":
        dist = codes.relaxed_hamming_distance(A, A)
    else:
        dist = _squared_l2_block(A, A)
    shares = (Y @ Y.T) > 0
    positive = shares & ~jnp.eye(n, dtype=bool)
    negative = ~shares

    def all_triplets(d_a, pos_a, neg_a):
        valid = pos_a[:, None] & neg_a[None, :]
        hinge = jax.nn.relu(d_a[:, None] - d_a[None, :] + margin)
        return jnp.sum(jnp.where(valid, hinge, 0.0)), jnp.sum(valid, dtype=d_a.dtype)

    def hardest_triplet(d_a, pos_a, neg_a):
        valid = jnp.any(pos_a) & jnp.any(neg_a)
        # ±inf never wins the max/min. Without positives or negatives the gap is -inf (never
        # NaN: the max is finite or -inf, the min finite or +inf); the where discards it and
        # sends a zero cotangent back through it.
        hardest_pos = jnp.max(jnp.where(pos_a, d_a, -jnp.inf))
        hardest_neg = jnp.min(jnp.where(neg_a, d_a, jnp.inf))
        hinge = jax.nn.relu(hardest_pos - hardest_neg + margin)
        return jnp.where(valid, hinge, 0.0), valid.astype(d_a.dtype)

    per_anchor = all_triplets if mining == "all" else hardest_triplet
    totals, counts = jax.vmap(per_anchor)(dist, positive, negative)
    return _guarded_ratio(jnp.sum(totals), jnp.sum(counts))
