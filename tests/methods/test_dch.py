"""DCH recipe: its loss against the paper's weighted objective written pair by pair, its model
and defaults, and a tiny run."""

import math

import jax
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax.methods import dch


def _distance(u, v):
    cosine = float(np.dot(u, v)) / (float(np.linalg.norm(u)) * float(np.linalg.norm(v)))
    return 0.5 * len(u) * (1.0 - cosine)


def _naive_dch(h, labels, gamma, lam):
    """Σ_ij w_ij ℓ_ij / |S| + λ Σ_i log(1 + d(|h_i|, 1)/γ) / B over every pair of the batch,
    ℓ the cross-entropy of the Cauchy probability γ/(γ + d), w = |S|/|S_1| or |S|/|S_0|."""
    size = len(h)
    pairs = []
    for i in range(size):
        for j in range(size):
            probability = gamma / (gamma + _distance(h[i], h[j]))
            similar = float(np.dot(labels[i], labels[j]) > 0)
            value = -math.log(probability) if similar else -math.log(1.0 - probability)
            pairs.append((similar, value))
    num_similar = sum(s for s, _ in pairs)
    num_dissimilar = len(pairs) - num_similar
    cauchy = sum(
        (len(pairs) / (num_similar if s else num_dissimilar)) * value for s, value in pairs
    ) / len(pairs)
    quantization = sum(
        math.log1p(_distance(np.abs(row), np.ones_like(row)) / gamma) for row in h
    ) / size
    return cauchy + lam * quantization


def _loss(h, labels, **hparams):
    hparams = {**dch.DEFAULT_HPARAMS, **hparams}
    fn = jax.jit(lambda out, batch: dch.loss_fn(out, batch, methods.LossContext(hparams=hparams)))
    return fn({"relaxed": h}, {"labels": labels})


@pytest.mark.parametrize("gamma, lam", [(20.0, 0.1), (2.0, 1.0)])
def test_loss_matches_weighted_pairwise_reference(gamma, lam):
    rng = np.random.default_rng(0)
    h = np.tanh(2 * rng.normal(size=(8, 6))).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 1, 1, 0, 2, 2]]
    loss, terms = _loss(h, labels, gamma=gamma, lam=lam)
    np.testing.assert_allclose(float(loss), _naive_dch(h.astype(np.float64), labels, gamma, lam),
                               rtol=1e-5)
    assert set(terms) == {"cauchy", "quantization"}
    np.testing.assert_allclose(
        float(loss), float(terms["cauchy"]) + lam * float(terms["quantization"]), rtol=1e-6
    )


def test_batch_without_dissimilar_pairs_is_finite_with_finite_gradient():
    h = np.tanh(np.random.default_rng(1).normal(size=(4, 5))).astype(np.float32)
    labels = np.ones((4, 1), np.float32)  # every pair similar: |S_0| = 0
    loss, _ = _loss(h, labels)
    np.testing.assert_allclose(float(loss), _naive_dch(h.astype(np.float64), labels, 20.0, 0.1),
                               rtol=1e-5)
    grad = jax.grad(lambda x: _loss(x, labels)[0])(h)
    assert np.all(np.isfinite(grad))


def test_recipe_defaults_and_model_are_the_papers():
    recipe = methods.get_recipe("dch")
    assert recipe is dch.RECIPE
    assert dict(recipe.default_hparams) == {"gamma": 20.0, "lam": 0.1}
    assert recipe.bank_output is None  # pairs within the batch, as in the authors' code
    assert str(recipe.taxonomy) == "single × pairs"
    assert "CVPR 2018" in recipe.citation
    out = train_helpers.tiny_model_outputs(recipe)
    assert out["pre"].shape == (3, 12)
    np.testing.assert_allclose(out["relaxed"], np.tanh(out["pre"]), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="dch", bits=16, num_epochs=20, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
