"""hash_constraint_lp (GreedyHash's cubic penalty): hand value, loop reference, gradients, vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlhash_jax import losses


def ref_lp(a, p):
    n, num_bits = a.shape
    return sum(abs(abs(a[i, k]) - 1) ** p for i in range(n) for k in range(num_bits)) / n


def _away_from_zero(rng, shape):
    """Values whose magnitude avoids the kink at 0 (|A| = 1 is smooth for p > 1)."""
    return rng.uniform(0.2, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


def test_hand_computed():
    a = np.array([[0.5, -2.0, 0.0], [-0.25, 1.0, 3.0]], np.float32)
    # |0.5|³ + 1³ + 1³ + 0.75³ + 0 + 2³, over N = 2 samples.
    expected = (0.125 + 1.0 + 1.0 + 0.421875 + 0.0 + 8.0) / 2
    assert float(losses.hash_constraint_lp(a)) == pytest.approx(expected, rel=1e-6)
    assert ref_lp(a.astype(np.float64), 3.0) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0, 4.0])
def test_matches_loop_reference_jit_and_eager(p):
    rng = np.random.default_rng(0)
    jitted = jax.jit(lambda a: losses.hash_constraint_lp(a, p=p))
    for shape in [(1, 3), (7, 5), (16, 12)]:
        a = rng.normal(scale=1.5, size=shape).astype(np.float32)
        expected = ref_lp(a.astype(np.float64), p)
        np.testing.assert_allclose(float(jitted(a)), expected, rtol=2e-5, atol=1e-5)
        np.testing.assert_allclose(
            float(losses.hash_constraint_lp(a, p=p)), float(jitted(a)), rtol=1e-6, atol=1e-6
        )


def test_p1_and_p2_are_the_catalogue_constraints():
    a = np.random.default_rng(1).normal(scale=1.5, size=(9, 7)).astype(np.float32)
    np.testing.assert_allclose(
        float(losses.hash_constraint_lp(a, p=1.0)), float(losses.hash_constraint_l1(a)),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        float(losses.hash_constraint_lp(a, p=2.0)), float(losses.hash_constraint_l2(a)),
        rtol=1e-6,
    )


def test_vmap_equals_loop():
    stacked = np.random.default_rng(2).normal(size=(3, 6, 4)).astype(np.float32)
    jitted = jax.jit(losses.hash_constraint_lp)
    batched = jax.jit(jax.vmap(losses.hash_constraint_lp))(stacked)
    np.testing.assert_allclose(np.asarray(batched), [float(jitted(a)) for a in stacked], rtol=1e-6)


@pytest.mark.parametrize("p", [1.5, 3.0])
def test_gradients_numerically(p, x64):
    a = jnp.asarray(_away_from_zero(np.random.default_rng(3), (5, 4)))
    assert a.dtype == jnp.float64
    check_grads(jax.jit(lambda a: losses.hash_constraint_lp(a, p=p)), (a,), order=2,
                modes=["rev"])


def test_cubic_gradient_closed_form(x64):
    a = jnp.asarray(_away_from_zero(np.random.default_rng(4), (4, 3)))
    grad = jax.grad(losses.hash_constraint_lp)(a)
    gap = np.abs(np.asarray(a)) - 1
    expected = 3 * gap * np.abs(gap) * np.sign(np.asarray(a)) / a.shape[0]
    np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-12)


def test_zero_at_codes_and_finite_everywhere():
    codes = np.array([[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]], np.float32)
    value, grad = jax.value_and_grad(losses.hash_constraint_lp)(codes)
    assert float(value) == 0.0
    np.testing.assert_array_equal(np.asarray(grad), 0.0)
    extreme = np.array([[0.0, 1.0, -1.0, 1e3, -1e3]], np.float32)
    value, grad = jax.jit(jax.value_and_grad(losses.hash_constraint_lp))(extreme)
    assert np.isfinite(float(value))
    assert np.all(np.isfinite(np.asarray(grad)))


def test_rejects_bad_rank_and_power():
    with pytest.raises(ValueError, match=r"A must have shape \[N, L\], got shape \(6,\)"):
        losses.hash_constraint_lp(jnp.ones(6))
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 4\)"):
        losses.hash_constraint_lp(jnp.ones((2, 3, 4)))
    for bad in (0.5, -3.0, True, "3"):
        with pytest.raises(ValueError, match=r"p must be a real number >= 1, got"):
            losses.hash_constraint_lp(jnp.ones((2, 3)), p=bad)
    with pytest.raises(ValueError, match=r"p must be a scalar, got shape \(2,\)"):
        jax.jit(lambda p: losses.hash_constraint_lp(jnp.ones((2, 3)), p=p))(jnp.ones(2))


def test_traced_power_equals_static_power():
    a = np.random.default_rng(5).normal(size=(4, 6)).astype(np.float32)
    traced = jax.jit(lambda a, p: losses.hash_constraint_lp(a, p=p))(a, 3.0)
    np.testing.assert_allclose(float(traced), float(losses.hash_constraint_lp(a, p=3)), rtol=1e-6)
