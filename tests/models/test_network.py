import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlhash_jax.models import MLP, CrossModalNetwork, HashHead, HashNetwork, LatentLayer, ResNet
from dlhash_jax.models import TextEncoder, encode, map_in_batches, num_params, num_rows


def _numpy_init(model, x, seed=0, **kwargs):
    """Variables of the right shapes filled from NumPy (flax's random initialisers compile slowly
    on CPU; these tests need values, not the initialiser's distribution)."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x, **kwargs))
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        if path[-1].key == "var":
            return rng.uniform(0.5, 1.5, leaf.shape).astype(leaf.dtype)
        return (0.5 * rng.normal(size=leaf.shape)).astype(leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def test_hash_network_composes_backbone_and_head():
    model = HashNetwork(MLP((5,)), LatentLayer(3, num_classes=2))
    x = np.random.default_rng(0).normal(size=(4, 2, 3)).astype(np.float32)
    variables = _numpy_init(model, x, train=False)
    p = variables["params"]
    assert set(p) == {"backbone", "head"}
    out = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x)
    b = p["backbone"]["Dense_0"]
    features = np.maximum(x.reshape(4, 6) @ b["kernel"] + b["bias"], 0)
    pre = features @ p["head"]["latent"]["kernel"] + p["head"]["latent"]["bias"]
    latent = 1 / (1 + np.exp(-pre))
    logits = latent @ p["head"]["classifier"]["kernel"] + p["head"]["classifier"]["bias"]
    assert set(out) == {"pre", "relaxed", "latent", "logits", "features"}
    np.testing.assert_allclose(out["features"], features, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["pre"], pre, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["logits"], logits, rtol=1e-4, atol=1e-4)
    assert num_params(p) == (6 * 5 + 5) + (5 * 3 + 3) + (3 * 2 + 2)


def test_hash_network_passes_beta_and_train():
    model = HashNetwork(ResNet(depth=8, widths=(2, 2, 4)), HashHead(3, "scaled_tanh"))
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 1)).astype(np.float32)
    variables = _numpy_init(model, x, train=False)

    @jax.jit
    def run(variables, beta):
        return model.apply(variables, x, train=True, beta=beta, mutable=["batch_stats"])

    out, updated = run(variables, 3.0)
    np.testing.assert_allclose(out["relaxed"], np.tanh(3.0 * np.asarray(out["pre"])), rtol=1e-5)
    stem_before = variables["batch_stats"]["backbone"]["BatchNorm_0"]["mean"]
    assert not np.allclose(updated["batch_stats"]["backbone"]["BatchNorm_0"]["mean"], stem_before)


class _Counting:
    """An apply function that counts how often JAX traces it."""

    def __init__(self, model):
        self.model = model
        self.traces = 0

    def __call__(self, variables, x, **kwargs):
        self.traces += 1
        return self.model.apply(variables, x, **kwargs)


def test_encode_equals_sign_of_pre_for_every_batch_size():
    # ResNet in evaluation mode: BatchNorm running averages, so rows are independent.
    model = HashNetwork(ResNet(depth=8, widths=(2, 2, 4)), HashHead(5))
    rng = np.random.default_rng(2)
    x = rng.normal(size=(10, 8, 8, 1)).astype(np.float32)
    variables = _numpy_init(model, x, train=False)
    pre = np.asarray(jax.jit(lambda v: model.apply(v, x, train=False)["pre"])(variables))
    expected = np.where(pre >= 0, 1.0, -1.0)
    assert (expected == 1).any() and (expected == -1).any()

    apply_fn = _Counting(model)
    for batch_size in (4, 10, 64):
        result = encode(apply_fn, variables, x, batch_size=batch_size)
        assert result.dtype == np.float32 and result.shape == (10, 5)
        np.testing.assert_array_equal(result, expected)
    # One trace for batches of 4 (the last of 2 rows padded), one for a single batch of 10
    # (batch 64 is cut to the 10 inputs, the same shape); a second encode reuses the first.
    assert apply_fn.traces == 2
    encode(apply_fn, variables, x[:7], batch_size=4)
    assert apply_fn.traces == 2


def test_encode_zero_pre_is_plus_one_and_kwargs_are_passed():
    def apply_fn(variables, x, *, train, offset):
        assert train is False
        return {"pre": jnp.zeros((x.shape[0], 3)) + offset, "relaxed": jnp.zeros((x.shape[0], 3))}

    np.testing.assert_array_equal(
        encode(apply_fn, {}, np.ones((5, 2)), offset=0.0), np.ones((5, 3))
    )
    np.testing.assert_array_equal(
        encode(apply_fn, {}, np.ones((5, 2)), batch_size=2, offset=-1.0), -np.ones((5, 3))
    )


def test_encode_bad_input():
    model = HashNetwork(MLP((4,)), HashHead(2))
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        encode(model.apply, {}, np.zeros((3, 2)), batch_size=0)
    with pytest.raises(ValueError, match=r"N >= 1, got shape \(0, 2\)"):
        encode(model.apply, {}, np.zeros((0, 2)))


def test_num_params_counts_every_leaf():
    tree = {"a": np.zeros((3, 4)), "b": [np.zeros(5), {"c": np.zeros((2, 1, 2))}]}
    assert num_params(tree) == 12 + 5 + 4


def _cross_modal(bits=6):
    return CrossModalNetwork(
        image=HashNetwork(MLP((7,)), HashHead(bits)),
        text=HashNetwork(TextEncoder((5,)), HashHead(bits)),
    )


def test_cross_modal_network_runs_each_modality_through_its_own_network():
    model = _cross_modal()
    rng = np.random.default_rng(3)
    x = {"image": rng.normal(size=(4, 3, 3, 1)).astype(np.float32),
         "text": rng.integers(0, 2, (4, 9)).astype(np.float32)}
    variables = _numpy_init(model, x, train=False)
    assert set(variables["params"]) == {"image", "text"}  # the groups alternating updates use
    out = model.apply(variables, x, train=False)
    image_alone = model.image.apply({"params": variables["params"]["image"]}, x["image"],
                                    train=False)
    text_alone = model.text.apply({"params": variables["params"]["text"]}, x["text"], train=False)
    np.testing.assert_allclose(out["pre"]["image"], image_alone["pre"], rtol=1e-6)
    np.testing.assert_allclose(out["pre"]["text"], text_alone["pre"], rtol=1e-6)
    np.testing.assert_array_equal(out["stacked"][:, 0], out["relaxed"]["image"])
    np.testing.assert_array_equal(out["stacked"][:, 1], out["relaxed"]["text"])
    # Changing the text leaves the image outputs alone.
    changed = model.apply(variables, {**x, "text": 1.0 - x["text"]}, train=False)
    np.testing.assert_array_equal(changed["pre"]["image"], out["pre"]["image"])
    assert not np.allclose(changed["pre"]["text"], out["pre"]["text"])

    codes = encode(model.apply, variables, x, batch_size=3)
    assert set(codes) == {"image", "text"}
    for name in ("image", "text"):
        np.testing.assert_array_equal(codes[name], np.where(out["pre"][name] >= 0, 1.0, -1.0))


def test_cross_modal_network_bad_inputs():
    model = _cross_modal()
    with pytest.raises(ValueError, match=r"expects inputs \{'image'.*got \['image'\]"):
        model.init(jax.random.key(0), {"image": jnp.zeros((2, 4))}, train=False)
    mismatched = CrossModalNetwork(HashNetwork(MLP((3,)), HashHead(4)),
                                   HashNetwork(TextEncoder((3,)), HashHead(5)))
    with pytest.raises(ValueError, match=r"one shape \[B, L\].*\(2, 4\) and \(2, 5\)"):
        mismatched.init(jax.random.key(0), {"image": jnp.zeros((2, 4)), "text": jnp.zeros((2, 3))},
                        train=False)


def test_map_in_batches_pads_and_keeps_the_structure():
    x = {"image": np.arange(10.0).reshape(5, 2), "text": np.arange(5.0)[:, None]}
    sizes = []

    def fn(batch):
        sizes.append(batch["image"].shape[0])
        return {"sum": batch["image"].sum(axis=1) + batch["text"][:, 0]}

    out = map_in_batches(fn, x, batch_size=2)
    np.testing.assert_array_equal(out["sum"], [1.0, 6.0, 11.0, 16.0, 21.0])
    assert sizes == [2, 2, 2]  # the last batch is padded to the same size
    assert num_rows(x) == 5
    with pytest.raises(ValueError, match="same number of items"):
        num_rows({"image": np.zeros((3, 2)), "text": np.zeros((4, 2))})
