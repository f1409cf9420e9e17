"""DLBHC recipe: its loss against a hand-written softmax, its model and defaults, a tiny run."""

import math

import jax
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import models
from dlhash_jax import train
from dlhash_jax.methods import dlbhc


def _naive_softmax_loss(logits, labels):
    total = 0.0
    for row, label in zip(logits, labels):
        true_class = int(np.argmax(label))
        normaliser = sum(math.exp(float(z)) for z in row)
        total += -math.log(math.exp(float(row[true_class])) / normaliser)
    return total / len(logits)


def test_loss_is_the_softmax_loss_of_the_latent_classifier():
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0], [-0.5, 3.0, 1.0], [1.0, -2.0, 0.5]],
                      np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 2, 1, 2]]
    loss_fn = jax.jit(
        lambda out, batch: dlbhc.loss_fn(out, batch, methods.LossContext(hparams={}))
    )
    loss, terms = loss_fn({"logits": logits}, {"labels": labels})
    np.testing.assert_allclose(float(loss), _naive_softmax_loss(logits, labels), rtol=1e-6)
    assert terms == {"softmax": loss}


def test_recipe_defaults_and_latent_layer_model():
    recipe = methods.get_recipe("dlbhc")
    assert recipe is dlbhc.RECIPE
    # DLBHC trains with the classification loss alone: no loss hyper-parameters, no bank, no β.
    assert dict(recipe.default_hparams) == {}
    assert recipe.bank_output is None and recipe.beta_schedule is None
    assert "CVPR Workshops" in recipe.citation
    config = train.default_config()
    config.bits = 12
    config.model.features = (8,)
    model = recipe.make_model(config, 10)
    x = np.random.default_rng(1).normal(size=(5, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    out = model.apply(variables, x, train=False)
    assert out["logits"].shape == (5, 10) and out["latent"].shape == (5, 12)
    np.testing.assert_allclose(out["latent"], jax.nn.sigmoid(out["pre"]), rtol=1e-6)
    # The code is DLBHC's "latent unit fires above 0.5".
    codes = models.encode(model.apply, variables, x)
    np.testing.assert_array_equal(codes, np.where(np.asarray(out["latent"]) > 0.5, 1.0, -1.0))


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="dlbhc", bits=16, num_epochs=20, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
