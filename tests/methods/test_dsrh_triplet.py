"""DSRH (triplet form) recipe: loss against loops, two-stream model, defaults, a tiny run."""

import itertools
import math

import jax
import numpy as np
import pytest
import train_helpers

from dlhash_jax import codes
from dlhash_jax import methods
from dlhash_jax import models
from dlhash_jax import train
from dlhash_jax.methods import dsrh_triplet

HPARAMS = {"margin": 1.0, "orthogonality": 0.01, "classification": 1.0}


def _naive_dsrh(relaxed, logits, labels, hparams):
    """Triplet loss on h = (a + 1) / 2 + λ_orth Σ_kl (mean_i a_ik a_il − δ_kl)² + λ_cls CE."""
    h = (relaxed + 1.0) / 2.0
    classes = labels.argmax(axis=1)
    n, bits = relaxed.shape
    hinges = []
    for i, p, q in itertools.product(range(n), repeat=3):
        if p != i and classes[p] == classes[i] and classes[q] != classes[i]:
            hinges.append(max(0.0, np.sum((h[i] - h[p]) ** 2) - np.sum((h[i] - h[q]) ** 2)
                              + hparams["margin"]))
    orthogonality = 0.0
    for k in range(bits):
        for m in range(bits):
            moment = sum(relaxed[i, k] * relaxed[i, m] for i in range(n)) / n
            orthogonality += (moment - (k == m)) ** 2
    cross_entropy = 0.0
    for i in range(n):
        normaliser = math.log(sum(math.exp(z) for z in logits[i]))
        cross_entropy += normaliser - logits[i, classes[i]]
    return (np.mean(hinges) + hparams["orthogonality"] * orthogonality
            + hparams["classification"] * cross_entropy / n)


def test_loss_matches_reference():
    rng = np.random.default_rng(0)
    relaxed = rng.uniform(-1.0, 1.0, size=(6, 4)).astype(np.float32)
    logits = rng.normal(size=(6, 3)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 0]]
    loss_fn = jax.jit(
        lambda out, batch: dsrh_triplet.loss_fn(out, batch, methods.LossContext(hparams=HPARAMS))
    )
    loss, terms = loss_fn({"relaxed": relaxed, "logits": logits}, {"labels": labels})
    expected = _naive_dsrh(relaxed.astype(np.float64), logits.astype(np.float64), labels, HPARAMS)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert set(terms) == {"triplet", "orthogonality", "classification"}
    np.testing.assert_allclose(
        float(loss),
        float(terms["triplet"]) + 0.01 * float(terms["orthogonality"])
        + float(terms["classification"]),
        rtol=1e-6,
    )


def test_recipe_defaults_and_two_stream_model():
    recipe = methods.get_recipe("dsrh_triplet")
    assert recipe is dsrh_triplet.RECIPE and recipe.bank_output is None
    assert dict(recipe.default_hparams) == HPARAMS
    assert "IJCAI 2016" in recipe.citation
    config = train.default_config()
    config.bits = 4
    config.model.features = (12,)
    model = recipe.make_model(config, 3)
    x = np.random.default_rng(1).normal(size=(5, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    head = variables["params"]["head"]
    assert head["hash"]["kernel"].shape == (4, 3)  # 12 features in 4 bags of 3
    assert head["classifier"]["kernel"].shape == (12, 3)  # the classifier reads the features
    out = model.apply(variables, x, train=False)
    assert out["logits"].shape == (5, 3)
    # Sigmoid bags without a threshold: relaxed = 2σ(pre) − 1 everywhere.
    np.testing.assert_allclose(out["relaxed"], np.tanh(0.5 * out["pre"]), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        out["logits"], out["features"] @ head["classifier"]["kernel"] + head["classifier"]["bias"],
        rtol=1e-5, atol=1e-6)
    assert set(np.unique(codes.sign(out["pre"]))) <= {-1.0, 1.0}
    assert isinstance(model, models.HashNetwork)


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="dsrh_triplet", bits=16, num_epochs=20, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
