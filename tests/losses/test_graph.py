import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlhash_jax import losses


def ref_laplacian_pairwise(a, r):
    n = a.shape[0]
    total = 0.0
    for i in range(n):
        for j in range(n):
            total += r[i, j] * sum((a[i, k] - a[j, k]) ** 2 for k in range(a.shape[1]))
    return total / (2 * n * n)


def ref_laplacian_trace(a, r):
    degree = np.diag(r.sum(axis=1))
    return np.trace(a.T @ (degree - r) @ a) / a.shape[0] ** 2


def ref_kl_similarity(a, g):
    n, num_bits = a.shape
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    mass = sum(g[i, j] for i, j in pairs)
    if mass == 0:
        return 0.0
    dist = {
        (i, j): (num_bits - sum(a[i, k] * a[j, k] for k in range(num_bits))) / 2 for i, j in pairs
    }
    z = sum(math.exp(-dist[pair]) for pair in pairs)
    total = 0.0
    for i, j in pairs:
        p = g[i, j] / mass
        if p > 0:
            total += p * math.log(p / (math.exp(-dist[i, j]) / z))
    return total


def _gaussian_affinity(x, sigma=1.5):
    sq = np.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)
    return np.exp(-sq / (2 * sigma**2))


def _labels(rng, n, classes=4):
    y = (rng.random((n, classes)) < 0.3).astype(np.float64)
    return y @ y.T


_laplacian = jax.jit(losses.laplacian_loss)
_kl = jax.jit(losses.kl_similarity_loss)


def test_laplacian_hand_computed():
    a = np.array([[1.0], [-1.0]], np.float32)
    r = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    assert float(_laplacian(a, r)) == pytest.approx(1.0)
    a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    r = np.array([[5.0, 2.0, 1.0], [2.0, 5.0, 0.0], [1.0, 0.0, 5.0]], np.float32)
    # Pairs (0,1) and (0,2) with squared distances 2 and 1, each counted twice: 10 / (2 * 9).
    assert float(_laplacian(a, r)) == pytest.approx(10.0 / 18.0)
    assert float(losses.laplacian_loss(a, r)) == pytest.approx(10.0 / 18.0)


def test_laplacian_both_forms_agree_with_loop_references():
    rng = np.random.default_rng(0)
    for n, num_bits in [(1, 3), (5, 4), (9, 6)]:
        a = rng.normal(size=(n, num_bits))
        r = _gaussian_affinity(rng.normal(size=(n, 3)))
        expected = ref_laplacian_pairwise(a, r)
        np.testing.assert_allclose(ref_laplacian_trace(a, r), expected, rtol=1e-10, atol=1e-12)
        value = float(_laplacian(a.astype(np.float32), r.astype(np.float32)))
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)


def test_laplacian_non_symmetric_weights_use_the_symmetric_part():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(6, 3))
    r = rng.random((6, 6))
    value = float(_laplacian(a.astype(np.float32), r.astype(np.float32)))
    np.testing.assert_allclose(value, ref_laplacian_pairwise(a, r), rtol=1e-5)
    np.testing.assert_allclose(value, ref_laplacian_trace(a, (r + r.T) / 2), rtol=1e-5)


def test_laplacian_gradients(x64):
    rng = np.random.default_rng(2)
    a = jnp.asarray(rng.normal(size=(5, 3)))
    r = jnp.asarray(_gaussian_affinity(rng.normal(size=(5, 2))))
    check_grads(_laplacian, (a, r), order=2, modes=["rev"])


def test_laplacian_large_outputs_and_empty_graph():
    rng = np.random.default_rng(3)
    a = rng.normal(scale=1e3, size=(8, 16)).astype(np.float32)
    r = _gaussian_affinity(rng.normal(size=(8, 3))).astype(np.float32)
    value_and_grad = jax.jit(jax.value_and_grad(losses.laplacian_loss))
    value, grad = value_and_grad(a, r)
    assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))
    value, grad = value_and_grad(a, np.zeros((8, 8), np.float32))
    assert float(value) == 0.0
    np.testing.assert_array_equal(np.asarray(grad), 0.0)


def test_laplacian_vmap_equals_loop():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(3, 6, 4)).astype(np.float32)
    r = rng.random((3, 6, 6)).astype(np.float32)
    batched = jax.jit(jax.vmap(losses.laplacian_loss))(a, r)
    looped = [float(_laplacian(a[k], r[k])) for k in range(3)]
    np.testing.assert_allclose(np.asarray(batched), looped, rtol=1e-6)


def test_kl_similarity_hand_computed():
    # Codes 0 and 1 coincide (d = 0), code 2 is at distance 1 from both; only 0 and 1 share a label.
    a = np.array([[1.0], [1.0], [-1.0]], np.float32)
    g = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
    # p = 1/2 on (0,1), (1,0); v = 1 / (2 + 4/e) there, so KL = log((2 + 4/e) / 2).
    expected = math.log(1 + 2 / math.e)
    assert float(_kl(a, g)) == pytest.approx(expected, rel=1e-6)
    assert float(losses.kl_similarity_loss(a, g)) == pytest.approx(expected, rel=1e-6)


def test_kl_similarity_matches_loop_reference_and_jit():
    rng = np.random.default_rng(5)
    for n, num_bits in [(2, 3), (6, 4), (10, 8)]:
        a = rng.normal(size=(n, num_bits))
        g = _labels(rng, n)
        g[0, 1] = 2.0  # at least one shared label, so the loss is not trivially 0
        value = float(_kl(a.astype(np.float32), g.astype(np.float32)))
        np.testing.assert_allclose(value, ref_kl_similarity(a, g), rtol=2e-5, atol=1e-6)


def test_kl_similarity_gradients(x64):
    rng = np.random.default_rng(6)
    a = jnp.asarray(rng.normal(size=(5, 3)))
    g = jnp.asarray(_labels(rng, 5) + np.eye(5))
    check_grads(jax.jit(lambda a: losses.kl_similarity_loss(a, g)), (a,), order=2, modes=["rev"])


def test_kl_similarity_large_outputs_and_no_shared_label():
    rng = np.random.default_rng(7)
    value_and_grad = jax.jit(jax.value_and_grad(losses.kl_similarity_loss))
    a = rng.normal(scale=1e3, size=(8, 16)).astype(np.float32)
    g = _labels(rng, 8).astype(np.float32)
    g[2, 5] = 1.0
    value, grad = value_and_grad(a, g)
    assert np.isfinite(float(value)) and float(value) > 0
    assert np.all(np.isfinite(np.asarray(grad)))
    # Labels shared by nobody but the sample itself: no off-diagonal mass.
    for no_pairs in [np.eye(8, dtype=np.float32), np.zeros((8, 8), np.float32)]:
        value, grad = value_and_grad(a, no_pairs)
        assert float(value) == 0.0
        np.testing.assert_array_equal(np.asarray(grad), 0.0)
    value, grad = value_and_grad(a[:1], np.ones((1, 1), np.float32))
    assert float(value) == 0.0
    np.testing.assert_array_equal(np.asarray(grad), 0.0)


def test_kl_similarity_vmap_equals_loop():
    rng = np.random.default_rng(8)
    a = rng.normal(size=(3, 6, 4)).astype(np.float32)
    g = np.stack([_labels(rng, 6), np.eye(6), _labels(rng, 6) + 1]).astype(np.float32)
    batched = jax.jit(jax.vmap(losses.kl_similarity_loss))(a, g)
    looped = [float(_kl(a[k], g[k])) for k in range(3)]
    np.testing.assert_allclose(np.asarray(batched), looped, rtol=1e-6, atol=1e-7)
    assert float(batched[1]) == 0.0


@pytest.mark.parametrize(
    "fn, name", [(losses.laplacian_loss, "R"), (losses.kl_similarity_loss, "G")]
)
def test_graph_terms_reject_bad_shapes(fn, name):
    with pytest.raises(ValueError, match=r"A must have shape \[N, L\], got shape \(4,\)"):
        fn(jnp.ones(4), jnp.ones((4, 4)))
    with pytest.raises(ValueError, match=rf"{name} must have shape \[N, N\], got shape \(4,\)"):
        fn(jnp.ones((4, 3)), jnp.ones(4))
    with pytest.raises(
        ValueError, match=rf"{name} must have shape \[N, N\] = \(4, 4\) for A of shape \(4, 3\), "
        r"got \(4, 5\)"
    ):
        fn(jnp.ones((4, 3)), jnp.ones((4, 5)))


# --- bipartite Laplacian (batch against a fixed set) ----------------------------------------------


def ref_bipartite_laplacian(a, u, r):
    total = 0.0
    for i in range(a.shape[0]):
        for j in range(u.shape[0]):
            total += r[i, j] * sum((a[i, k] - u[j, k]) ** 2 for k in range(a.shape[1]))
    return total / (2 * a.shape[0] * u.shape[0])


_bipartite = jax.jit(losses.bipartite_laplacian_loss)


def test_bipartite_laplacian_hand_computed():
    a = np.array([[1.0, 0.0]], np.float32)
    u = np.array([[0.0, 0.0], [1.0, 2.0]], np.float32)
    r = np.array([[2.0, 0.5]], np.float32)
    # 2·1 + 0.5·4 = 4, over 2·1·2.
    assert float(_bipartite(a, u, r)) == pytest.approx(1.0)


def test_bipartite_laplacian_matches_loop_reference():
    rng = np.random.default_rng(3)
    for n, m, num_bits in [(1, 1, 2), (4, 7, 3), (6, 5, 8)]:
        a, u = rng.normal(size=(n, num_bits)), rng.normal(size=(m, num_bits))
        r = rng.random((n, m))
        value = float(_bipartite(a.astype(np.float32), u.astype(np.float32), r.astype(np.float32)))
        np.testing.assert_allclose(value, ref_bipartite_laplacian(a, u, r), rtol=1e-5, atol=1e-6)


def test_bipartite_laplacian_equals_laplacian_on_the_same_set():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(6, 4)).astype(np.float32)
    r = _gaussian_affinity(rng.normal(size=(6, 3))).astype(np.float32)
    np.testing.assert_allclose(float(_bipartite(a, a, r)), float(_laplacian(a, r)), rtol=1e-5)


def test_bipartite_laplacian_gradients(x64):
    rng = np.random.default_rng(5)
    a, u, r = rng.normal(size=(3, 4)), rng.normal(size=(5, 4)), rng.random((3, 5))
    check_grads(lambda a, u: losses.bipartite_laplacian_loss(a, u, r), (a, u), order=2)


def test_bipartite_laplacian_vmap_matches_loop():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(3, 4, 2)).astype(np.float32)
    u = rng.normal(size=(5, 2)).astype(np.float32)
    r = rng.random((3, 4, 5)).astype(np.float32)
    batched = jax.vmap(losses.bipartite_laplacian_loss, in_axes=(0, None, 0))(a, u, r)
    looped = [float(losses.bipartite_laplacian_loss(a[i], u, r[i])) for i in range(3)]
    np.testing.assert_allclose(np.asarray(batched), looped, rtol=1e-6)


@pytest.mark.parametrize(
    "shapes",
    [((3, 4), (5, 4), (3, 4)), ((3, 4), (5, 2), (3, 5)), ((3,), (5, 4), (3, 5))],
)
def test_bipartite_laplacian_rejects_bad_shapes(shapes):
    a, u, r = (np.zeros(shape, np.float32) for shape in shapes)
    with pytest.raises(ValueError, match=r"\[N, L\]|\[M, L\]|\[N, M\]"):
        losses.bipartite_laplacian_loss(a, u, r)
