"""Discrete supervised recipe: eq 14 against the bank's codes written pair by pair, the bank
entering only through its signs, the paper's defaults, and a tiny run."""

import jax
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import discrete_supervised


def _naive_loss(a, bank, batch_labels, bank_labels, dissimilar, quantization_weight):
    """mean_ij (L t_ij − a_i·sgn(u_j))² + λ mean_i ‖a_i − sgn(a_i)‖², with sgn(0) = +1."""
    bits = a.shape[1]
    terms = []
    for i in range(a.shape[0]):
        for j in range(bank.shape[0]):
            code = np.where(bank[j] >= 0, 1.0, -1.0)
            target = 1.0 if np.dot(batch_labels[i], bank_labels[j]) > 0 else dissimilar
            terms.append((bits * target - float(np.dot(a[i], code))) ** 2)
    quantization = np.mean([np.sum((row - np.where(row >= 0, 1.0, -1.0)) ** 2) for row in a])
    return np.mean(terms) + quantization_weight * quantization


def _loss(a, bank, batch_labels, bank_labels, hparams):
    memory = methods.MemoryBank(outputs=bank, labels=bank_labels)
    return discrete_supervised.loss_fn(
        {"relaxed": a}, {"labels": batch_labels}, methods.LossContext(bank=memory, hparams=hparams)
    )


@pytest.mark.parametrize("dissimilar", [-1.0, 0.0])
def test_loss_matches_pairwise_reference(dissimilar):
    rng = np.random.default_rng(0)
    a = np.tanh(rng.normal(size=(4, 6))).astype(np.float32)
    bank = rng.normal(size=(9, 6)).astype(np.float32)
    bank[0, 2] = 0.0  # sgn(0) = +1
    batch_labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 1]]
    bank_labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 9)]
    hparams = {"dissimilar": dissimilar, "quantization_weight": 0.5}
    loss, terms = jax.jit(_loss)(a, bank, batch_labels, bank_labels, hparams)
    expected = _naive_loss(a, bank, batch_labels, bank_labels, **hparams)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    np.testing.assert_allclose(
        float(loss), float(terms["inner_product"]) + 0.5 * float(terms["quantization"]),
        rtol=1e-6,
    )


def test_bank_enters_only_through_its_codes():
    rng = np.random.default_rng(1)
    a = np.tanh(rng.normal(size=(3, 5))).astype(np.float32)
    bank = rng.normal(size=(7, 5)).astype(np.float32)
    labels = np.eye(2, dtype=np.float32)[[0, 1, 0]]
    bank_labels = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 7)]
    hparams = dict(discrete_supervised.DEFAULT_HPARAMS)
    rescaled = bank * rng.uniform(0.1, 10.0, size=bank.shape).astype(np.float32)
    np.testing.assert_allclose(
        float(_loss(a, bank, labels, bank_labels, hparams)[0]),
        float(_loss(a, rescaled, labels, bank_labels, hparams)[0]),
        rtol=1e-6,
    )


def test_recipe_defaults_are_the_papers():
    recipe = methods.get_recipe("discrete_supervised")
    assert recipe is discrete_supervised.RECIPE
    assert recipe.bank_output == "relaxed"
    assert dict(recipe.default_hparams) == {"dissimilar": -1.0, "quantization_weight": 1e-4}
    assert "TCSVT" in recipe.citation
    config = train.default_config()
    config.bits = 12
    config.model.features = (8,)
    model = recipe.make_model(config, 10)
    x = np.random.default_rng(2).normal(size=(3, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    out = model.apply(variables, x, train=False)
    np.testing.assert_allclose(out["relaxed"], np.tanh(out["pre"]), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="discrete_supervised", bits=16, num_epochs=40, eval_every=0,
        checkpoint_every=1000, log_every=100,
        **{"model.features": (64,), "optimizer.learning_rate": 1e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
