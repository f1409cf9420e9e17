import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlhash_jax import losses


def ref_triplet_likelihood(a, y, margin):
    """Mean over every (anchor, positive, negative) of −log σ(θ_qp − θ_qn − α), loop by loop."""
    n = a.shape[0]
    theta = [[0.5 * sum(x * z for x, z in zip(a[i], a[j])) for j in range(n)] for i in range(n)]
    shares = [[any(y[i, c] > 0 and y[j, c] > 0 for c in range(y.shape[1])) for j in range(n)]
              for i in range(n)]
    terms = []
    for q in range(n):
        for p in range(n):
            if p == q or not shares[q][p]:
                continue
            for m in range(n):
                if shares[q][m]:
                    continue
                x = theta[q][p] - theta[q][m] - margin
                sigmoid = 1.0 / (1.0 + math.exp(-x))
                terms.append(-math.log(sigmoid))
    return sum(terms) / len(terms) if terms else 0.0


def _multi_hot(rng, n, num_classes):
    y = (rng.random((n, num_classes)) < 0.35).astype(np.float32)
    y[np.arange(n), rng.integers(0, num_classes, n)] = 1.0  # every sample has a label
    return y


_CACHE = {}


def _jit(transform=None, **static):
    key = (transform, tuple(sorted(static.items())))
    if key not in _CACHE:
        bound = functools.partial(losses.triplet_likelihood_loss, **static)
        _CACHE[key] = jax.jit(bound if transform is None else transform(bound))
    return _CACHE[key]


def test_hand_computed():
    # θ = ½ a·a': θ_01 = 1, θ_02 = θ_12 = −1, θ_03 = θ_13 = 0, θ_23 = 0.
    a = np.array([[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]], np.float32)
    y = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    # Anchor 0: p = 1, n ∈ {2, 3}: gaps 1 − (−1) = 2 and 1 − 0 = 1. Anchor 1: the same.
    # Anchors 2 and 3 have no positive. With α = 1: softplus(−1) twice and softplus(0) twice.
    expected = (2 * math.log1p(math.exp(-1.0)) + 2 * math.log(2.0)) / 4
    value = _jit(margin=1.0)(a, y)
    assert float(value) == pytest.approx(expected, rel=1e-6)


def test_matches_loop_reference_on_random_inputs():
    rng = np.random.default_rng(0)
    loss = _jit(margin=3.0)
    for n, num_bits, num_classes in [(9, 5, 4), (7, 6, 6)]:
        a = 2.0 * rng.normal(size=(n, num_bits)).astype(np.float32)
        y = _multi_hot(rng, n, num_classes)
        expected = ref_triplet_likelihood(a.astype(float), y, 3.0)
        np.testing.assert_allclose(float(loss(a, y)), expected, rtol=1e-5)


def test_jit_equals_eager_and_vmap_equals_loop():
    rng = np.random.default_rng(1)
    batches = [(rng.normal(size=(6, 4)).astype(np.float32), _multi_hot(rng, 6, 5))
               for _ in range(3)]
    jitted = _jit(margin=2.0)
    looped = [float(jitted(a, y)) for a, y in batches]
    eager = losses.triplet_likelihood_loss(*batches[0], margin=2.0)
    np.testing.assert_allclose(float(eager), looped[0], rtol=1e-6)
    stacked = [np.stack(parts) for parts in zip(*batches)]
    np.testing.assert_allclose(np.asarray(_jit(jax.vmap, margin=2.0)(*stacked)), looped,
                               rtol=1e-5)
    np.testing.assert_allclose(looped, [ref_triplet_likelihood(a.astype(float), y, 2.0)
                                        for a, y in batches], rtol=1e-5)


def test_gradients_match_finite_differences(x64):
    rng = np.random.default_rng(2)
    a = rng.normal(size=(6, 3))
    y = np.eye(3)[[0, 0, 1, 1, 2, 0]]
    # Smooth everywhere (softplus), so second order too; jit so the finite differences reuse
    # one compiled program.
    check_grads(jax.jit(lambda x: losses.triplet_likelihood_loss(x, y, margin=1.5)),
                (jnp.asarray(a),), order=2, modes=("rev",))


def test_no_valid_triplet_gives_zero_with_zero_gradient():
    a = np.random.default_rng(3).normal(size=(6, 4)).astype(np.float32)
    value_and_grad = jax.jit(jax.value_and_grad(
        functools.partial(losses.triplet_likelihood_loss, margin=1.0)))
    for y in (np.ones((6, 6), np.float32), np.eye(6, dtype=np.float32),
              np.zeros((6, 6), np.float32)):
        value, grad = value_and_grad(a, y)
        assert float(value) == 0.0 and np.all(np.asarray(grad) == 0.0)


def test_finite_for_large_outputs():
    rng = np.random.default_rng(4)
    a = 1e3 * rng.normal(size=(6, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[[0, 0, 1, 1, 2, 2]]
    value, grad = jax.jit(jax.value_and_grad(
        functools.partial(losses.triplet_likelihood_loss, margin=1.0)))(a, y)
    assert np.isfinite(float(value)) and np.isfinite(np.asarray(grad)).all()
    # −log σ(x) ≈ −x for very negative x: compare with the exact per-triplet sum in float64.
    n = a.shape[0]
    theta = 0.5 * a.astype(np.float64) @ a.astype(np.float64).T
    shares = y @ y.T > 0
    terms = [np.logaddexp(0.0, -(theta[q, p] - theta[q, m] - 1.0))
             for q in range(n) for p in range(n) for m in range(n)
             if p != q and shares[q, p] and not shares[q, m]]
    assert len(terms) == 24
    np.testing.assert_allclose(float(value), np.mean(terms), rtol=1e-4)


def test_bad_input_raises_with_the_shapes():
    a, y = np.ones((3, 4)), np.eye(3)
    with pytest.raises(ValueError, match=r"A must have shape \[N, L\], got shape \(4,\)"):
        losses.triplet_likelihood_loss(a[0], y, margin=1.0)
    with pytest.raises(ValueError, match=r"Y must have shape \[N, C\], got shape \(3,\)"):
        losses.triplet_likelihood_loss(a, y[0], margin=1.0)
    with pytest.raises(ValueError, match=r"A and Y must have the same number of rows.*"
                                         r"\(3, 4\) and \(2, 3\)"):
        losses.triplet_likelihood_loss(a, y[:2], margin=1.0)
