import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlhash_jax.models import DivideAndEncode, HashHead, LatentLayer

RNG = np.random.default_rng(0)
FEATURES = RNG.normal(size=(3, 6)).astype(np.float32)
# Dense(4) parameters shared by every HashHead variant (same parameter tree).
HASH_PARAMS = {
    "hash": {
        "kernel": RNG.normal(size=(6, 4)).astype(np.float32),
        "bias": RNG.normal(size=(4,)).astype(np.float32),
    }
}
CLASSIFIER = {
    "kernel": RNG.normal(size=(4, 5)).astype(np.float32),
    "bias": RNG.normal(size=(5,)).astype(np.float32),
}


def _sgn(x):
    return np.where(x >= 0, 1.0, -1.0)


def _pre_ref():
    return FEATURES.astype(np.float64) @ HASH_PARAMS["hash"]["kernel"] + HASH_PARAMS["hash"]["bias"]


def _apply_with_grad(head, params, features, beta):
    """Output dict and the gradient of sum(relaxed * weights) with respect to the features."""
    weights = np.arange(1.0, 1.0 + features.shape[0] * head.bits).reshape(features.shape[0], -1)

    def objective(f):
        out = head.apply({"params": params}, f, beta=beta)
        return jnp.sum(out["relaxed"] * weights), out

    grad, out = jax.jit(jax.grad(objective, has_aux=True))(features)
    return out, np.asarray(grad), weights


@pytest.mark.parametrize("relaxation", ["none", "tanh", "scaled_tanh", "ste", "ste_clipped"])
def test_hash_head_relaxations(relaxation):
    beta = 2.5
    out, grad, weights = _apply_with_grad(HashHead(4, relaxation), HASH_PARAMS, FEATURES, beta)
    pre = _pre_ref()
    np.testing.assert_allclose(out["pre"], pre, rtol=1e-5, atol=1e-5)
    kernel = HASH_PARAMS["hash"]["kernel"]
    if relaxation == "none":
        relaxed, slope = pre, np.ones_like(pre)
    elif relaxation == "tanh":
        relaxed, slope = np.tanh(pre), 1 - np.tanh(pre) ** 2
    elif relaxation == "scaled_tanh":
        relaxed, slope = np.tanh(beta * pre), beta * (1 - np.tanh(beta * pre) ** 2)
    elif relaxation == "ste":
        # Straight-through: exact sign forward, identity backward.
        relaxed, slope = _sgn(pre), np.ones_like(pre)
    else:
        relaxed, slope = _sgn(pre), (np.abs(pre) <= 1).astype(np.float64)
    np.testing.assert_allclose(out["relaxed"], relaxed, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad, (weights * slope) @ kernel.T, rtol=1e-4, atol=1e-4)
    assert set(out) == {"pre", "relaxed"}


def test_inputs_exercise_both_sides_of_the_clip():
    magnitudes = np.abs(_pre_ref())
    assert (magnitudes < 1).any() and (magnitudes > 1).any()


def test_hash_head_traced_beta_and_classifier():
    head = HashHead(4, "scaled_tanh", num_classes=5)
    params = {**HASH_PARAMS, "classifier": CLASSIFIER}
    apply = jax.jit(lambda beta: head.apply({"params": params}, FEATURES, beta=beta))
    pre = _pre_ref()
    for beta in (0.5, 4.0):
        out = apply(beta)
        relaxed = np.tanh(beta * pre)
        np.testing.assert_allclose(out["relaxed"], relaxed, rtol=1e-5, atol=1e-5)
        logits = relaxed @ CLASSIFIER["kernel"] + CLASSIFIER["bias"]
        np.testing.assert_allclose(out["logits"], logits, rtol=1e-4, atol=1e-4)


def test_hash_head_init_shapes_without_bias():
    variables = jax.eval_shape(
        lambda: HashHead(7, use_bias=False).init(jax.random.key(0), jnp.zeros((2, 3)))
    )
    assert jax.tree_util.tree_map(lambda x: x.shape, variables["params"]) == {
        "hash": {"kernel": (3, 7)}
    }


def test_heads_bad_config_and_input():
    with pytest.raises(ValueError, match=r"relaxation must be one of .*got 'sigmoid'"):
        HashHead(4, "sigmoid")
    with pytest.raises(ValueError, match="bits must be a positive integer, got 0"):
        HashHead(0)
    with pytest.raises(ValueError, match="num_classes must be a positive integer, got 0"):
        LatentLayer(4, 0)
    with pytest.raises(ValueError, match=r"epsilon must be in \(0, 0.5\), got 0.5"):
        DivideAndEncode(4, epsilon=0.5)
    with pytest.raises(ValueError, match=r"relaxation must be one of .*got 'tanh'"):
        DivideAndEncode(4, relaxation="tanh")
    for head in (HashHead(4), DivideAndEncode(4), LatentLayer(4, 3)):
        with pytest.raises(ValueError, match=r"expects features \[B, D\], got shape \(2, 3, 4\)"):
            head.init(jax.random.key(0), jnp.zeros((2, 3, 4)))


def test_divide_and_encode_rejects_indivisible_features():
    with pytest.raises(ValueError, match=r"feature dimension 10 is not a multiple of 4.*\(2, 10\)"):
        jax.eval_shape(lambda: DivideAndEncode(4).init(jax.random.key(0), jnp.zeros((2, 10))))


def test_divide_and_encode_hand_computed_threshold():
    # Slices of width 2; bit k reads features[2k:2k+2] only. pre = [-3, -0.1, 0.2, 5].
    params = {
        "kernel": np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]], np.float32),
        "bias": np.array([0.0, 0.0, 0.0, 1.0], np.float32),
    }
    features = np.array([[-3.0, 7.0, 9.0, -0.1, 0.1, 0.1, 2.0, -8.0]], np.float32)
    pre = np.array([-3.0, -0.1, 0.2, 5.0])

    def dnnh_threshold(s, eps=0.1):
        return np.where(s < 0.5 - eps, 0.0, np.where(s > 0.5 + eps, 1.0, s))

    s = 1 / (1 + np.exp(-pre))
    threshold = DivideAndEncode(4).apply({"params": params}, features)
    np.testing.assert_allclose(threshold["pre"][0], pre, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(threshold["relaxed"][0], 2 * dnnh_threshold(s) - 1, rtol=1e-5)
    np.testing.assert_array_equal(threshold["relaxed"][0, [0, 3]], [-1.0, 1.0])
    sigmoid = DivideAndEncode(4, relaxation="sigmoid").apply({"params": params}, features)
    np.testing.assert_allclose(sigmoid["relaxed"][0], 2 * s - 1, rtol=1e-5, atol=1e-7)


def test_divide_and_encode_bit_depends_only_on_its_slice():
    head = DivideAndEncode(4, relaxation="sigmoid")
    features = RNG.normal(size=(2, 12)).astype(np.float32)
    params = {
        "kernel": RNG.normal(size=(4, 3)).astype(np.float32),
        "bias": RNG.normal(size=(4,)).astype(np.float32),
    }
    out = head.apply({"params": params}, features)
    pre = np.zeros((2, 4))
    for i in range(2):
        for k in range(4):
            pre[i, k] = features[i, 3 * k : 3 * k + 3] @ params["kernel"][k] + params["bias"][k]
    np.testing.assert_allclose(out["pre"], pre, rtol=1e-5, atol=1e-5)

    jacobian = jax.jit(
        jax.jacobian(lambda f: head.apply({"params": params}, f)["relaxed"])
    )(features)
    jacobian = np.asarray(jacobian)  # [B, L, B, D]
    for i in range(2):
        for k in range(4):
            inside = np.zeros((2, 12), bool)
            inside[i, 3 * k : 3 * k + 3] = True
            assert np.all(jacobian[i, k][~inside] == 0)
            # d relaxed / d features = (1 - t^2) / 2 * kernel[k] on the slice, t = tanh(pre / 2).
            slope = 0.5 * (1 - np.tanh(0.5 * pre[i, k]) ** 2)
            np.testing.assert_allclose(
                jacobian[i, k][inside], slope * params["kernel"][k], rtol=1e-4, atol=1e-6
            )


def test_divide_and_encode_param_shapes():
    variables = jax.eval_shape(
        lambda: DivideAndEncode(8).init(jax.random.key(0), jnp.zeros((2, 48)))
    )
    assert variables["params"]["kernel"].shape == (8, 6)
    assert variables["params"]["bias"].shape == (8,)


def test_latent_layer():
    params = {
        "latent": HASH_PARAMS["hash"],
        "classifier": CLASSIFIER,
    }
    out = jax.jit(lambda f: LatentLayer(4, 5).apply({"params": params}, f))(FEATURES)
    pre = _pre_ref()
    latent = 1 / (1 + np.exp(-pre))
    np.testing.assert_allclose(out["pre"], pre, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["latent"], latent, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["relaxed"], 2 * latent - 1, rtol=1e-5, atol=1e-6)
    logits = latent @ CLASSIFIER["kernel"] + CLASSIFIER["bias"]
    np.testing.assert_allclose(out["logits"], logits, rtol=1e-4, atol=1e-4)
    # DLBHC reads bit k as H_k > 0.5; that is sign(pre) here.
    np.testing.assert_array_equal(_sgn(np.asarray(out["pre"])), np.where(latent > 0.5, 1.0, -1.0))
