"""BiHalf recipe: loss against a loop over the authors' half-batch pairs of the batch-median
codes, the layer's gradient through the recipe, no use of labels, defaults, config, a tiny run."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import train_helpers

from dlhash_jax import losses
from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import bihalf

from experiments.configs import bihalf as bihalf_config


def _cos(u, v):
    return float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))


def _naive_bihalf_codes(u):
    """The authors' layer: sort each column descending, the first int(N/2) rows get +1."""
    n, bits = u.shape
    b = -np.ones((n, bits))
    for k in range(bits):
        for i in sorted(range(n), key=lambda i: (-u[i, k], i))[: n // 2]:
            b[i, k] = 1.0
    return b


def _naive_bihalf(u, inputs, mean=0.0):
    """Cifar10_I.py: mse_loss of cos(b[:N/2], b[N/2:]) against cos(x[:N/2], x[N/2:]); x the
    flattened inputs minus ``mean``."""
    n = len(u)
    x = inputs.reshape(n, -1) - mean
    b = _naive_bihalf_codes(u)
    half = n // 2
    return sum((_cos(b[i], b[half + i]) - _cos(x[i], x[half + i])) ** 2
               for i in range(half)) / half


def _loss(u, inputs, gamma=6.0, labels=None, prepared=None):
    batch = {"inputs": inputs}
    if labels is not None:
        batch["labels"] = labels
    hparams = {"gamma": gamma, "center_features": prepared is not None}
    ctx = methods.LossContext(hparams=hparams, prepared=prepared)
    return bihalf.loss_fn({"pre": u, "relaxed": u}, batch, ctx)


@pytest.mark.parametrize("n", [8, 9])
def test_loss_matches_loop_reference(n):
    rng = np.random.default_rng(n)
    u = rng.normal(size=(n, 6)).astype(np.float32)
    inputs = rng.uniform(size=(n, 4, 4, 1)).astype(np.float32)
    loss, terms = jax.jit(_loss)(u, inputs)
    expected = _naive_bihalf(u.astype(np.float64), inputs.astype(np.float64))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert float(terms["similarity"]) == float(loss)
    codes = _naive_bihalf_codes(u)
    np.testing.assert_allclose(float(terms["quantization"]), np.mean((u - codes) ** 2),
                               rtol=1e-5)


def test_loss_with_centred_features_matches_loop_reference():
    rng = np.random.default_rng(11)
    train_inputs = rng.uniform(size=(12, 3, 3, 1)).astype(np.float32)
    split = types.SimpleNamespace(inputs=train_inputs, labels=np.zeros((12, 2), np.float32))
    prepared = bihalf.RECIPE.prepare(split, None)
    mean = train_inputs.reshape(12, -1).astype(np.float64).mean(0)
    np.testing.assert_allclose(prepared["feature_mean"], mean, rtol=1e-6)
    u = rng.normal(size=(8, 5)).astype(np.float32)
    inputs = rng.uniform(size=(8, 3, 3, 1)).astype(np.float32)
    loss, _ = jax.jit(lambda u, x, prep: _loss(u, x, prepared=prep))(u, inputs, prepared)
    expected = _naive_bihalf(u.astype(np.float64), inputs.astype(np.float64), mean)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_gradient_is_the_codes_gradient_plus_the_scaled_pull():
    rng = np.random.default_rng(3)
    u = rng.normal(size=(6, 5)).astype(np.float32)
    inputs = rng.uniform(size=(6, 9)).astype(np.float32)
    codes = _naive_bihalf_codes(u).astype(np.float32)
    half = 3

    def loss_of_codes(b):
        return losses.cosine_similarity_matching_loss(b[:half], b[half:], inputs[:half],
                                                      inputs[half:])

    for gamma in (0.0, 6.0):
        grad = jax.grad(lambda x: _loss(x, inputs, gamma)[0])(u)
        expected = jax.grad(loss_of_codes)(codes) + gamma * (u - codes) / u.size
        np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)


def test_hand_made_batch():
    # Column k of U ranks the 4 items; the top two get +1. Pairs (0, 2) and (1, 3).
    u = np.array([[4.0, 1.0], [3.0, 4.0], [2.0, 3.0], [1.0, 2.0]], np.float32)
    # Codes: column 0 → [+, +, −, −]; column 1 → [−, +, +, −]:
    # b0 = [+, −], b1 = [+, +], b2 = [−, +], b3 = [−, −]; cos(b0, b2) = −1, cos(b1, b3) = −1.
    inputs = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    # Feature cosines: (0, 2) → 0, (1, 3) → 1. Gaps: 1 and 2.
    loss, _ = _loss(u, inputs)
    assert float(loss) == pytest.approx((1.0 + 4.0) / 2, rel=1e-6)


def test_loss_ignores_labels():
    rng = np.random.default_rng(1)
    u = rng.normal(size=(8, 6)).astype(np.float32)
    inputs = rng.uniform(size=(8, 8, 8, 1)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    loss, _ = _loss(u, inputs, labels=labels)
    for seed in range(3):
        shuffled = np.random.default_rng(seed).permutation(labels)
        assert float(_loss(u, inputs, labels=shuffled)[0]) == float(loss)


def test_batch_of_one_is_refused():
    with pytest.raises(ValueError, match=r"at least 2 rows to split in half"):
        _loss(np.ones((1, 4), np.float32), np.ones((1, 3), np.float32))


def test_recipe_defaults_and_model():
    recipe = methods.get_recipe("bihalf")
    assert recipe is bihalf.RECIPE
    # γ is the authors'; centring the features is ours (module docstring).
    assert dict(recipe.default_hparams) == {"gamma": 6.0, "center_features": True}
    assert recipe.bank_output is None and recipe.prepare is not None
    assert recipe.taxonomy == methods.Taxonomy("none", "single")
    for author in ("Yunqiang Li", "Jan van Gemert"):
        assert author in recipe.citation
    assert "AAAI 2021" in recipe.citation
    config = train.default_config()
    config.bits = 12
    config.model.features = (8,)
    model = recipe.make_model(config, 10)
    x = np.random.default_rng(2).normal(size=(3, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    out = model.apply(variables, x, train=False)
    # A linear hash layer: the split happens in the loss, the codes of evaluation are sgn(pre).
    assert out["pre"].shape == (3, 12)
    np.testing.assert_array_equal(out["relaxed"], out["pre"])


def test_config_defaults():
    config = bihalf_config.get_config()
    assert (config.method, config.protocol, config.bits) == ("bihalf", "digits", 32)
    assert config.hparams.to_dict() == dict(bihalf.DEFAULT_HPARAMS)
    assert train.validate_config(config) is bihalf.RECIPE
    assert "--config=experiments/configs/bihalf.py:digits,bits=32" in bihalf_config.__doc__


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="bihalf", bits=16, num_epochs=20, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 1e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    # Measured (seed 0): validation mAP 0.29 before, 0.57 after.
    assert after > before + 0.15, (before, after)
    assert after > 0.45, (before, after)
