"""Per-query values of every metric from the chunk statistics, index-tied or tie-averaged."""

from __future__ import annotations

import numpy as np

from dlhash_jax.metrics._chunks import Chunk, chunks
from dlhash_jax.metrics._prepare import Prepared
from dlhash_jax.metrics._reduce import Request, discount_cumsum, safe_div
from dlhash_jax.metrics._ties import tie_average_values


def _ideal_dcg(count_ge: np.ndarray, k: int, discount: np.ndarray) -> np.ndarray:
    """IDCG@k: items with >= t shared labels fill the first ``count_ge_t`` ideal positions, and a
    gain ``2^g - 1 = Σ_{t<=g} 2^{t-1}`` splits into one layer per t."""
    layers = 2.0 ** np.arange(count_ge.shape[1])
    return (discount[np.minimum(count_ge, k)] * layers).sum(axis=1)


def _ranked_values(chunk: Chunk, req: Request) -> dict[str, np.ndarray]:
    """Per-query values from grades in rank order (ties by index)."""
    ranked = chunk.ranked
    num_q, length = ranked.shape
    num_relevant = chunk.count_ge[:, 0]
    out = {}
    if req.ap_at or req.hits_at:
        # Positions of relevant items, row-major: rank = column + 1, and the i-th relevant item
        # of a row has precision i / rank there, so AP sums need no [q, N] cumulative sum.
        flat = np.flatnonzero(ranked)
        row = flat // length
        rank = flat - row * length + 1
        row_starts = np.searchsorted(flat, np.arange(num_q) * length)
        order_in_row = np.arange(flat.size) - row_starts[row] + 1
        # A trailing 0 lets reduceat take segments that end at the last relevant item.
        terms = np.concatenate([order_in_row / rank, [0.0]])

        def hits_and_sums(k):
            ends = np.searchsorted(flat, np.arange(num_q) * length + k)
            hits = ends - row_starts
            # Each row's segment is summed from its own start, so chunking cannot change it.
            sums = np.add.reduceat(terms, np.stack([row_starts, ends], 1).ravel())[::2]
            return hits, np.where(hits > 0, sums, 0.0)

        if req.ap_at:
            aps, hits_list = [], []
            for k in req.ap_at:
                hits, sums = hits_and_sums(k)
                norm = hits if req.normalize == "retrieved" else num_relevant
                aps.append(safe_div(sums, norm))
                hits_list.append(hits)
            out["ap"] = np.stack(aps, axis=1)
            out["ap_hits"] = np.stack(hits_list, axis=1).astype(np.float64)
        if req.hits_at:
            out["hits"] = np.stack([hits_and_sums(k)[0] for k in req.hits_at], axis=1).astype(
                np.float64
            )
    if req.graded_at:
        kmax = max(req.graded_at)
        grades = ranked[:, :kmax].astype(np.float64)
        discount = discount_cumsum(kmax)
        dcg_terms = np.cumsum((2.0**grades - 1.0) * np.diff(discount), axis=1)
        grade_sums = np.cumsum(grades, axis=1)
        out["dcg"] = np.stack([dcg_terms[:, k - 1] for k in req.graded_at], axis=1)
        out["grade_sum"] = np.stack([grade_sums[:, k - 1] for k in req.graded_at], axis=1)
    return out


def _histogram_values(chunk: Chunk, req: Request) -> dict[str, np.ndarray]:
    """Order-free per-query values: radius balls and ROC AUC."""
    n = chunk.hist.sum(axis=2)
    r = n - chunk.hist[:, :, 0]
    out = {}
    if req.radius_curve:
        out["ball_size"] = np.cumsum(n, axis=1).astype(np.float64)
        out["ball_hits"] = np.cumsum(r, axis=1).astype(np.float64)
    if req.auc:
        neg = n - r
        num_relevant, num_neg = r.sum(axis=1), neg.sum(axis=1)
        # Negatives ranked strictly after each distance, plus half of those tied with it.
        after = num_neg[:, None] - np.cumsum(neg, axis=1)
        wins = (r * (after + 0.5 * neg)).sum(axis=1)
        out["auc"] = np.where(num_neg == 0, 1.0, safe_div(wins, num_relevant * num_neg))
    return out


def per_query(prep: Prepared, req: Request, *, ties: str, backend, chunk_size):
    """Concatenated per-query values for every chunk, plus counts of relevant items."""
    average = ties == "average"
    histogram = average or req.radius_curve or req.auc
    length = None if average else req.ranked_length()
    parts = []
    for chunk in chunks(prep, length=length, histogram=histogram, backend=backend,
                        chunk_size=chunk_size):
        values = {"num_relevant": chunk.count_ge[:, 0].astype(np.float64)}
        if req.graded_at:
            discount = discount_cumsum(max(req.graded_at))
            values["idcg"] = np.stack(
                [_ideal_dcg(chunk.count_ge, k, discount) for k in req.graded_at], axis=1
            )
        if average:
            values.update(tie_average_values(chunk, req))
        elif length is not None:
            values.update(_ranked_values(chunk, req))
        if req.radius_curve or req.auc:
            values.update(_histogram_values(chunk, req))
        parts.append(values)
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
