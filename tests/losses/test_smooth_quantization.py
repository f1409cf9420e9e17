"""log_cosh_quantization_loss (DHN): hand value, loop reference, gradients, jit/vmap, bad input."""

import doctest
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlhash_jax import losses
from dlhash_jax.losses import _smooth_quantization


def ref_log_cosh(a):
    n, num_bits = a.shape
    return sum(
        math.log(math.cosh(abs(a[i, k]) - 1.0)) for i in range(n) for k in range(num_bits)
    ) / n


def _away_from_zero(rng, shape):
    """Values whose magnitude avoids the kink at 0 (|A| = 1 is smooth)."""
    return rng.uniform(0.2, 2.5, shape) * rng.choice([-1.0, 1.0], shape)


def test_hand_computed():
    a = np.array([[1.0, -1.0, 0.0], [2.0, -3.0, 0.5]], np.float32)
    # log cosh of |a| - 1 = [0, 0, -1] and [1, 2, -0.5], over N = 2 samples.
    expected = (2 * math.log(math.cosh(1.0)) + math.log(math.cosh(2.0))
                + math.log(math.cosh(0.5))) / 2
    assert float(losses.log_cosh_quantization_loss(a)) == pytest.approx(expected, rel=1e-6)
    assert ref_log_cosh(a.astype(np.float64)) == pytest.approx(expected, rel=1e-12)


def test_matches_loop_reference_eager_and_jit():
    rng = np.random.default_rng(0)
    jitted = jax.jit(losses.log_cosh_quantization_loss)
    for shape in [(1, 3), (7, 5), (16, 12)]:
        a = rng.normal(scale=2.0, size=shape).astype(np.float32)
        expected = ref_log_cosh(a.astype(np.float64))
        np.testing.assert_allclose(float(jitted(a)), expected, rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(
            float(losses.log_cosh_quantization_loss(a)), expected, rtol=2e-5, atol=1e-6
        )


def test_vmap_equals_loop():
    stacked = np.random.default_rng(1).normal(size=(3, 6, 4)).astype(np.float32)
    jitted = jax.jit(losses.log_cosh_quantization_loss)
    batched = jax.jit(jax.vmap(losses.log_cosh_quantization_loss))(stacked)
    np.testing.assert_allclose(np.asarray(batched), [float(jitted(a)) for a in stacked], rtol=1e-6)


def test_gradients_numerically(x64):
    a = jnp.asarray(_away_from_zero(np.random.default_rng(2), (5, 4)))
    assert a.dtype == jnp.float64
    check_grads(jax.jit(losses.log_cosh_quantization_loss), (a,), order=2, modes=["rev"])


def test_gradient_closed_form(x64):
    a = _away_from_zero(np.random.default_rng(3), (4, 3))
    grad = jax.grad(losses.log_cosh_quantization_loss)(jnp.asarray(a))
    # d/da log cosh(|a| - 1) = tanh(|a| - 1) sgn(a), over N samples.
    expected = np.tanh(np.abs(a) - 1) * np.sign(a) / a.shape[0]
    np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-12)


def test_zero_at_codes_and_finite_far_away():
    codes = np.array([[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]], np.float32)
    value, grad = jax.value_and_grad(losses.log_cosh_quantization_loss)(codes)
    assert float(value) == 0.0
    np.testing.assert_array_equal(np.asarray(grad), 0.0)
    # cosh overflows float32 beyond |x| ≈ 89; the stable form stays finite and linear.
    extreme = np.array([[1e3, -1e4, 0.0]], np.float32)
    value, grad = jax.jit(jax.value_and_grad(losses.log_cosh_quantization_loss))(extreme)
    expected = (999.0 - math.log(2.0)) + (9999.0 - math.log(2.0)) + math.log(math.cosh(1.0))
    np.testing.assert_allclose(float(value), expected, rtol=1e-6)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_rejects_bad_rank():
    with pytest.raises(ValueError, match=r"A must have shape \[N, L\], got shape \(6,\)"):
        losses.log_cosh_quantization_loss(jnp.ones(6))
    with pytest.raises(ValueError, match=r"A must have shape \[N, L\], got shape \(2, 3, 4\)"):
        losses.log_cosh_quantization_loss(jnp.ones((2, 3, 4)))


def test_docstring_examples():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for test in finder.find(_smooth_quantization.log_cosh_quantization_loss,
                            module=_smooth_quantization):
        runner.run(test)
    assert runner.failures == 0 and runner.tries > 0
