"""Mean average precision, precision@k and recall@k over the Hamming ranking (survey eq 28-34)."""

from __future__ import annotations

import jax
import numpy as np

from dlhash_jax.metrics._prepare import check_cutoff, check_switches, prepare
from dlhash_jax.metrics._ranking import per_query
from dlhash_jax.metrics._reduce import Request, mean, safe_div


def _ap_and_defined(query_codes, db_codes, query_labels, db_labels, topk, *, normalize, ties,
                    zero_relevant, seed, chunk_size, backend) -> tuple[np.ndarray, np.ndarray]:
    """Per-query AP ``[Q]`` (0 where undefined) and whether its normaliser is non-zero ``[Q]``."""
    check_switches(ties, zero_relevant, normalize, seed)
    prep = prepare(query_codes, db_codes, query_labels, db_labels, ties=ties, seed=seed)
    k = prep.num_db if topk is None else check_cutoff(topk, prep.num_db, "topk")
    req = Request(ap_at=(k,), normalize=normalize)
    values = per_query(prep, req, ties=ties, backend=backend, chunk_size=chunk_size)
    if normalize == "retrieved":
        defined = values["ap_hits"][:, 0] > 0
    else:
        defined = values["num_relevant"] > 0
    return values["ap"][:, 0], defined


def average_precision(
    query_codes: jax.typing.ArrayLike,
    db_codes: jax.typing.ArrayLike,
    query_labels: jax.typing.ArrayLike,
    db_labels: jax.typing.ArrayLike,
    topk: int | None = None,
    *,
    normalize: str = "retrieved",
    ties: str = "index",
    zero_relevant: str = "zero",
    seed: int = 0,
    chunk_size: int | None = None,
    _backend: str | None = None,
) -> np.ndarray:
    """Average precision of every query over the Hamming ranking (survey eq 33), AP or AP@K.

    The per-query values whose mean is :func:`mean_average_precision`, with the same arguments
    and switches: ``AP_q = (1/Z) Σ_{i<=K} P_q@i · rel_q(i)``. They are what confidence intervals
    and paired significance tests over queries need (``dlhash_jax.statistics``).

    Args:
      query_codes, db_codes, query_labels, db_labels, topk, normalize, ties, seed, chunk_size:
        as in :func:`mean_average_precision`.
      zero_relevant: a query whose AP has a zero normaliser gets 0 under ``"zero"`` and NaN
        under ``"skip"`` (it is left out of the mean there). Hence ``mean_average_precision``
        equals the mean of these values under ``"zero"``, and their mean over the non-NaN
        entries under ``"skip"`` (0 when every entry is NaN).

    Returns:
      float64 NumPy array ``[Q]``, row ``q`` the AP of query ``q``, in [0, 1] (or NaN, above).

    Raises:
      ValueError: as :func:`mean_average_precision`.

    Examples:
      >>> q = np.array([[1, 1], [-1, -1]]); db = np.array([[1, 1], [-1, -1], [1, -1]])
      >>> db_labels = [[0, 1], [1, 0], [1, 0]]
      >>> average_precision(q, db, [[1, 0], [0, 1]], db_labels).tolist()
      [0.5833333333333333, 0.3333333333333333]
      >>> average_precision(q, db, [[1, 0], [0, 0]], db_labels, zero_relevant="skip").tolist()
      [0.5833333333333333, nan]
    """
    ap, defined = _ap_and_defined(
        query_codes, db_codes, query_labels, db_labels, topk, normalize=normalize, ties=ties,
        zero_relevant=zero_relevant, seed=seed, chunk_size=chunk_size, backend=_backend,
    )
    if zero_relevant == "skip":
        return np.where(defined, ap, np.nan)
    return np.asarray(ap, np.float64)


def mean_average_precision(
    query_codes: jax.typing.ArrayLike,
    db_codes: jax.typing.ArrayLike,
    query_labels: jax.typing.ArrayLike,
    db_labels: jax.typing.ArrayLike,
    topk: int | None = None,
    *,
    normalize: str = "retrieved",
    ties: str = "index",
    zero_relevant: str = "zero",
    seed: int = 0,
    chunk_size: int | None = None,
    _backend: str | None = None,
) -> float:
    """Mean average precision over the Hamming ranking (survey eq 33-34), mAP or mAP@K.

    ``AP_q = (1/Z) Σ_{i<=K} P_q@i · rel_q(i)`` with ``Z`` the relevant items in the top K
    (``normalize="retrieved"``) or in the database (``"total"``, eq 33's ``N``); mAP is the mean
    over queries (eq 34). Relevance: at least one shared label.

    Args:
      query_codes: ``[Q, L]`` query codes in {-1, +1}.
      db_codes: ``[N, L]`` database codes in {-1, +1}.
      query_labels: ``[Q, C]`` multi-hot query labels (one-hot for single-label data).
      db_labels: ``[N, C]`` multi-hot database labels.
      topk: K, the length of the ranked list (1 <= K <= N); ``None`` ranks the whole database.
      normalize: ``"retrieved"`` or ``"total"`` (module docstring; equal when K = N).
      ties: ``"index"``, ``"random"`` or ``"average"`` (module docstring).
      zero_relevant: ``"zero"`` or ``"skip"`` for a query whose AP has a zero normaliser.
      seed: seed of the database shuffle of ``ties="random"``.
      chunk_size: queries per chunk; ``None`` picks about ``2**22 / N``. Results do not depend
        on it.

    Returns:
      mAP as a Python float in [0, 1].

    Raises:
      ValueError: codes not ±1, labels not multi-hot, mismatched shapes, an empty query set or
        database, ``topk`` outside [1, N], or an unknown switch value.

    Examples:
      >>> q = np.array([[1, 1]]); db = np.array([[1, 1], [-1, -1], [1, -1]])
      >>> mean_average_precision(q, db, [[1, 0]], [[0, 1], [1, 0], [1, 0]])
      0.5833333333333333
    """
    ap, defined = _ap_and_defined(
        query_codes, db_codes, query_labels, db_labels, topk, normalize=normalize, ties=ties,
        zero_relevant=zero_relevant, seed=seed, chunk_size=chunk_size, backend=_backend,
    )
    return float(mean(ap, defined, zero_relevant))


def precision_at_k(query_codes, db_codes, query_labels, db_labels, k: int, *,
                   ties: str = "index", seed: int = 0, chunk_size: int | None = None,
                   _backend: str | None = None) -> float:
    """Mean precision of the top ``k`` of the Hamming ranking (survey eq 28 with ``N_s = k``).

    ``P@k = (relevant items among the first k) / k``, averaged over all queries.

    Args:
      query_codes, db_codes, query_labels, db_labels: as in :func:`mean_average_precision`.
      k: the cutoff, 1 <= k <= N.
      ties, seed, chunk_size: as in :func:`mean_average_precision`.

    Returns:
      Mean precision@k as a Python float.

    Raises:
      ValueError: as :func:`mean_average_precision`.
    """
    check_switches(ties, "zero", seed=seed)
    prep = prepare(query_codes, db_codes, query_labels, db_labels, ties=ties, seed=seed)
    k = check_cutoff(k, prep.num_db)
    values = per_query(prep, Request(hits_at=(k,)), ties=ties, backend=_backend,
                       chunk_size=chunk_size)
    return float(mean(values["hits"][:, 0] / k, None, "zero"))


def recall_at_k(query_codes, db_codes, query_labels, db_labels, k: int, *, ties: str = "index",
                zero_relevant: str = "zero", seed: int = 0, chunk_size: int | None = None,
                _backend: str | None = None) -> float:
    """Mean recall of the top ``k`` (survey eq 29: ``N_r / N_a``).

    ``R@k = (relevant items among the first k) / (relevant items in the database)``; a query with
    no relevant item is 0/0 and handled by ``zero_relevant``.

    Args:
      query_codes, db_codes, query_labels, db_labels: as in :func:`mean_average_precision`.
      k: the cutoff, 1 <= k <= N.
      ties, zero_relevant, seed, chunk_size: as in :func:`mean_average_precision`.

    Returns:
      Mean recall@k as a Python float.

    Raises:
      ValueError: as :func:`mean_average_precision`.
    """
    check_switches(ties, zero_relevant, seed=seed)
    prep = prepare(query_codes, db_codes, query_labels, db_labels, ties=ties, seed=seed)
    k = check_cutoff(k, prep.num_db)
    values = per_query(prep, Request(hits_at=(k,)), ties=ties, backend=_backend,
                       chunk_size=chunk_size)
    relevant = values["num_relevant"]
    return float(mean(safe_div(values["hits"][:, 0], relevant), relevant > 0, zero_relevant))
