"""Tests of dlhash_jax.metrics against per-query loop references, enumeration and scikit-learn."""

import doctest
import itertools
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from dlhash_jax import hamming
from dlhash_jax import metrics
from dlhash_jax.metrics import _ties

BACKENDS = ("host", "device")


# ----------------------------------------------------------------------------------------------
# Naive references: one query at a time, explicit orders, no shared code with the library.


def _distances(q, db):
    return np.array([[sum(int(a != b) for a, b in zip(qi, di)) for di in db] for qi in q])


def _shared(ql, dl):
    return np.array([[int(np.sum(np.logical_and(a, b))) for b in dl] for a in ql])


def _index_order(dist_row):
    return sorted(range(len(dist_row)), key=lambda i: (dist_row[i], i))


def _ap(rel_in_order, k, total_relevant, normalize):
    hits, score = 0, 0.0
    for i, rel in enumerate(rel_in_order[:k], start=1):
        if rel:
            hits += 1
            score += hits / i
    norm = hits if normalize == "retrieved" else total_relevant
    return (score / norm if norm else 0.0), norm > 0


def _dcg(grades_in_order, k):
    return sum((2.0**g - 1) / math.log2(i + 1) for i, g in enumerate(grades_in_order[:k], start=1))


def _per_order_values(grades_in_order, all_grades, k):
    """Every order-dependent per-query value of one ranked list (binary relevance = grade > 0)."""
    rel = [g > 0 for g in grades_in_order]
    total = sum(g > 0 for g in all_grades)
    ideal = _dcg(sorted(all_grades, reverse=True), k)
    out = {}
    for normalize in ("retrieved", "total"):
        out[f"ap_{normalize}"], out[f"ap_{normalize}_defined"] = _ap(rel, k, total, normalize)
    out["precision"] = sum(rel[:k]) / k
    out["recall"] = sum(rel[:k]) / total if total else 0.0
    out["ndcg"] = _dcg(grades_in_order, k) / ideal if ideal else 0.0
    out["acg"] = sum(grades_in_order[:k]) / k
    return out


def _tie_orders(dist_row):
    """Every order of the database that sorts by distance (all permutations of tie groups)."""
    groups = [
        [i for i in range(len(dist_row)) if dist_row[i] == d] for d in sorted(set(dist_row))
    ]
    for perms in itertools.product(*(itertools.permutations(g) for g in groups)):
        yield [i for p in perms for i in p]


def _reference(q, db, ql, dl, k, ties="index"):
    """Per-query values [Q] of every ranking metric at cutoff k (mean over orders for average)."""
    dist, grade = _distances(q, db), _shared(ql, dl)
    rows = []
    for d_row, g_row in zip(dist, grade):
        orders = list(_tie_orders(list(d_row))) if ties == "average" else [_index_order(d_row)]
        values = [_per_order_values([g_row[i] for i in o], list(g_row), k) for o in orders]
        rows.append({key: np.mean([v[key] for v in values]) for key in values[0]})
    return {key: np.array([r[key] for r in rows]) for key in rows[0]}


def _mean(values, defined, zero_relevant):
    if zero_relevant == "zero":
        return values.mean()
    return values[defined].mean() if defined.any() else 0.0


# ----------------------------------------------------------------------------------------------
# Data: few bits so that tie groups are large; an unlabelled query and item included.


def _codes(rng, n, bits):
    return rng.choice(np.array([-1, 1], np.int8), size=(n, bits))


@pytest.fixture(scope="module")
def multi_label():
    rng = np.random.default_rng(0)
    q, db = _codes(rng, 9, 5), _codes(rng, 40, 5)
    ql = (rng.random((9, 4)) < 0.35).astype(np.float32)
    dl = (rng.random((40, 4)) < 0.35).astype(np.float32)
    ql[0] = 0  # no relevant item anywhere
    dl[3] = 0
    ql[1] = dl[0]  # at least one relevant item
    return q, db, ql, dl


@pytest.fixture(scope="module")
def single_label():
    rng = np.random.default_rng(1)
    q, db = _codes(rng, 9, 5), _codes(rng, 40, 5)
    eye = np.eye(3, dtype=np.float32)
    return q, db, eye[rng.integers(0, 3, 9)], eye[rng.integers(0, 3, 40)]


# ----------------------------------------------------------------------------------------------
# Index ties: every metric against the loop reference.


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("data", ["multi_label", "single_label"])
def test_evaluate_codes_matches_loop_reference(data, backend, request):
    q, db, ql, dl = request.getfixturevalue(data)
    dist, grade = _distances(q, db), _shared(ql, dl)
    rel, total = grade > 0, (grade > 0).sum(1)
    for zero_relevant in ("zero", "skip"):
        for normalize in ("retrieved", "total"):
            got = metrics.evaluate_codes(q, db, ql, dl, topk=(7, 40, 100), ndcg_k=7,
                                         normalize=normalize, zero_relevant=zero_relevant,
                                         _backend=backend)
            ref_all = _reference(q, db, ql, dl, 40)
            ref7 = _reference(q, db, ql, dl, 7)
            assert set(got) >= {"map", "map_at_7", "ndcg_at_7", "acg_at_7", "roc_auc"}
            assert "map_at_40" not in got and "map_at_100" not in got
            np.testing.assert_allclose(
                got["map"], _mean(ref_all["ap_total"], total > 0, zero_relevant), atol=1e-12)
            np.testing.assert_allclose(
                got["map_at_7"],
                _mean(ref7[f"ap_{normalize}"], ref7[f"ap_{normalize}_defined"] > 0,
                      zero_relevant),
                atol=1e-12)
            np.testing.assert_allclose(got["precision_at_7"], ref7["precision"].mean())
            np.testing.assert_allclose(got["recall_at_7"],
                                       _mean(ref7["recall"], total > 0, zero_relevant))
            np.testing.assert_allclose(got["ndcg_at_7"],
                                       _mean(ref7["ndcg"], total > 0, zero_relevant))
            np.testing.assert_allclose(got["acg_at_7"], ref7["acg"].mean())
            assert (got["ties"], got["normalize"], got["zero_relevant"]) == (
                "index", normalize, zero_relevant)
    # Radius metrics: the ball d <= t; an empty ball counts precision 0. (got: zero_relevant
    # "skip", so recall averages the queries with a relevant item.)
    precision, recall = [], []
    for t in range(6):
        ball = dist <= t
        found = (ball & rel).sum(1)
        precision.append(np.mean([f / b if b else 0.0 for f, b in zip(found, ball.sum(1))]))
        recall.append(np.mean(found[total > 0] / total[total > 0]))
    curve = got["pr_curve_radius"]
    assert curve["radius"] == list(range(6))
    np.testing.assert_allclose(curve["precision"], precision)
    np.testing.assert_allclose(curve["recall"], recall)
    np.testing.assert_allclose(got["precision_within_radius_2"], precision[2])


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_metric_functions_match_reference(multi_label, backend):
    q, db, ql, dl = multi_label
    total = (_shared(ql, dl) > 0).sum(1)
    for k in (1, 6, 23):
        ref = _reference(q, db, ql, dl, k)
        for zero_relevant in ("zero", "skip"):
            for normalize in ("retrieved", "total"):
                got = metrics.mean_average_precision(q, db, ql, dl, k, normalize=normalize,
                                                     zero_relevant=zero_relevant,
                                                     _backend=backend)
                want = _mean(ref[f"ap_{normalize}"], ref[f"ap_{normalize}_defined"] > 0,
                             zero_relevant)
                np.testing.assert_allclose(got, want, atol=1e-12)
            np.testing.assert_allclose(
                metrics.recall_at_k(q, db, ql, dl, k, zero_relevant=zero_relevant,
                                    _backend=backend),
                _mean(ref["recall"], total > 0, zero_relevant))
            np.testing.assert_allclose(
                metrics.ndcg_at_k(q, db, ql, dl, k, zero_relevant=zero_relevant,
                                  _backend=backend),
                _mean(ref["ndcg"], total > 0, zero_relevant))
        np.testing.assert_allclose(metrics.precision_at_k(q, db, ql, dl, k, _backend=backend),
                                   ref["precision"].mean())
        np.testing.assert_allclose(metrics.acg_at_k(q, db, ql, dl, k, _backend=backend),
                                   ref["acg"].mean())
    curve = metrics.precision_recall_curve(q, db, ql, dl, by="k", k_values=(23, 1, 6),
                                           _backend=backend)
    np.testing.assert_array_equal(curve["k"], [1, 6, 23])
    for i, k in enumerate((1, 6, 23)):
        ref = _reference(q, db, ql, dl, k)
        np.testing.assert_allclose(curve["precision"][i], ref["precision"].mean())
        np.testing.assert_allclose(curve["recall"][i], ref["recall"].mean())


def test_hand_computed_example():
    # Distances 0, 2, 1; relevant items at ranks 2 and 3: AP = (1/2 + 2/3) / 2.
    q, db = np.array([[1, 1]]), np.array([[1, 1], [-1, -1], [1, -1]])
    ql, dl = [[1, 0]], [[0, 1], [1, 0], [1, 0]]
    assert metrics.mean_average_precision(q, db, ql, dl) == pytest.approx(7 / 12, abs=1e-15)
    assert metrics.mean_average_precision(q, db, ql, dl, 2) == pytest.approx(0.5)
    assert metrics.mean_average_precision(q, db, ql, dl, 2, normalize="total") == 0.25
    assert metrics.precision_at_k(q, db, ql, dl, 2) == 0.5
    assert metrics.recall_at_k(q, db, ql, dl, 1) == 0.0
    assert metrics.precision_within_radius(q, db, ql, dl, radius=1) == 0.5
    # The only irrelevant item is the closest one.
    assert metrics.roc_auc(q, db, ql, dl) == 0.0


# ----------------------------------------------------------------------------------------------
# Tie handling.


@pytest.fixture(scope="module")
def tiny_ties():
    """3 bits, 7 items: tie groups of up to 4 items, so every order can be enumerated."""
    rng = np.random.default_rng(3)
    q = _codes(rng, 4, 3)
    db = np.array([[1, 1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1], [1, 1, -1], [-1, -1, 1],
                   [1, -1, -1]], np.int8)
    ql = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 1], [0, 0, 0]], np.float32)
    dl = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 0, 1], [0, 0, 1], [0, 0, 0],
                   [1, 1, 1]], np.float32)
    return q, db, ql, dl


@pytest.mark.parametrize("backend", BACKENDS)
def test_average_ties_equal_mean_over_all_tie_orders(tiny_ties, backend):
    q, db, ql, dl = tiny_ties
    total = (_shared(ql, dl) > 0).sum(1)
    for k in (1, 2, 3, 5, 7):
        ref = _reference(q, db, ql, dl, k, ties="average")
        for normalize in ("retrieved", "total"):
            got = metrics.mean_average_precision(q, db, ql, dl, k, normalize=normalize,
                                                 ties="average", _backend=backend)
            np.testing.assert_allclose(got, ref[f"ap_{normalize}"].mean(), atol=1e-12)
        kw = dict(ties="average", _backend=backend)
        np.testing.assert_allclose(metrics.precision_at_k(q, db, ql, dl, k, **kw),
                                   ref["precision"].mean(), atol=1e-12)
        np.testing.assert_allclose(metrics.recall_at_k(q, db, ql, dl, k, **kw),
                                   ref["recall"].mean(), atol=1e-12)
        np.testing.assert_allclose(metrics.ndcg_at_k(q, db, ql, dl, k, **kw),
                                   ref["ndcg"].mean(), atol=1e-12)
        np.testing.assert_allclose(metrics.acg_at_k(q, db, ql, dl, k, **kw),
                                   ref["acg"].mean(), atol=1e-12)
        # "skip" keeps the queries that some order gives a non-zero normaliser.
        got = metrics.mean_average_precision(q, db, ql, dl, k, ties="average",
                                             zero_relevant="skip", _backend=backend)
        keep = ref["ap_retrieved_defined"] > 0
        np.testing.assert_allclose(got, ref["ap_retrieved"][keep].mean(), atol=1e-12)
        got = metrics.recall_at_k(q, db, ql, dl, k, zero_relevant="skip", **kw)
        np.testing.assert_allclose(got, ref["recall"][total > 0].mean(), atol=1e-12)


def test_average_ties_large_group_against_sampled_orders():
    # One query, 600 items in four tie groups: the cut group needs the hypergeometric sum.
    rng = np.random.default_rng(5)
    dist = np.repeat([0, 1, 2, 3], [50, 250, 200, 100])
    rel = rng.random(600) < 0.3
    q = np.ones((1, 3), np.int8)
    db = np.ones((600, 3), np.int8)
    for i, d in enumerate(dist):
        db[i, :d] = -1
    ql, dl = np.array([[1.0, 0.0]]), np.stack([rel, ~rel], 1).astype(np.float32)
    got = metrics.mean_average_precision(q, db, ql, dl, 120, ties="average")
    samples = []
    for _ in range(4000):
        order = np.lexsort((rng.random(600), dist))
        r = rel[order][:120]
        hits = np.cumsum(r)
        samples.append((hits / np.arange(1, 121))[r].sum() / max(hits[-1], 1))
    assert abs(got - np.mean(samples)) < 4 * np.std(samples) / np.sqrt(len(samples))


def test_random_ties_rank_a_seeded_shuffle_of_the_database(multi_label):
    q, db, ql, dl = multi_label
    perm = np.random.default_rng(7).permutation(len(db))
    ref = _reference(q, db[perm], ql, dl[perm], 40)
    got = metrics.mean_average_precision(q, db, ql, dl, ties="random", seed=7)
    np.testing.assert_allclose(got, ref["ap_total"].mean(), atol=1e-12)
    other = metrics.mean_average_precision(q, db, ql, dl, ties="random", seed=8)
    assert other != got


def test_without_ties_every_tie_rule_agrees_and_matches_sklearn_ap():
    # Six items at distinct distances 0..5 from the query.
    q = np.ones((1, 5), np.int8)
    db = np.array([[1] * (5 - d) + [-1] * d for d in (3, 0, 5, 1, 4, 2)], np.int8)
    ql = np.array([[1.0, 0.0]])
    dl = np.array([[1, 0], [0, 1], [1, 0], [1, 0], [0, 1], [1, 0]], np.float32)
    ref = skm.average_precision_score(dl[:, 0], -_distances(q, db)[0])
    for ties in ("index", "random", "average"):
        assert metrics.mean_average_precision(q, db, ql, dl, ties=ties) == pytest.approx(
            ref, abs=1e-12)


# ----------------------------------------------------------------------------------------------
# Against scikit-learn where the definitions coincide.


@pytest.mark.parametrize("backend", BACKENDS)
def test_roc_auc_and_radius_pr_curve_match_sklearn(multi_label, backend):
    q, db, ql, dl = multi_label
    dist, rel = _distances(q, db), _shared(ql, dl) > 0
    has = rel.any(1) & ~rel.all(1)
    aucs = [skm.roc_auc_score(rel[i], -dist[i]) for i in np.flatnonzero(has)]
    got = metrics.roc_auc(q, db, ql, dl, zero_relevant="skip", _backend=backend)
    np.testing.assert_allclose(got, np.mean(aucs), atol=1e-12)
    got0 = metrics.roc_auc(q, db, ql, dl, _backend=backend)
    np.testing.assert_allclose(got0, np.sum(aucs) / len(q), atol=1e-12)
    curve = metrics.precision_recall_curve(q, db, ql, dl, zero_relevant="skip",
                                           _backend=backend)
    for t in range(q.shape[1] + 1):
        precisions, recalls = [], []
        for i in range(len(q)):
            if not rel[i].any():
                precisions.append(0.0)
                continue
            p, r, thresholds = skm.precision_recall_curve(rel[i], -dist[i])
            at = np.flatnonzero(thresholds >= -t)
            # sklearn's first threshold >= -t is the ball d <= t; none: the ball is empty.
            precisions.append(p[at[0]] if at.size else 0.0)
            recalls.append(r[at[0]] if at.size else 0.0)
        np.testing.assert_allclose(curve["precision"][t], np.mean(precisions), atol=1e-12)
        np.testing.assert_allclose(curve["recall"][t], np.mean(recalls), atol=1e-12)


def test_ndcg_with_average_ties_matches_sklearn(multi_label):
    # sklearn's ndcg_score averages the gains of tied scores (McSherry & Najork), with the gain
    # taken as given: pass 2^r - 1 to get eq 35.
    q, db, ql, dl = multi_label
    dist, grade = _distances(q, db), _shared(ql, dl)
    has = grade.any(1)
    for k in (3, 10):
        ref = skm.ndcg_score(2.0 ** grade[has] - 1, -dist[has], k=k)
        got = metrics.ndcg_at_k(q, db, ql, dl, k, ties="average", zero_relevant="skip")
        np.testing.assert_allclose(got, ref, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# Paths, chunks and the closed-form helpers.


def test_backends_chunks_and_key_fallback_give_identical_values(monkeypatch):
    rng = np.random.default_rng(11)
    q, db = _codes(rng, 23, 12), _codes(rng, 300, 12)
    ql = (rng.random((23, 6)) < 0.3).astype(np.float32)
    dl = (rng.random((300, 6)) < 0.3).astype(np.float32)
    kw = dict(topk=(10, 100), ndcg_k=50)
    for ties in ("index", "average"):
        base = metrics.evaluate_codes(q, db, ql, dl, ties=ties, _backend="host", **kw)
        for backend, chunk in (("host", 5), ("device", 7), ("device", None)):
            got = metrics.evaluate_codes(q, db, ql, dl, ties=ties, _backend=backend,
                                         chunk_size=chunk, **kw)
            assert got == base, (ties, backend, chunk)
        for k in (10, 100):
            assert metrics.mean_average_precision(q, db, ql, dl, k, ties=ties, chunk_size=4,
                                                  _backend="device") == base[f"map_at_{k}"]
    monkeypatch.setattr(hamming, "_MAX_KEY", 0)
    fallback = metrics.evaluate_codes(q, db, ql, dl, _backend="host", **kw)
    assert fallback == metrics.evaluate_codes(q, db, ql, dl, _backend="device", **kw)


def test_index_ties_match_numpy_stable_argsort_at_scale():
    rng = np.random.default_rng(12)
    q, db = _codes(rng, 50, 16), _codes(rng, 2000, 16)
    yq, yd = rng.integers(0, 10, 50), rng.integers(0, 10, 2000)
    eye = np.eye(10, dtype=np.float32)
    dist = (16 - q.astype(np.float64) @ db.T.astype(np.float64)) / 2
    order = np.argsort(dist, axis=1, kind="stable")
    rel = (yq[:, None] == yd[None, :])
    ranked = np.take_along_axis(rel, order, axis=1)
    hits = np.cumsum(ranked, axis=1)
    prec = hits / np.arange(1, 2001)
    ap_all = (prec * ranked).sum(1) / ranked.sum(1)
    ap_100 = (prec * ranked)[:, :100].sum(1) / np.maximum(hits[:, 99], 1)
    assert metrics.mean_average_precision(q, db, eye[yq], eye[yd]) == pytest.approx(
        ap_all.mean(), abs=1e-12)
    assert metrics.mean_average_precision(q, db, eye[yq], eye[yd], 100) == pytest.approx(
        ap_100.mean(), abs=1e-12)


def test_harmonic_differences_are_accurate():
    for s, m in [(0, 1), (3, 70), (63, 2), (64, 1), (1000, 3), (10**6, 2), (10**6, 10**5)]:
        exact = math.fsum(1.0 / (s + i) for i in range(1, m + 1))
        np.testing.assert_allclose(_ties.harmonic_diff(s, m), exact, rtol=1e-14)
        exact_pos = math.fsum((i - 1) / (s + i) for i in range(1, m + 1))
        np.testing.assert_allclose(_ties.tie_group_sum(0.0, 1.0, s, m), exact_pos,
                                   rtol=1e-9, atol=1e-15)


def test_f_beta():
    assert metrics.f_beta(0.5, 1.0) == pytest.approx(2 / 3)
    assert metrics.f_beta(0.0, 0.0) == 0.0
    p, r = np.array([0.2, 0.5, 0.9]), np.array([0.6, 0.5, 0.1])
    for beta in (0.5, 1.0, 2.0):
        want = [(1 + beta**2) * a * b / (beta**2 * a + b) for a, b in zip(p, r)]
        np.testing.assert_allclose(metrics.f_beta(p, r, beta=beta), want)
    with pytest.raises(ValueError, match="beta must be a positive number, got 0"):
        metrics.f_beta(p, r, beta=0)
    with pytest.raises(ValueError, match=r"broadcast together, got shapes \(3,\) and \(2,\)"):
        metrics.f_beta(p, r[:2])
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        metrics.f_beta(1.5, 0.5)


# ----------------------------------------------------------------------------------------------
# Bad input.


def test_bad_input_raises_clear_errors(single_label):
    q, db, ql, dl = single_label
    map_ = metrics.mean_average_precision
    bad = q.astype(np.float32)
    bad[0, 0] = 0.0
    with pytest.raises(ValueError, match=r"query_codes must hold only -1 and \+1"):
        map_(bad, db, ql, dl)
    with pytest.raises(ValueError, match=r"db_labels has 39 rows but db_codes has 40"):
        map_(q, db, ql, dl[:39])
    with pytest.raises(ValueError, match=r"query_labels has 9 rows but query_codes has 8"):
        map_(q[:8], db, ql, dl)
    with pytest.raises(ValueError, match=r"topk must be between 1 and the database size 40, "
                                         r"got 41"):
        map_(q, db, ql, dl, 41)
    with pytest.raises(ValueError, match=r"k must be between 1 and the database size 40, got 0"):
        metrics.precision_at_k(q, db, ql, dl, 0)
    with pytest.raises(ValueError, match=r"ndcg_k must be between 1 and the database size 40"):
        metrics.evaluate_codes(q, db, ql, dl)
    with pytest.raises(ValueError, match=r"at least one query, got shape \(0, 5\)"):
        map_(q[:0], db, ql[:0], dl)
    with pytest.raises(ValueError, match=r"same number of bits, got shapes \(9, 5\) and "
                                         r"\(40, 4\)"):
        map_(q, db[:, :4], ql, dl)
    with pytest.raises(ValueError, match=r"same number of classes, got shapes \(9, 3\) and "
                                         r"\(40, 2\)"):
        map_(q, db, ql, dl[:, :2])
    with pytest.raises(ValueError, match=r"query_labels must be multi-hot"):
        map_(q, db, ql * 2, dl)
    with pytest.raises(ValueError, match=r"db_labels must be a 2-D \[N, C\] multi-hot matrix, "
                                         r"got shape \(40,\)"):
        map_(q, db, ql, dl[:, 0])
    with pytest.raises(ValueError, match=r"ties must be one of .*got 'first'"):
        map_(q, db, ql, dl, ties="first")
    with pytest.raises(ValueError, match=r"normalize must be one of"):
        map_(q, db, ql, dl, normalize="all")
    with pytest.raises(ValueError, match=r"zero_relevant must be one of"):
        metrics.recall_at_k(q, db, ql, dl, 3, zero_relevant="nan")
    with pytest.raises(ValueError, match=r"chunk_size must be a positive integer, got 0"):
        map_(q, db, ql, dl, chunk_size=0)
    with pytest.raises(ValueError, match=r"radius must be a non-negative integer, got -1"):
        metrics.precision_within_radius(q, db, ql, dl, radius=-1)
    with pytest.raises(ValueError, match=r"by must be one of"):
        metrics.precision_recall_curve(q, db, ql, dl, by="rank")


# ----------------------------------------------------------------------------------------------
# Cross-modal retrieval.


@pytest.fixture(scope="module")
def cross_modal_hand():
    """2 queries, 4 items, 4 bits; each item's image and text codes differ on purpose."""
    query = {
        "image": np.array([[1, 1, 1, 1], [-1, -1, -1, -1]]),
        "text": np.array([[1, 1, -1, -1], [-1, -1, 1, 1]]),
    }
    db = {
        "image": np.array([[-1, -1, 1, 1], [1, 1, -1, -1], [1, 1, -1, 1], [1, -1, 1, 1]]),
        "text": np.array([[1, 1, 1, 1], [1, 1, 1, -1], [1, -1, -1, -1], [-1, -1, -1, -1]]),
    }
    query_labels = np.array([[1, 0], [0, 1]])
    db_labels = np.array([[1, 0], [0, 1], [1, 0], [0, 1]])  # query 0 ~ items 0, 2; query 1 ~ 1, 3
    return query, db, query_labels, db_labels


def test_cross_modal_map_hand_computed(cross_modal_hand):
    query, db, ql, dl = cross_modal_hand
    # Image -> text (query images against database texts):
    #   query 0 [1,1,1,1]: distances 0, 1, 3, 4 -> ranking 0 (rel), 1, 2 (rel), 3:
    #     AP = (1/1 + 2/3) / 2 = 5/6.
    #   query 1 [-1,-1,-1,-1]: distances 4, 3, 1, 0 -> ranking 3 (rel), 2, 1 (rel), 0:
    #     AP = (1/1 + 2/3) / 2 = 5/6.  mAP = 5/6.
    # Text -> image (query texts against database images):
    #   query 0 [1,1,-1,-1]: distances 4, 0, 1, 3 -> ranking 1, 2 (rel), 3, 0 (rel):
    #     AP = (1/2 + 2/4) / 2 = 1/2.
    #   query 1 [-1,-1,1,1]: distances 0, 4, 3, 1 -> ranking 0, 3 (rel), 2, 1 (rel):
    #     AP = (1/2 + 2/4) / 2 = 1/2.  mAP = 1/2.
    got = metrics.cross_modal_map(query, db, ql, dl)
    assert got == {"image_to_text": pytest.approx(5 / 6, abs=1e-12),
                   "text_to_image": pytest.approx(1 / 2, abs=1e-12)}
    # Top 2: image -> text finds 1 relevant item at rank 1 for each query: AP 1 ("retrieved"),
    # 1/2 ("total", 2 relevant items each). Text -> image finds it at rank 2: AP (1/2)/1 = 1/2
    # ("retrieved"), (1/2)/2 = 1/4 ("total").
    got = metrics.cross_modal_map(query, db, ql, dl, 2)
    assert got == {"image_to_text": pytest.approx(1.0), "text_to_image": pytest.approx(0.5)}
    got = metrics.cross_modal_map(query, db, ql, dl, 2, normalize="total")
    assert got == {"image_to_text": pytest.approx(0.5), "text_to_image": pytest.approx(0.25)}


@pytest.mark.parametrize("switches", [
    {},
    {"ties": "average", "topk": 17},
    {"ties": "random", "seed": 3, "normalize": "total", "zero_relevant": "skip"},
])
def test_cross_modal_map_is_map_of_each_direction(multi_label, switches):
    q, db, ql, dl = multi_label
    rng = np.random.default_rng(7)
    query = {"image": q, "text": _codes(rng, *q.shape)}
    database = {"image": _codes(rng, *db.shape), "text": db}
    got = metrics.cross_modal_map(query, database, ql, dl, **switches)
    map_ = metrics.mean_average_precision
    assert got["image_to_text"] == map_(q, db, ql, dl, **switches)
    assert got["text_to_image"] == map_(query["text"], database["image"], ql, dl, **switches)
    assert got["image_to_text"] != got["text_to_image"]


def test_evaluate_cross_modal_matches_each_direction(cross_modal_hand):
    query, db, ql, dl = cross_modal_hand
    report = metrics.evaluate_cross_modal(query, db, ql, dl, topk=(2,), ndcg_k=3, ties="average")
    assert set(report) == {"image_to_text", "text_to_image"}
    assert report["image_to_text"]["map"] == pytest.approx(5 / 6, abs=1e-12)
    assert report["text_to_image"]["map"] == pytest.approx(1 / 2, abs=1e-12)
    both = metrics.cross_modal_map(query, db, ql, dl, 2, ties="average")
    for direction, (source, target) in {"image_to_text": ("image", "text"),
                                        "text_to_image": ("text", "image")}.items():
        assert report[direction]["map_at_2"] == both[direction]
        assert report[direction] == metrics.evaluate_codes(
            query[source], db[target], ql, dl, topk=(2,), ndcg_k=3, ties="average")


def test_cross_modal_map_docstring_example_is_right():
    runner = doctest.DocTestRunner()
    globs = {"np": np, "cross_modal_map": metrics.cross_modal_map}
    for test in doctest.DocTestFinder().find(metrics.cross_modal_map, globs=globs):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted == 3 and result.failed == 0


def test_cross_modal_bad_input_raises_clear_errors(cross_modal_hand):
    query, db, ql, dl = cross_modal_hand
    with pytest.raises(ValueError, match=r"query_codes must be a dict with exactly the keys "
                                         r"\['image', 'text'\].*got \['image'\]"):
        metrics.cross_modal_map({"image": query["image"]}, db, ql, dl)
    with pytest.raises(ValueError, match=r"db_codes must be a dict.*got \['image', 'txt'\]"):
        metrics.evaluate_cross_modal(query, {"image": db["image"], "txt": db["text"]}, ql, dl,
                                     ndcg_k=2)
    with pytest.raises(ValueError, match=r"query_codes must be a dict.*got ndarray"):
        metrics.cross_modal_map(query["image"], db, ql, dl)
    with pytest.raises(ValueError, match=r"db_codes\['image'\] and db_codes\['text'\] must have "
                                         r"the same shape.*got \(4, 3\) and \(4, 4\)"):
        metrics.cross_modal_map(query, {"image": db["image"][:, :3], "text": db["text"]}, ql, dl)
    with pytest.raises(ValueError, match=r"query_codes\['image'\] and query_codes\['text'\] must"
                                         r".*got \(2, 4\) and \(1, 4\)"):
        metrics.cross_modal_map({"image": query["image"], "text": query["text"][:1]}, db, ql, dl)
    with pytest.raises(ValueError, match=r"query_codes\['text'\] must hold only -1 and \+1"):
        metrics.cross_modal_map({"image": query["image"], "text": (query["text"] > 0) * 1},
                                db, ql, dl)
    with pytest.raises(ValueError, match=r"same number of bits"):
        metrics.cross_modal_map(query, {m: c[:, :3] for m, c in db.items()}, ql, dl)
    with pytest.raises(ValueError, match=r"ties must be one of"):
        metrics.cross_modal_map(query, db, ql, dl, ties="first")


# ----------------------------------------------------------------------------------------------
# Per-query average precision.


@pytest.mark.parametrize("ties", ["index", "random", "average"])
@pytest.mark.parametrize("normalize, topk", [("retrieved", None), ("retrieved", 5),
                                             ("total", 5)])
@pytest.mark.parametrize("data", ["multi_label", "single_label", "tiny_ties"])
def test_average_precision_is_the_per_query_reference_and_averages_to_map(
        data, normalize, topk, ties, request):
    q, db, ql, dl = request.getfixturevalue(data)
    per_query = metrics.average_precision(q, db, ql, dl, topk, normalize=normalize, ties=ties)
    assert per_query.shape == (q.shape[0],) and per_query.dtype == np.float64
    # The reference enumerates every order of each tie group: only tiny_ties is small enough.
    if ties == "index" or (ties == "average" and data == "tiny_ties"):
        ref = _reference(q, db, ql, dl, topk or db.shape[0], ties=ties)
        np.testing.assert_allclose(per_query, ref[f"ap_{normalize}"], atol=1e-12)
    # mean_average_precision is the mean of the per-query values under zero_relevant="zero"
    # (both sum exactly rounded, so they are equal, not just close).
    map_ = metrics.mean_average_precision(q, db, ql, dl, topk, normalize=normalize, ties=ties)
    assert map_ == math.fsum(per_query) / per_query.size
    assert map_ == pytest.approx(np.mean(per_query), abs=1e-15)


def test_average_precision_skip_marks_undefined_queries_nan(multi_label):
    q, db, ql, dl = multi_label
    for normalize, topk in (("retrieved", None), ("retrieved", 3), ("total", 3)):
        zero = metrics.average_precision(q, db, ql, dl, topk, normalize=normalize)
        skip = metrics.average_precision(q, db, ql, dl, topk, normalize=normalize,
                                         zero_relevant="skip")
        undefined = np.isnan(skip)
        assert undefined[0]  # The query with no relevant item anywhere.
        np.testing.assert_array_equal(zero[undefined], 0.0)
        np.testing.assert_array_equal(skip[~undefined], zero[~undefined])
        map_skip = metrics.mean_average_precision(q, db, ql, dl, topk, normalize=normalize,
                                                  zero_relevant="skip")
        assert map_skip == pytest.approx(np.nanmean(skip), abs=1e-15)
    # Every query undefined: all NaN, while the mAP of "skip" is 0.
    none = metrics.average_precision(q, db, np.zeros_like(ql), dl, zero_relevant="skip")
    assert np.isnan(none).all()
    assert metrics.mean_average_precision(q, db, np.zeros_like(ql), dl,
                                          zero_relevant="skip") == 0.0


def test_average_precision_backends_chunks_and_errors(multi_label):
    q, db, ql, dl = multi_label
    host = metrics.average_precision(q, db, ql, dl, _backend="host", chunk_size=2)
    device = metrics.average_precision(q, db, ql, dl, _backend="device")
    np.testing.assert_array_equal(host, device)
    with pytest.raises(ValueError, match="topk must be between 1 and the database size 40"):
        metrics.average_precision(q, db, ql, dl, 41)
    with pytest.raises(ValueError, match="zero_relevant"):
        metrics.average_precision(q, db, ql, dl, zero_relevant="drop")


def test_average_precision_docstring_example_is_right():
    runner = doctest.DocTestRunner()
    globs = {"np": np, "average_precision": metrics.average_precision}
    for test in doctest.DocTestFinder().find(metrics.average_precision, globs=globs):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted == 4 and result.failed == 0
