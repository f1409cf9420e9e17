"""dlhash_jax.statistics: bootstrap intervals, the paired sign-flip test and the best-of-column marks,
against closed forms and scipy."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from dlhash_jax import statistics


def _normal_interval(seeds, confidence=0.95):
    """Large-sample closed form: the bootstrap mean of seed s has variance σ_s² / Q_s (σ² with
    ddof=0, the resampled population's), and the pooled cell averages S independent means."""
    seeds = [np.asarray(v, np.float64) for v in seeds]
    estimate = np.mean([v.mean() for v in seeds])
    se = math.sqrt(sum(v.var() / v.size for v in seeds)) / len(seeds)
    z = scipy_stats.norm.ppf(0.5 + confidence / 2)
    return estimate, estimate - z * se, estimate + z * se


def test_bootstrap_ci_matches_the_normal_closed_form_for_one_and_several_seeds():
    rng = np.random.default_rng(0)
    one = [rng.normal(0.6, 0.2, size=400)]
    # Seeds of different sizes and spreads: each is resampled within itself.
    several = [rng.normal(0.6, 0.2, size=300), rng.normal(0.7, 0.1, size=500),
               rng.uniform(0, 1, size=200)]
    for seeds in (one, several):
        interval = statistics.bootstrap_ci(seeds, num_resamples=20_000, seed=1)
        estimate, low, high = _normal_interval(seeds)
        assert interval.estimate == pytest.approx(estimate, abs=1e-12)
        half = (high - low) / 2
        # Monte Carlo error of a 2.5% quantile with 20,000 resamples is ~1.5% of the half-width.
        assert interval.low == pytest.approx(low, abs=0.05 * half)
        assert interval.high == pytest.approx(high, abs=0.05 * half)
        assert interval.confidence == 0.95


def test_bootstrap_ci_of_one_seed_agrees_with_scipys_percentile_bootstrap():
    values = np.random.default_rng(3).beta(2, 5, size=250)
    ours = statistics.bootstrap_ci(values, confidence=0.9, num_resamples=20_000, seed=0)
    theirs = scipy_stats.bootstrap(
        (values,), np.mean, confidence_level=0.9, n_resamples=20_000, method="percentile",
        rng=np.random.default_rng(0),
    ).confidence_interval
    half = (theirs.high - theirs.low) / 2
    assert ours.low == pytest.approx(theirs.low, abs=0.05 * half)
    assert ours.high == pytest.approx(theirs.high, abs=0.05 * half)


def test_bootstrap_ci_exact_cases_determinism_and_inputs():
    # Constant values: every resample has the same mean.
    constant = statistics.bootstrap_ci([np.full(5, 0.25), np.full(7, 0.75)], num_resamples=50)
    assert (constant.estimate, constant.low, constant.high) == (0.5, 0.5, 0.5)
    values = {1: np.linspace(0, 1, 30), 4: np.linspace(0.2, 0.9, 40)}
    first = statistics.bootstrap_ci(values, seed=7, num_resamples=2000)
    assert first == statistics.bootstrap_ci(values, seed=7, num_resamples=2000)
    assert first != statistics.bootstrap_ci(values, seed=8, num_resamples=2000)
    assert first.low < first.estimate < first.high
    # A mapping, a sequence and a 2-D array of equal-sized seeds are the same data.
    same = [np.linspace(0, 1, 30), np.linspace(0.3, 0.5, 30)]
    assert statistics.bootstrap_ci(same) == statistics.bootstrap_ci(np.stack(same)) == (
        statistics.bootstrap_ci(dict(enumerate(same))))
    # A single 1-D array is one seed; the estimate is the mean over seeds of the seed means.
    assert statistics.cell_estimate(np.array([0.0, 1.0])) == 0.5
    assert statistics.cell_estimate([[1.0], [0.0, 0.0, 0.0]]) == 0.5
    # Wider confidence, wider interval.
    narrow = statistics.bootstrap_ci(values, confidence=0.5, seed=7, num_resamples=2000)
    assert first.low < narrow.low < narrow.high < first.high


@pytest.mark.parametrize(
    "values, kwargs, message",
    [
        ([], {}, "holds no seed"),
        ([0.5, 0.25], {}, r"values\[0\] must be a non-empty 1-D array"),
        ([np.zeros(0)], {}, r"values\[0\] must be a non-empty 1-D array"),
        ([np.array([0.5, np.nan])], {}, r"1 non-finite values.*zero_relevant='skip'"),
        ("abc", {}, "sequence or mapping over seeds"),
        ([np.ones(3)], {"confidence": 1.0}, "confidence must be a number strictly between"),
        ([np.ones(3)], {"num_resamples": 0}, "num_resamples"),
        ([np.ones(3)], {"seed": -1}, "seed"),
    ],
)
def test_bootstrap_ci_refuses_bad_input(values, kwargs, message):
    with pytest.raises(ValueError, match=message):
        statistics.bootstrap_ci(values, **kwargs)


def _exact_sign_flip_p(weighted, alternative):
    """Brute force over all 2**n sign patterns."""
    observed = weighted.sum()
    null = np.array([np.dot(s, weighted) for s in itertools.product((1, -1), repeat=weighted.size)])
    tol = 100 * np.finfo(float).eps * abs(observed)
    greater = np.mean(null >= observed - tol)
    less = np.mean(null <= observed + tol)
    return {"greater": greater, "less": less, "two-sided": min(1, 2 * min(greater, less))}[
        alternative]


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_exact_sign_flip_test_matches_scipy_and_brute_force(alternative):
    rng = np.random.default_rng(11)
    a, b = rng.random(10), rng.random(10)
    result = statistics.paired_permutation_test(a, b, alternative=alternative,
                                                num_permutations=1024)
    assert result.exact and result.num_permutations == 1024
    assert result.statistic == pytest.approx(np.mean(a - b))
    theirs = scipy_stats.permutation_test(
        (a, b), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples",
        alternative=alternative, n_resamples=1024,
    )
    assert result.p_value == pytest.approx(theirs.pvalue, abs=1e-12)
    assert result.p_value == pytest.approx(_exact_sign_flip_p(a - b, alternative), abs=1e-12)


def test_sign_flip_test_over_seeds_weights_each_seed_by_its_query_count():
    rng = np.random.default_rng(5)
    first = [rng.random(4), rng.random(7)]
    second = [rng.random(4), rng.random(7)]
    result = statistics.paired_permutation_test(first, second, num_permutations=2**11)
    # T = (1/2)(mean of seed 0's differences + mean of seed 1's).
    weighted = np.concatenate([(first[0] - second[0]) / 8, (first[1] - second[1]) / 14])
    assert result.exact
    assert result.statistic == pytest.approx(weighted.sum())
    assert result.p_value == pytest.approx(_exact_sign_flip_p(weighted, "greater"), abs=1e-12)


def test_equal_size_differences_reduce_to_the_binomial_sign_test():
    # With |d| the same for every query, T counts the positive differences: under the null that
    # count is Binomial(n, 1/2), so p = P(X >= k) in closed form.
    n, k = 12, 9
    first = np.r_[np.ones(k), np.zeros(n - k)]
    second = np.r_[np.zeros(k), np.ones(n - k)]
    result = statistics.paired_permutation_test(first, second, num_permutations=2**n)
    assert result.exact
    assert result.p_value == pytest.approx(scipy_stats.binom.sf(k - 1, n, 0.5), abs=1e-12)
    # Monte Carlo (2**40 patterns cannot be listed) agrees with the binomial within its error.
    n, k = 40, 27
    first = np.r_[np.ones(k), np.zeros(n - k)]
    second = np.r_[np.zeros(k), np.ones(n - k)]
    result = statistics.paired_permutation_test(first, second, num_permutations=40_000, seed=2)
    expected = scipy_stats.binom.sf(k - 1, n, 0.5)
    assert not result.exact and result.num_permutations == 40_000
    assert result.p_value == pytest.approx(expected, abs=4 * math.sqrt(expected / 40_000))


def test_sign_flip_test_edge_cases_and_determinism():
    same = np.linspace(0, 1, 50)
    # No difference at all: every pattern reaches T = 0.
    assert statistics.paired_permutation_test(same, same).p_value == 1.0
    # A large consistent gap: the randomized p-value is at its floor 1 / (B + 1).
    result = statistics.paired_permutation_test(same + 0.1, same, num_permutations=999)
    assert result.p_value == pytest.approx(1 / 1000)
    assert statistics.paired_permutation_test(same + 0.1, same, alternative="less").p_value == 1
    rng = np.random.default_rng(0)
    a, b = [rng.random(100)], [rng.random(100)]
    assert statistics.paired_permutation_test(a, b, seed=3) == (
        statistics.paired_permutation_test(a, b, seed=3))
    # Swapping the methods swaps the one-sided alternatives.
    forward = statistics.paired_permutation_test(a, b, alternative="greater", seed=3)
    backward = statistics.paired_permutation_test(b, a, alternative="less", seed=3)
    assert forward.p_value == backward.p_value and forward.statistic == -backward.statistic


@pytest.mark.parametrize(
    "first, second, kwargs, message",
    [
        ([np.ones(3)], [np.ones(4)], {}, "first has 3 per-query values and second 4"),
        ({0: np.ones(3)}, {1: np.ones(3)}, {}, r"same seeds in the same order.*\[0\] and \[1\]"),
        ([np.ones(3)], [np.ones(3)], {"alternative": "greatr"}, "did you mean 'greater'"),
        ([np.ones(3)], [np.ones(3)], {"num_permutations": 0}, "num_permutations"),
    ],
)
def test_sign_flip_test_refuses_unpaired_input(first, second, kwargs, message):
    with pytest.raises(ValueError, match=message):
        statistics.paired_permutation_test(first, second, **kwargs)


def test_holm_adjustment_by_hand():
    # Sorted 0.01, 0.02, 0.04, 0.5 over m = 4: 0.04, 0.06, 0.08, 0.5 (monotone).
    adjusted = statistics.holm_adjust([0.04, 0.5, 0.01, 0.02])
    np.testing.assert_allclose(adjusted, [0.08, 0.5, 0.04, 0.06])
    np.testing.assert_allclose(statistics.holm_adjust([0.3, 0.2]), [0.4, 0.4])
    assert statistics.holm_adjust([]).size == 0
    with pytest.raises(ValueError, match=r"p-values must lie in \[0, 1\]"):
        statistics.holm_adjust([0.5, 1.5])


def _column(rng, num_queries=300):
    base = [rng.random(num_queries) for _ in range(3)]
    noise = lambda: [rng.normal(0, 0.05, num_queries) for _ in range(3)]  # noqa: E731
    # Alternating ±0.01 around a gap of 0.0001: T is a third of its standard error.
    alternating = 0.01 * (-1.0) ** np.arange(num_queries) - 0.0001
    return {
        "best": base,
        "close": [b + alternating for b in base],
        "far": [b - 0.05 + e for b, e in zip(base, noise())],
    }


def test_compare_with_best_marks_the_methods_not_below_the_best():
    column = _column(np.random.default_rng(0))
    result = statistics.compare_with_best(column, num_permutations=5000)
    assert result.best == "best"
    assert result.not_below == {"best": True, "close": True, "far": False}
    assert result.estimates["best"] == pytest.approx(np.mean([v.mean() for v in column["best"]]))
    assert result.p_values["best"] == result.adjusted_p_values["best"] == 1.0
    assert result.p_values["far"] < 0.001 and result.p_values["close"] > 0.05
    # Holm over the m = 2 compared methods: the smaller p doubled, the larger kept (monotone).
    small, large = sorted([result.p_values["close"], result.p_values["far"]])
    assert result.adjusted_p_values["far"] == pytest.approx(2 * small)
    assert result.adjusted_p_values["close"] == pytest.approx(max(large, 2 * small))
    raw = statistics.compare_with_best(column, correction="none", num_permutations=5000)
    assert raw.adjusted_p_values == raw.p_values
    assert (result.alpha, result.correction, raw.correction) == (0.05, "holm", "none")
    # Each p-value is that of the paired test against the best with the same seed.
    alone = statistics.paired_permutation_test(column["best"], column["far"],
                                               num_permutations=5000)
    assert result.p_values["far"] == alone.p_value


def test_compare_with_best_pairs_seeds_by_name_and_skips_methods_sharing_none():
    rng = np.random.default_rng(1)
    best = {0: rng.random(50) + 0.5, 1: rng.random(50) + 0.5}
    result = statistics.compare_with_best({
        "a": {1: best[1] - 0.3},           # Only seed 1 in common.
        "best": best,
        "other_seed": {7: rng.random(50)},  # No seed in common: not tested.
    })
    assert result.best == "best" and list(result.p_values) == ["a", "best", "other_seed"]
    assert result.not_below == {"a": False, "best": True, "other_seed": False}
    assert math.isnan(result.p_values["other_seed"])
    assert math.isnan(result.adjusted_p_values["other_seed"])
    # Holm counts only the one tested method: adjusted = raw.
    assert result.adjusted_p_values["a"] == result.p_values["a"]
    with pytest.raises(ValueError, match="non-empty mapping"):
        statistics.compare_with_best({})
    with pytest.raises(ValueError, match="did you mean 'holm'"):
        statistics.compare_with_best({"a": [np.ones(2)]}, correction="holmes")
    with pytest.raises(ValueError, match="alpha must be"):
        statistics.compare_with_best({"a": [np.ones(2)]}, alpha=0)
    with pytest.raises(ValueError, match=r"seed 0: first has 3 per-query values and second 2"):
        statistics.compare_with_best({"a": [np.ones(3)], "b": [np.zeros(2)]})


def test_compare_with_best_has_the_nominal_level_under_the_null():
    # Five methods with the same per-query distribution: a method is declared below the best
    # rarely (Holm keeps the family-wise rate under alpha, even though the best is chosen from
    # the data; the selection makes the one-sided tests anti-conservative per comparison).
    rng = np.random.default_rng(2)
    declared = 0
    trials = 40
    for trial in range(trials):
        shared = [rng.random(60) for _ in range(2)]
        column = {f"m{i}": [s + rng.normal(0, 0.1, 60) for s in shared] for i in range(5)}
        result = statistics.compare_with_best(column, num_permutations=500, seed=trial)
        declared += not all(result.not_below.values())
    assert declared / trials <= 0.2
