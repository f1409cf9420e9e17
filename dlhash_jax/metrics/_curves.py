"""Precision-recall curves and what derives from them: F-beta, ROC AUC, radius precision."""

from __future__ import annotations

import numbers
from typing import Sequence

import jax
import numpy as np

from dlhash_jax._checks import check_choice, check_int
from dlhash_jax.metrics._prepare import check_cutoff, check_switches, prepare
from dlhash_jax.metrics._ranking import per_query
from dlhash_jax.metrics._reduce import Request, mean, safe_div


def f_beta(precision: jax.typing.ArrayLike, recall: jax.typing.ArrayLike, *,
           beta: float = 1.0) -> np.ndarray | float:
    """F-measure of precision and recall (survey eq 30), elementwise.

    ``F_β = (1 + β²) P R / (β² P + R)``, and 0 where ``P = R = 0``. β > 1 weighs recall more.
    The survey prints the denominator as ``β² (P + R)``, which agrees only at β = 1; we use
    van Rijsbergen's definition above, the standard one.

    Args:
      precision: precision values in [0, 1], any shape.
      recall: recall values in [0, 1], broadcastable against ``precision``.
      beta: positive weight of recall.

    Returns:
      F-values with the broadcast shape (a Python float for scalar inputs).

    Raises:
      ValueError: ``beta`` not positive, shapes that do not broadcast, or values outside [0, 1].

    Examples:
      >>> f_beta(0.5, 1.0)
      0.6666666666666666
    """
    if not isinstance(beta, numbers.Real) or not beta > 0:
        raise ValueError(f"beta must be a positive number, got {beta!r}.")
    p = np.asarray(precision, np.float64)
    r = np.asarray(recall, np.float64)
    try:
        np.broadcast(p, r)
    except ValueError:
        raise ValueError(
            f"precision and recall must broadcast together, got shapes {p.shape} and {r.shape}."
        ) from None
    if ((p < 0) | (p > 1) | (r < 0) | (r > 1) | np.isnan(p) | np.isnan(r)).any():
        raise ValueError("precision and recall must lie in [0, 1].")
    beta2 = float(beta) ** 2
    out = safe_div((1.0 + beta2) * p * r, beta2 * p + r)
    return float(out) if out.ndim == 0 else out


def default_k_grid(num_db: int) -> tuple[int, ...]:
    """1, 2, 5, 10, 20, 50, ... below the database size, then the database size."""
    grid = []
    scale = 1
    while scale < num_db:
        grid.extend(v for v in (scale, 2 * scale, 5 * scale) if v < num_db)
        scale *= 10
    return tuple(grid) + (num_db,)


def precision_recall_curve(query_codes, db_codes, query_labels, db_labels, *, by: str = "radius",
                           k_values: Sequence[int] | None = None, ties: str = "index",
                           zero_relevant: str = "zero", seed: int = 0,
                           chunk_size: int | None = None,
                           _backend: str | None = None) -> dict[str, np.ndarray]:
    """Mean precision and recall along the Hamming ranking (survey §6.4), by radius or by K.

    ``by="radius"``: for every radius ``t = 0..L`` the retrieved set is the Hamming ball
    ``d <= t``; a query whose ball is empty has precision 0 there. Independent of ``ties``.
    ``by="k"``: the retrieved set is the first K of the ranking, for each K in ``k_values``.
    Recall of a query with no relevant item follows ``zero_relevant``; precision averages all
    queries.

    Args:
      query_codes, db_codes, query_labels, db_labels: as in :func:`mean_average_precision`.
      by: ``"radius"`` or ``"k"``.
      k_values: cutoffs for ``by="k"`` (each in [1, N]); default 1, 2, 5, 10, 20, ... and N.
      ties, zero_relevant, seed, chunk_size: as in :func:`mean_average_precision`.

    Returns:
      ``{"radius": [L+1] ints, "precision": ..., "recall": ...}`` for ``by="radius"``,
      ``{"k": ..., "precision": ..., "recall": ...}`` for ``by="k"``; NumPy arrays.

    Raises:
      ValueError: as :func:`mean_average_precision`, an unknown ``by``, or ``k_values`` given
        with ``by="radius"``.
    """
    check_choice(by, ("radius", "k"), "by")
    check_switches(ties, zero_relevant, seed=seed)
    if by == "radius" and k_values is not None:
        raise ValueError("k_values applies to by='k' only.")
    prep = prepare(query_codes, db_codes, query_labels, db_labels, ties=ties, seed=seed)
    if by == "radius":
        values = per_query(prep, Request(radius_curve=True), ties="index", backend=_backend,
                           chunk_size=chunk_size)
        hits, size = values["ball_hits"], values["ball_size"]
        axis = {"radius": np.arange(prep.num_bits + 1)}
    else:
        if k_values is None:
            grid = default_k_grid(prep.num_db)
        else:
            grid = tuple(sorted({check_cutoff(k, prep.num_db, "k_values") for k in k_values}))
            if not grid:
                raise ValueError("k_values must hold at least one cutoff.")
        values = per_query(prep, Request(hits_at=grid), ties=ties, backend=_backend,
                           chunk_size=chunk_size)
        hits = values["hits"]
        size = np.broadcast_to(np.asarray(grid, np.float64), hits.shape)
        axis = {"k": np.asarray(grid)}
    relevant = values["num_relevant"][:, None]
    return {
        **axis,
        "precision": mean(safe_div(hits, size), None, zero_relevant),
        "recall": mean(safe_div(hits, relevant), relevant > 0, zero_relevant),
    }


def roc_auc(query_codes, db_codes, query_labels, db_labels, *, zero_relevant: str = "zero",
            chunk_size: int | None = None, _backend: str | None = None) -> float:
    """Mean over queries of the area under the ROC curve (survey eq 31-32), distance as score.

    For each query, TPR (eq 31) and FPR (eq 32) are traced as the Hamming radius grows; the area
    is the probability that a relevant item is closer than an irrelevant one, ties counting one
    half — scikit-learn's ``roc_auc_score(relevant, -distance)`` for that query. A query whose
    items are all relevant scores 1 (no irrelevant item can outrank a relevant one); one with no
    relevant item follows ``zero_relevant``.

    Args:
      query_codes, db_codes, query_labels, db_labels: as in :func:`mean_average_precision`.
      zero_relevant, chunk_size: as in :func:`mean_average_precision`.

    Returns:
      Mean AUC as a Python float.

    Raises:
      ValueError: as :func:`mean_average_precision`.
    """
    check_switches("index", zero_relevant)
    prep = prepare(query_codes, db_codes, query_labels, db_labels, ties="index", seed=0)
    values = per_query(prep, Request(auc=True), ties="index", backend=_backend,
                       chunk_size=chunk_size)
    return float(mean(values["auc"], values["num_relevant"] > 0, zero_relevant))


def precision_within_radius(query_codes, db_codes, query_labels, db_labels, *, radius: int = 2,
                            chunk_size: int | None = None, _backend: str | None = None) -> float:
    """Mean precision of the Hamming ball of the given radius (hash look-up precision).

    The retrieved set of a query is every item at Hamming distance ``<= radius``. A query whose
    ball is empty counts precision 0 (as in most published tables), so codes that scatter queries
    away from every item are penalised rather than ignored.

    Args:
      query_codes, db_codes, query_labels, db_labels: as in :func:`mean_average_precision`.
      radius: non-negative integer Hamming radius (radii beyond L retrieve everything).
      chunk_size: as in :func:`mean_average_precision`.

    Returns:
      Mean precision as a Python float.

    Raises:
      ValueError: as :func:`mean_average_precision`, or a negative radius.
    """
    check_int(radius, "radius", minimum=0)
    prep = prepare(query_codes, db_codes, query_labels, db_labels, ties="index", seed=0)
    values = per_query(prep, Request(radius_curve=True), ties="index", backend=_backend,
                       chunk_size=chunk_size)
    t = min(int(radius), prep.num_bits)
    return float(mean(safe_div(values["ball_hits"][:, t], values["ball_size"][:, t]), None,
                      "zero"))
