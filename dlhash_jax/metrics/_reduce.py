"""Float64 host reductions shared by the metrics: what to compute, divisions, discounts, means."""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class Request:
    """Which per-query values to compute; cutoffs are sorted tuples of K values."""

    ap_at: tuple[int, ...] = ()
    normalize: str = "retrieved"
    hits_at: tuple[int, ...] = ()
    graded_at: tuple[int, ...] = ()
    radius_curve: bool = False
    auc: bool = False

    def ranked_length(self) -> int | None:
        cutoffs = self.ap_at + self.hits_at + self.graded_at
        return max(cutoffs) if cutoffs else None


def safe_div(num, den):
    """``num / den`` elementwise in float64, and 0 where ``den`` is 0."""
    num = np.asarray(num, np.float64)
    den = np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def discount_cumsum(length: int) -> np.ndarray:
    """``W[n] = Σ_{i=1..n} 1/log2(i+1)`` for n = 0..length (the NDCG discount, eq 35)."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, length + 2)))])


def mean(values: np.ndarray, defined: np.ndarray | None, zero_relevant: str) -> np.ndarray:
    """Mean over queries (axis 0); under "skip" only over queries where the value is defined.

    Sums are exactly rounded (``math.fsum``), so the result does not depend on how the queries
    were chunked or on which other metrics were computed alongside.
    """
    values = np.asarray(values, np.float64)
    if defined is None or zero_relevant == "zero":
        defined = np.ones(values.shape, bool)
    defined = np.broadcast_to(defined, values.shape)
    columns = values.reshape(values.shape[0], -1).T
    masks = defined.reshape(values.shape[0], -1).T
    means = [math.fsum(col[mask]) / mask.sum() if mask.any() else 0.0
             for col, mask in zip(columns, masks)]
    return np.asarray(means).reshape(values.shape[1:])
