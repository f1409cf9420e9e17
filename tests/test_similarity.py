"""Tests of dlhash_jax.similarity against loop references and hand-built graphs."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlhash_jax import similarity


def _multi_hot(rng, n, num_classes):
    y = (rng.random((n, num_classes)) < 0.3).astype(np.float32)
    y[0] = 0.0  # an item without labels must be similar to nothing
    return y


def test_label_relations_match_loops():
    rng = np.random.default_rng(0)
    y1, y2 = _multi_hot(rng, 6, 5), _multi_hot(rng, 7, 5)
    shared = np.array([[sum(a * b for a, b in zip(r1, r2)) for r2 in y2] for r1 in y1])
    similar = np.array([[float(any(a and b for a, b in zip(r1, r2))) for r2 in y2] for r1 in y1])
    R = similarity.common_labels(y1, y2)
    S = similarity.label_similarity(y1, y2)
    assert R.shape == S.shape == (6, 7)
    assert R.dtype == S.dtype == jnp.float32
    np.testing.assert_array_equal(R, shared)
    np.testing.assert_array_equal(S, similar)
    assert not np.any(S[0]) and similar[1:].any()


def test_label_relations_hand_case_and_dtypes():
    y1 = np.array([[True, True, False], [False, False, True]])
    y2 = np.array([[1, 1, 1], [0, 1, 0], [0, 0, 0]], dtype=np.int32)
    expected_R = [[2, 1, 0], [1, 0, 0]]
    expected_S = [[1, 1, 0], [1, 0, 0]]
    np.testing.assert_array_equal(similarity.common_labels(y1, y2), expected_R)
    S = jax.jit(similarity.label_similarity)(y1, y2)
    assert S.dtype == jnp.float32
    np.testing.assert_array_equal(S, expected_S)


def test_label_relations_reject_bad_shapes():
    with pytest.raises(ValueError, match=r"same number of classes.*\(2, 3\) and \(4, 5\)"):
        similarity.label_similarity(np.ones((2, 3)), np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"Y1 must have shape \[N, C\], got shape \(3,\)"):
        similarity.common_labels(np.ones(3), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"Y2 must have shape \[M, C\], got shape \(1, 2, 3\)"):
        similarity.label_similarity(np.ones((2, 3)), np.ones((1, 2, 3)))


def _gaussian_loop(x1, x2, sigma):
    return np.array(
        [[np.exp(-np.sum((a - b) ** 2) / (2 * sigma**2)) for b in x2] for a in x1]
    )


def test_gaussian_affinity_matches_loop():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 3))
    x2 = rng.normal(size=(4, 3))
    R = similarity.gaussian_affinity(x.astype(np.float32), 1.3)
    np.testing.assert_allclose(R, _gaussian_loop(x, x, 1.3), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(np.diag(R), np.ones(5))
    np.testing.assert_allclose(R, np.asarray(R).T, rtol=1e-6)
    cross = similarity.gaussian_affinity(x.astype(np.float32), 0.8, X2=x2.astype(np.float32))
    assert cross.shape == (5, 4)
    np.testing.assert_allclose(cross, _gaussian_loop(x, x2, 0.8), rtol=1e-4, atol=1e-7)


def test_gaussian_affinity_is_accurate_far_from_the_origin():
    # Points 1e3 from the origin but 0.1-1 apart: a raw float32 Gram matrix loses the distances.
    rng = np.random.default_rng(2)
    x = (1000.0 + 0.3 * rng.normal(size=(6, 4))).astype(np.float32)
    R = similarity.gaussian_affinity(x, 0.5)
    reference = _gaussian_loop(x.astype(np.float64), x.astype(np.float64), 0.5)
    np.testing.assert_allclose(R, reference, atol=1e-5)
    assert np.all((np.asarray(R) >= 0) & (np.asarray(R) <= 1))


def test_gaussian_affinity_traced_sigma():
    x = jnp.array([[0.0, 0.0], [3.0, 4.0]])
    R = jax.jit(similarity.gaussian_affinity)(x, jnp.float32(5.0))
    np.testing.assert_allclose(R, [[1.0, np.exp(-0.5)], [np.exp(-0.5), 1.0]], rtol=1e-6)


def test_gaussian_affinity_rejects_bad_input():
    with pytest.raises(ValueError, match=r"sigma must be positive, got 0.0"):
        similarity.gaussian_affinity(np.ones((2, 3)), 0.0)
    with pytest.raises(ValueError, match=r"sigma must be positive, got -1"):
        similarity.gaussian_affinity(np.ones((2, 3)), -1)
    with pytest.raises(ValueError, match=r"sigma must be a scalar, got shape \(2,\)"):
        similarity.gaussian_affinity(np.ones((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match=r"X must have shape \[N, D\], got shape \(3,\)"):
        similarity.gaussian_affinity(np.ones(3), 1.0)
    with pytest.raises(ValueError, match=r"same number of features.*\(2, 3\) and \(4, 2\)"):
        similarity.gaussian_affinity(np.ones((2, 3)), 1.0, X2=np.ones((4, 2)))


def test_graph_laplacian_matches_loop_and_quadratic_form():
    rng = np.random.default_rng(3)
    r = rng.random((5, 5))
    r = (r + r.T) / 2
    L = np.asarray(similarity.graph_laplacian(r.astype(np.float32)))
    expected = np.array(
        [[(sum(r[i]) if i == j else 0.0) - r[i, j] for j in range(5)] for i in range(5)]
    )
    np.testing.assert_allclose(L, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(L.sum(axis=1), 0.0, atol=1e-5)
    a = rng.normal(size=(5, 3))
    pairwise = 0.5 * sum(r[i, j] * np.sum((a[i] - a[j]) ** 2) for i in range(5) for j in range(5))
    assert np.trace(a.T @ L @ a) == pytest.approx(pairwise, rel=1e-5)


def test_graph_laplacian_rejects_non_square():
    with pytest.raises(ValueError, match=r"square \[N, N\] matrix, got shape \(2, 3\)"):
        similarity.graph_laplacian(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"R must have shape \[N, N\], got shape \(4,\)"):
        similarity.graph_laplacian(np.ones(4))


# Unit vectors at these angles (degrees) have unambiguous cosine neighbour orders:
# 0: 1,2,3,4   1: 0,2,3,4   2: 1,0,3,4   3: 2,1,4,0   4: 3,2,1,0
ANGLES = np.deg2rad([0.0, 10.0, 30.0, 70.0, 135.0])
CIRCLE = np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1).astype(np.float32)


def _from_sets(rows):
    out = -np.ones((len(rows), len(rows)), np.float32)
    for i, members in enumerate(rows):
        out[i, list(members)] = 1.0
    return out


@pytest.mark.parametrize(
    "k1, k2, rows",
    [
        (1, 0, [{0, 1}, {0, 1}, {1, 2}, {2, 3}, {3, 4}]),
        (1, 1, [{0, 1}, {0, 1}, {0, 1, 2}, {1, 2, 3}, {2, 3, 4}]),
        (1, 2, [{0, 1}, {0, 1}, {0, 1, 2}, {0, 1, 2, 3}, {1, 2, 3, 4}]),
        (2, 1, [{0, 1, 2}, {0, 1, 2}, {0, 1, 2}, {0, 1, 2, 3}, {1, 2, 3, 4}]),
    ],
)
def test_knn_graph_hand_built(k1, k2, rows):
    S = similarity.knn_graph_similarity(CIRCLE, k1, k2)
    assert S.dtype == jnp.float32
    np.testing.assert_array_equal(S, _from_sets(rows))


def test_knn_graph_symmetric_and_scale_invariant():
    expected = _from_sets([{0, 1, 2}, {0, 1, 2, 3}, {0, 1, 2, 3, 4}, {1, 2, 3, 4}, {2, 3, 4}])
    scaled = CIRCLE * np.array([[1.0], [7.0], [0.2], [3.0], [50.0]], np.float32)
    S = similarity.knn_graph_similarity(scaled, 1, 1, symmetric=True)
    np.testing.assert_array_equal(S, expected)


def _knn_loop(x, k1, k2):
    n = len(x)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = unit @ unit.T
    nearest = []
    for i in range(n):
        others = sorted((j for j in range(n) if j != i), key=lambda j: (-cos[i, j], j))
        nearest.append(others)
    out = -np.ones((n, n))
    for i in range(n):
        out[i, i] = 1
        for j in nearest[i][:k1]:
            out[i, j] = 1
        for m in nearest[i][:k2]:
            for j in nearest[m][:k1]:
                out[i, j] = 1
    return out


def test_knn_graph_matches_loop_on_random_features():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(12, 4))
    knn = jax.jit(similarity.knn_graph_similarity, static_argnums=(1, 2))
    for k1, k2 in ((2, 3), (3, 2)):
        np.testing.assert_array_equal(knn(x.astype(np.float32), k1, k2), _knn_loop(x, k1, k2))


def test_knn_graph_zero_vector_and_ties_go_to_lower_index():
    # Row 0 has cosine 0 to all; row 1 ties rows 0 and 2 at cosine 0.
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], np.float32)
    S = np.asarray(similarity.knn_graph_similarity(x, 2, 0))
    assert np.all(np.isfinite(S))
    np.testing.assert_array_equal(S[0], [1, 1, 1, -1])
    np.testing.assert_array_equal(S[1], [1, 1, 1, -1])


@pytest.mark.parametrize(
    "k1, k2, match",
    [
        (0, 1, r"k1 must be in \[1, N - 1\] = \[1, 4\] for X with N = 5 rows, got k1 = 0"),
        (5, 1, r"k1 must be in \[1, N - 1\] = \[1, 4\].*got k1 = 5"),
        (1, -1, r"k2 must be in \[0, N - 1\] = \[0, 4\].*got k2 = -1"),
        (1, 5, r"k2 must be in \[0, N - 1\].*got k2 = 5"),
        (1.5, 1, r"k1 must be an integer, got 1.5"),
        (True, 1, r"k1 must be an integer, got True"),
    ],
)
def test_knn_graph_rejects_bad_k(k1, k2, match):
    with pytest.raises(ValueError, match=match):
        similarity.knn_graph_similarity(CIRCLE, k1, k2)


def test_knn_graph_rejects_bad_rank():
    with pytest.raises(ValueError, match=r"X must have shape \[N, D\], got shape \(5,\)"):
        similarity.knn_graph_similarity(np.ones(5), 1, 1)


# --- hamming_affinity and normalized_adjacency (TBH's code-driven graph) ----------------------


def _hamming_affinity_loop(b1, b2, power):
    bits = b1.shape[1]
    return np.array(
        [[(1 - sum(x != y for x, y in zip(r1, r2)) / bits) ** power for r2 in b2] for r1 in b1]
    )


def _codes(rng, n, bits):
    return np.where(rng.random((n, bits)) < 0.5, -1.0, 1.0).astype(np.float32)


@pytest.mark.parametrize("power", [1.0, 1.4, 3.0])
def test_hamming_affinity_matches_loop(power):
    rng = np.random.default_rng(10)
    b1, b2 = _codes(rng, 7, 12), _codes(rng, 5, 12)
    A = jax.jit(lambda b: similarity.hamming_affinity(b, power=power))(b1)
    np.testing.assert_allclose(A, _hamming_affinity_loop(b1, b1, power), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(np.diag(A), np.ones(7))
    np.testing.assert_array_equal(A, np.asarray(A).T)
    cross = similarity.hamming_affinity(b1, b2, power=power)
    assert cross.shape == (7, 5) and cross.dtype == jnp.float32
    np.testing.assert_allclose(cross, _hamming_affinity_loop(b1, b2, power), rtol=1e-6, atol=1e-7)


def test_hamming_affinity_hand_case_and_the_authors_zero_one_form():
    # Distances 0, 1, 3 out of L = 4 bits: (1 − d/4)^1.4.
    b = np.array([[1, 1, 1, 1], [1, 1, 1, -1], [-1, -1, -1, 1]], np.float32)
    A = similarity.hamming_affinity(b, power=1.4)
    np.testing.assert_allclose(A[0], [1.0, 0.75**1.4, 0.25**1.4], rtol=1e-6)
    np.testing.assert_allclose(A[1, 2], 0.0, atol=0)  # all four bits differ
    # The authors' distance of {0, 1} codes: |b (b' − 1)ᵀ + (b − 1) b'ᵀ| / L.
    zero_one = (b + 1) / 2
    authors = np.abs(zero_one @ (zero_one - 1).T + (zero_one - 1) @ zero_one.T) / 4
    np.testing.assert_allclose(A, (1 - authors) ** 1.4, rtol=1e-6)


def test_hamming_affinity_gradient_vanishes_only_at_zero_distance(x64):
    rng = np.random.default_rng(11)
    b = jnp.asarray(_codes(rng, 5, 6), jnp.float64)
    b = b.at[4].set(b[1]).at[3].set(-b[0])  # equal codes (distance 0) and opposite ones (L)
    weights = jnp.asarray(rng.normal(size=(5, 5)))
    power, bits = 1.4, 6
    grad = jax.grad(lambda x: jnp.sum(weights * similarity.hamming_affinity(x, power=power)))(b)
    # Closed form: Σ_j w_ij ∂A_ij/∂b_i + Σ_j w_ji ∂A_ji/∂b_i over pairs at distance > 0, with
    # ∂A_ij/∂b_i = p (1 − d_ij/L)^{p−1} b_j / (2L).
    distance = (bits - np.asarray(b) @ np.asarray(b).T) / 2
    slope = np.where(distance > 0, power * (1 - distance / bits) ** (power - 1) / (2 * bits), 0.0)
    np.fill_diagonal(slope, 0.0)
    w = np.asarray(weights)
    expected = (w * slope) @ np.asarray(b) + (w.T * slope.T) @ np.asarray(b)
    np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-12)
    # Away from zero distances (relaxed codes inside the cube) the derivative is the numerical one.
    relaxed = jnp.asarray(0.8 * rng.uniform(-1, 1, size=(4, 6)))
    check_grads(
        lambda x: similarity.hamming_affinity(x, relaxed[::-1], power=power), (relaxed,),
        order=2, modes=("fwd", "rev"))


def test_hamming_affinity_diagonal_is_one_for_relaxed_codes_and_vmap():
    relaxed = np.array([[0.5, -0.2, 0.9], [0.1, 0.3, -0.4]], np.float32)
    A = similarity.hamming_affinity(relaxed, power=2.0)
    np.testing.assert_array_equal(np.diag(A), [1.0, 1.0])
    # Off the diagonal: the bilinear distance (L − bᵀb')/2.
    d = (3 - relaxed[0] @ relaxed[1]) / 2
    np.testing.assert_allclose(A[0, 1], (1 - d / 3) ** 2, rtol=1e-6)
    stacks = _codes(np.random.default_rng(12), 12, 8).reshape(3, 4, 8)
    mapped = jax.vmap(lambda b: similarity.hamming_affinity(b, power=1.4))(stacks)
    for got, codes in zip(mapped, stacks):
        np.testing.assert_allclose(got, _hamming_affinity_loop(codes, codes, 1.4), rtol=1e-6)
    traced = jax.jit(lambda b, p: similarity.hamming_affinity(b, power=p))(stacks[0], 1.4)
    np.testing.assert_allclose(traced, mapped[0], rtol=1e-6)


def test_hamming_affinity_rejects_bad_input():
    ok = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"B1 must have shape \[N, L\], got shape \(4,\)"):
        similarity.hamming_affinity(np.ones(4), power=1.4)
    with pytest.raises(ValueError, match=r"B2 must have shape \[M, L\], got shape \(1, 2, 4\)"):
        similarity.hamming_affinity(ok, np.ones((1, 2, 4)), power=1.4)
    with pytest.raises(ValueError, match=r"same number of bits.*\(3, 4\) and \(2, 5\)"):
        similarity.hamming_affinity(ok, np.ones((2, 5)), power=1.4)
    with pytest.raises(ValueError, match=r"at least one bit, got shape \(3, 0\)"):
        similarity.hamming_affinity(np.ones((3, 0)), power=1.4)
    for bad in (0.5, 0.0, -1.0, float("inf"), float("nan"), True, "1.4", None):
        with pytest.raises(ValueError, match=r"power must be a finite real number >= 1, got"):
            similarity.hamming_affinity(ok, power=bad)
    with pytest.raises(ValueError, match=r"power must be a scalar, got shape \(2,\)"):
        jax.jit(lambda p: similarity.hamming_affinity(ok, power=p))(jnp.ones(2))


def _normalized_loop(a, eps):
    degree = [sum(row) + eps for row in a]
    n = len(a)
    return np.array([[a[i][j] / np.sqrt(degree[i] * degree[j]) for j in range(n)]
                     for i in range(n)])


def test_normalized_adjacency_matches_loop_and_hand_case():
    rng = np.random.default_rng(13)
    a = rng.random((6, 6))
    a = (a + a.T) / 2
    P = jax.jit(similarity.normalized_adjacency)(a.astype(np.float32))
    np.testing.assert_allclose(P, _normalized_loop(a, 1e-8), rtol=1e-5)
    np.testing.assert_allclose(P, np.asarray(P).T, rtol=1e-6)
    # Degrees 4 and 1: A_ij / √(d_i d_j); an isolated node stays 0 (ε), no 0/0.
    hand = similarity.normalized_adjacency(np.array([[3.0, 1.0, 0.0], [1.0, 0.0, 0.0],
                                                     [0.0, 0.0, 0.0]], np.float32))
    np.testing.assert_allclose(hand, [[0.75, 0.5, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, 0.0]],
                               rtol=1e-6)
    # The propagation of a graph of identical codes averages the rows.
    ones = similarity.normalized_adjacency(np.ones((4, 4), np.float32), eps=0.0)
    np.testing.assert_allclose(ones, np.full((4, 4), 0.25), rtol=1e-6)


def test_normalized_adjacency_gradients_and_vmap(x64):
    rng = np.random.default_rng(14)
    a = jnp.asarray(rng.random((5, 5)) + 0.1)
    check_grads(similarity.normalized_adjacency, (a,), order=2, modes=("fwd", "rev"))
    stacks = rng.random((3, 4, 4))
    mapped = jax.vmap(similarity.normalized_adjacency)(jnp.asarray(stacks))
    for got, matrix in zip(mapped, stacks):
        np.testing.assert_allclose(got, _normalized_loop(matrix, 1e-8), rtol=1e-10)


def test_normalized_adjacency_rejects_bad_input():
    with pytest.raises(ValueError, match=r"square \[N, N\] matrix, got shape \(2, 3\)"):
        similarity.normalized_adjacency(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"A must have shape \[N, N\], got shape \(4,\)"):
        similarity.normalized_adjacency(np.ones(4))
    for bad in (-1e-8, float("inf"), float("nan"), True, None):
        with pytest.raises(ValueError, match=r"eps must be a finite real number >= 0, got"):
            similarity.normalized_adjacency(np.ones((2, 2)), eps=bad)


def test_hamming_affinity_and_normalized_adjacency_docstring_examples():
    runner, finder = doctest.DocTestRunner(), doctest.DocTestFinder()
    for function in (similarity.hamming_affinity, similarity.normalized_adjacency):
        for test in finder.find(function, globs={"jnp": jnp, function.__name__: function}):
            runner.run(test)
    assert runner.failures == 0 and runner.tries >= 3
