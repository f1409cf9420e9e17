"""code_balance_loss (DBDH): loop reference, hand value, relation to the bit balance, gradients,
jit/vmap and bad input."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlhash_jax import losses
from dlhash_jax.losses import _code_balance


def ref_code_balance(a, p):
    """(1/N) Σ_i |mean_k a_ik|^p, code by code."""
    n, num_bits = a.shape
    total = 0.0
    for i in range(n):
        mean = sum(a[i, k] for k in range(num_bits)) / num_bits
        total += abs(mean) ** p
    return total / n


def _unbalanced(rng, shape, dtype=np.float64):
    """Rows whose mean is at least 0.1 away from 0 (the kink of p < 2)."""
    a = rng.normal(size=shape)
    a += np.where(a.mean(axis=1, keepdims=True) >= 0, 0.3, -0.3)
    return a.astype(dtype)


def test_hand_computed():
    codes = np.array([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, 1.0, -1.0], [-1.0] * 4], np.float32)
    # Code means 0, 0.5, -1: p = 2 gives (0 + 0.25 + 1) / 3, p = 1 gives (0 + 0.5 + 1) / 3.
    assert float(losses.code_balance_loss(codes)) == pytest.approx(1.25 / 3, rel=1e-6)
    assert float(losses.code_balance_loss(codes, p=1.0)) == pytest.approx(0.5, rel=1e-6)
    assert ref_code_balance(codes.astype(float), 2.0) == pytest.approx(1.25 / 3, rel=1e-12)


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0])
def test_matches_loop_reference_eager_and_jit(p):
    rng = np.random.default_rng(0)
    jitted = jax.jit(lambda a: losses.code_balance_loss(a, p=p))
    for shape in [(1, 3), (7, 5), (16, 12)]:
        a = rng.normal(scale=1.5, size=shape).astype(np.float32)
        expected = ref_code_balance(a.astype(np.float64), p)
        np.testing.assert_allclose(float(jitted(a)), expected, rtol=2e-5, atol=1e-7)
        np.testing.assert_allclose(float(losses.code_balance_loss(a, p=p)), float(jitted(a)),
                                   rtol=1e-6, atol=1e-8)


def test_square_is_the_bit_balance_of_the_transpose():
    a = np.random.default_rng(1).normal(size=(9, 7)).astype(np.float32)
    np.testing.assert_allclose(
        float(losses.code_balance_loss(a)), float(losses.balance_loss(a.T)) / a.shape[0],
        rtol=1e-6,
    )


def test_zero_for_balanced_codes():
    codes = np.array([[1.0, -1.0, -1.0, 1.0], [-1.0, 1.0, 1.0, -1.0]], np.float32)
    value, grad = jax.value_and_grad(losses.code_balance_loss)(codes)
    assert float(value) == 0.0
    np.testing.assert_array_equal(np.asarray(grad), 0.0)


def test_vmap_equals_loop():
    stacked = np.random.default_rng(2).normal(size=(3, 6, 4)).astype(np.float32)
    jitted = jax.jit(losses.code_balance_loss)
    batched = jax.jit(jax.vmap(losses.code_balance_loss))(stacked)
    np.testing.assert_allclose(np.asarray(batched), [float(jitted(a)) for a in stacked], rtol=1e-6)


@pytest.mark.parametrize("p, order", [(1.0, 1), (1.5, 2), (2.0, 2)])
def test_gradients_numerically(p, order, x64):
    a = jnp.asarray(_unbalanced(np.random.default_rng(3), (5, 4)))
    assert a.dtype == jnp.float64
    check_grads(jax.jit(lambda a: losses.code_balance_loss(a, p=p)), (a,), order=order,
                modes=["rev"])


def test_square_gradient_closed_form(x64):
    a = _unbalanced(np.random.default_rng(4), (4, 6))
    grad = jax.grad(losses.code_balance_loss)(jnp.asarray(a))
    # d/dA_ik (1/N) Σ_i m_i², m_i = mean_k A_ik: (2 / (N L)) m_i, the same for every bit k.
    expected = np.repeat(2.0 * a.mean(axis=1, keepdims=True) / a.size, a.shape[1], axis=1)
    np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-12)


def test_finite_for_extreme_outputs():
    extreme = np.array([[1e30, -1e30, 0.0], [0.0, 0.0, 0.0]], np.float32)
    value, grad = jax.jit(jax.value_and_grad(losses.code_balance_loss))(extreme)
    assert np.isfinite(float(value))
    assert np.all(np.isfinite(np.asarray(grad)))


def test_rejects_bad_rank_and_power():
    with pytest.raises(ValueError, match=r"A must have shape \[N, L\], got shape \(6,\)"):
        losses.code_balance_loss(jnp.ones(6))
    with pytest.raises(ValueError, match=r"A must have shape \[N, L\], got shape \(2, 3, 4\)"):
        losses.code_balance_loss(jnp.ones((2, 3, 4)))
    for bad in (0.5, 0, -2.0, True, "2", None):
        with pytest.raises(ValueError, match=r"p must be a real number >= 1, got"):
            losses.code_balance_loss(jnp.ones((2, 3)), p=bad)
    with pytest.raises(ValueError, match=r"p must be a scalar, got shape \(2,\)"):
        jax.jit(lambda p: losses.code_balance_loss(jnp.ones((2, 3)), p=p))(jnp.ones(2))


def test_traced_power_equals_static_power():
    a = np.random.default_rng(5).normal(size=(4, 6)).astype(np.float32)
    traced = jax.jit(lambda a, p: losses.code_balance_loss(a, p=p))(a, 1.0)
    np.testing.assert_allclose(float(traced), float(losses.code_balance_loss(a, p=1)), rtol=1e-6)


def test_docstring_examples():
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(_code_balance.code_balance_loss,
                                             module=_code_balance):
        runner.run(test)
    assert runner.failures == 0 and runner.tries >= 2
