"""DHN recipe: its loss against the paper's objective written pair by pair, its model and
defaults, and a tiny run."""

import math

import jax
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax.methods import dhn


def _naive_dhn(z, labels, lam):
    """[Σ_ij (log(1 + e^{⟨z_i,z_j⟩}) − s_ij ⟨z_i,z_j⟩)] / B² + λ Σ_i Σ_k log cosh(|z_ik| − 1) / B,
    over every pair (i, j) of the batch, (i, i) included."""
    size = len(z)
    likelihood = 0.0
    for i in range(size):
        for j in range(size):
            inner = float(np.dot(z[i], z[j]))
            similar = float(np.dot(labels[i], labels[j]) > 0)
            likelihood += math.log1p(math.exp(inner)) - similar * inner
    quantization = sum(math.log(math.cosh(abs(float(x)) - 1.0)) for row in z for x in row)
    return likelihood / size**2 + lam * quantization / size


def _loss(z, labels, **hparams):
    hparams = {**dhn.DEFAULT_HPARAMS, **hparams}
    fn = jax.jit(lambda out, batch: dhn.loss_fn(out, batch, methods.LossContext(hparams=hparams)))
    return fn({"relaxed": z}, {"labels": labels})


@pytest.mark.parametrize("lam", [0.1, 2.0])
def test_loss_matches_pairwise_reference(lam):
    rng = np.random.default_rng(0)
    z = np.tanh(2 * rng.normal(size=(7, 6))).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 1, 1, 0, 2]]
    loss, terms = _loss(z, labels, lam=lam)
    np.testing.assert_allclose(float(loss), _naive_dhn(z, labels, lam), rtol=1e-5)
    assert set(terms) == {"likelihood", "quantization"}
    np.testing.assert_allclose(
        float(loss), float(terms["likelihood"]) + lam * float(terms["quantization"]), rtol=1e-6
    )


def test_gradient_is_finite_for_saturated_outputs():
    z = np.sign(np.random.default_rng(1).normal(size=(4, 5))).astype(np.float32)
    labels = np.eye(4, dtype=np.float32)
    grad = jax.grad(lambda x: _loss(x, labels)[0])(z)
    assert np.all(np.isfinite(grad))


def test_recipe_defaults_and_model_are_the_papers():
    recipe = methods.get_recipe("dhn")
    assert recipe is dhn.RECIPE
    assert dict(recipe.default_hparams) == {"lam": 0.1}
    assert recipe.bank_output is None  # pairs within the batch, as in the authors' code
    assert str(recipe.taxonomy) == "single × pairs"
    assert "AAAI 2016" in recipe.citation
    out = train_helpers.tiny_model_outputs(recipe)
    assert out["pre"].shape == (3, 12)
    np.testing.assert_allclose(out["relaxed"], np.tanh(out["pre"]), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="dhn", bits=16, num_epochs=20, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
