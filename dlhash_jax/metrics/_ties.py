"""Tie-averaged per-query values (``ties="average"``) in closed form from per-distance counts.

The formulas are in the package docstring (*Tie-averaged formulas*): expectations over every order
inside each tie group, from a histogram of items by (distance, grade), never from orders.
"""

from __future__ import annotations

import numpy as np

from dlhash_jax.metrics._chunks import Chunk
from dlhash_jax.metrics._reduce import Request, discount_cumsum, safe_div

_HARMONIC_TABLE_SIZE = 64
_SMALL_HARMONIC = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, _HARMONIC_TABLE_SIZE + 1))])


def _harmonic_tail(x: np.ndarray) -> np.ndarray:
    """``H(x) - ln(x) - γ`` by its asymptotic series; error below 1e-17 for ``x >= 64``."""
    inv = 1.0 / x
    inv2 = inv * inv
    return inv * (0.5 - inv * (1.0 / 12 - inv2 * (1.0 / 120 - inv2 / 252)))


def harmonic_diff(s, m) -> np.ndarray:
    """``H(s+m) - H(s)`` to a few ulps, without subtracting two large harmonic numbers.

    The part below 64 comes from a table, the part above from ``log1p`` and the asymptotic
    series, so a short group far down the ranking (large ``s``, small ``m``) keeps its digits.
    """
    s = np.asarray(s, np.float64)
    end = s + np.asarray(m, np.float64)
    table = _SMALL_HARMONIC
    small = table[np.minimum(end, _HARMONIC_TABLE_SIZE).astype(np.int64)] - table[
        np.minimum(s, _HARMONIC_TABLE_SIZE).astype(np.int64)
    ]
    lo = np.maximum(s, _HARMONIC_TABLE_SIZE)
    hi = np.maximum(end, _HARMONIC_TABLE_SIZE)
    return small + (np.log1p((hi - lo) / lo) + (_harmonic_tail(hi) - _harmonic_tail(lo)))


def tie_group_sum(a, b, s, m):
    """``Σ_{i=1..m} (a + (i-1) b) / (s+i)`` in closed form (package docstring)."""
    dh = harmonic_diff(s, m)
    # The second sum is >= 0; rounding in the subtraction can leave -1 ulp.
    return a * dh + b * np.maximum(m - (s + 1) * dh, 0.0)


def _expected_ap_retrieved(n, r, s, c, k, group_sums) -> tuple[np.ndarray, np.ndarray]:
    """E[AP@k] normalised by the relevant items retrieved, and the expected hits (tie average).

    Arrays are [q, L+1] per distance; ``group_sums`` holds each group's expected AP numerator
    when wholly inside the top k.
    """
    full = (s + n <= k) & (n > 0)
    cut = (s < k) & (s + n > k)
    numer = np.where(full, group_sums, 0.0).sum(axis=1)
    hits = np.where(full, r, 0).sum(axis=1).astype(np.float64)
    ap = safe_div(numer, hits)
    for q in np.flatnonzero(cut.any(axis=1)):
        b = int(np.argmax(cut[q]))
        nb, rb, sb, cb = int(n[q, b]), int(r[q, b]), int(s[q, b]), int(c[q, b])
        m = k - sb
        hits[q] += m * rb / nb
        x = np.arange(max(0, m - (nb - rb)), min(m, rb) + 1)
        # Hypergeometric weights by the ratio p(x+1)/p(x), normalised at the end: no factorials.
        log_ratio = np.log((rb - x[:-1]) * (m - x[:-1])) - np.log(
            (x[:-1] + 1.0) * (nb - rb - m + x[:-1] + 1.0)
        )
        log_w = np.concatenate([[0.0], np.cumsum(log_ratio)])
        w = np.exp(log_w - log_w.max())
        w /= w.sum()
        pair = x * (x - 1.0) / (m * (m - 1.0)) if m > 1 else np.zeros_like(x, np.float64)
        g = tie_group_sum(x * (cb + 1.0) / m, pair, sb, m)
        ap[q] = np.sum(w * safe_div(numer[q] + g, cb + x))
    return ap, hits


def tie_average_values(chunk: Chunk, req: Request) -> dict[str, np.ndarray]:
    """Per-query expected values over all orders inside tie groups, from the histogram."""
    hist = chunk.hist
    n = hist.sum(axis=2)
    r = n - hist[:, :, 0]
    s = np.cumsum(n, axis=1) - n
    c = np.cumsum(r, axis=1) - r
    num_relevant = r.sum(axis=1)
    out = {}

    def in_top(k):
        return np.clip(k - s, 0, n)

    if req.ap_at:
        a = safe_div(r * (c + 1.0), n)
        b = safe_div(r * (r - 1.0), n * (n - 1.0))
        aps, hits_list = [], []
        for k in req.ap_at:
            if req.normalize == "total":
                numer = tie_group_sum(a, b, s, in_top(k)).sum(axis=1)
                aps.append(safe_div(numer, num_relevant))
                hits_list.append(safe_div(r * in_top(k), n).sum(axis=1))
            else:
                ap, hits = _expected_ap_retrieved(n, r, s, c, k, tie_group_sum(a, b, s, n))
                aps.append(ap)
                hits_list.append(hits)
        out["ap"] = np.stack(aps, axis=1)
        out["ap_hits"] = np.stack(hits_list, axis=1)
    if req.hits_at:
        out["hits"] = np.stack(
            [safe_div(r * in_top(k), n).sum(axis=1) for k in req.hits_at], axis=1
        )
    if req.graded_at:
        grades = np.arange(hist.shape[2], dtype=np.float64)
        gains = (hist * (2.0**grades - 1.0)).sum(axis=2)
        grade_totals = (hist * grades).sum(axis=2)
        discount = discount_cumsum(max(req.graded_at))
        dcg, grade_sum = [], []
        for k in req.graded_at:
            m = in_top(k)
            # A group wholly below the cutoff has m = 0 and s >= k: both indices clip to k.
            weight = discount[np.minimum(s + m, k)] - discount[np.minimum(s, k)]
            dcg.append((safe_div(gains, n) * weight).sum(axis=1))
            grade_sum.append(safe_div(grade_totals * m, n).sum(axis=1))
        out["dcg"] = np.stack(dcg, axis=1)
        out["grade_sum"] = np.stack(grade_sum, axis=1)
    return out
