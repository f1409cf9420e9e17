"""Graded relevance: NDCG@k and ACG@k of the Hamming ranking (survey eq 35-36)."""

from __future__ import annotations

from dlhash_jax.metrics._prepare import check_cutoff, check_switches, prepare
from dlhash_jax.metrics._ranking import per_query
from dlhash_jax.metrics._reduce import Request, mean, safe_div


def ndcg_at_k(query_codes, db_codes, query_labels, db_labels, k: int, *, ties: str = "index",
              zero_relevant: str = "zero", seed: int = 0, chunk_size: int | None = None,
              _backend: str | None = None) -> float:
    """Mean normalised discounted cumulative gain of the top ``k`` (survey eq 35).

    ``NDCG@k = (1/Z) Σ_{i<=k} (2^{r_i} - 1) / log2(i + 1)`` with ``r_i`` the number of labels
    the i-th item shares with the query and ``Z`` the same sum for the ideal order of the whole
    database (IDCG@k). The survey prints ``log``; base 2 is the standard and makes the first
    position's discount 1. A query with no relevant item (Z = 0) follows ``zero_relevant``.

    Args:
      query_codes, db_codes, query_labels, db_labels: as in :func:`mean_average_precision`.
      k: the cutoff, 1 <= k <= N.
      ties, zero_relevant, seed, chunk_size: as in :func:`mean_average_precision`.

    Returns:
      Mean NDCG@k as a Python float.

    Raises:
      ValueError: as :func:`mean_average_precision`.
    """
    check_switches(ties, zero_relevant, seed=seed)
    prep = prepare(query_codes, db_codes, query_labels, db_labels, ties=ties, seed=seed)
    k = check_cutoff(k, prep.num_db)
    values = per_query(prep, Request(graded_at=(k,)), ties=ties, backend=_backend,
                       chunk_size=chunk_size)
    idcg = values["idcg"][:, 0]
    return float(mean(safe_div(values["dcg"][:, 0], idcg), idcg > 0, zero_relevant))


def acg_at_k(query_codes, db_codes, query_labels, db_labels, k: int, *, ties: str = "index",
             seed: int = 0, chunk_size: int | None = None, _backend: str | None = None) -> float:
    """Mean average cumulative gain of the top ``k`` (survey eq 36).

    ``ACG@k = (1/k) Σ_{i<=k} r_i`` with ``r_i`` the number of labels the i-th item shares with
    the query, averaged over all queries.

    Args:
      query_codes, db_codes, query_labels, db_labels: as in :func:`mean_average_precision`.
      k: the cutoff, 1 <= k <= N.
      ties, seed, chunk_size: as in :func:`mean_average_precision`.

    Returns:
      Mean ACG@k as a Python float.

    Raises:
      ValueError: as :func:`mean_average_precision`.
    """
    check_switches(ties, "zero", seed=seed)
    prep = prepare(query_codes, db_codes, query_labels, db_labels, ties=ties, seed=seed)
    k = check_cutoff(k, prep.num_db)
    values = per_query(prep, Request(graded_at=(k,)), ties=ties, backend=_backend,
                       chunk_size=chunk_size)
    return float(mean(values["grade_sum"][:, 0] / k, None, "zero"))
