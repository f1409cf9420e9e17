"""Order-sensitive hashing recipe: loss against a loop, defaults, config, a tiny run."""

import math

import jax
import numpy as np
import pytest
import train_helpers
from test_dsrh import naive_ranking

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import order_sensitive

from experiments.configs import order_sensitive as os_config


def _naive_order_sensitive(h, logits, labels, margin, lambda_c, lambda_q):
    """(1/B) Σ_q [L_R(x_q) + λ₁ L_C(x_q) + λ₂ L_Q(x_q)], term by term."""
    n, bits = h.shape
    ranking_sum, _ = naive_ranking(h, labels, margin)
    classification = quantization = 0.0
    for i in range(n):
        for c in range(labels.shape[1]):
            p = 1.0 / (1.0 + math.exp(-logits[i, c]))
            classification -= labels[i, c] * math.log(p) + (1 - labels[i, c]) * math.log(1 - p)
        for k in range(bits):
            quantization += (h[i, k] - (1.0 if h[i, k] >= 0 else -1.0)) ** 2
    return (ranking_sum + lambda_c * classification + lambda_q * quantization) / n


def test_loss_matches_loop_reference():
    rng = np.random.default_rng(0)
    h = np.tanh(rng.normal(scale=1.5, size=(7, 6))).astype(np.float32)
    logits = rng.normal(size=(7, 4)).astype(np.float32)
    labels = (rng.random((7, 4)) < 0.45).astype(np.float32)
    labels[0] = [1, 1, 1, 0]
    hparams = {"margin": 2.0, "lambda_classification": 0.5, "lambda_quantization": 0.25}
    loss, terms = jax.jit(
        lambda out, batch: order_sensitive.loss_fn(
            out, batch, methods.LossContext(hparams=hparams)
        )
    )({"relaxed": h, "logits": logits}, {"labels": labels})
    expected = _naive_order_sensitive(
        h.astype(np.float64), logits.astype(np.float64), labels.astype(np.float64), 2.0, 0.5,
        0.25,
    )
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert set(terms) == {"ranking", "classification", "quantization"}


def test_recipe_model_defaults_and_config():
    recipe = methods.get_recipe("order_sensitive")
    assert recipe is order_sensitive.RECIPE
    assert recipe.bank_output is None
    assert dict(recipe.default_hparams) == {
        "margin": 1.0, "lambda_classification": 1.0, "lambda_quantization": 1.0}
    assert "MICCAI 2018" in recipe.citation
    config = os_config.get_config()
    assert (config.method, config.protocol, config.bits) == ("order_sensitive", "digits_mosaic",
                                                              32)
    assert config.hparams.to_dict() == dict(order_sensitive.DEFAULT_HPARAMS)
    assert train.validate_config(config) is order_sensitive.RECIPE
    assert ("--config=experiments/configs/order_sensitive.py:digits_mosaic,bits=32"
            in os_config.__doc__)
    config.bits, config.model.features = 12, (8,)
    model = recipe.make_model(config, 10)
    x = np.random.default_rng(1).random((3, 16, 16, 1)).astype(np.float32)
    out = model.apply(model.init(jax.random.key(0), x, train=False), x, train=False)
    assert out["logits"].shape == (3, 10)
    np.testing.assert_allclose(out["relaxed"], np.tanh(out["pre"]), rtol=1e-6)


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="order_sensitive", bits=16, num_epochs=10, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
