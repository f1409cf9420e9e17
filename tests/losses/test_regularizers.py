import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlhash_jax import losses


def ref_weight_norm(leaves, squared):
    total = 0.0
    for leaf in leaves:
        if leaf.ndim < 2:
            continue
        sq = sum(float(v) ** 2 for v in leaf.ravel())
        total += sq if squared else math.sqrt(sq)
    return total


def ref_kl_sparsity(h, rho):
    n, units = h.shape
    total = 0.0
    for j in range(units):
        rho_hat = sum(h[i, j] for i in range(n)) / n
        if rho > 0:
            total += rho * math.log(rho / rho_hat)
        if rho < 1:
            total += (1 - rho) * math.log((1 - rho) / (1 - rho_hat))
    return total


def ref_l1(a):
    n, num_bits = a.shape
    return sum(abs(a[i, k]) for i in range(n) for k in range(num_bits)) / n


def _params(rng, scale=1.0):
    """A flax-like parameter tree: dense and conv kernels, biases and a norm scale."""
    return {
        "Dense_0": {"kernel": rng.normal(size=(5, 3)), "bias": rng.normal(size=3)},
        "Conv_0": {"kernel": rng.normal(size=(3, 3, 2, 4)), "bias": rng.normal(size=4)},
        "LayerNorm_0": {"scale": rng.normal(size=4)},
        "Embed_0": {"embedding": rng.normal(size=(6, 2))},
    } | {"scaled": {"kernel": scale * rng.normal(size=(2, 2))}}


def _float32(tree):
    return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), tree)


_weight_norm = jax.jit(losses.weight_norm, static_argnames="squared")
_kl_sparsity = jax.jit(losses.kl_sparsity_loss)
_l1 = jax.jit(losses.l1_sparsity_loss)


def test_weight_norm_hand_computed():
    params = {
        "dense": {"kernel": np.array([[3.0], [4.0]], np.float32), "bias": np.ones(7, np.float32)},
        "conv": {"kernel": np.full((2, 2, 1, 1), 0.5, np.float32)},
    }
    assert float(losses.weight_norm(params)) == pytest.approx(6.0)
    assert float(losses.weight_norm(params, squared=True)) == pytest.approx(26.0)
    assert float(losses.weight_norm({"bias": np.ones(3, np.float32)})) == 0.0


@pytest.mark.parametrize("squared", [False, True])
def test_weight_norm_matches_loop_reference_and_jit(squared):
    params = _float32(_params(np.random.default_rng(0)))
    leaves = jax.tree_util.tree_leaves(params)
    value = float(_weight_norm(params, squared=squared))
    np.testing.assert_allclose(value, ref_weight_norm(leaves, squared), rtol=1e-5)
    np.testing.assert_allclose(float(losses.weight_norm(params, squared=squared)), value, rtol=1e-6)


def test_weight_norm_gradients(x64):
    params = jax.tree_util.tree_map(jnp.asarray, _params(np.random.default_rng(1)))
    del params["LayerNorm_0"], params["Embed_0"], params["scaled"]
    check_grads(_weight_norm, (params,), order=2, modes=["rev"])
    grads = jax.jit(jax.grad(losses.weight_norm))(params)
    kernel = params["Dense_0"]["kernel"]
    np.testing.assert_allclose(grads["Dense_0"]["kernel"], kernel / np.linalg.norm(kernel))
    np.testing.assert_array_equal(grads["Dense_0"]["bias"], 0.0)
    squared_grads = jax.jit(jax.grad(lambda p: losses.weight_norm(p, squared=True)))(params)
    np.testing.assert_allclose(squared_grads["Conv_0"]["kernel"], 2 * params["Conv_0"]["kernel"])


def test_weight_norm_zero_and_large_kernels_are_finite():
    params = _float32(_params(np.random.default_rng(2), scale=1e3))
    params["Dense_0"]["kernel"] = np.zeros((5, 3), np.float32)
    value, grads = jax.jit(jax.value_and_grad(losses.weight_norm))(params)
    assert np.isfinite(float(value))
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
    np.testing.assert_array_equal(grads["Dense_0"]["kernel"], 0.0)


def test_weight_norm_vmap_equals_loop():
    rng = np.random.default_rng(3)
    stacked = _float32(
        {"kernel": rng.normal(size=(3, 4, 2)), "bias": rng.normal(size=(3, 2))}
    )
    batched = jax.jit(jax.vmap(losses.weight_norm))(stacked)
    looped = [
        float(_weight_norm({"kernel": stacked["kernel"][k], "bias": stacked["bias"][k]}))
        for k in range(3)
    ]
    np.testing.assert_allclose(np.asarray(batched), looped, rtol=1e-6)


def test_kl_sparsity_hand_computed():
    h = np.array([[0.2, 0.5], [0.4, 0.9]], np.float32)
    # Mean activations 0.3 and 0.7.
    expected = (
        0.1 * math.log(0.1 / 0.3)
        + 0.9 * math.log(0.9 / 0.7)
        + 0.1 * math.log(0.1 / 0.7)
        + 0.9 * math.log(0.9 / 0.3)
    )
    assert float(losses.kl_sparsity_loss(h, rho=0.1)) == pytest.approx(expected, rel=1e-5)
    assert float(losses.kl_sparsity_loss(np.full((3, 2), 0.25, np.float32), rho=0.25)) == (
        pytest.approx(0.0, abs=1e-6)
    )


def test_kl_sparsity_matches_loop_reference_and_jit():
    rng = np.random.default_rng(4)
    for shape, rho in [((1, 3), 0.05), ((7, 5), 0.3), ((12, 8), 0.0), ((6, 4), 1.0)]:
        h = rng.uniform(0.01, 0.99, size=shape).astype(np.float32)
        value = float(_kl_sparsity(h, rho=rho))
        np.testing.assert_allclose(value, ref_kl_sparsity(h.astype(np.float64), rho), rtol=2e-5)
    np.testing.assert_allclose(float(losses.kl_sparsity_loss(h, rho=rho)), value, rtol=1e-6)


def test_kl_sparsity_gradients(x64):
    h = jnp.asarray(np.random.default_rng(5).uniform(0.1, 0.9, size=(5, 4)))
    loss = jax.jit(lambda h: losses.kl_sparsity_loss(h, rho=0.2))
    check_grads(loss, (h,), order=2, modes=["rev"])


def test_kl_sparsity_saturated_units_stay_finite_and_are_pushed_back():
    h = np.zeros((4, 3), np.float32)
    h[:, 1] = 1.0
    h[:, 2] = 1e3
    value, grad = jax.jit(jax.value_and_grad(lambda h: losses.kl_sparsity_loss(h, rho=0.1)))(h)
    assert np.isfinite(float(value)) and float(value) > 0
    grad = np.asarray(grad)
    assert np.all(np.isfinite(grad))
    # Raising a dead unit and lowering a saturated one both reduce the loss.
    assert np.all(grad[:, 0] < 0)
    assert np.all(grad[:, 1:] > 0)


def test_kl_sparsity_vmap_over_batches_and_rho():
    rng = np.random.default_rng(6)
    hs = rng.uniform(0.05, 0.95, size=(3, 6, 4)).astype(np.float32)
    rhos = np.array([0.05, 0.2, 0.5], np.float32)
    batched = jax.jit(jax.vmap(lambda h, r: losses.kl_sparsity_loss(h, rho=r)))(hs, rhos)
    looped = [ref_kl_sparsity(h.astype(np.float64), float(r)) for h, r in zip(hs, rhos)]
    np.testing.assert_allclose(np.asarray(batched), looped, rtol=2e-5)


def test_kl_sparsity_rejects_bad_input():
    with pytest.raises(ValueError, match=r"H must have shape \[N, s\], got shape \(4,\)"):
        losses.kl_sparsity_loss(jnp.full(4, 0.5), rho=0.1)
    with pytest.raises(ValueError, match=r"rho must lie in \[0, 1\], got 1.5"):
        losses.kl_sparsity_loss(jnp.full((4, 2), 0.5), rho=1.5)
    with pytest.raises(ValueError, match=r"rho must be a scalar, got shape \(2,\)"):
        losses.kl_sparsity_loss(jnp.full((4, 2), 0.5), rho=jnp.array([0.1, 0.2]))


def test_l1_sparsity():
    a = np.array([[0.5, -2.0, 0.0], [-0.25, 1.0, 3.0]], np.float32)
    assert float(losses.l1_sparsity_loss(a)) == pytest.approx((0.5 + 2.0 + 0.25 + 1.0 + 3.0) / 2)
    rng = np.random.default_rng(7)
    for shape in [(1, 3), (7, 5), (16, 12)]:
        a = rng.normal(size=shape).astype(np.float32)
        np.testing.assert_allclose(float(_l1(a)), ref_l1(a.astype(np.float64)), rtol=1e-5)
    np.testing.assert_allclose(float(losses.l1_sparsity_loss(a)), float(_l1(a)), rtol=1e-6)
    stacked = rng.normal(size=(3, 7, 5)).astype(np.float32)
    batched = jax.jit(jax.vmap(losses.l1_sparsity_loss))(stacked)
    np.testing.assert_allclose(np.asarray(batched), [float(_l1(x)) for x in stacked], rtol=1e-6)
    value, grad = jax.jit(jax.value_and_grad(losses.l1_sparsity_loss))(a * 1e3)
    assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))
    with pytest.raises(ValueError, match=r"A must have shape \[N, L\], got shape \(2, 3, 4\)"):
        losses.l1_sparsity_loss(jnp.ones((2, 3, 4)))


def test_l1_sparsity_gradients(x64):
    rng = np.random.default_rng(8)
    a = jnp.asarray(rng.uniform(0.2, 2.0, size=(5, 4)) * rng.choice([-1.0, 1.0], size=(5, 4)))
    check_grads(_l1, (a,), order=2, modes=["rev"])
