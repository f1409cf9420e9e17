"""Retrieval metrics for binary codes: every measure of survey §6, exact, chunked and fast.

The database is ranked by Hamming distance to each query. Relevance is binary (the query and the
item share at least one label; for one-hot labels: the same class) or graded (the number of
shared labels, for NDCG and ACG). Codes are ``{-1,+1}`` matrices ``[N, L]``, labels multi-hot
``[N, C]`` (one-hot for single-label data). Every metric is a mean over queries of a per-query
value.

Three details that published deep-hashing code disagrees on are explicit switches
(docs/design.md):

* ``ties``: the order of items at the same Hamming distance. ``"index"`` (default) ranks them by
  database index (a stable sort). ``"random"`` applies one seeded shuffle of the database
  (``np.random.default_rng(seed).permutation(N)``, the same for every query) and then ranks as
  ``"index"``, so each tie group is in a uniformly random order. ``"average"`` is the expected
  value over all orders inside every tie group, computed in closed form from per-distance counts
  (the tie-aware measures of McSherry & Najork, ECIR 2008); see *Tie-averaged formulas* below.
* ``normalize`` (AP@K only): ``"retrieved"`` (default) divides by the relevant items found in the
  top K, the convention of most published tables; ``"total"`` divides by all relevant items in
  the database (survey eq 33). They agree when K covers the database.
* ``zero_relevant``: how a query is averaged when its metric is 0/0 because it has no relevant
  item to normalise by: AP (no relevant item retrieved in the top K under ``"retrieved"``, none
  in the database under ``"total"``), recall, NDCG and ROC AUC (none in the database).
  ``"zero"`` (default) counts such a query as 0; ``"skip"`` leaves it out of that metric's mean
  (which reproduces, e.g., HashNet's mAP@K code); when every query is left out the mean is 0.
  Under ``ties="average"`` a query is 0/0 only if no order inside its tie groups gives it a
  non-zero normaliser; otherwise its expectation counts AP 0 for the orders that do not.
  Precision, ACG and precision within a radius are defined for every query and always averaged
  over all of them (a query with no relevant item scores 0 on them).

Tie-averaged formulas (``ties="average"``). For one query let the tie group at distance ``d``
hold ``n_d`` items, ``r_d`` of them relevant, preceded by ``s_d = Σ_{d'<d} n_{d'}`` items of
which ``c_d`` are relevant, and let ``m_d = clip(K - s_d, 0, n_d)`` be how many of its positions
fall in the top K. Inside a uniformly random order of the group a position holds a relevant item
with probability ``r/n`` and two positions both do with probability ``r(r-1)/(n(n-1))``, so for
the ``i``-th position of the group ``E[rel_i · (relevant up to i)] = a + (i-1) b`` with
``a = r(c+1)/n`` and ``b = r(r-1)/(n(n-1))`` (``b = 0`` when ``n = 1``). Summing over the
group's first ``m`` positions with ``ΔH = H(s+m) - H(s)`` (harmonic numbers)::

    Σ_{i=1..m} (a + (i-1) b) / (s+i)  =  a ΔH + b (m - (s+1) ΔH)

* AP@K, ``normalize="total"``: ``(1/R) Σ_d [a_d ΔH_d + b_d (m_d - (s_d+1) ΔH_d)]``; AP over the
  whole database is the case ``m_d = n_d``.
* AP@K, ``normalize="retrieved"``: the normaliser is random when K cuts a tie group ``b``: the
  number ``X`` of its relevant items in the top K is hypergeometric (``n_b`` items, ``r_b``
  relevant, ``m_b`` drawn), and ``E[AP] = Σ_x P(X=x) (F + g(x)) / (c_b + x)`` where ``F`` is the
  expected sum over the groups before ``b`` and ``g(x)`` the formula above for the ``m_b``
  positions with ``x`` relevant items (terms with ``c_b + x = 0`` count 0). A finite sum over
  ``x``, never over orders.
* Precision@K, recall@K: expected hits ``Σ_d r_d m_d / n_d``.
* DCG@K: ``Σ_d (G_d / n_d) (W(s_d + m_d) - W(s_d))`` with ``G_d`` the group's total gain
  ``Σ (2^{rel} - 1)`` and ``W(n) = Σ_{i<=n} 1/log2(i+1)``; ACG@K: ``(1/K) Σ_d A_d m_d / n_d``
  with ``A_d`` the group's total graded relevance.

Radius-based metrics (precision within a radius, the P-R curve by radius) and ROC AUC (ties
scored one half, as scikit-learn does) do not depend on the order inside a tie group.

Speed. Hamming distances are integers in ``[0, L]``. The codes are packed into ``uint32`` words
and compared with XOR and popcount under ``jit`` (:mod:`dlhash_jax.hamming`, the engine shared
with :mod:`dlhash_jax.retrieval`), in chunks of queries against the whole database, so no
``[Q, N]`` array larger than a chunk exists. A chunk holds about ``2**22`` query-item pairs unless
``chunk_size`` says otherwise: buffers that small are reused by the allocator instead of being
mapped afresh, which measured 2-3x faster on CPU than ``2**24``. Per-distance counts come from a
scatter-add histogram; orders from a sort, chosen per backend with one API. On CPU, where XLA's
sort is slow, the device computes unique ``int32`` keys ``((d·N + index) << bits) | grade`` and
NumPy sorts them on the host (a SIMD sort, after ``np.partition`` for the top K), so the grades
come out in rank order without a gather. On GPU/TPU the ranking stays on the device
(``lax.sort`` of the distances carrying the grades, ``lax.top_k`` for the top K, both breaking
ties by index). Both paths hand the same integer grades to one float64 host reduction, so they
give identical values. The private keyword ``_backend="host"|"device"`` forces a path (tests).

References:
  Survey §6 (eq 28-36). F. McSherry and M. Najork, "Computing information retrieval performance
  measures efficiently in the presence of tied scores", ECIR 2008. K. Järvelin and
  J. Kekäläinen, "Cumulated gain-based evaluation of IR techniques", TOIS 2002 (NDCG).
"""

from dlhash_jax.metrics._precision import average_precision
from dlhash_jax.metrics._precision import mean_average_precision
from dlhash_jax.metrics._precision import precision_at_k
from dlhash_jax.metrics._precision import recall_at_k
from dlhash_jax.metrics._curves import f_beta
from dlhash_jax.metrics._curves import precision_recall_curve
from dlhash_jax.metrics._curves import roc_auc
from dlhash_jax.metrics._curves import precision_within_radius
from dlhash_jax.metrics._graded import ndcg_at_k
from dlhash_jax.metrics._graded import acg_at_k
from dlhash_jax.metrics._evaluate import evaluate_codes
from dlhash_jax.metrics._cross_modal import cross_modal_map
from dlhash_jax.metrics._cross_modal import evaluate_cross_modal
