import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlhash_jax.models import Autoencoder, encode


def _numpy_params(model, x, seed=0):
    """Parameters of the right shapes filled from NumPy (flax's random initialisers compile
    slowly on CPU; these tests need values, not the initialiser's distribution)."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda leaf: (0.5 * rng.normal(size=leaf.shape)).astype(leaf.dtype), shapes
    )


def test_autoencoder_matches_numpy_forward():
    model = Autoencoder(3, hidden=(5,), relaxation="tanh", output_activation=jax.nn.sigmoid)
    x = np.random.default_rng(0).uniform(size=(4, 2, 3)).astype(np.float32)
    variables = _numpy_params(model, x)
    p = variables["params"]
    out = jax.jit(lambda v: model.apply(v, x, train=False))(variables)

    def dense(layer, h):
        return h @ layer["kernel"] + layer["bias"]

    features = np.maximum(dense(p["encoder"]["Dense_0"], x.reshape(4, 6)), 0)
    pre = dense(p["hash"]["hash"], features)
    # The decoder mirrors the encoder's widths and reads the relaxed bits.
    decoded = np.maximum(dense(p["decoder"]["Dense_0"], np.tanh(pre)), 0)
    reconstruction = 1 / (1 + np.exp(-dense(p["output"], decoded)))
    assert p["decoder"]["Dense_0"]["kernel"].shape == (3, 5)
    np.testing.assert_allclose(out["features"], features, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["pre"], pre, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["relaxed"], np.tanh(pre), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["reconstruction"], reconstruction.reshape(4, 2, 3), rtol=1e-4)
    np.testing.assert_array_equal(
        encode(model.apply, variables, x, batch_size=3), np.where(pre >= 0, 1.0, -1.0)
    )


def test_linear_decoder_reads_the_binary_codes_with_ste():
    # hidden=() and decoder_hidden=(): eq 1's linear decoder X_hat = B W + c from the codes.
    model = Autoencoder(4, hidden=(), decoder_hidden=(), relaxation="ste")
    x = np.random.default_rng(1).normal(size=(5, 6)).astype(np.float32)
    variables = _numpy_params(model, x)
    p = variables["params"]
    assert set(p) == {"hash", "output"}
    out = jax.jit(lambda v: model.apply(v, x, train=False))(variables)
    codes = np.where(x @ p["hash"]["hash"]["kernel"] + p["hash"]["hash"]["bias"] >= 0, 1.0, -1.0)
    np.testing.assert_array_equal(out["relaxed"], codes)
    np.testing.assert_allclose(
        out["reconstruction"], codes @ p["output"]["kernel"] + p["output"]["bias"], rtol=1e-5,
        atol=1e-5,
    )


def test_autoencoder_bad_config_and_input():
    with pytest.raises(ValueError, match=r"relaxation must be one of .*got 'relu'"):
        Autoencoder(4, relaxation="relu")
    with pytest.raises(ValueError, match="bits must be a positive integer, got -1"):
        Autoencoder(-1)
    with pytest.raises(ValueError, match=r"expects inputs \[B, \.\.\.\], got shape \(7,\)"):
        Autoencoder(4).init(jax.random.key(0), jnp.zeros(7), train=False)


@pytest.mark.slow
def test_autoencoder_learns_to_reconstruct():
    # Data on a 2-D subspace of R^8: an 8-bit tanh code can describe it well.
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(64, 2)) @ rng.normal(size=(2, 8))).astype(np.float32)
    model = Autoencoder(8, hidden=(32,))
    params = _numpy_params(model, x)["params"]
    params = jax.tree_util.tree_map(lambda p: 0.3 * p, params)
    optimizer = optax.adam(1e-2)

    def loss_fn(params):
        out = model.apply({"params": params}, x, train=True)
        return jnp.mean(jnp.sum((out["reconstruction"] - x) ** 2, axis=1))

    @jax.jit
    def step(params, opt_state):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state = optimizer.init(params)
    first = None
    for _ in range(200):
        params, opt_state, loss = step(params, opt_state)
        first = float(loss) if first is None else first
    baseline = float(np.mean(np.sum((x - x.mean(0)) ** 2, axis=1)))
    assert float(loss) < 0.1 * baseline < first
