"""Fingerprint recipe: its loss against the four terms written out pair by pair, no use of labels,
its linear sign decoder (survey eq 1), its defaults, and a tiny run."""

import math

import jax
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import fingerprint


def _naive_fingerprint(x, x_hat, a, kernels, hparams):
    n = len(x)
    flat = x.reshape(n, -1)
    reconstruction = sum(float(np.sum((x[i] - x_hat[i]) ** 2)) for i in range(n)) / n
    codes = np.where(a >= 0, 1.0, -1.0)
    quantization = sum(float(np.sum((a[i] - codes[i]) ** 2)) for i in range(n)) / n
    laplacian = 0.0
    for i in range(n):
        for j in range(n):
            r = math.exp(-float(np.sum((flat[i] - flat[j]) ** 2)) / (2 * hparams["sigma"] ** 2))
            laplacian += r * float(np.sum((a[i] - a[j]) ** 2))
    laplacian /= 2 * n * n  # tr(A L Aᵀ) / n² = Σ_ij r_ij ‖a_i − a_j‖² / (2 n²)
    weight = sum(math.sqrt(float(np.sum(k**2))) for k in kernels)
    return (reconstruction + hparams["lambda_quantization"] * quantization
            + hparams["lambda_laplacian"] * laplacian + hparams["lambda_weight"] * weight)


def _loss(outputs, inputs, labels, **hparams):
    hparams = {**fingerprint.DEFAULT_HPARAMS, **hparams}
    fn = jax.jit(lambda out, batch: fingerprint.loss_fn(out, batch, bank=None, step=0,
                                                        hparams=hparams))
    return fn(outputs, {"inputs": inputs, "labels": labels})


def _outputs(rng, n=6, bits=5):
    kernels = [rng.normal(size=(16, 8)).astype(np.float32), rng.normal(size=(8, bits)).astype(
        np.float32)]
    params = {"encoder": {"Dense_0": {"kernel": kernels[0], "bias": np.ones(8, np.float32)}},
              "hash": {"hash": {"kernel": kernels[1], "bias": np.ones(bits, np.float32)}}}
    outputs = {"pre": 2 * rng.normal(size=(n, bits)).astype(np.float32),
               "reconstruction": rng.uniform(size=(n, 4, 4, 1)).astype(np.float32),
               "params": params}
    return outputs, kernels


@pytest.mark.parametrize("hparams", [
    {},
    {"lambda_quantization": 1.0, "lambda_laplacian": 1.0, "lambda_weight": 1.0, "sigma": 0.7},
])
def test_loss_matches_reference(hparams):
    rng = np.random.default_rng(0)
    outputs, kernels = _outputs(rng)
    x = rng.uniform(size=(6, 4, 4, 1)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 6)]
    loss, terms = _loss(outputs, x, labels, **hparams)
    expected = _naive_fingerprint(x, outputs["reconstruction"], outputs["pre"], kernels,
                                  {**fingerprint.DEFAULT_HPARAMS, **hparams})
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert set(terms) == {"reconstruction", "quantization", "laplacian", "weight"}


def test_hand_made_batch():
    # Two identical inputs (affinity 1) with codes ±1 apart in one bit; exact reconstruction.
    x = np.zeros((2, 3), np.float32)
    outputs = {"pre": np.array([[1.0, 1.0], [1.0, -1.0]], np.float32), "reconstruction": x,
               "params": {"kernel": np.array([[3.0], [4.0]], np.float32)}}
    hparams = {"lambda_quantization": 1.0, "lambda_laplacian": 1.0, "lambda_weight": 1.0}
    loss, terms = _loss(outputs, x, np.eye(2, dtype=np.float32), **hparams)
    assert float(terms["reconstruction"]) == 0.0 and float(terms["quantization"]) == 0.0
    # Σ_ij r_ij ‖a_i − a_j‖² / (2 n²) = (4 + 4) / 8.
    assert float(terms["laplacian"]) == 1.0 and float(terms["weight"]) == 5.0
    assert float(loss) == 6.0


def test_loss_ignores_labels():
    rng = np.random.default_rng(1)
    outputs, _ = _outputs(rng, n=8)
    x = rng.uniform(size=(8, 4, 4, 1)).astype(np.float32)
    labels = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 8)]
    loss = float(_loss(outputs, x, labels)[0])
    for seed in range(3):
        assert float(_loss(outputs, x, np.random.default_rng(seed).permutation(labels))[0]) == loss


def test_model_decodes_the_binary_code_linearly():
    config = train.default_config()
    config.bits = 6
    config.model.features = (16,)
    model = fingerprint.make_model(config, 10)
    x = np.random.default_rng(2).uniform(size=(3, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    out = model.apply(variables, x, train=False)
    network = variables["params"]["network"]
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, out["params"], network)))
    # Survey eq 1: X̂ = sgn(A) W + c, with A the hash layer's output.
    codes = np.where(out["pre"] >= 0, 1.0, -1.0)
    expected = codes @ network["output"]["kernel"] + network["output"]["bias"]
    np.testing.assert_allclose(out["reconstruction"].reshape(3, -1), expected, rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_array_equal(out["relaxed"], codes)


def test_recipe_defaults():
    recipe = methods.get_recipe("fingerprint")
    assert recipe is fingerprint.RECIPE
    # Ours, chosen on digits (the paper's values were not available; module docstring).
    assert dict(recipe.default_hparams) == {
        "lambda_quantization": 0.1, "lambda_laplacian": 0.1, "lambda_weight": 0.001,
        "sigma": 1.5}
    assert recipe.bank_output is None
    assert "2018" in recipe.citation and "fingerprint indexing" in recipe.citation


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    # The binary autoencoder first loses, then gains, code quality: 800 steps get past the dip.
    config = train_helpers.tiny_config(
        method="fingerprint", bits=32, num_epochs=80, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (256, 256)},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.15, (before, after)
    assert after > 0.45, (before, after)
