"""Sparse similarity-preserving recipe: its loss against a loop over the batch's pairs, its
model and defaults, and a tiny run."""

import jax
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import sparse_similarity


def _naive_loss(xi, labels, alpha, margin_per_bit):
    """mean over all ordered pairs (i, j) of the batch of the L1 contrastive term, plus
    α mean_i ‖ξ_i‖₁."""
    margin = margin_per_bit * xi.shape[1]
    pair_terms = []
    for i in range(len(xi)):
        for j in range(len(xi)):
            distance = float(np.sum(np.abs(xi[i] - xi[j])))
            if np.dot(labels[i], labels[j]) > 0:
                pair_terms.append(distance)
            else:
                pair_terms.append(max(margin - distance, 0.0))
    sparsity = np.mean([np.sum(np.abs(row)) for row in xi])
    return np.mean(pair_terms) + alpha * sparsity


def _loss(xi, labels, hparams):
    return sparse_similarity.loss_fn(
        {"relaxed": xi}, {"labels": labels}, methods.LossContext(hparams=hparams))


def test_loss_matches_pairwise_reference():
    rng = np.random.default_rng(0)
    # L = 5 and margin 1.0 · L: L1 distances of tanh outputs straddle the margin.
    xi = np.tanh(rng.normal(size=(7, 5))).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 1, 2]]
    hparams = {"alpha": 0.3, "margin_per_bit": 1.0}
    loss, terms = jax.jit(_loss)(xi, labels, hparams)
    np.testing.assert_allclose(float(loss), _naive_loss(xi, labels, **hparams), rtol=1e-5)
    np.testing.assert_allclose(
        float(loss), float(terms["contrastive"]) + 0.3 * float(terms["sparsity"]), rtol=1e-6
    )


def test_recipe_defaults_and_model():
    recipe = methods.get_recipe("sparse_similarity")
    assert recipe is sparse_similarity.RECIPE
    assert recipe.bank_output is None
    assert dict(recipe.default_hparams) == {"alpha": 0.01, "margin_per_bit": 1.0}
    assert "1312.5479" in recipe.citation
    config = train.default_config()
    config.bits = 12
    config.model.features = (8,)
    model = recipe.make_model(config, 10)
    x = np.random.default_rng(1).normal(size=(3, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    out = model.apply(variables, x, train=False)
    np.testing.assert_allclose(out["relaxed"], np.tanh(out["pre"]), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="sparse_similarity", bits=16, num_epochs=20, eval_every=0,
        checkpoint_every=1000, log_every=100,
        **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
