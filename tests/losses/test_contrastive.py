"""nt_xent_loss and symmetric_bernoulli_kl_loss (CIBHash's terms): hand values, loop references,
gradients (numerical and the stop-gradient's closed form), jit/vmap, bad input."""

import doctest
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlhash_jax import losses
from dlhash_jax.losses import _contrastive


def ref_nt_xent(a1, a2, temperature):
    """Mean over the 2N anchors of −log softmax of the partner among the other 2N − 1 views."""
    views = np.concatenate([a1, a2]).astype(float)
    n = len(a1)
    total = 0.0
    for k in range(2 * n):
        partner = (k + n) % (2 * n)

        def cos(u, v):
            return float(u @ v) / (math.sqrt(float(u @ u)) * math.sqrt(float(v @ v)))

        denominator = sum(math.exp(cos(views[k], views[m]) / temperature)
                          for m in range(2 * n) if m != k)
        total += -cos(views[k], views[partner]) / temperature + math.log(denominator)
    return total / (2 * n)


def ref_symmetric_kl(z1, z2):
    """(1/2N) Σ over items and bits of KL(q ‖ r) + KL(r ‖ q), q = σ(z1), r = σ(z2)."""
    n, bits = z1.shape
    total = 0.0
    for i in range(n):
        for j in range(bits):
            q = 1 / (1 + math.exp(-z1[i, j]))
            r = 1 / (1 + math.exp(-z2[i, j]))
            total += q * math.log(q / r) + (1 - q) * math.log((1 - q) / (1 - r))
            total += r * math.log(r / q) + (1 - r) * math.log((1 - r) / (1 - q))
    return total / (2 * n)


_NT_XENT = jax.jit(losses.nt_xent_loss, static_argnames=("temperature",))
_KL = jax.jit(losses.symmetric_bernoulli_kl_loss, static_argnames=("stop_gradient",))


def test_nt_xent_hand_computed():
    # Two items, codes [1, 1] and [1, −1], both views equal: for every anchor the partner has
    # cos 1 and the other item's two views cos 0, so each term is log(1 + 2 e^{-1/τ}).
    b = np.array([[1.0, 1.0], [1.0, -1.0]], np.float32)
    for temperature in (1.0, 0.3):
        expected = math.log(1 + 2 * math.exp(-1 / temperature))
        assert float(_NT_XENT(b, b, temperature=temperature)) == pytest.approx(expected, rel=1e-5)
    # Opposite codes of the same item: partner cos −1, negatives cos 0 (τ = 1):
    # log(e^{-1} + 2) + 1 per anchor.
    expected = math.log(math.exp(-1.0) + 2.0) + 1.0
    assert float(losses.nt_xent_loss(b, -b, temperature=1.0)) == pytest.approx(expected, rel=1e-5)


def test_nt_xent_one_item_has_no_negatives():
    a = np.array([[0.3, -1.2, 2.0]], np.float32)
    assert float(_NT_XENT(a, -a, temperature=0.5)) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("temperature", [0.3, 1.0, 0.05])
def test_nt_xent_matches_loop_reference(temperature):
    rng = np.random.default_rng(0)
    for n, bits in [(2, 3), (5, 8), (12, 16)]:
        a1 = rng.normal(size=(n, bits)).astype(np.float32)
        a2 = rng.normal(size=(n, bits)).astype(np.float32)
        np.testing.assert_allclose(float(_NT_XENT(a1, a2, temperature=temperature)),
                                   ref_nt_xent(a1, a2, temperature), rtol=1e-5)
    # ±1 codes, where cos = 1 − 2 d_H / L.
    c1 = np.sign(rng.normal(size=(6, 8))).astype(np.float32)
    c2 = np.sign(rng.normal(size=(6, 8))).astype(np.float32)
    np.testing.assert_allclose(float(_NT_XENT(c1, c2, temperature=temperature)),
                               ref_nt_xent(c1, c2, temperature), rtol=1e-5)


def test_nt_xent_is_scale_invariant_and_symmetric_in_the_views():
    rng = np.random.default_rng(1)
    a1, a2 = rng.normal(size=(2, 6, 5)).astype(np.float32)
    value = float(_NT_XENT(a1, a2, temperature=0.3))
    assert float(_NT_XENT(3 * a1, 0.5 * a2, temperature=0.3)) == pytest.approx(value, rel=1e-5)
    assert float(_NT_XENT(a2, a1, temperature=0.3)) == pytest.approx(value, rel=1e-5)


def test_nt_xent_traced_temperature_and_vmap():
    rng = np.random.default_rng(2)
    a1, a2 = rng.normal(size=(2, 3, 5, 4)).astype(np.float32)
    traced = jax.jit(lambda a, b, t: losses.nt_xent_loss(a, b, temperature=t))(a1[0], a2[0], 0.3)
    assert float(traced) == pytest.approx(float(_NT_XENT(a1[0], a2[0], temperature=0.3)),
                                          rel=1e-6)
    mapped = jax.jit(jax.vmap(lambda a, b: losses.nt_xent_loss(a, b, temperature=0.3)))(a1, a2)
    looped = [float(_NT_XENT(a, b, temperature=0.3)) for a, b in zip(a1, a2)]
    np.testing.assert_allclose(np.asarray(mapped), looped, rtol=1e-6)


def test_nt_xent_gradients_numerically(x64):
    rng = np.random.default_rng(3)
    a1, a2 = (jnp.asarray(rng.normal(size=(4, 5))) for _ in range(2))
    assert a1.dtype == jnp.float64
    check_grads(jax.jit(lambda a, b: losses.nt_xent_loss(a, b, temperature=0.3)), (a1, a2),
                order=2, modes=("rev",))


def test_nt_xent_finite_for_zero_rows_and_tiny_temperature():
    a1 = np.array([[0.0, 0.0], [1.0, 1.0], [1.0, -1.0]], np.float32)
    a2 = np.array([[1.0, 0.0], [1.0, 1.0], [-1.0, 1.0]], np.float32)
    value, grads = jax.jit(jax.value_and_grad(
        lambda a, b: losses.nt_xent_loss(a, b, temperature=1e-3), argnums=(0, 1)))(a1, a2)
    assert np.isfinite(float(value))
    assert all(np.isfinite(np.asarray(g)).all() for g in grads)


def test_symmetric_kl_hand_computed_and_zero_for_equal_views():
    # q = 0.75 against r = 0.5: 0.75 log 1.5 + 0.25 log 0.5 and 0.5 log(2/3) + 0.5 log 2.
    z1 = np.array([[math.log(3.0)]], np.float32)
    expected = (0.75 * math.log(1.5) + 0.25 * math.log(0.5)
                + 0.5 * math.log(2 / 3) + 0.5 * math.log(2.0)) / 2
    for value in (losses.symmetric_bernoulli_kl_loss(z1, np.zeros((1, 1), np.float32)),
                  _KL(z1, np.zeros((1, 1), np.float32), stop_gradient=False)):
        assert float(value) == pytest.approx(expected, rel=1e-6)
    z = np.random.default_rng(4).normal(size=(3, 5)).astype(np.float32)
    assert float(_KL(z, z, stop_gradient=True)) == 0.0


@pytest.mark.parametrize("stop_gradient", [True, False])
def test_symmetric_kl_matches_loop_reference(stop_gradient):
    rng = np.random.default_rng(5)
    for shape in [(1, 2), (6, 8), (16, 32)]:
        z1, z2 = rng.normal(scale=2.0, size=(2, *shape)).astype(np.float32)
        np.testing.assert_allclose(float(_KL(z1, z2, stop_gradient=stop_gradient)),
                                   ref_symmetric_kl(z1.astype(float), z2.astype(float)),
                                   rtol=1e-5, atol=1e-7)


def test_symmetric_kl_vmap_equals_loop():
    z1, z2 = np.random.default_rng(6).normal(size=(2, 3, 4, 5)).astype(np.float32)
    mapped = jax.jit(jax.vmap(losses.symmetric_bernoulli_kl_loss))(z1, z2)
    np.testing.assert_allclose(np.asarray(mapped),
                               [float(_KL(a, b, stop_gradient=True)) for a, b in zip(z1, z2)],
                               rtol=1e-6)


def test_symmetric_kl_gradients_numerically_without_stop_gradient(x64):
    rng = np.random.default_rng(7)
    z1, z2 = (jnp.asarray(rng.normal(scale=2.0, size=(4, 3))) for _ in range(2))
    check_grads(jax.jit(lambda a, b: losses.symmetric_bernoulli_kl_loss(a, b,
                                                                         stop_gradient=False)),
                (z1, z2), order=2, modes=("rev",))


def test_symmetric_kl_gradients_closed_form(x64):
    # d/dz KL(σ(z) ‖ σ(t)) = σ'(z)(z − t); d/dz KL(σ(t) ‖ σ(z)) = σ(z) − σ(t). With the
    # stop-gradient only the first reaches each argument; without it both do.
    rng = np.random.default_rng(8)
    z1, z2 = (jnp.asarray(rng.normal(scale=2.0, size=(5, 4))) for _ in range(2))
    q1, q2 = jax.nn.sigmoid(z1), jax.nn.sigmoid(z2)
    n2 = 2 * z1.shape[0]
    stopped = jax.grad(losses.symmetric_bernoulli_kl_loss, argnums=(0, 1))(z1, z2)
    np.testing.assert_allclose(stopped[0], q1 * (1 - q1) * (z1 - z2) / n2, rtol=1e-10)
    np.testing.assert_allclose(stopped[1], q2 * (1 - q2) * (z2 - z1) / n2, rtol=1e-10)
    full = jax.grad(lambda a, b: losses.symmetric_bernoulli_kl_loss(a, b, stop_gradient=False),
                    argnums=(0, 1))(z1, z2)
    np.testing.assert_allclose(full[0], (q1 * (1 - q1) * (z1 - z2) + q1 - q2) / n2, rtol=1e-10)
    np.testing.assert_allclose(full[1], (q2 * (1 - q2) * (z2 - z1) + q2 - q1) / n2, rtol=1e-10)


def test_symmetric_kl_finite_for_extreme_logits():
    z1 = np.array([[1e3, -1e3, 0.0, 88.0]], np.float32)
    z2 = np.array([[-1e3, -1e3, 50.0, -88.0]], np.float32)
    value, grads = jax.jit(jax.value_and_grad(losses.symmetric_bernoulli_kl_loss,
                                              argnums=(0, 1)))(z1, z2)
    assert np.isfinite(float(value)) and float(value) > 0
    assert all(np.isfinite(np.asarray(g)).all() for g in grads)


def test_bad_input_raises_with_the_shapes():
    ok = jnp.ones((3, 4))
    with pytest.raises(ValueError, match=r"A1 must have shape \[N, L\], got shape \(4,\)"):
        losses.nt_xent_loss(jnp.ones(4), ok, temperature=0.3)
    with pytest.raises(ValueError, match=r"A2 must have shape \[N, L\], got shape \(3, 4, 1\)"):
        losses.nt_xent_loss(ok, jnp.ones((3, 4, 1)), temperature=0.3)
    with pytest.raises(ValueError, match=r"same shape \[N, L\] .* \(3, 4\) and \(2, 4\)"):
        losses.nt_xent_loss(ok, jnp.ones((2, 4)), temperature=0.3)
    for bad in (0.0, -1.0, float("inf"), True, "0.3", None):
        with pytest.raises(ValueError, match="temperature must be a positive real number"):
            losses.nt_xent_loss(ok, ok, temperature=bad)
    with pytest.raises(ValueError, match=r"temperature must be a scalar, got shape \(2,\)"):
        jax.jit(lambda t: losses.nt_xent_loss(ok, ok, temperature=t))(jnp.ones(2))
    with pytest.raises(ValueError, match=r"Z1 must have shape \[N, L\], got shape \(4,\)"):
        losses.symmetric_bernoulli_kl_loss(jnp.ones(4), ok)
    with pytest.raises(ValueError, match=r"same shape \[N, L\] .* \(3, 4\) and \(3, 5\)"):
        losses.symmetric_bernoulli_kl_loss(ok, jnp.ones((3, 5)))


def test_docstring_examples():
    failures, tried = doctest.testmod(_contrastive, extraglobs={"jnp": jnp})
    assert tried > 0 and failures == 0
