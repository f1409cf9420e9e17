import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlhash_jax.models import MLP, ConvNet, ResNet, num_params


def _relu(x):
    return np.maximum(x, 0.0)


def _numpy_init(model, x, seed=0):
    """Variables of the right shapes filled from NumPy.

    Compiling flax's random initialisers costs seconds per layer on CPU; the tests only need
    some values, not the initialiser's distribution.
    """
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        if path[-1].key == "var":
            return rng.uniform(0.5, 1.5, leaf.shape).astype(leaf.dtype)
        return (0.5 * rng.normal(size=leaf.shape)).astype(leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def _shapes(model, x):
    """Output shape and parameter shapes, traced without compiling anything."""
    out, variables = jax.eval_shape(
        lambda: model.init_with_output(jax.random.key(0), x, train=False)
    )
    return out.shape, variables


def test_mlp_matches_numpy_and_has_hand_counted_params():
    model = MLP((5, 3))
    x = np.random.default_rng(0).normal(size=(6, 4, 2)).astype(np.float32)
    variables = _numpy_init(model, x)
    # 8 inputs -> 5 -> 3: (8*5 + 5) + (5*3 + 3).
    assert num_params(variables["params"]) == 63
    p = jax.tree_util.tree_map(np.asarray, variables["params"])
    hidden = _relu(x.reshape(6, 8) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"])
    expected = _relu(hidden @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"])
    out = model.apply(variables, x, train=False)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert set(variables) == {"params"}


def test_mlp_dropout_only_in_training():
    model = MLP((64,), dropout_rate=0.5)
    x = np.ones((4, 3), np.float32)
    variables = _numpy_init(model, x)
    plain = MLP((64,)).apply(variables, x, train=False)
    np.testing.assert_allclose(model.apply(variables, x, train=False), plain)
    dropped = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)})
    kept = np.asarray(dropped) != 0
    # Inverted dropout: kept units are scaled by 1 / (1 - rate).
    np.testing.assert_allclose(np.asarray(dropped)[kept], 2 * np.asarray(plain)[kept], rtol=1e-6)
    assert 0 < kept.sum() < np.count_nonzero(np.asarray(plain))


def test_mlp_bad_input_and_config():
    with pytest.raises(ValueError, match=r"MLP expects inputs \[B, \.\.\.\].*\(5,\)"):
        MLP((4,)).init(jax.random.key(0), jnp.zeros(5), train=False)
    with pytest.raises(ValueError, match=r"positive integers, got \(4, 0\)"):
        MLP((4, 0))
    with pytest.raises(ValueError, match="dropout_rate must be in"):
        MLP((4,), dropout_rate=1.0)


def _conv_same_3x3(x, kernel, bias):
    n, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((n, h, w, kernel.shape[-1]), np.float64)
    for i in range(h):
        for j in range(w):
            patch = padded[:, i : i + 3, j : j + 3, :]
            out[:, i, j, :] = np.einsum("nabc,abcd->nd", patch, kernel)
    return out + bias


def _max_pool_2x2(x):
    n, h, w, c = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def test_convnet_matches_numpy_loops():
    model = ConvNet(conv_features=(2,), dense_features=3)
    x = np.random.default_rng(1).normal(size=(2, 5, 4, 1)).astype(np.float32)
    variables = _numpy_init(model, x)
    p = jax.tree_util.tree_map(np.asarray, variables["params"])
    h = _max_pool_2x2(_relu(_conv_same_3x3(x, p["Conv_0"]["kernel"], p["Conv_0"]["bias"])))
    expected = _relu(h.reshape(2, -1) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"])
    out = model.apply(variables, x, train=False)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "image_shape, flat",
    [
        ((8, 8, 1), 2 * 2 * 8),
        ((16, 16, 3), 4 * 4 * 8),
        ((28, 28), 7 * 7 * 8),
        ((32, 32, 3), 8 * 8 * 8),
    ],
)
def test_convnet_shapes(image_shape, flat):
    model = ConvNet(conv_features=(4, 8), dense_features=16)
    out_shape, variables = _shapes(model, jnp.zeros((3, *image_shape)))
    assert out_shape == (3, 16)
    assert variables["params"]["Dense_0"]["kernel"].shape == (flat, 16)
    channels = image_shape[2] if len(image_shape) == 3 else 1
    assert variables["params"]["Conv_0"]["kernel"].shape == (3, 3, channels, 4)


def test_convnet_bad_input():
    model = ConvNet(conv_features=(4, 8, 8), dense_features=16)
    with pytest.raises(ValueError, match=r"at least 8x8, got shape \(2, 4, 4, 1\)"):
        model.init(jax.random.key(0), jnp.zeros((2, 4, 4, 1)), train=False)
    with pytest.raises(ValueError, match=r"ConvNet expects images .*\(2, 64\)"):
        model.init(jax.random.key(0), jnp.zeros((2, 64)), train=False)


@pytest.mark.parametrize("depth", [0, 2, 7, 21, 22])
def test_resnet_depth_must_be_6n_plus_2(depth):
    with pytest.raises(ValueError, match=rf"6n \+ 2.*got {depth}\."):
        ResNet(depth=depth)


def test_resnet_bad_widths():
    with pytest.raises(ValueError, match=r"3 stage widths, got \(4, 8\)"):
        ResNet(depth=8, widths=(4, 8))


def _resnet_param_count(depth, widths, in_channels):
    """Hand count: 3x3 convs without bias, BatchNorm scale + bias, 1x1 projections."""
    total = 9 * in_channels * widths[0] + 2 * widths[0]
    c_in = widths[0]
    for stage, c_out in enumerate(widths):
        for block in range((depth - 2) // 6):
            total += 9 * c_in * c_out + 2 * c_out + 9 * c_out * c_out + 2 * c_out
            if c_in != c_out or (stage > 0 and block == 0):
                total += c_in * c_out + 2 * c_out
            c_in = c_out
    return total


@pytest.mark.parametrize(
    "depth, image_shape", [(8, (8, 8, 1)), (14, (32, 32, 3)), (20, (32, 32, 3))]
)
def test_resnet_shapes_and_param_counts(depth, image_shape):
    widths = (4, 8, 16) if depth < 20 else (16, 32, 64)
    model = ResNet(depth=depth, widths=widths)
    out_shape, variables = _shapes(model, jnp.zeros((2, *image_shape)))
    assert out_shape == (2, widths[-1])
    assert num_params(variables["params"]) == _resnet_param_count(depth, widths, image_shape[2])
    # Running mean and variance for every BatchNorm: one per scale parameter.
    assert num_params(variables["batch_stats"]) == 2 * sum(
        leaf.size
        for path, leaf in jax.tree_util.tree_leaves_with_path(variables["params"])
        if path[-1].key == "scale"
    )
    if depth == 20:
        assert num_params(variables["params"]) == 271_824  # ResNet-20: about 0.27 M.


def test_resnet_bn_axis_name_averages_statistics_over_replicas():
    # vmap with an axis name stands in for pmap: the same collective over the mapped axis.
    model = ResNet(depth=8, widths=(2, 2, 2), bn_axis_name="batch")
    single = ResNet(depth=8, widths=(2, 2, 2))
    x = np.random.default_rng(4).normal(size=(4, 8, 8, 1)).astype(np.float32)
    variables = _numpy_init(single, x)

    @jax.jit
    def run(variables, x):
        replicated = jax.vmap(
            lambda shard: model.apply(variables, shard, train=True, mutable=["batch_stats"]),
            axis_name="batch",
        )(x.reshape(2, 2, 8, 8, 1))
        return replicated, single.apply(variables, x, train=True, mutable=["batch_stats"])

    (out, stats), (expected_out, expected_stats) = run(variables, x)
    np.testing.assert_allclose(out.reshape(4, -1), expected_out, rtol=1e-4, atol=1e-5)
    for replica in range(2):
        jax.tree_util.tree_map(
            lambda a, b: np.testing.assert_allclose(a[replica], b, rtol=1e-4, atol=1e-5),
            stats["batch_stats"],
            expected_stats["batch_stats"],
        )


def test_resnet_batch_stats_update_in_train_mode_only():
    model = ResNet(depth=8, widths=(2, 4, 4))
    x = np.random.default_rng(2).normal(size=(4, 8, 8, 3)).astype(np.float32)
    variables = _numpy_init(model, x)
    stats = variables["batch_stats"]

    @jax.jit
    def run(variables, x):
        train = model.apply(variables, x, train=True, mutable=["batch_stats"])
        evaluation = model.apply(variables, x, train=False, mutable=["batch_stats"])
        return train, evaluation

    (train_out, updated), (eval_out, unchanged) = run(variables, x)
    changed = jax.tree_util.tree_map(
        lambda a, b: not np.allclose(a, b), stats, updated["batch_stats"]
    )
    assert all(jax.tree_util.tree_leaves(changed))
    # Running mean after one step with momentum 0.9: 0.9 * old + 0.1 * batch mean of the stem.
    kernel = np.asarray(variables["params"]["Conv_0"]["kernel"])
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    stem_mean = sum(
        np.einsum("nhwc,cd->d", padded[:, a : a + 8, b : b + 8, :], kernel[a, b]) / (4 * 64)
        for a in range(3)
        for b in range(3)
    )
    np.testing.assert_allclose(
        updated["batch_stats"]["BatchNorm_0"]["mean"],
        0.9 * stats["BatchNorm_0"]["mean"] + 0.1 * stem_mean,
        rtol=1e-4,
        atol=1e-6,
    )

    jax.tree_util.tree_map(np.testing.assert_array_equal, stats, unchanged["batch_stats"])
    assert not np.allclose(train_out, eval_out)
    # Evaluation mode normalises with running averages, so each row is independent of the
    # others; training mode uses the statistics of the batch.
    (train_rev, _), (eval_rev, _) = run(variables, x[::-1])
    np.testing.assert_allclose(eval_rev, np.asarray(eval_out)[::-1], rtol=1e-5, atol=1e-6)
    x_changed = x.copy()
    x_changed[1:] *= 3.0
    (train_changed, _), (eval_changed, _) = run(variables, x_changed)
    np.testing.assert_allclose(eval_changed[0], eval_out[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(train_changed[0], train_out[0])
