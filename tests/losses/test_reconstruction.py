import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlhash_jax import losses


def ref_reconstruction(x, x_hat):
    n = x.shape[0]
    flat, flat_hat = x.reshape(n, -1), x_hat.reshape(n, -1)
    total = 0.0
    for i in range(n):
        for k in range(flat.shape[1]):
            total += (flat[i, k] - flat_hat[i, k]) ** 2
    return total / n


def ref_decoder(b, w, c):
    n, num_bits = b.shape
    out = np.zeros((n, w.shape[1]))
    for i in range(n):
        for d in range(w.shape[1]):
            out[i, d] = c[d] + sum(b[i, k] * w[k, d] for k in range(num_bits))
    return out


_reconstruction = jax.jit(losses.reconstruction_loss)
_decoder = jax.jit(losses.linear_decoder)


def test_hand_computed():
    x = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    x_hat = np.array([[0.0, 2.0], [3.0, 1.0]], np.float32)
    assert float(losses.reconstruction_loss(x, x_hat)) == 5.0
    b = np.array([[1.0, -1.0], [-1.0, -1.0]], np.float32)
    w = np.array([[1.0, 2.0, 0.0], [3.0, 4.0, -1.0]], np.float32)
    c = np.array([0.5, 0.0, 1.0], np.float32)
    np.testing.assert_array_equal(
        np.asarray(losses.linear_decoder(b, w, c)), [[-1.5, -2.0, 2.0], [-3.5, -6.0, 2.0]]
    )


@pytest.mark.parametrize("shape", [(1, 3), (6, 5), (4, 3, 3, 2)])
def test_reconstruction_matches_loop_reference_and_jit(shape):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape).astype(np.float32)
    x_hat = rng.normal(size=shape).astype(np.float32)
    value = float(_reconstruction(x, x_hat))
    np.testing.assert_allclose(value, ref_reconstruction(x, x_hat), rtol=1e-5)
    np.testing.assert_allclose(float(losses.reconstruction_loss(x, x_hat)), value, rtol=1e-6)


def test_decoder_matches_loop_reference_and_jit():
    rng = np.random.default_rng(1)
    b = np.where(rng.random((5, 4)) < 0.5, -1.0, 1.0).astype(np.float32)
    w = rng.normal(size=(4, 3)).astype(np.float32)
    c = rng.normal(size=3).astype(np.float32)
    out = np.asarray(_decoder(b, w, c))
    np.testing.assert_allclose(out, ref_decoder(b, w, c), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(losses.linear_decoder(b, w, c)), out, rtol=1e-6)


def test_equals_survey_eq1_divided_by_n():
    rng = np.random.default_rng(2)
    n, num_bits, dim = 6, 4, 3
    x = rng.normal(size=(n, dim))
    b = np.where(rng.random((n, num_bits)) < 0.5, -1.0, 1.0)
    w = rng.normal(size=(num_bits, dim))
    c = rng.normal(size=dim)
    # Survey orientation: X is D x N, W is D x L, B is L x N, c a column broadcast over samples.
    survey = np.sum((x.T - w.T @ b.T - c[:, None] @ np.ones((1, n))) ** 2)
    ours = losses.reconstruction_loss(x, losses.linear_decoder(b, w, c))
    np.testing.assert_allclose(float(ours) * n, survey, rtol=1e-5)


def test_gradients_numerically(x64):
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(4, 3)))
    x_hat = jnp.asarray(rng.normal(size=(4, 3)))
    check_grads(_reconstruction, (x, x_hat), order=2, modes=["rev"])
    b = jnp.asarray(rng.normal(size=(4, 2)))
    w = jnp.asarray(rng.normal(size=(2, 3)))
    c = jnp.asarray(rng.normal(size=3))
    check_grads(
        jax.jit(lambda b, w, c: losses.reconstruction_loss(x, losses.linear_decoder(b, w, c))),
        (b, w, c),
        order=1,
        modes=["rev"],
    )


def test_finite_for_large_values():
    rng = np.random.default_rng(4)
    x = rng.normal(scale=1e3, size=(6, 5)).astype(np.float32)
    b = rng.normal(scale=1e3, size=(6, 4)).astype(np.float32)
    w = rng.normal(size=(4, 5)).astype(np.float32)
    c = np.zeros(5, np.float32)
    value, grads = jax.jit(
        jax.value_and_grad(
            lambda b, w: losses.reconstruction_loss(x, losses.linear_decoder(b, w, c)),
            argnums=(0, 1),
        )
    )(b, w)
    assert np.isfinite(float(value))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)


def test_vmap_equals_loop():
    rng = np.random.default_rng(5)
    xs = rng.normal(size=(3, 6, 5)).astype(np.float32)
    x_hats = rng.normal(size=(3, 6, 5)).astype(np.float32)
    batched = jax.jit(jax.vmap(losses.reconstruction_loss))(xs, x_hats)
    looped = [float(_reconstruction(x, x_hat)) for x, x_hat in zip(xs, x_hats)]
    np.testing.assert_allclose(np.asarray(batched), looped, rtol=1e-6)
    bs = rng.normal(size=(3, 6, 4)).astype(np.float32)
    ws = rng.normal(size=(3, 4, 5)).astype(np.float32)
    cs = rng.normal(size=(3, 5)).astype(np.float32)
    batched = jax.jit(jax.vmap(losses.linear_decoder))(bs, ws, cs)
    for k in range(3):
        np.testing.assert_allclose(
            np.asarray(batched[k]), np.asarray(_decoder(bs[k], ws[k], cs[k])), rtol=1e-6
        )


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"X must have shape \[N, D\].*got shape \(5,\)"):
        losses.reconstruction_loss(jnp.ones(5), jnp.ones(5))
    with pytest.raises(ValueError, match=r"same shape, got shapes \(4, 3\) and \(4, 2\)"):
        losses.reconstruction_loss(jnp.ones((4, 3)), jnp.ones((4, 2)))
    with pytest.raises(ValueError, match=r"B must have shape \[N, L\], got shape \(4,\)"):
        losses.linear_decoder(jnp.ones(4), jnp.ones((4, 3)), jnp.ones(3))
    with pytest.raises(ValueError, match=r"W must have shape \[L, D\], got shape \(4,\)"):
        losses.linear_decoder(jnp.ones((2, 4)), jnp.ones(4), jnp.ones(3))
    with pytest.raises(ValueError, match=r"c must have shape \[D\], got shape \(1, 3\)"):
        losses.linear_decoder(jnp.ones((2, 4)), jnp.ones((4, 3)), jnp.ones((1, 3)))
    with pytest.raises(ValueError, match=r"got shapes \(2, 4\), \(5, 3\) and \(3,\)"):
        losses.linear_decoder(jnp.ones((2, 4)), jnp.ones((5, 3)), jnp.ones(3))
    with pytest.raises(ValueError, match=r"got shapes \(2, 4\), \(4, 3\) and \(2,\)"):
        losses.linear_decoder(jnp.ones((2, 4)), jnp.ones((4, 3)), jnp.ones(2))
