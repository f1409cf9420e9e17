"""The standard report: every metric of one query set against one database in one pass."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from dlhash_jax._checks import check_int, is_int
from dlhash_jax.metrics._curves import default_k_grid
from dlhash_jax.metrics._prepare import check_cutoff, check_switches, prepare
from dlhash_jax.metrics._ranking import per_query
from dlhash_jax.metrics._reduce import Request, mean, safe_div


def evaluate_codes(query_codes, db_codes, query_labels, db_labels, *,
                   topk: Sequence[int] = (1000,), ndcg_k: int = 100, radius: int = 2,
                   ties: str = "index", normalize: str = "retrieved",
                   zero_relevant: str = "zero", seed: int = 0, chunk_size: int | None = None,
                   _backend: str | None = None) -> dict:
    """The standard set of retrieval metrics in one pass over the distances.

    Every metric below comes from the same chunked distance computation and (for the orders)
    the same sort, with the definitions and switches of the individual functions.

    Args:
      query_codes, db_codes, query_labels, db_labels: as in :func:`mean_average_precision`.
      topk: cutoffs K for ``map_at_{K}``; those not smaller than N are left out (``map`` covers
        them).
      ndcg_k: cutoff p of ``ndcg_at_{p}``, ``acg_at_{p}``, ``precision_at_{p}`` and
        ``recall_at_{p}`` (1 <= p <= N).
      radius: Hamming radius of ``precision_within_radius_{radius}``.
      ties, normalize, zero_relevant, seed, chunk_size: as in :func:`mean_average_precision`.

    Returns:
      A JSON-ready dict: floats ``map``, ``map_at_{K}``, ``precision_within_radius_{radius}``,
      ``ndcg_at_{p}``, ``acg_at_{p}``, ``precision_at_{p}``, ``recall_at_{p}``, ``roc_auc``;
      curves ``pr_curve_radius = {"radius", "precision", "recall"}`` and
      ``precision_at_k_curve = {"k", "precision", "recall"}`` (lists); and the switches
      ``ties``, ``normalize``, ``zero_relevant``.

    Raises:
      ValueError: as :func:`mean_average_precision`, or ``ndcg_k`` outside [1, N].
    """
    check_switches(ties, zero_relevant, normalize, seed)
    check_int(radius, "radius", minimum=0)
    prep = prepare(query_codes, db_codes, query_labels, db_labels, ties=ties, seed=seed)
    num_db = prep.num_db
    for k in topk:
        if not is_int(k) or k < 1:
            raise ValueError(f"topk must hold positive integers, got {tuple(topk)!r}.")
    cutoffs = tuple(sorted({int(k) for k in topk if k < num_db}))
    ndcg_k = check_cutoff(ndcg_k, num_db, "ndcg_k")
    grid = default_k_grid(num_db)
    req = Request(
        ap_at=cutoffs + (num_db,),
        normalize=normalize,
        hits_at=tuple(sorted(set(grid) | {ndcg_k})),
        graded_at=(ndcg_k,),
        radius_curve=True,
        auc=True,
    )
    values = per_query(prep, req, ties=ties, backend=_backend, chunk_size=chunk_size)
    relevant = values["num_relevant"]
    has_relevant = relevant > 0
    ap_defined = values["ap_hits"] > 0 if normalize == "retrieved" else has_relevant[:, None]
    maps = mean(values["ap"], ap_defined, zero_relevant)
    hits = values["hits"]
    precision_k = mean(hits / np.asarray(req.hits_at, np.float64), None, zero_relevant)
    recall_k = mean(safe_div(hits, relevant[:, None]), has_relevant[:, None], zero_relevant)
    at = req.hits_at.index(ndcg_k)
    in_grid = [req.hits_at.index(k) for k in grid]
    t = min(int(radius), prep.num_bits)
    ball_precision = safe_div(values["ball_hits"], values["ball_size"])
    idcg = values["idcg"][:, 0]
    result = {"map": float(maps[-1])}
    for i, k in enumerate(cutoffs):
        result[f"map_at_{k}"] = float(maps[i])
    result.update({
        f"precision_within_radius_{radius}": float(mean(ball_precision[:, t], None, "zero")),
        f"ndcg_at_{ndcg_k}": float(
            mean(safe_div(values["dcg"][:, 0], idcg), idcg > 0, zero_relevant)
        ),
        f"acg_at_{ndcg_k}": float(mean(values["grade_sum"][:, 0] / ndcg_k, None, "zero")),
        f"precision_at_{ndcg_k}": float(precision_k[at]),
        f"recall_at_{ndcg_k}": float(recall_k[at]),
        "roc_auc": float(mean(values["auc"], has_relevant, zero_relevant)),
        "pr_curve_radius": {
            "radius": list(range(prep.num_bits + 1)),
            "precision": mean(ball_precision, None, "zero").tolist(),
            "recall": mean(
                safe_div(values["ball_hits"], relevant[:, None]), has_relevant[:, None],
                zero_relevant,
            ).tolist(),
        },
        "precision_at_k_curve": {
            "k": list(grid),
            "precision": precision_k[in_grid].tolist(),
            "recall": recall_k[in_grid].tolist(),
        },
        "ties": ties,
        "normalize": normalize,
        "zero_relevant": zero_relevant,
    })
    return result
