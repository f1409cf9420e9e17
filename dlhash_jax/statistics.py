"""Significance of results-table cells: bootstrap intervals and paired tests over the queries.

A cell of a results table (one method, one code length, one metric such as mAP) is a mean over
seeds of a mean over queries, ``(1/S) Σ_s (1/Q_s) Σ_q v_sq``, where ``v_sq`` is the per-query
value (e.g. ``metrics.average_precision``) of query ``q`` of seed ``s``'s split. With three seeds
the standard deviation over seeds cannot rank methods whose means differ by less than it; the
hundreds of queries behind every seed can. This module gives:

- :func:`bootstrap_ci`: a percentile bootstrap confidence interval of a cell. Each resample draws
  every seed's ``Q_s`` queries with replacement from that seed's own queries, averages within the
  seed, then over the seeds (a stratified bootstrap, the seeds being the strata).
- :func:`paired_permutation_test`: a paired sign-flip permutation (randomization) test of two
  methods evaluated on the same queries of the same seeds. Its statistic is the difference of
  the two cells, ``T = (1/S) Σ_s (1/Q_s) Σ_q (a_sq − b_sq)``; under the null hypothesis that
  the methods' labels are exchangeable on every query (each per-query difference is symmetric
  about 0), every sign pattern of the differences is equally likely. This is the test Smucker,
  Allan & Carterette (CIKM 2007) recommend for comparing retrieval systems over the same
  queries: it assumes no distribution of AP (which is bounded, skewed and often 0 or 1).
- :func:`compare_with_best`: marks the methods of a column not significantly below its best
  method, by one-sided paired tests against the best, Holm-corrected (or not) for the number of
  methods compared.

What these intervals and tests cover: the sampling of queries given the trained models. The
seeds' models are held fixed (training randomness enters only by averaging over the S seeds,
not as variance; the tables' ``± std`` over seeds shows that), and so are the databases.

References:
  B. Efron and R. Tibshirani, "An Introduction to the Bootstrap", 1993 (percentile interval).
  M. D. Smucker, J. Allan and B. Carterette, "A comparison of statistical significance tests
  for information retrieval evaluation", CIKM 2007. S. Holm, "A simple sequentially rejective
  multiple test procedure", Scandinavian Journal of Statistics 6, 1979.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import numpy.typing  # noqa: F401 - np.typing in PerSeedValues.

from dlhash_jax import _checks

ALTERNATIVES = ("greater", "less", "two-sided")
CORRECTIONS = ("holm", "none")
# Resamples and sign patterns drawn per chunk (each a [chunk, Q] array).
_CHUNK = 1000

# Per-query values of every seed: ``{seed: [Q_s]}``, a sequence of ``[Q_s]``, or one ``[Q]``.
PerSeedValues = Mapping[Hashable, np.typing.ArrayLike] | Sequence[np.typing.ArrayLike]


@dataclasses.dataclass(frozen=True)
class Interval:
    """A point estimate and its confidence interval.

    Attributes:
      estimate: the cell, ``(1/S) Σ_s mean_q v_sq`` (the mean over seeds of the per-seed means).
      low, high: the interval's ends.
      confidence: its level, e.g. 0.95.
    """

    estimate: float
    low: float
    high: float
    confidence: float


@dataclasses.dataclass(frozen=True)
class PairedTestResult:
    """The outcome of :func:`paired_permutation_test`.

    Attributes:
      statistic: ``T``, the difference of the two cells (first minus second).
      p_value: the test's p-value, in (0, 1].
      exact: whether every sign pattern was enumerated (else ``num_permutations`` were drawn).
      num_permutations: sign patterns the p-value counts (``2**n`` when exact).
    """

    statistic: float
    p_value: float
    exact: bool
    num_permutations: int


@dataclasses.dataclass(frozen=True)
class BestComparison:
    """The outcome of :func:`compare_with_best`.

    Attributes:
      best: the method with the highest estimate (the first such in input order on a tie).
      estimates: method -> its cell, the mean over its seeds of the per-seed means.
      p_values: method -> the one-sided p-value of "below the best" (1.0 for the best itself;
        NaN for a method sharing no seed with the best, which is not tested).
      adjusted_p_values: the same after the multiple-comparison correction.
      not_below: method -> whether it is not significantly below the best (adjusted p-value at
        least ``alpha``); True for the best, False for an untested method.
      alpha: the significance level.
      correction: ``"holm"`` or ``"none"``.
    """

    best: str
    estimates: dict[str, float]
    p_values: dict[str, float]
    adjusted_p_values: dict[str, float]
    not_below: dict[str, bool]
    alpha: float
    correction: str


def _per_seed(values, name: str) -> dict[Hashable, np.ndarray]:
    """``{seed: float64 [Q_s]}`` from a mapping or sequence over seeds (or one seed's array)."""
    if isinstance(values, np.ndarray) and values.ndim == 1:
        values = [values]
    if isinstance(values, Mapping):
        items = list(values.items())
    elif isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise ValueError(
            f"{name} must be a sequence or mapping over seeds of per-query value arrays, got "
            f"{type(values).__name__}."
        )
    else:
        items = list(enumerate(values))
    if not items:
        raise ValueError(f"{name} holds no seed; it needs per-query values of at least one seed.")
    checked = {}
    for seed, seed_values in items:
        array = np.asarray(seed_values, dtype=np.float64)
        if array.ndim != 1 or array.size == 0:
            raise ValueError(
                f"{name}[{seed!r}] must be a non-empty 1-D array of per-query values, got shape "
                f"{array.shape} (pass [values] for a single seed)."
            )
        if not np.isfinite(array).all():
            raise ValueError(
                f"{name}[{seed!r}] holds {int((~np.isfinite(array)).sum())} non-finite values; "
                "per-query values must be finite (average_precision gives NaN for queries "
                "without a relevant item under zero_relevant='skip'; use 'zero')."
            )
        checked[seed] = array
    return checked


def _check_probability(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
        0.0 < float(value) < 1.0
    ):
        raise ValueError(f"{name} must be a number strictly between 0 and 1, got {value!r}.")
    return float(value)


def _cell(seeds: Mapping[Hashable, np.ndarray]) -> float:
    return math.fsum(math.fsum(v) / v.size for v in seeds.values()) / len(seeds)


def cell_estimate(values: PerSeedValues) -> float:
    """The cell of per-seed per-query values: the mean over seeds of each seed's mean.

    Args:
      values: per seed (a sequence, a ``{seed: values}`` mapping, or one 1-D array for a single
        seed), the per-query values ``[Q_s]``.

    Returns:
      ``(1/S) Σ_s (1/Q_s) Σ_q v_sq`` (exactly rounded sums), e.g. the mean over seeds of mAP.

    Raises:
      ValueError: for no seed, an empty or non-1-D array, or a non-finite value.
    """
    return _cell(_per_seed(values, "values"))


def bootstrap_ci(
    values: PerSeedValues,
    *,
    confidence: float = 0.95,
    num_resamples: int = 10_000,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap confidence interval of a cell, resampling queries within each seed.

    Resample ``b`` draws, for every seed ``s``, ``Q_s`` of that seed's queries uniformly with
    replacement and computes ``T_b = (1/S) Σ_s mean(resampled v_s)``; the interval is the
    ``(1 − confidence)/2`` and ``(1 + confidence)/2`` quantiles of the ``T_b`` (NumPy's default
    linear interpolation). Seeds are strata, never resampled: with a handful of seeds their
    spread is not estimable, and it is the training randomness the models were fixed with.

    Args:
      values: per seed (a sequence, a ``{seed: values}`` mapping, or one 1-D array for a single
        seed), the per-query values ``[Q_s]`` (e.g. ``metrics.average_precision``); seeds may
        hold different numbers of queries.
      confidence: the level, strictly between 0 and 1.
      num_resamples: bootstrap resamples B (at least 1).
      seed: seed of ``np.random.default_rng``; the same arguments give the same interval.

    Returns:
      An :class:`Interval`: the cell (:func:`cell_estimate`) and the interval's ends.

    Raises:
      ValueError: for a bad ``values`` (no seed, an empty or non-1-D array, a non-finite value),
        a ``confidence`` outside (0, 1), or a bad ``num_resamples`` or ``seed``.
    """
    seeds = _per_seed(values, "values")
    confidence = _check_probability(confidence, "confidence")
    num_resamples = _checks.check_int(num_resamples, "num_resamples", minimum=1)
    seed = _checks.check_int(seed, "seed", minimum=0)
    rng = np.random.default_rng(seed)
    totals = np.zeros(num_resamples)
    for seed_values in seeds.values():
        n = seed_values.size
        for start in range(0, num_resamples, _CHUNK):
            stop = min(start + _CHUNK, num_resamples)
            draws = rng.integers(0, n, size=(stop - start, n))
            totals[start:stop] += seed_values[draws].mean(axis=1)
    means = totals / len(seeds)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(_cell(seeds), float(low), float(high), confidence)


def _paired_differences(first, second) -> tuple[np.ndarray, float]:
    """Weighted per-query differences ``w_i d_i`` (their sum is T) from matching seeds."""
    a, b = _per_seed(first, "first"), _per_seed(second, "second")
    if list(a) != list(b):
        raise ValueError(
            f"first and second must hold the same seeds in the same order (a paired test), got "
            f"{list(a)} and {list(b)}."
        )
    parts = []
    for seed in a:
        if a[seed].shape != b[seed].shape:
            raise ValueError(
                f"seed {seed!r}: first has {a[seed].size} per-query values and second "
                f"{b[seed].size}; a paired test needs the same queries for both."
            )
        parts.append((a[seed] - b[seed]) / (a[seed].size * len(a)))
    weighted = np.concatenate(parts)
    return weighted, _cell(a) - _cell(b)


def paired_permutation_test(
    first: PerSeedValues,
    second: PerSeedValues,
    *,
    alternative: str = "greater",
    num_permutations: int = 10_000,
    seed: int = 0,
) -> PairedTestResult:
    """Paired sign-flip permutation test of two methods over the same queries and seeds.

    With ``d_sq = first_sq − second_sq`` the statistic is ``T = (1/S) Σ_s (1/Q_s) Σ_q d_sq``,
    the difference of the two cells. Under the null hypothesis each ``d_sq`` is symmetric about
    0 (the two methods' values of a query are exchangeable), so the ``2**n`` sign patterns
    ``ε ∈ {−1, +1}^n`` of the ``n = Σ_s Q_s`` differences give equally likely values
    ``T(ε) = (1/S) Σ_s (1/Q_s) Σ_q ε_sq d_sq``. When ``2**n <= num_permutations`` every
    pattern is enumerated and the p-value is exact, ``#{ε: T(ε) ≥ T} / 2**n`` (``"greater"``);
    otherwise ``num_permutations`` patterns are drawn uniformly and
    ``p = (1 + #{T(ε_b) ≥ T}) / (num_permutations + 1)``, which is never 0 and keeps the test's
    level. ``"less"`` counts ``T(ε) ≤ T``; ``"two-sided"`` is twice the smaller one-sided
    p-value, capped at 1. Comparisons allow a relative tolerance of ``100 · eps · |T|``, so
    patterns equal to T up to rounding count as reaching it. These are the conventions of
    ``scipy.stats.permutation_test(..., permutation_type="samples")``.

    Args:
      first, second: per seed (a sequence, a ``{seed: values}`` mapping, or one 1-D array for a
        single seed), the per-query values ``[Q_s]`` of the two methods: the same seeds in the
        same order, with the same queries in the same order for both.
      alternative: ``"greater"`` (H1: first's cell above second's), ``"less"`` or
        ``"two-sided"``.
      num_permutations: sign patterns drawn (at least 1); the test is exact when ``2**n`` is
        not larger.
      seed: seed of ``np.random.default_rng``; the same arguments give the same p-value.

    Returns:
      A :class:`PairedTestResult` with ``T`` and the p-value.

    Raises:
      ValueError: for a bad ``first`` or ``second`` (as :func:`bootstrap_ci`), seeds or query
        counts that differ between them, an unknown ``alternative``, or a bad
        ``num_permutations`` or ``seed``.
    """
    weighted, observed = _paired_differences(first, second)
    _checks.check_choice(alternative, ALTERNATIVES, "alternative")
    num_permutations = _checks.check_int(num_permutations, "num_permutations", minimum=1)
    seed = _checks.check_int(seed, "seed", minimum=0)
    n = weighted.size
    total = weighted.sum()
    exact = n < 63 and 2**n <= num_permutations
    # T(ε) = Σ ε_i w_i d_i = Σ w_i d_i − 2 Σ_{i: ε_i = −1} w_i d_i, with bits b_i = [ε_i = −1].
    if exact:
        patterns = 2**n
        chunks = (
            ((np.arange(start, min(start + _CHUNK, patterns))[:, None] >> np.arange(n)) & 1)
            .astype(np.float64)
            for start in range(0, patterns, _CHUNK)
        )
    else:
        patterns = num_permutations
        rng = np.random.default_rng(seed)
        chunks = (
            np.unpackbits(
                rng.integers(0, 256, size=(min(_CHUNK, patterns - start), (n + 7) // 8),
                             dtype=np.uint8),
                axis=1, count=n,
            ).astype(np.float64)
            for start in range(0, patterns, _CHUNK)
        )
    tolerance = 100 * np.finfo(np.float64).eps * abs(observed)
    at_least = at_most = 0
    for bits in chunks:
        null = total - 2.0 * (bits @ weighted)
        at_least += int(np.count_nonzero(null >= observed - tolerance))
        at_most += int(np.count_nonzero(null <= observed + tolerance))
    adjustment = 0 if exact else 1
    greater = (at_least + adjustment) / (patterns + adjustment)
    less = (at_most + adjustment) / (patterns + adjustment)
    p_value = {"greater": greater, "less": less, "two-sided": min(1.0, 2 * min(greater, less))}
    return PairedTestResult(float(observed), float(p_value[alternative]), exact, patterns)


def holm_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control under any dependence).

    With the m p-values sorted ascending, ``p̃_(i) = max_{j <= i} min(1, (m − j + 1) p_(j))``;
    rejecting where ``p̃ < α`` is Holm's procedure at level α.

    Args:
      p_values: the m raw p-values, in [0, 1].

    Returns:
      float64 ``[m]``, the adjusted p-values in the input's order.

    Raises:
      ValueError: for a value outside [0, 1] (or NaN).
    """
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    if p.size and not ((p >= 0) & (p <= 1)).all():
        raise ValueError(f"p-values must lie in [0, 1], got {p[~((p >= 0) & (p <= 1))][:3]}.")
    order = np.argsort(p, kind="stable")
    m = p.size
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def compare_with_best(
    values: Mapping[str, PerSeedValues],
    *,
    alpha: float = 0.05,
    correction: str = "holm",
    num_permutations: int = 10_000,
    seed: int = 0,
) -> BestComparison:
    """Marks the methods of a column that are not significantly below its best method.

    The best method is the one with the highest cell (:func:`cell_estimate`). Every other method
    is compared with it by the one-sided :func:`paired_permutation_test` (H1: the best's cell is
    above the method's) over the seeds the two share (a seed's queries are the same for every
    method evaluated with that seed); a method sharing no seed with the best is not tested. With
    ``correction="holm"`` the p-values of the m methods tested are Holm-adjusted, so the chance
    of wrongly declaring any method below the best stays under ``alpha`` (family-wise, whatever
    the tests' dependence); ``"none"`` judges each comparison at ``alpha`` on its own. A method
    is not significantly below the best when its (adjusted) p-value is at least ``alpha``.

    Args:
      values: method -> per seed (a sequence, a ``{seed: values}`` mapping, or one 1-D array),
        its per-query values ``[Q_s]``; pass mappings when methods ran different seeds, so
        that the seeds are paired by name.
      alpha: the significance level, strictly between 0 and 1.
      correction: ``"holm"`` (default) or ``"none"``.
      num_permutations, seed: of each :func:`paired_permutation_test` (all use the same seed,
        so a method's p-value does not depend on the other methods).

    Returns:
      A :class:`BestComparison`.

    Raises:
      ValueError: for no method, bad per-query values, a shared seed whose query counts
        differ, an unknown ``correction``, or a bad ``alpha``, ``num_permutations`` or ``seed``.
    """
    if not isinstance(values, Mapping) or not values:
        raise ValueError("values must be a non-empty mapping of method -> per-seed values.")
    per_method = {method: _per_seed(v, f"values[{method!r}]") for method, v in values.items()}
    alpha = _check_probability(alpha, "alpha")
    _checks.check_choice(correction, CORRECTIONS, "correction")
    estimates = {method: _cell(seeds) for method, seeds in per_method.items()}
    best = max(estimates, key=lambda method: estimates[method])
    p_values = {best: 1.0}
    for method, seeds in per_method.items():
        if method == best:
            continue
        shared = [s for s in per_method[best] if s in seeds]
        if not shared:
            p_values[method] = math.nan
            continue
        p_values[method] = paired_permutation_test(
            {s: per_method[best][s] for s in shared},
            {s: seeds[s] for s in shared},
            alternative="greater",
            num_permutations=num_permutations,
            seed=seed,
        ).p_value
    tested = [m for m in per_method if m != best and not math.isnan(p_values[m])]
    raw = [p_values[m] for m in tested]
    adjusted_list = holm_adjust(raw) if correction == "holm" else np.asarray(raw)
    adjusted = {m: math.nan for m in per_method}
    adjusted.update({best: 1.0}, **{m: float(p) for m, p in zip(tested, adjusted_list)})
    p_values = {m: p_values[m] for m in per_method}
    not_below = {m: bool(m == best or adjusted[m] >= alpha) for m in per_method}
    return BestComparison(best, estimates, p_values, adjusted, not_below, alpha, correction)
