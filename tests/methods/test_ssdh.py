"""SSDH recipe: its loss against the paper's three terms written on the sigmoid layer, its
defaults, and a tiny run."""

import math

import jax
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import ssdh


def _naive_ssdh(pre, logits, labels, alpha, beta, gamma):
    """(α E1 + β E2 + γ E3) / N of the paper, on h = σ(pre), sample by sample."""
    num_samples, num_bits = pre.shape
    e1 = e2 = e3 = 0.0
    for n in range(num_samples):
        h = [1.0 / (1.0 + math.exp(-float(z))) for z in pre[n]]
        normaliser = sum(math.exp(float(z)) for z in logits[n])
        e1 += -math.log(math.exp(float(logits[n][int(np.argmax(labels[n]))])) / normaliser)
        e2 += -sum((hk - 0.5) ** 2 for hk in h) / num_bits
        e3 += (sum(h) / num_bits - 0.5) ** 2
    return (alpha * e1 + beta * e2 + gamma * e3) / num_samples, e1, e2, e3


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0), (0.5, 2.0, 3.0)])
def test_loss_matches_the_papers_terms(weights):
    alpha, beta, gamma = weights
    rng = np.random.default_rng(0)
    pre = rng.normal(scale=2.0, size=(5, 6)).astype(np.float32)
    pre[0] = 4.0  # a code with every bit on: the balance term is far from 0 for this sample
    logits = rng.normal(size=(5, 4)).astype(np.float32)
    labels = np.eye(4, dtype=np.float32)[[0, 3, 1, 1, 2]]
    outputs = {"relaxed": np.tanh(pre / 2), "logits": logits}
    loss_fn = jax.jit(
        lambda out, batch, hp: ssdh.loss_fn(out, batch, methods.LossContext(hparams=hp))
    )
    hparams = {"alpha": alpha, "beta": beta, "gamma": gamma}
    loss, terms = loss_fn(outputs, {"labels": labels}, hparams)
    expected, e1, e2, e3 = _naive_ssdh(pre, logits, labels, alpha, beta, gamma)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    np.testing.assert_allclose(float(terms["softmax"]), e1 / 5, rtol=1e-5)
    np.testing.assert_allclose(float(terms["binarization"]), e2 / 5, rtol=1e-5)
    np.testing.assert_allclose(float(terms["balance"]), e3 / 5, rtol=1e-5)


def test_binary_balanced_codes_reach_the_minimum_of_both_code_terms():
    # Saturated units (h ∈ {0, 1}) with half of each code on: E2 = −1/4 per sample, E3 = 0.
    relaxed = np.array([[1.0, -1.0, 1.0, -1.0], [-1.0, -1.0, 1.0, 1.0]], np.float32)
    _, terms = ssdh.loss_fn(
        {"relaxed": relaxed, "logits": np.zeros((2, 3), np.float32)},
        {"labels": np.eye(3, dtype=np.float32)[[0, 1]]},
        methods.LossContext(hparams=dict(ssdh.DEFAULT_HPARAMS)),
    )
    np.testing.assert_allclose(float(terms["binarization"]), -0.25, rtol=1e-6)
    np.testing.assert_allclose(float(terms["balance"]), 0.0, atol=1e-7)


def test_recipe_defaults_are_the_papers():
    recipe = methods.get_recipe("ssdh")
    assert recipe is ssdh.RECIPE
    # α = β = γ = 1, the weights of the authors' released model.
    assert dict(recipe.default_hparams) == {"alpha": 1.0, "beta": 1.0, "gamma": 1.0}
    assert recipe.bank_output is None and recipe.beta_schedule is None
    assert "TPAMI" in recipe.citation
    config = train.default_config()
    config.bits = 12
    config.model.features = (8,)
    model = recipe.make_model(config, 10)
    x = np.random.default_rng(1).normal(size=(3, 8, 8, 1)).astype(np.float32)
    out = model.apply(model.init(jax.random.key(0), x, train=False), x, train=False)
    np.testing.assert_allclose(out["relaxed"], 2 * out["latent"] - 1, atol=1e-6)
    assert out["logits"].shape == (3, 10)


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="ssdh", bits=16, num_epochs=20, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
