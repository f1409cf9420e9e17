import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlhash_jax import losses


def _dist(u, v, distance="hamming"):
    if distance == "hamming":
        return 0.5 * (len(u) - sum(x * y for x, y in zip(u, v)))
    return sum((x - y) ** 2 for x, y in zip(u, v))


def ref_ranking(aq, adb, r, margin, weights=None):
    total, count = 0.0, 0
    for q in range(aq.shape[0]):
        for i in range(adb.shape[0]):
            for j in range(adb.shape[0]):
                if r[q, i] > r[q, j]:
                    w = 1.0 if weights is None else weights[q, i, j]
                    gap = _dist(aq[q], adb[i]) - _dist(aq[q], adb[j]) + margin
                    total += w * max(0.0, gap)
                    count += 1
    return total / count if count else 0.0


def ref_ndcg_weights(r):
    q_count, m = r.shape
    w = np.zeros((q_count, m, m))
    for q in range(q_count):
        ranked = sorted(r[q], reverse=True)
        idcg = sum((2.0 ** ranked[k] - 1) / math.log2(k + 2) for k in range(m))
        for i in range(m):
            for j in range(m):
                if r[q, i] > r[q, j]:
                    w[q, i, j] = (2.0 ** r[q, i] - 2.0 ** r[q, j]) / idcg
    return w


def ref_triplet(aa, ap, an, margin, distance="hamming"):
    gaps = [
        _dist(aa[i], ap[i], distance) - _dist(aa[i], an[i], distance) + margin
        for i in range(aa.shape[0])
    ]
    return sum(max(0.0, g) for g in gaps) / len(gaps)


def ref_batch_triplet(a, y, margin, mining="all", distance="hamming"):
    n = a.shape[0]
    d = [[_dist(a[i], a[j], distance) for j in range(n)] for i in range(n)]
    shares = [[any(y[i, c] > 0 and y[j, c] > 0 for c in range(y.shape[1])) for j in range(n)]
              for i in range(n)]
    terms = []
    for anchor in range(n):
        positives = [p for p in range(n) if p != anchor and shares[anchor][p]]
        negatives = [m for m in range(n) if not shares[anchor][m]]
        if mining == "all":
            terms += [max(0.0, d[anchor][p] - d[anchor][m] + margin)
                      for p in positives for m in negatives]
        elif positives and negatives:
            hardest_pos = max(d[anchor][p] for p in positives)
            hardest_neg = min(d[anchor][m] for m in negatives)
            terms.append(max(0.0, hardest_pos - hardest_neg + margin))
    return sum(terms) / len(terms) if terms else 0.0


def _multi_hot(rng, n, num_classes):
    y = (rng.random((n, num_classes)) < 0.35).astype(np.float32)
    y[np.arange(n), rng.integers(0, num_classes, n)] = 1.0  # every sample has a label
    return y


# Query code and three items at Hamming distance 0, 2 and 4; relevance 0, 2, 1.
HAND_Q = np.array([[1.0, 1.0, 1.0, 1.0]], np.float32)
HAND_DB = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, -1.0, -1.0], [-1.0, -1.0, -1.0, -1.0]],
                   np.float32)
HAND_R = np.array([[0.0, 2.0, 1.0]], np.float32)
# IDCG of [2, 1, 0]: (2² - 1)/log2(2) + (2¹ - 1)/log2(3).
HAND_IDCG = 3.0 + 1.0 / math.log2(3.0)
# Hamming distances of this batch: d01 = d03 = d12 = d23 = 1, d02 = d13 = 2.
HAND_A = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0], [-1.0, 1.0]], np.float32)
HAND_Y = np.array([[1, 0], [1, 0], [0, 1], [1, 1]], np.float32)


# Compiling dominates the run time: every test goes through these cached jitted functions, and
# tests share input shapes where they can, so each (function, shape) compiles once.
_CACHE = {}


def _jit(fn, transform=None, **static):
    key = (fn, transform, tuple(sorted(static.items())))
    if key not in _CACHE:
        bound = functools.partial(fn, **static)
        _CACHE[key] = jax.jit(bound if transform is None else transform(bound))
    return _CACHE[key]


def _value_and_grad(fn, num_diff, **static):
    return _jit(fn, lambda f: jax.value_and_grad(f, tuple(range(num_diff))), **static)


def test_ranking_hand_computed():
    # Triplets (i, j) with R_i > R_j: (1, 0): 2 - 0 + 1; (1, 2): 2 - 4 + 1 -> 0; (2, 0): 4 - 0 + 1.
    loss = _jit(losses.ranking_loss, margin=1.0)
    np.testing.assert_allclose(float(loss(HAND_Q, HAND_DB, HAND_R)), 8.0 / 3.0, rtol=1e-6)
    weights = _jit(losses.ndcg_pair_weights)(HAND_R)
    expected_w = np.zeros((1, 3, 3))
    expected_w[0, 1, 0], expected_w[0, 1, 2], expected_w[0, 2, 0] = 3.0, 2.0, 1.0
    np.testing.assert_allclose(np.asarray(weights), expected_w / HAND_IDCG, rtol=1e-6)
    weighted = loss(HAND_Q, HAND_DB, HAND_R, weights=weights)
    np.testing.assert_allclose(float(weighted), (3 * 3 + 1 * 5) / (3 * HAND_IDCG), rtol=1e-6)


def test_triplet_hand_computed():
    a = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]], np.float32)
    p = np.array([[1.0, 1.0, 1.0, -1.0], [1.0, 1.0, 1.0, 1.0]], np.float32)
    n = np.array([[1.0, 1.0, -1.0, -1.0], [-1.0, -1.0, -1.0, -1.0]], np.float32)
    # Hamming (d_p, d_n) = (1, 2) and (0, 4); squared L2 is 4x: (4, 8) and (0, 16).
    hamming = _jit(losses.triplet_loss, margin=2.0)
    squared = _jit(losses.triplet_loss, margin=8.0, distance="squared_l2")
    assert float(hamming(a, p, n)) == pytest.approx(0.5)
    assert float(squared(a, p, n)) == pytest.approx(2.0)


@pytest.mark.parametrize("mining, expected", [("all", 4.0 / 6.0), ("hard", 1.0)])
def test_batch_triplet_hand_computed(mining, expected):
    # Anchor 0: pos {1, 3} neg {2} -> 0, 0 (hard 0). Anchor 1: pos {0, 3} neg {2} -> 1, 2
    # (hard 2). Anchor 2: pos {3} neg {0, 1} -> 0, 1 (hard 1). Anchor 3 shares a label with all.
    value = _jit(losses.batch_triplet_loss, margin=1.0, mining=mining)(HAND_A, HAND_Y)
    assert float(value) == pytest.approx(expected)


def _ranking_inputs(rng, q, m, num_bits, dtype=np.float32):
    aq = rng.normal(size=(q, num_bits)).astype(dtype)
    adb = rng.normal(size=(m, num_bits)).astype(dtype)
    r = rng.integers(0, 3, size=(q, m)).astype(dtype)
    return aq, adb, r


@pytest.mark.parametrize("weighted", [False, True])
def test_ranking_matches_loop_reference(weighted):
    rng = np.random.default_rng(0)
    loss = _jit(losses.ranking_loss, margin=1.5)
    for q, m, num_bits in [(2, 6, 3), (3, 5, 4)]:
        aq, adb, r = _ranking_inputs(rng, q, m, num_bits)
        w = rng.random((q, m, m)).astype(np.float32) if weighted else None
        expected = ref_ranking(aq.astype(float), adb.astype(float), r, 1.5, w)
        np.testing.assert_allclose(float(loss(aq, adb, r, weights=w)), expected, rtol=1e-5)


def test_ndcg_weights_match_loop_reference_and_zero_rows_give_zero():
    r = np.random.default_rng(1).integers(0, 4, size=(3, 5)).astype(np.float32)
    r[1] = 0.0
    weights = np.asarray(_jit(losses.ndcg_pair_weights)(r))
    np.testing.assert_allclose(weights, ref_ndcg_weights(r), rtol=1e-6)
    assert np.all(weights[1] == 0.0)


@pytest.mark.parametrize("distance", ["hamming", "squared_l2"])
def test_triplet_matches_loop_reference(distance):
    rng = np.random.default_rng(2)
    loss = _jit(losses.triplet_loss, margin=1.0, distance=distance)
    for n, num_bits in [(2, 3), (3, 4)]:
        aa, ap, an = (rng.normal(size=(n, num_bits)).astype(np.float32) for _ in range(3))
        expected = ref_triplet(aa.astype(float), ap.astype(float), an.astype(float), 1.0, distance)
        np.testing.assert_allclose(float(loss(aa, ap, an)), expected, rtol=1e-5)


@pytest.mark.parametrize("mining", ["all", "hard"])
@pytest.mark.parametrize("distance", ["hamming", "squared_l2"])
def test_batch_triplet_matches_loop_reference(mining, distance):
    rng = np.random.default_rng(3)
    loss = _jit(losses.batch_triplet_loss, margin=2.0, mining=mining, distance=distance)
    for n, num_bits, num_classes in [(9, 5, 4), (6, 4, 6)]:
        a = rng.normal(size=(n, num_bits)).astype(np.float32)
        y = _multi_hot(rng, n, num_classes)
        expected = ref_batch_triplet(a.astype(float), y, 2.0, mining, distance)
        np.testing.assert_allclose(float(loss(a, y)), expected, rtol=1e-5, atol=1e-6)


TRANSFORM_CASES = {
    "ranking": (
        losses.ranking_loss,
        {"margin": 1.5},
        lambda rng: _ranking_inputs(rng, 3, 5, 4),
    ),
    "triplet": (
        losses.triplet_loss,
        {"margin": 1.0, "distance": "squared_l2"},
        lambda rng: tuple(rng.normal(size=(3, 4)).astype(np.float32) for _ in range(3)),
    ),
    "batch_all": (
        losses.batch_triplet_loss,
        {"margin": 2.0, "mining": "all", "distance": "hamming"},
        lambda rng: (rng.normal(size=(6, 4)).astype(np.float32), _multi_hot(rng, 6, 6)),
    ),
    "batch_hard": (
        losses.batch_triplet_loss,
        {"margin": 2.0, "mining": "hard", "distance": "hamming"},
        lambda rng: (rng.normal(size=(6, 4)).astype(np.float32), _multi_hot(rng, 6, 6)),
    ),
}


@pytest.mark.parametrize("name", sorted(TRANSFORM_CASES))
def test_jit_equals_eager_and_vmap_equals_loop(name):
    fn, static, make_args = TRANSFORM_CASES[name]
    rng = np.random.default_rng(4)
    batches = [make_args(rng) for _ in range(3)]
    jitted = _jit(fn, **static)
    looped = [float(jitted(*args)) for args in batches]
    np.testing.assert_allclose(float(fn(*batches[0], **static)), looped[0], rtol=1e-6)
    stacked = [np.stack(parts) for parts in zip(*batches)]
    np.testing.assert_allclose(np.asarray(_jit(fn, jax.vmap, **static)(*stacked)), looped,
                               rtol=1e-5)


def test_ndcg_weights_jit_equals_eager_and_vmap_equals_loop():
    r = np.random.default_rng(5).integers(0, 3, size=(3, 2, 4)).astype(np.float32)
    eager = np.asarray(losses.ndcg_pair_weights(r[0]))
    np.testing.assert_allclose(np.asarray(_jit(losses.ndcg_pair_weights)(r[0])), eager, rtol=1e-6)
    mapped = np.asarray(_jit(losses.ndcg_pair_weights, jax.vmap)(r))
    np.testing.assert_allclose(mapped, [ref_ndcg_weights(row) for row in r], rtol=1e-6)


def _assert_hinges_away_from_zero(gaps):
    gaps = np.asarray(gaps)
    assert np.abs(gaps).min() > 0.05 and (gaps > 0).any() and (gaps < 0).any()


def test_ranking_and_triplet_gradients_match_finite_differences(x64):
    rng = np.random.default_rng(3)
    aq, adb, r = _ranking_inputs(rng, 2, 4, 3, dtype=np.float64)
    d = 0.5 * (3 - aq @ adb.T)
    _assert_hinges_away_from_zero(
        [d[q, i] - d[q, j] + 0.5 for q in range(2) for i in range(4) for j in range(4)
         if r[q, i] > r[q, j]]
    )
    w = np.asarray(losses.ndcg_pair_weights(r))
    # Reverse mode only (JAX derives it from the JVP); jit so the finite differences reuse one
    # compiled program. Order 1: the hinges make these piecewise.
    check_grads(jax.jit(lambda x, y: losses.ranking_loss(x, y, r, margin=0.5, weights=w)),
                (jnp.asarray(aq), jnp.asarray(adb)), order=1, modes=("rev",))
    aa, ap, an = (rng.normal(size=(4, 3)) for _ in range(3))
    _assert_hinges_away_from_zero(np.sum((aa - ap) ** 2, 1) - np.sum((aa - an) ** 2, 1) + 1.0)
    check_grads(
        jax.jit(lambda x, y, z: losses.triplet_loss(x, y, z, margin=1.0, distance="squared_l2")),
        (jnp.asarray(aa), jnp.asarray(ap), jnp.asarray(an)), order=1, modes=("rev",))


@pytest.mark.parametrize("mining", ["all", "hard"])
def test_batch_triplet_gradients_match_finite_differences(x64, mining):
    a = np.random.default_rng(8).normal(size=(5, 3))
    y = np.eye(2)[[0, 0, 1, 1, 0]]
    d = 0.5 * (3 - a @ a.T)
    same = y @ y.T > 0
    _assert_hinges_away_from_zero(
        [d[i, p] - d[i, m] + 0.5 for i in range(5) for p in range(5) for m in range(5)
         if p != i and same[i, p] and not same[i, m]]
    )
    assert np.diff(np.sort(d[np.triu_indices(5, 1)])).min() > 0.05  # no near-ties in max/min
    check_grads(jax.jit(lambda x: losses.batch_triplet_loss(x, y, margin=0.5, mining=mining)),
                (jnp.asarray(a),), order=1, modes=("rev",))


# Shared by the two tests below, so their value-and-gradient functions compile once per shape.
_BATCH_A = np.random.default_rng(6).normal(size=(6, 4)).astype(np.float32)
_RANK_Q, _RANK_DB, _RANK_R = _ranking_inputs(np.random.default_rng(7), 3, 5, 4)


def test_no_valid_triplet_gives_zero_with_zero_gradient():
    labels = {
        "one shared label": np.ones((6, 6), np.float32),  # no negatives
        "all different": np.eye(6, dtype=np.float32),  # no positives
        "unlabelled": np.zeros((6, 6), np.float32),  # similar to nothing: no positives
    }
    for mining in ("all", "hard"):
        value_and_grad = _value_and_grad(losses.batch_triplet_loss, 1, margin=1.0, mining=mining)
        for y in labels.values():
            value, (grad,) = value_and_grad(_BATCH_A, y)
            assert float(value) == 0.0 and np.all(np.asarray(grad) == 0.0)
    flat = np.ones_like(_RANK_R)  # every item equally relevant
    value_and_grad = _value_and_grad(losses.ranking_loss, 2, margin=1.0)
    for weights in (None, np.ones((3, 5, 5), np.float32)):
        value, grads = value_and_grad(_RANK_Q, _RANK_DB, flat, weights=weights)
        assert float(value) == 0.0 and all(np.all(np.asarray(g) == 0.0) for g in grads)


def test_finite_and_correct_for_large_outputs():
    rng = np.random.default_rng(9)
    aq, adb = 1e3 * _RANK_Q, 1e3 * _RANK_DB
    w = np.asarray(_jit(losses.ndcg_pair_weights)(_RANK_R))
    value, grads = _value_and_grad(losses.ranking_loss, 2, margin=1.0)(aq, adb, _RANK_R, weights=w)
    expected = ref_ranking(aq.astype(float), adb.astype(float), _RANK_R, 1.0, w)
    np.testing.assert_allclose(float(value), expected, rtol=1e-4)
    assert all(np.isfinite(np.asarray(g)).all() for g in grads)
    a = 1e3 * _BATCH_A
    y = _multi_hot(rng, 6, 6)
    for mining in ("all", "hard"):
        value, (grad,) = _value_and_grad(losses.batch_triplet_loss, 1, margin=1.0,
                                         mining=mining)(a, y)
        expected = ref_batch_triplet(a.astype(float), y, 1.0, mining)
        np.testing.assert_allclose(float(value), expected, rtol=1e-4)
        assert np.isfinite(np.asarray(grad)).all()
    big = [1e3 * rng.normal(size=(3, 4)).astype(np.float32) for _ in range(3)]
    value, grads = _value_and_grad(losses.triplet_loss, 3, margin=1.0)(*big)
    np.testing.assert_allclose(float(value), ref_triplet(*(b.astype(float) for b in big), 1.0),
                               rtol=1e-4)
    assert all(np.isfinite(np.asarray(g)).all() for g in grads)


def test_ranking_bad_shapes_raise_with_the_shapes():
    aq, adb, r = np.ones((2, 4)), np.ones((3, 4)), np.ones((2, 3))
    with pytest.raises(ValueError, match=r"Aq must have shape \[Q, L\], got shape \(4,\)"):
        losses.ranking_loss(aq[0], adb, r, margin=1.0)
    with pytest.raises(ValueError, match=r"same number of bits.*\(2, 4\) and \(3, 5\)"):
        losses.ranking_loss(aq, np.ones((3, 5)), r, margin=1.0)
    with pytest.raises(ValueError, match=r"R must have shape \[Q, M\] = \(2, 3\).*got \(3, 2\)"):
        losses.ranking_loss(aq, adb, r.T, margin=1.0)
    with pytest.raises(ValueError, match=r"weights must have shape \[Q, M, M\] = \(2, 3, 3\).*"
                                         r"got \(2, 3\)"):
        losses.ranking_loss(aq, adb, r, margin=1.0, weights=r)
    with pytest.raises(ValueError, match=r"R must have shape \[Q, M\], got shape \(2, 3, 1\)"):
        losses.ndcg_pair_weights(r[..., None])


def test_triplet_bad_input_raises_with_the_shapes():
    a = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"Aa must have shape \[N, L\], got shape \(4,\)"):
        losses.triplet_loss(a[0], a, a, margin=1.0)
    with pytest.raises(ValueError, match=r"Aa and Ap must have the same shape.*\(3, 4\) and "
                                         r"\(2, 4\)"):
        losses.triplet_loss(a, a[:2], a, margin=1.0)
    with pytest.raises(ValueError, match=r"Aa and An must have the same shape.*\(3, 4\) and "
                                         r"\(3, 5\)"):
        losses.triplet_loss(a, a, np.ones((3, 5)), margin=1.0)
    with pytest.raises(ValueError, match=r"distance must be one of .*'cosine'"):
        losses.triplet_loss(a, a, a, margin=1.0, distance="cosine")
    y = np.eye(3)
    with pytest.raises(ValueError, match=r"A and Y must have the same number of rows.*"
                                         r"\(3, 4\) and \(2, 3\)"):
        losses.batch_triplet_loss(a, y[:2], margin=1.0)
    with pytest.raises(ValueError, match=r"Y must have shape \[N, C\], got shape \(3,\)"):
        losses.batch_triplet_loss(a, y[0], margin=1.0)
    with pytest.raises(ValueError, match=r"mining must be one of .*'semi'"):
        losses.batch_triplet_loss(a, y, margin=1.0, mining="semi")
