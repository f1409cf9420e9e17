"""adversarial_loss (TBH's regulariser): hand values, a loop reference, the probabilities'
form, gradients (numerical and closed form), extreme logits, jit/vmap, bad input."""

import doctest
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlhash_jax import losses
from dlhash_jax.losses import _adversarial


def ref_adversarial(real, fake):
    """Mean of −log σ(r) over the real entries plus mean of −log(1 − σ(f)) over the fake ones."""
    real, fake = np.asarray(real, float).ravel(), np.asarray(fake, float).ravel()
    real_term = sum(-math.log(1 / (1 + math.exp(-r))) for r in real) / len(real)
    fake_term = sum(-math.log(1 - 1 / (1 + math.exp(-f))) for f in fake) / len(fake)
    return real_term + fake_term


_ADV = jax.jit(losses.adversarial_loss)


def test_hand_computed():
    # A discriminator that cannot tell: log 2 for each set.
    assert float(_ADV(np.zeros(4, np.float32), np.zeros(7, np.float32))) == pytest.approx(
        2 * math.log(2), rel=1e-6)
    # r = 2, f = −1: log(1 + e^{−2}) + log(1 + e^{−1}).
    expected = math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))
    assert float(_ADV(np.array([[2.0]], np.float32), np.array([[-1.0]], np.float32))) == (
        pytest.approx(expected, rel=1e-6))
    # Two real logits and one fake: the means are per set, (softplus(−1) + softplus(1))/2 + ...
    value = _ADV(np.array([1.0, -1.0], np.float32), np.array([0.0], np.float32))
    expected = (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(1))) / 2 + math.log(2)
    assert float(value) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("shapes", [((5,), (3,)), ((6, 1), (4, 1)), ((3, 4), (7, 4))])
def test_matches_loop_reference(shapes):
    rng = np.random.default_rng(0)
    real = rng.normal(scale=3.0, size=shapes[0]).astype(np.float32)
    fake = rng.normal(scale=3.0, size=shapes[1]).astype(np.float32)
    np.testing.assert_allclose(float(_ADV(real, fake)), ref_adversarial(real, fake), rtol=1e-5)


def test_equals_the_binary_cross_entropy_of_the_probabilities():
    # The authors' form: BCE(1, σ(r)) + BCE(0, σ(f)), means over the samples.
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(2, 8, 1))
    p_real, p_fake = 1 / (1 + np.exp(-real)), 1 / (1 + np.exp(-fake))
    expected = np.mean(-np.log(p_real)) + np.mean(-np.log(1 - p_fake))
    np.testing.assert_allclose(float(_ADV(real.astype(np.float32), fake.astype(np.float32))),
                               expected, rtol=1e-5)


def test_gradients_numerically(x64):
    rng = np.random.default_rng(2)
    real, fake = jnp.asarray(rng.normal(size=(5, 1))), jnp.asarray(rng.normal(size=(3, 1)))
    assert real.dtype == jnp.float64
    check_grads(jax.jit(losses.adversarial_loss), (real, fake), order=2, modes=("fwd", "rev"))


def test_gradients_closed_form(x64):
    # ∂/∂r_i = −(1 − σ(r_i))/N and ∂/∂f_j = σ(f_j)/M.
    rng = np.random.default_rng(3)
    real, fake = jnp.asarray(rng.normal(size=(6,))), jnp.asarray(rng.normal(size=(4,)))
    grad_real, grad_fake = jax.grad(losses.adversarial_loss, argnums=(0, 1))(real, fake)
    np.testing.assert_allclose(grad_real, -(1 - jax.nn.sigmoid(real)) / 6, rtol=1e-12)
    np.testing.assert_allclose(grad_fake, jax.nn.sigmoid(fake) / 4, rtol=1e-12)


def test_finite_and_exact_for_extreme_logits():
    # σ(−100) underflows to 0 in float32, so −log σ would be inf; softplus gives 100.
    real = np.array([-100.0, 1e4], np.float32)
    fake = np.array([100.0, -1e4], np.float32)
    value, grads = jax.jit(jax.value_and_grad(losses.adversarial_loss, argnums=(0, 1)))(real, fake)
    assert float(value) == pytest.approx(100.0, rel=1e-6)  # (100 + 0)/2 + (100 + 0)/2
    np.testing.assert_allclose(grads[0], [-0.5, 0.0], atol=1e-7)
    np.testing.assert_allclose(grads[1], [0.5, 0.0], atol=1e-7)


def test_vmap_equals_loop_and_dtypes():
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(3, 5, 1)).astype(np.float32), rng.normal(
        size=(3, 2, 1)).astype(np.float32)
    mapped = jax.jit(jax.vmap(losses.adversarial_loss))(real, fake)
    np.testing.assert_allclose(np.asarray(mapped),
                               [ref_adversarial(r, f) for r, f in zip(real, fake)], rtol=1e-5)
    assert losses.adversarial_loss(np.zeros(2, np.int32), np.zeros(2, np.int32)).dtype == (
        jnp.float32)


def test_bad_input_raises_with_the_shapes():
    with pytest.raises(ValueError, match=r"real_logits must have shape \[N\] or \[N, K\] .*"
                                         r"got shape \(\)"):
        losses.adversarial_loss(jnp.float32(1.0), jnp.ones(3))
    with pytest.raises(ValueError, match=r"fake_logits must have shape \[M\] or \[M, K\] .*"
                                         r"got shape \(2, 1, 1\)"):
        losses.adversarial_loss(jnp.ones((2, 1)), jnp.ones((2, 1, 1)))
    with pytest.raises(ValueError, match=r"real_logits must hold at least one sample, got shape "
                                         r"\(0, 1\)"):
        losses.adversarial_loss(jnp.ones((0, 1)), jnp.ones((2, 1)))
    with pytest.raises(ValueError, match=r"same K, got shapes \(3, 2\) and \(3, 1\)"):
        losses.adversarial_loss(jnp.ones((3, 2)), jnp.ones((3, 1)))
    with pytest.raises(ValueError, match=r"same K, got shapes \(3,\) and \(3, 1\)"):
        losses.adversarial_loss(jnp.ones(3), jnp.ones((3, 1)))


def test_docstring_examples():
    failures, tried = doctest.testmod(_adversarial, extraglobs={"jnp": jnp})
    assert tried > 0 and failures == 0
