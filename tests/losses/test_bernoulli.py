"""bernoulli_kl_loss (JMLH's prior term): hand values, loop reference, gradients, jit/vmap."""

import doctest
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlhash_jax import losses
from dlhash_jax.losses import _bernoulli


def ref_bernoulli_kl(z, prior):
    """Σ over bits of KL(Bernoulli(σ(z)) ‖ Bernoulli(p)), averaged over samples, bit by bit."""
    n, bits = z.shape
    total = 0.0
    for i in range(n):
        for j in range(bits):
            q = 1.0 / (1.0 + math.exp(-z[i, j]))
            total += q * math.log(q / prior) + (1 - q) * math.log((1 - q) / (1 - prior))
    return total / n


_JITTED = jax.jit(losses.bernoulli_kl_loss, static_argnames=("prior",))


def test_hand_computed_eager_and_jit():
    # q = 0.75 and q = 0.5 against p = 0.5: 0.75 log 1.5 + 0.25 log 0.5, and 0; one sample.
    z = np.array([[math.log(3.0), 0.0]], np.float32)
    expected = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    for value in (losses.bernoulli_kl_loss(z), _JITTED(z, prior=0.5)):
        assert float(value) == pytest.approx(expected, rel=1e-6)
    # Against p = 0.25, a fair bit costs 0.5 log 2 + 0.5 log(2/3), over two samples.
    z2 = np.zeros((2, 1), np.float32)
    expected2 = 0.5 * math.log(2.0) + 0.5 * math.log(2.0 / 3.0)
    assert float(losses.bernoulli_kl_loss(z2, prior=0.25)) == pytest.approx(expected2, rel=1e-6)


def test_zero_for_fair_coins_positive_otherwise():
    assert float(losses.bernoulli_kl_loss(np.zeros((4, 6), np.float32))) == 0.0
    z = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    assert float(losses.bernoulli_kl_loss(z)) > 0.0


@pytest.mark.parametrize("prior", [0.5, 0.2, 0.9])
def test_matches_loop_reference(prior):
    rng = np.random.default_rng(1)
    for shape in [(1, 3), (6, 8), (16, 32)]:
        z = rng.normal(scale=2.0, size=shape).astype(np.float32)
        expected = ref_bernoulli_kl(z.astype(float), prior)
        np.testing.assert_allclose(float(_JITTED(z, prior=prior)), expected, rtol=1e-5, atol=1e-6)


def test_vmap_equals_loop():
    stacked = np.random.default_rng(2).normal(size=(3, 5, 4)).astype(np.float32)
    mapped = jax.jit(jax.vmap(losses.bernoulli_kl_loss))(stacked)
    looped = [float(_JITTED(z, prior=0.5)) for z in stacked]
    np.testing.assert_allclose(np.asarray(mapped), looped, rtol=1e-6)


def test_traced_prior_equals_static_prior():
    z = np.random.default_rng(3).normal(size=(4, 6)).astype(np.float32)
    traced = jax.jit(lambda z, p: losses.bernoulli_kl_loss(z, prior=p))(z, 0.3)
    np.testing.assert_allclose(float(traced), float(_JITTED(z, prior=0.3)), rtol=1e-6)


@pytest.mark.parametrize("prior", [0.5, 0.3])
def test_gradients_numerically(prior, x64):
    z = jnp.asarray(np.random.default_rng(4).normal(scale=2.0, size=(5, 4)))
    assert z.dtype == jnp.float64
    check_grads(jax.jit(lambda z: losses.bernoulli_kl_loss(z, prior=prior)), (z,), order=2,
                modes=("rev",))


def test_gradient_closed_form(x64):
    # d/dz KL(σ(z) ‖ p) = σ'(z) (z − logit p): zero at z = logit p.
    z = jnp.asarray(np.random.default_rng(5).normal(size=(3, 4)))
    prior = 0.3
    grad = jax.grad(lambda z: losses.bernoulli_kl_loss(z, prior=prior))(z)
    q = 1 / (1 + np.exp(-np.asarray(z)))
    expected = q * (1 - q) * (np.asarray(z) - math.log(prior / (1 - prior))) / z.shape[0]
    np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-10)


def test_finite_for_extreme_logits():
    z = np.array([[1e3, -1e3, 0.0, 88.0, -88.0]], np.float32)
    value, grad = jax.jit(jax.value_and_grad(losses.bernoulli_kl_loss))(z)
    # Two certain bits cost log 2 each against a fair coin; the others nearly so.
    assert float(value) == pytest.approx(4 * math.log(2.0), rel=1e-5)
    assert np.isfinite(np.asarray(grad)).all()


def test_bad_input_raises_with_the_shapes():
    with pytest.raises(ValueError, match=r"Z must have shape \[N, L\], got shape \(6,\)"):
        losses.bernoulli_kl_loss(jnp.ones(6))
    with pytest.raises(ValueError, match=r"Z must have shape \[N, L\], got shape \(2, 3, 4\)"):
        losses.bernoulli_kl_loss(jnp.ones((2, 3, 4)))
    for bad in (0.0, 1.0, -0.5, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match=r"prior must be a real number in \(0, 1\), got"):
            losses.bernoulli_kl_loss(jnp.ones((2, 3)), prior=bad)
    with pytest.raises(ValueError, match=r"prior must be a scalar, got shape \(2,\)"):
        jax.jit(lambda p: losses.bernoulli_kl_loss(jnp.ones((2, 3)), prior=p))(jnp.ones(2))


def test_docstring_examples():
    failures, tried = doctest.testmod(_bernoulli, extraglobs={"jnp": jnp})
    assert tried > 0 and failures == 0
