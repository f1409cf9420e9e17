"""DNNH recipe: its loss against a loop over triplets, its model and defaults, a tiny run."""

import itertools

import jax
import numpy as np
import pytest
import train_helpers

from dlhash_jax import codes
from dlhash_jax import methods
from dlhash_jax import models
from dlhash_jax import train
from dlhash_jax.methods import dnnh


def _naive_dnnh(relaxed, labels, margin):
    """DNNH's loss on the [0, 1] outputs F = (a + 1) / 2, averaged over the batch's triplets."""
    outputs = (relaxed + 1.0) / 2.0
    classes = labels.argmax(axis=1)
    hinges = []
    for i, p, n in itertools.product(range(len(classes)), repeat=3):
        if p != i and classes[p] == classes[i] and classes[n] != classes[i]:
            gap = np.sum((outputs[i] - outputs[n]) ** 2) - np.sum((outputs[i] - outputs[p]) ** 2)
            hinges.append(max(0.0, margin - gap))
    return np.mean(hinges)


def test_loss_matches_triplet_reference():
    rng = np.random.default_rng(0)
    relaxed = rng.uniform(-1.0, 1.0, size=(7, 5)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 0, 2]]
    loss_fn = jax.jit(
        lambda out, batch: dnnh.loss_fn(
            out, batch, methods.LossContext(hparams={"margin": 1.0, "epsilon": 0.1}))
    )
    loss, terms = loss_fn({"relaxed": relaxed}, {"labels": labels})
    np.testing.assert_allclose(float(loss), _naive_dnnh(relaxed, labels, 1.0), rtol=1e-5)
    assert set(terms) == {"triplet"}


def test_hand_made_triplet():
    # F(anchor) = F(positive) = (1, 1), F(negative) = (1, 0): gap 1, so the hinge is exactly 0;
    # moving the negative to (1, 0.5) halves the gap to 0.25 and the loss is 1 − 0.25.
    labels = np.eye(2, dtype=np.float32)[[0, 0, 1]]
    hparams = {"margin": 1.0, "epsilon": 0.1}
    relaxed = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, -1.0]], np.float32)
    loss, _ = dnnh.loss_fn(
        {"relaxed": relaxed}, {"labels": labels}, methods.LossContext(hparams=hparams)
    )
    assert float(loss) == pytest.approx(0.0, abs=1e-6)
    relaxed[2] = [1.0, 0.0]
    loss, _ = dnnh.loss_fn(
        {"relaxed": relaxed}, {"labels": labels}, methods.LossContext(hparams=hparams)
    )
    assert float(loss) == pytest.approx(0.75, abs=1e-6)


def test_recipe_defaults_and_divide_and_encode_model():
    recipe = methods.get_recipe("dnnh")
    assert recipe is dnnh.RECIPE and recipe.bank_output is None
    assert dict(recipe.default_hparams) == {"margin": 1.0, "epsilon": 0.1}
    assert "CVPR 2015" in recipe.citation
    config = train.default_config()
    config.bits = 8
    config.model.features = (16,)
    config.hparams.epsilon = 0.2
    model = recipe.make_model(config, 10)
    assert isinstance(model.head, models.DivideAndEncode)
    assert (model.head.relaxation, model.head.epsilon) == ("threshold", 0.2)
    x = np.random.default_rng(1).normal(size=(4, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    assert variables["params"]["head"]["kernel"].shape == (8, 2)  # 16 features, 2 per bit
    out = model.apply(variables, x, train=False)
    assert out["pre"].shape == out["relaxed"].shape == (4, 8)
    assert np.all(np.abs(out["relaxed"]) <= 1.0)
    np.testing.assert_array_equal(codes.sign(out["relaxed"]), codes.sign(out["pre"]))


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="dnnh", bits=16, num_epochs=20, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
