import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlhash_jax import losses


def ref_soft_similarity(a1, a2, s, beta, gamma, tolerance=0.01):
    """IDHN's pair loss, pair by pair: cross-entropy if s ∈ {0, 1}, else γL(agreement − s)²."""
    num_bits = a1.shape[1]
    total = 0.0
    for i in range(a1.shape[0]):
        for j in range(a2.shape[0]):
            inner = sum(x * z for x, z in zip(a1[i], a2[j]))
            if s[i, j] <= tolerance or s[i, j] >= 1 - tolerance:
                theta = beta * inner / num_bits
                total += math.log1p(math.exp(theta)) - s[i, j] * theta
            else:
                agreement = (inner + num_bits) / (2 * num_bits)
                total += gamma * num_bits * (agreement - s[i, j]) ** 2
    return total / (a1.shape[0] * a2.shape[0])


def _cosine(y1, y2):
    return (y1 @ y2.T) / (np.linalg.norm(y1, axis=1)[:, None] * np.linalg.norm(y2, axis=1)[None])


def _multi_hot(rng, n, num_classes):
    y = (rng.random((n, num_classes)) < 0.4).astype(np.float32)
    y[np.arange(n), rng.integers(0, num_classes, n)] = 1.0
    return y


_CACHE = {}


def _jit(transform=None, **static):
    key = (transform, tuple(sorted(static.items())))
    if key not in _CACHE:
        bound = functools.partial(losses.soft_similarity_loss, **static)
        _CACHE[key] = jax.jit(bound if transform is None else transform(bound))
    return _CACHE[key]


def test_hand_computed():
    # L = 2. Pair (0, 0): s = 1, ω = 2, θ = β ω / L = 2 → softplus(2) − 2.
    # Pair (0, 1): s = 0, ω = 0, θ = 0 → log 2. Pair (0, 2): s = 0.5, ω = −2, agreement 0 →
    # γ L (0 − 0.5)² = 0.1 · 2 · 0.25 = 0.05.
    a1 = np.array([[1.0, 1.0]], np.float32)
    a2 = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]], np.float32)
    s = np.array([[1.0, 0.0, 0.5]], np.float32)
    expected = (math.log1p(math.exp(2.0)) - 2.0 + math.log(2.0) + 0.05) / 3
    value = _jit(beta=2.0, gamma=0.1)(a1, a2, s)
    assert float(value) == pytest.approx(expected, rel=1e-6)


def test_matches_loop_reference_on_random_inputs():
    rng = np.random.default_rng(0)
    loss = _jit(beta=5.0, gamma=0.1)
    for n, m, num_bits in [(5, 7, 6), (4, 4, 8)]:
        y1, y2 = _multi_hot(rng, n, 4), _multi_hot(rng, m, 4)
        s = _cosine(y1, y2).astype(np.float32)
        assert ((s > 0.01) & (s < 0.99)).any() and ((s < 0.01) | (s > 0.99)).any()
        a1 = np.tanh(rng.normal(size=(n, num_bits))).astype(np.float32)
        a2 = np.tanh(rng.normal(size=(m, num_bits))).astype(np.float32)
        expected = ref_soft_similarity(a1.astype(float), a2.astype(float), s, 5.0, 0.1)
        np.testing.assert_allclose(float(loss(a1, a2, s)), expected, rtol=1e-5)


def test_tolerance_decides_which_pairs_are_hard():
    a = np.array([[0.5, -0.25, 1.0]], np.float32)
    s = np.array([[0.97]], np.float32)
    for tolerance in (0.01, 0.05):
        expected = ref_soft_similarity(a.astype(float), a.astype(float), s, 5.0, 0.1, tolerance)
        value = _jit(beta=5.0, gamma=0.1, tolerance=tolerance)(a, a, s)
        assert float(value) == pytest.approx(expected, rel=1e-5)


def test_jit_equals_eager_and_vmap_equals_loop():
    rng = np.random.default_rng(1)
    batches = []
    for _ in range(3):
        y = _multi_hot(rng, 5, 4)
        a = np.tanh(rng.normal(size=(5, 6))).astype(np.float32)
        batches.append((a, a, _cosine(y, y).astype(np.float32)))
    jitted = _jit(beta=5.0, gamma=0.1)
    looped = [float(jitted(*args)) for args in batches]
    eager = losses.soft_similarity_loss(*batches[0], beta=5.0, gamma=0.1)
    np.testing.assert_allclose(float(eager), looped[0], rtol=1e-6)
    stacked = [np.stack(parts) for parts in zip(*batches)]
    np.testing.assert_allclose(np.asarray(_jit(jax.vmap, beta=5.0, gamma=0.1)(*stacked)), looped,
                               rtol=1e-5)
    np.testing.assert_allclose(
        looped, [ref_soft_similarity(a.astype(float), b.astype(float), s, 5.0, 0.1)
                 for a, b, s in batches], rtol=1e-5)


def test_gradients_match_finite_differences(x64):
    rng = np.random.default_rng(2)
    y1, y2 = _multi_hot(rng, 4, 3), _multi_hot(rng, 5, 3)
    s = _cosine(y1, y2)
    a1, a2 = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    # The hard/soft split depends on S alone, so the loss is smooth in the outputs.
    check_grads(jax.jit(lambda x, z: losses.soft_similarity_loss(x, z, s, beta=5.0, gamma=0.1)),
                (jnp.asarray(a1), jnp.asarray(a2)), order=2, modes=("rev",))


def test_finite_for_large_outputs():
    rng = np.random.default_rng(3)
    a = 1e3 * rng.normal(size=(4, 6)).astype(np.float32)
    s = np.array([[1.0, 0.0, 0.5, 0.0]] * 4, np.float32)
    value, grads = jax.jit(jax.value_and_grad(
        functools.partial(losses.soft_similarity_loss, beta=5.0, gamma=0.1), (0, 1)))(a, a, s)
    assert np.isfinite(float(value)) and all(np.isfinite(np.asarray(g)).all() for g in grads)


def test_bad_shapes_raise_with_the_shapes():
    a1, a2, s = np.ones((2, 4)), np.ones((3, 4)), np.ones((2, 3))
    with pytest.raises(ValueError, match=r"A1 must have shape \[N, L\], got shape \(4,\)"):
        losses.soft_similarity_loss(a1[0], a2, s, beta=5.0, gamma=0.1)
    with pytest.raises(ValueError, match=r"same number of bits.*\(2, 4\) and \(3, 5\)"):
        losses.soft_similarity_loss(a1, np.ones((3, 5)), s, beta=5.0, gamma=0.1)
    with pytest.raises(ValueError, match=r"S must have shape \[N, M\] = \(2, 3\).*got \(3, 2\)"):
        losses.soft_similarity_loss(a1, a2, s.T, beta=5.0, gamma=0.1)
