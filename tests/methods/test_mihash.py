"""MIHash recipe: its loss against the per-query mutual information of a loop, the relaxed codes
φ = 2σ(a u) − 1, defaults, config and a tiny run."""

import math

import jax
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import mihash

from experiments.configs import mihash as mihash_config


def _entropy(p):
    return -sum(v * math.log2(v) for v in p if v > 0)


def _naive_mihash(u, labels, num_bins, sharpness):
    """−mean over items of I(C; D) against the rest of the batch, φ = 2σ(a u) − 1, log2."""
    n, bits = u.shape
    phi = 2 / (1 + np.exp(-sharpness * u)) - 1
    width = bits / num_bins
    total = 0.0
    for i in range(n):
        hist = {True: np.zeros(num_bins + 1), False: np.zeros(num_bins + 1)}
        for j in range(n):
            if j == i:
                continue
            d = (bits - float(phi[i] @ phi[j])) / 2
            neighbour = bool(labels[i] @ labels[j] > 0)
            for k in range(num_bins + 1):
                hist[neighbour][k] += max(0.0, 1 - abs(d - k * width) / width)
        n_pos = sum(1 for j in range(n) if j != i and labels[i] @ labels[j] > 0)
        n_neg = n - 1 - n_pos
        p_d = (hist[True] + hist[False]) / (n - 1)
        h_pos = _entropy(hist[True] / n_pos) if n_pos else 0.0
        h_neg = _entropy(hist[False] / n_neg) if n_neg else 0.0
        total += _entropy(p_d) - n_pos / (n - 1) * h_pos - n_neg / (n - 1) * h_neg
    return -total / n


@pytest.mark.parametrize("hparams", [{"num_bins": 12, "sharpness": 30.0},
                                     {"num_bins": 8, "sharpness": 1.0}])
def test_loss_matches_itemwise_reference(hparams):
    rng = np.random.default_rng(0)
    u = rng.normal(scale=0.3, size=(9, 16)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2, 0, 0, 1]]
    loss, terms = jax.jit(
        lambda out, batch: mihash.loss_fn(out, batch, methods.LossContext(hparams=hparams))
    )({"pre": u, "relaxed": u}, {"labels": labels})
    expected = _naive_mihash(u.astype(np.float64), labels, **hparams)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-4, atol=1e-6)
    assert set(terms) == {"mutual_information"}
    assert float(terms["mutual_information"]) == pytest.approx(-float(loss))


def test_recipe_defaults_and_model():
    recipe = methods.get_recipe("mihash")
    assert recipe is mihash.RECIPE
    assert recipe.bank_output is None
    assert dict(recipe.default_hparams) == {"num_bins": 12, "sharpness": 30.0}
    assert "ICCV 2017" in recipe.citation and "TPAMI 2019" in recipe.citation
    assert str(recipe.taxonomy) == "single × pairs"
    config = train.default_config()
    config.bits = 12
    config.model.features = (8,)
    model = recipe.make_model(config, 10)
    x = np.random.default_rng(1).normal(size=(3, 8, 8, 1)).astype(np.float32)
    out = model.apply(model.init(jax.random.key(0), x, train=False), x, train=False)
    # A linear hash layer: the loss maps u to φ itself.
    np.testing.assert_array_equal(out["relaxed"], out["pre"])


def test_config_defaults():
    config = mihash_config.get_config()
    assert (config.method, config.protocol, config.bits) == ("mihash", "digits", 32)
    assert config.hparams.to_dict() == dict(mihash.DEFAULT_HPARAMS)
    assert train.validate_config(config) is mihash.RECIPE
    assert "--config=experiments/configs/mihash.py:digits,bits=32" in mihash_config.__doc__


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="mihash", bits=16, num_epochs=10, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
