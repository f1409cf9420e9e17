"""OrthoHash recipe: its loss against a loop over items and classes, the Bernoulli targets, the
batch-normalised code layer, defaults, configs and a tiny run."""

import math
import types

import jax
import ml_collections
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import orthohash

from experiments.configs import orthohash as orthohash_config


def _naive_orthohash(v, targets, labels, margin, scale_factor):
    """−mean_i Σ_k q_ik log softmax_k(√L f (cos(v_i, o_k) − m y_ik)), q_i = y_i / Σ y_i."""
    n, bits = v.shape
    scale = scale_factor * math.sqrt(bits)
    total = 0.0
    for i in range(n):
        mass = labels[i].sum()
        if mass == 0:
            continue
        logits = [
            scale * (float(np.dot(v[i], o) / (np.linalg.norm(v[i]) * np.linalg.norm(o)))
                     - margin * labels[i, k])
            for k, o in enumerate(targets)
        ]
        log_norm = math.log(sum(math.exp(z) for z in logits))
        total -= sum(labels[i, k] / mass * (logits[k] - log_norm) for k in range(len(targets)))
    return total / n


def _prepared(num_classes, bits, seed=0):
    split = types.SimpleNamespace(labels=np.zeros((3, num_classes), np.float32))
    config = ml_collections.ConfigDict({"bits": bits, "seed": seed})
    return orthohash.prepare(split, config)


@pytest.mark.parametrize("hparams", [{"margin": 0.2, "scale_factor": 1.0},
                                     {"margin": 0.4, "scale_factor": 0.5}])
def test_loss_matches_itemwise_reference(hparams):
    rng = np.random.default_rng(0)
    bits, num_classes = 16, 4
    prepared = _prepared(num_classes, bits)
    v = rng.normal(size=(6, bits)).astype(np.float32)
    # One-hot, multi-hot and unlabelled items.
    labels = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [1, 1, 0, 0], [0, 1, 1, 1], [0, 0, 0, 0],
                       [0, 0, 0, 1]], np.float32)
    loss, terms = jax.jit(
        lambda out, batch, prepared: orthohash.loss_fn(
            out, batch, methods.LossContext(prepared=prepared, hparams=hparams))
    )({"pre": v, "relaxed": v}, {"labels": labels}, prepared)
    expected = _naive_orthohash(v.astype(np.float64), prepared["targets"], labels,
                                hparams["margin"], hparams["scale_factor"])
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert set(terms) == {"cosine_margin"}


def test_targets_are_seeded_bernoulli_codes_one_per_class():
    targets = _prepared(10, 32, seed=3)["targets"]
    assert targets.shape == (10, 32) and targets.dtype == np.float32
    assert set(np.unique(targets)) == {-1.0, 1.0}
    np.testing.assert_array_equal(targets, _prepared(10, 32, seed=3)["targets"])
    assert not np.array_equal(targets, _prepared(10, 32, seed=4)["targets"])
    # Fair coins: about half the bits are +1, and distinct classes are about L/2 apart.
    many = orthohash.draw_targets(200, 64, 0)
    assert abs(many.mean()) < 0.02
    distances = (64 - many @ many.T)[~np.eye(200, dtype=bool)] / 2
    assert abs(distances.mean() - 32) < 0.5
    # Few bits: a draw with two equal targets is drawn again, so classes stay distinguishable.
    for seed in range(20):
        small = orthohash.draw_targets(10, 5, seed)
        assert len(np.unique(small, axis=0)) == 10


def test_code_layer_is_batch_normalised_and_codes_depend_on_the_item_alone():
    config = train.default_config()
    config.bits = 12
    config.model.features = (16,)
    model = orthohash.make_model(config, 10)
    assert model.bn_axis_name == methods.AXIS_NAME
    x = np.random.default_rng(1).normal(size=(8, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    assert set(variables) == {"params", "batch_stats"}
    assert "bias" not in variables["params"]["hash"]
    out = model.apply(variables, x, train=False)
    assert out["pre"].shape == (8, 12)
    np.testing.assert_array_equal(out["relaxed"], out["pre"])
    np.testing.assert_allclose(model.apply(variables, x[:3], train=False)["pre"], out["pre"][:3],
                               rtol=1e-5, atol=1e-6)
    # In training the batch statistics normalise every bit (γ = 1, β = 0 at initialisation):
    # mean 0, variance var / (var + ε) of the linear layer's. The axis name needs a mapped axis,
    # as in the training step; without one the statistics are the batch's.
    train_model = model.clone(bn_axis_name=None)
    trained, state = train_model.apply(variables, x, train=True, mutable=["batch_stats"])
    linear = np.asarray(trained["features"]) @ np.asarray(variables["params"]["hash"]["kernel"])
    np.testing.assert_allclose(np.mean(trained["pre"], axis=0), 0.0, atol=1e-4)
    variance = np.var(linear, axis=0)
    np.testing.assert_allclose(np.var(trained["pre"], axis=0), variance / (variance + 1e-5),
                               rtol=1e-3)
    assert not np.allclose(state["batch_stats"]["code_norm"]["mean"], 0.0)


def test_recipe_defaults_are_the_papers():
    recipe = methods.get_recipe("orthohash")
    assert recipe is orthohash.RECIPE
    assert recipe.bank_output is None and recipe.prepare is orthohash.prepare
    assert dict(recipe.default_hparams) == {"margin": 0.2, "scale_factor": 1.0}
    assert "NeurIPS 2021" in recipe.citation
    assert str(recipe.taxonomy) == "single × single"


def test_config_defaults():
    config = orthohash_config.get_config()
    assert (config.method, config.protocol, config.bits) == ("orthohash", "digits", 32)
    assert config.hparams.to_dict() == dict(orthohash.DEFAULT_HPARAMS)
    assert train.validate_config(config) is orthohash.RECIPE
    doc = orthohash_config.__doc__
    assert "--config=experiments/configs/orthohash.py:digits,bits=32" in doc
    assert "--config=experiments/configs/orthohash.py:digits_mosaic,bits=32" in doc
    mosaic = orthohash_config.get_config("digits_mosaic,bits=32")
    assert mosaic.model.backbone == "mlp" and mosaic.num_devices == 1
    assert train.validate_config(mosaic) is orthohash.RECIPE


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="orthohash", bits=16, num_epochs=10, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
