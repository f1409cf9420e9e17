"""Hinge-softmax recipe: its loss against a per-sample loop, its model and defaults, a tiny
run."""

import math

import jax
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import hinge_softmax


def _softmax(row):
    exps = [math.exp(float(z)) for z in row]
    return [e / sum(exps) for e in exps]


def _naive_hinge_softmax_recipe(pre, logits, feature_logits, labels, margin, softmax_weight,
                                constraint_weight):
    total_softmax = total_hinge = total_constraint = 0.0
    for n in range(len(pre)):
        y = int(np.argmax(labels[n]))
        total_softmax += -math.log(_softmax(feature_logits[n])[y])
        p = _softmax(logits[n])
        rival = max(p[c] for c in range(len(p)) if c != y)
        total_hinge += 0.0 if p[y] >= rival + margin else -math.log(p[y])
        total_constraint += sum((1 - abs(min(max(float(a), -1.0), 1.0))) ** 2 for a in pre[n])
    n = len(pre)
    return (
        softmax_weight * total_softmax + total_hinge + constraint_weight * total_constraint
    ) / n


def test_loss_matches_per_sample_loop():
    pre = np.array([[0.5, -3.0, 0.9], [2.0, 1.0, -0.2], [0.0, -1.0, 1.5], [-0.7, 0.3, 4.0]],
                   np.float32)
    # Rows 0 and 2 meet the margin 0.5 (p_y ≈ 0.84 and 0.99), rows 1 and 3 do not.
    logits = np.array([[3.0, 1.0, 0.0], [1.0, 1.2, 0.0], [0.0, 0.0, 5.0], [2.0, -1.0, 1.5]],
                      np.float32)
    feature_logits = np.array([[1.0, 0.0, 0.0], [0.3, 0.2, 0.1], [0.0, 2.0, 1.0],
                               [-1.0, 0.0, 1.0]], np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 0, 2, 0]]
    hparams = {"margin": 0.5, "softmax_weight": 0.7, "constraint_weight": 0.3}
    loss_fn = jax.jit(
        lambda out, batch: hinge_softmax.loss_fn(out, batch, methods.LossContext(hparams=hparams))
    )
    outputs = {"pre": pre, "relaxed": np.clip(pre, -1, 1), "logits": logits,
               "feature_logits": feature_logits}
    loss, terms = loss_fn(outputs, {"labels": labels})
    expected = _naive_hinge_softmax_recipe(pre, logits, feature_logits, labels, **hparams)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert set(terms) == {"softmax", "hinge_softmax", "hash_constraint"}
    # Only rows 1 and 3 cost −log p_y.
    p1, p3 = _softmax(logits[1])[0], _softmax(logits[3])[0]
    np.testing.assert_allclose(float(terms["hinge_softmax"]),
                               (-math.log(p1) - math.log(p3)) / 4, rtol=1e-5)


def test_recipe_defaults_and_clipped_hash_layer():
    recipe = methods.get_recipe("hinge_softmax")
    assert recipe is hinge_softmax.RECIPE
    # Our documented choices (the survey gives no values; see the module docstring).
    assert dict(recipe.default_hparams) == {
        "margin": 0.5, "softmax_weight": 1.0, "constraint_weight": 0.1}
    assert recipe.bank_output is None and recipe.beta_schedule is None
    assert "PAKDD 2016" in recipe.citation
    config = train.default_config()
    config.bits = 12
    config.model.features = (8,)
    model = recipe.make_model(config, 10)
    x = 10 * np.random.default_rng(1).normal(size=(4, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    out = model.apply(variables, x, train=False)
    assert out["logits"].shape == out["feature_logits"].shape == (4, 10)
    assert np.abs(out["pre"]).max() > 1  # large inputs: some outputs are clipped
    np.testing.assert_array_equal(out["relaxed"], np.clip(out["pre"], -1, 1))
    head = variables["params"]["head"]
    expected_logits = out["relaxed"] @ head["classifier"]["kernel"] + head["classifier"]["bias"]
    np.testing.assert_allclose(out["logits"], expected_logits, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="hinge_softmax", bits=16, num_epochs=20, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
