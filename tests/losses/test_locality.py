"""locality_constraint_loss (LCDSH): loop reference, hand value, the codes' stop-gradient,
gradients, jit/vmap and bad input."""

import doctest
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from pairwise_helpers import HAND_A1
from pairwise_helpers import HAND_A2
from pairwise_helpers import jitted

from dlhash_jax import losses
from dlhash_jax.losses import _locality


def _sigmoid(t):
    return 1.0 / (1.0 + math.exp(-t)) if t >= 0 else math.exp(t) / (1.0 + math.exp(t))


def _sgn(x):
    return 1.0 if x >= 0 else -1.0


def ref_locality(a1, a2, b1=None, b2=None):
    """mean over pairs (i, j) of (σ(½ a_i·a'_j) − σ(½ b_i·b'_j))², b = sgn(a) by default."""
    n, num_bits = a1.shape
    m = a2.shape[0]
    total = 0.0
    for i in range(n):
        for j in range(m):
            theta = 0.5 * sum(a1[i, k] * a2[j, k] for k in range(num_bits))
            if b1 is None:
                code_i = [_sgn(a1[i, k]) for k in range(num_bits)]
            else:
                code_i = list(b1[i])
            if b2 is None:
                code_j = [_sgn(a2[j, k]) for k in range(num_bits)]
            else:
                code_j = list(b2[j])
            phi = 0.5 * sum(code_i[k] * code_j[k] for k in range(num_bits))
            total += (_sigmoid(theta) - _sigmoid(phi)) ** 2
    return total / (n * m)


def _away_from_zero(rng, shape, dtype=np.float32):
    """Entries of magnitude 0.2-1.5, so a small perturbation never flips a code bit."""
    return (rng.uniform(0.2, 1.5, shape) * rng.choice([-1.0, 1.0], shape)).astype(dtype)


def test_hand_computed_eager_and_jit():
    a1 = np.array([[0.5, -0.5]], np.float32)
    a2 = np.array([[1.0, 1.0], [-2.0, 0.0]], np.float32)
    # Codes: [1, -1] against [1, 1] and [-1, +1] (sgn(0) = +1). Pair 1: θ = 0 = φ.
    # Pair 2: θ = ½(-1 + 0) = -0.5, φ = ½(-1 - 1) = -1.
    expected = (0.0 + (_sigmoid(-0.5) - _sigmoid(-1.0)) ** 2) / 2
    for value in (losses.locality_constraint_loss(a1, a2),
                  jitted(losses.locality_constraint_loss)(a1, a2)):
        np.testing.assert_allclose(float(value), expected, rtol=1e-6)
    assert ref_locality(a1.astype(float), a2.astype(float)) == pytest.approx(expected, rel=1e-12)


def test_zero_at_codes():
    # Codes are their own signs, so the two probabilities agree on every pair.
    assert float(losses.locality_constraint_loss(HAND_A1, HAND_A2)) == 0.0
    value, grads = jax.value_and_grad(losses.locality_constraint_loss, (0, 1))(HAND_A1, HAND_A2)
    assert float(value) == 0.0
    assert all(np.all(np.asarray(g) == 0.0) for g in grads)


def test_matches_loop_reference():
    rng = np.random.default_rng(0)
    for n, m, num_bits in [(1, 1, 3), (3, 5, 4), (6, 4, 8)]:
        a1 = rng.normal(scale=1.5, size=(n, num_bits)).astype(np.float32)
        a2 = rng.normal(scale=1.5, size=(m, num_bits)).astype(np.float32)
        expected = ref_locality(a1.astype(float), a2.astype(float))
        value = jitted(losses.locality_constraint_loss)(a1, a2)
        np.testing.assert_allclose(float(value), expected, rtol=2e-5, atol=1e-7)
    # The batch with itself: the pairs (i, i) count like any other.
    a = rng.normal(size=(5, 6)).astype(np.float32)
    expected = ref_locality(a.astype(float), a.astype(float))
    np.testing.assert_allclose(float(losses.locality_constraint_loss(a, a)), expected, rtol=2e-5)


def test_explicit_codes_match_loop_reference():
    rng = np.random.default_rng(1)
    a1, a2 = rng.normal(size=(4, 5)), rng.normal(size=(3, 5))
    b1 = rng.choice([-1.0, 1.0], (4, 5))
    b2 = rng.choice([-1.0, 1.0], (3, 5))
    value = losses.locality_constraint_loss(a1.astype(np.float32), a2.astype(np.float32), b1, b2)
    np.testing.assert_allclose(float(value), ref_locality(a1, a2, b1, b2), rtol=2e-5)
    # Passing the default codes explicitly changes nothing.
    np.testing.assert_allclose(
        float(losses.locality_constraint_loss(a1, a2, np.where(a1 >= 0, 1.0, -1.0),
                                              np.where(a2 >= 0, 1.0, -1.0))),
        float(losses.locality_constraint_loss(a1, a2)), rtol=1e-6,
    )


def test_vmap_over_batches_equals_loop():
    rng = np.random.default_rng(2)
    a1 = rng.normal(size=(3, 4, 6)).astype(np.float32)
    a2 = rng.normal(size=(3, 5, 6)).astype(np.float32)
    fn = jitted(losses.locality_constraint_loss)
    batched = jax.jit(jax.vmap(losses.locality_constraint_loss))(a1, a2)
    np.testing.assert_allclose(np.asarray(batched), [float(fn(x, y)) for x, y in zip(a1, a2)],
                               rtol=1e-5)


def test_gradients_match_finite_differences(x64):
    rng = np.random.default_rng(3)
    a1 = jnp.asarray(_away_from_zero(rng, (3, 5), np.float64))
    a2 = jnp.asarray(_away_from_zero(rng, (4, 5), np.float64))
    assert a1.dtype == jnp.float64
    # Away from 0 the codes are locally constant, so the finite differences see the same
    # function the stop-gradient differentiates.
    check_grads(jax.jit(losses.locality_constraint_loss), (a1, a2), order=2, modes=("rev",))
    a = jnp.asarray(_away_from_zero(rng, (4, 6), np.float64))
    check_grads(jax.jit(lambda x: losses.locality_constraint_loss(x, x)), (a,), order=2,
                modes=("rev",))


def test_codes_carry_no_gradient_closed_form(x64):
    rng = np.random.default_rng(4)
    a1 = _away_from_zero(rng, (3, 4), np.float64)
    a2 = _away_from_zero(rng, (5, 4), np.float64)
    grad1, grad2 = jax.grad(losses.locality_constraint_loss, (0, 1))(jnp.asarray(a1),
                                                                   jnp.asarray(a2))
    # Only σ(θ) depends on A: d/dθ (σ(θ) − q)² = 2 (σ(θ) − q) σ(θ)(1 − σ(θ)), θ = ½ a_i·a'_j.
    p = 1.0 / (1.0 + np.exp(-0.5 * a1 @ a2.T))
    q = 1.0 / (1.0 + np.exp(-0.5 * np.sign(a1) @ np.sign(a2).T))
    weight = 2.0 * (p - q) * p * (1.0 - p) / p.size
    np.testing.assert_allclose(np.asarray(grad1), 0.5 * weight @ a2, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(grad2), 0.5 * weight.T @ a1, rtol=1e-10)


def test_gradient_flows_into_explicit_codes():
    a = np.random.default_rng(5).normal(size=(3, 4)).astype(np.float32)
    b = np.ones((3, 4), np.float32)
    grad_b = jax.grad(lambda b: losses.locality_constraint_loss(a, a, b, b))(b)
    assert np.any(np.asarray(grad_b) != 0.0)


def test_finite_for_extreme_outputs():
    a = np.array([[1e4, -1e4, 0.0], [-1e3, 2e3, 5.0]], np.float32)
    value, grads = jax.jit(jax.value_and_grad(losses.locality_constraint_loss, (0, 1)))(a, a)
    assert np.isfinite(float(value))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)


def test_bad_input():
    a1, a2 = np.ones((4, 3)), np.ones((5, 3))
    fn = losses.locality_constraint_loss
    with pytest.raises(ValueError, match=r"A1 must have shape \[N, L\], got shape \(4, 3, 1\)"):
        fn(a1[..., None], a2)
    with pytest.raises(ValueError, match=r"A2 must have shape \[M, L\], got shape \(3,\)"):
        fn(a1, a2[0])
    with pytest.raises(ValueError, match=r"same number of bits.*\(4, 3\) and \(5, 2\)"):
        fn(a1, a2[:, :2])
    with pytest.raises(ValueError, match=r"B1 must have the shape of A1, got shapes \(4, 2\) "
                                         r"and \(4, 3\)"):
        fn(a1, a2, np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"B2 must have the shape of A2, got shapes \(4, 3\) "
                                         r"and \(5, 3\)"):
        fn(a1, a2, None, np.ones((4, 3)))


def test_docstring_examples():
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(_locality.locality_constraint_loss,
                                             module=_locality):
        runner.run(test)
    assert runner.failures == 0 and runner.tries >= 2
