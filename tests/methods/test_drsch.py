"""DRSCH recipe: its loss against loops (and the paper's max{·, C} form), its model and defaults,
a tiny run."""

import itertools

import jax
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import models
from dlhash_jax import train
from dlhash_jax.methods import drsch

HPARAMS = {"margin_per_bit": 0.25, "laplacian": 1.0}


def _weighted_distance(r1, r2, weights):
    """d_w = Σ_k w_k² (1 − r1_k r2_k) / 2: differing bits of ±1 codes, each weighing w_k²."""
    return float(np.sum(weights**2 * (1.0 - r1 * r2)) / 2.0)


def _triplet_gaps(r, labels, weights):
    """d_w(i, i⁺) − d_w(i, i⁻) over every (anchor, positive, negative) of the batch."""
    classes = labels.argmax(axis=1)
    return [
        _weighted_distance(r[i], r[p], weights) - _weighted_distance(r[i], r[n], weights)
        for i, p, n in itertools.product(range(len(classes)), repeat=3)
        if p != i and classes[p] == classes[i] and classes[n] != classes[i]
    ]


def _laplacian(r, labels):
    """(1/(2N²)) Σ_ij s_ij ‖r_i − r_j‖² with s_ij = 1 for a shared label."""
    n = len(r)
    total = sum(
        float(labels[i] @ labels[j] > 0) * np.sum((r[i] - r[j]) ** 2)
        for i in range(n) for j in range(n)
    )
    return total / (2 * n * n)


def _outputs(r, weights):
    return {"relaxed": r, "weighted": r * weights}


def test_loss_matches_reference_and_paper_form():
    rng = np.random.default_rng(0)
    r = rng.uniform(-1.0, 1.0, size=(7, 4)).astype(np.float32)
    weights = rng.uniform(0.5, 1.5, size=4).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 0, 2]]
    loss_fn = jax.jit(
        lambda out, batch: drsch.loss_fn(out, batch, methods.LossContext(hparams=HPARAMS))
    )
    loss, terms = loss_fn(_outputs(r, weights), {"labels": labels})
    margin = 0.25 * 4
    gaps = _triplet_gaps(r.astype(np.float64), labels, weights.astype(np.float64))
    triplet = np.mean([max(0.0, gap + margin) for gap in gaps])
    laplacian = _laplacian(r.astype(np.float64), labels)
    np.testing.assert_allclose(float(terms["triplet"]), triplet, rtol=1e-5)
    np.testing.assert_allclose(float(terms["laplacian"]), laplacian, rtol=1e-5)
    np.testing.assert_allclose(float(loss), triplet + laplacian, rtol=1e-5)
    # DRSCH's max{d⁺ − d⁻, C} with C = −margin is the hinge up to the constant C.
    paper = np.mean([max(gap, -margin) for gap in gaps])
    np.testing.assert_allclose(paper + margin, float(terms["triplet"]), rtol=1e-5)


def test_hand_made_batch():
    # Codes (1, 1), (1, 1), (−1, 1) with weights (2, 1): d_w(anchor, negative) = 4, the
    # positive is at 0, so the margin 0.25 · 2 = 0.5 is met; the positives are one class and
    # share their code, so the Laplacian is 0.
    r = np.array([[1.0, 1.0], [1.0, 1.0], [-1.0, 1.0]], np.float32)
    labels = np.eye(2, dtype=np.float32)[[0, 0, 1]]
    loss, terms = drsch.loss_fn(_outputs(r, np.array([2.0, 1.0], np.float32)),
                                {"labels": labels}, methods.LossContext(hparams=HPARAMS))
    assert float(loss) == pytest.approx(0.0, abs=1e-6)
    # With weights (0.25, 1) the negative is only 1/16 bit away: hinge 0 − 1/16 + 0.5.
    loss, _ = drsch.loss_fn(_outputs(r, np.array([0.25, 1.0], np.float32)),
                            {"labels": labels}, methods.LossContext(hparams=HPARAMS))
    assert float(loss) == pytest.approx(0.5 - 1.0 / 16.0, abs=1e-6)


def test_recipe_defaults_and_weighted_model():
    recipe = methods.get_recipe("drsch")
    assert recipe is drsch.RECIPE and recipe.bank_output is None
    assert dict(recipe.default_hparams) == HPARAMS
    assert "Image Processing" in recipe.citation and "2015" in recipe.citation
    config = train.default_config()
    config.bits = 6
    config.model.features = (8,)
    model = recipe.make_model(config, 10)
    assert isinstance(model, models.HashNetwork)
    x = np.random.default_rng(1).normal(size=(3, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    np.testing.assert_array_equal(variables["params"]["head"]["bit_weights"], np.ones(6))
    params = jax.tree.map(np.asarray, variables["params"])
    params["head"]["bit_weights"] = np.arange(1.0, 7.0, dtype=np.float32)
    out = model.apply({"params": params}, x, train=False)
    np.testing.assert_allclose(out["relaxed"], np.tanh(out["pre"]), rtol=1e-6)
    np.testing.assert_allclose(out["weighted"], out["relaxed"] * np.arange(1.0, 7.0), rtol=1e-6)
    np.testing.assert_array_equal(out["bit_weights"], np.arange(1.0, 7.0))


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="drsch", bits=16, num_epochs=20, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
