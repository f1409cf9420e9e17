"""Fingerprint recipe: the affinity of the training inputs, its loss against the four terms written
out pair by pair (the batch against every training item), no use of labels, its linear sign decoder
(survey eq 1), its defaults, and a tiny run."""

import math
import types

import jax
import ml_collections
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import fingerprint


def _affinity(x1, x2, sigma):
    return math.exp(-float(np.sum((x1 - x2) ** 2)) / (2 * sigma**2))


def _naive_fingerprint(x, x_hat, a, bank, train_inputs, index, kernels, hparams):
    n, m = len(x), len(bank)
    train_flat = train_inputs.reshape(m, -1)
    reconstruction = sum(float(np.sum((x[i] - x_hat[i]) ** 2)) for i in range(n)) / n
    codes = np.where(a >= 0, 1.0, -1.0)
    quantization = sum(float(np.sum((a[i] - codes[i]) ** 2)) for i in range(n)) / n
    laplacian = 0.0
    for i in range(n):
        for j in range(m):
            r = _affinity(train_flat[index[i]], train_flat[j], hparams["sigma"])
            laplacian += r * float(np.sum((a[i] - bank[j]) ** 2))
    laplacian /= 2 * n * m  # eq 13's pairs of the batch with every training item
    weight = sum(math.sqrt(float(np.sum(k**2))) for k in kernels)
    return (reconstruction + hparams["lambda_quantization"] * quantization
            + hparams["lambda_laplacian"] * laplacian + hparams["lambda_weight"] * weight)


def _prepare(train_inputs, sigma):
    config = ml_collections.ConfigDict({"hparams": {"sigma": sigma}})
    labels = np.zeros((len(train_inputs), 2), np.float32)
    return fingerprint.prepare(types.SimpleNamespace(inputs=train_inputs, labels=labels), config)


def _loss(outputs, params, batch, bank, prepared, labels=None, **hparams):
    hparams = {**fingerprint.DEFAULT_HPARAMS, **hparams}
    labels = np.zeros((len(bank), 3), np.float32) if labels is None else labels
    memory = methods.MemoryBank(outputs=bank, labels=labels)

    @jax.jit
    def fn(out, batch, params, memory, prepared):
        ctx = methods.LossContext(params=params, bank=memory, prepared=prepared, hparams=hparams)
        return fingerprint.loss_fn(out, batch, ctx)

    return fn(outputs, batch, params, memory, prepared)


def _outputs(rng, n=6, bits=5):
    kernels = [rng.normal(size=(16, 8)).astype(np.float32), rng.normal(size=(8, bits)).astype(
        np.float32)]
    params = {"encoder": {"Dense_0": {"kernel": kernels[0], "bias": np.ones(8, np.float32)}},
              "hash": {"hash": {"kernel": kernels[1], "bias": np.ones(bits, np.float32)}}}
    outputs = {"pre": 2 * rng.normal(size=(n, bits)).astype(np.float32),
               "reconstruction": rng.uniform(size=(n, 4, 4, 1)).astype(np.float32)}
    return outputs, params, kernels


def test_prepare_computes_the_heat_kernel_affinity_of_the_training_inputs():
    train_inputs = np.random.default_rng(4).uniform(size=(7, 4, 4, 1)).astype(np.float32)
    affinity = _prepare(train_inputs, 0.9)["affinity"]
    flat = train_inputs.reshape(7, -1)
    expected = [[_affinity(flat[i], flat[j], 0.9) for j in range(7)] for i in range(7)]
    assert affinity.shape == (7, 7) and affinity.dtype == np.float32
    np.testing.assert_allclose(affinity, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("hparams", [
    {},
    {"lambda_quantization": 1.0, "lambda_laplacian": 1.0, "lambda_weight": 1.0, "sigma": 0.7},
])
def test_loss_matches_reference(hparams):
    rng = np.random.default_rng(0)
    outputs, params, kernels = _outputs(rng)
    train_inputs = rng.uniform(size=(9, 4, 4, 1)).astype(np.float32)
    index = np.array([3, 0, 8, 5, 5, 1], np.int32)
    bank = 2 * rng.normal(size=(9, 5)).astype(np.float32)
    sigma = {**fingerprint.DEFAULT_HPARAMS, **hparams}["sigma"]
    batch = {"inputs": train_inputs[index], "index": index}
    loss, terms = _loss(outputs, params, batch, bank, _prepare(train_inputs, sigma), **hparams)
    expected = _naive_fingerprint(
        train_inputs[index], outputs["reconstruction"], outputs["pre"], bank, train_inputs, index,
        kernels, {**fingerprint.DEFAULT_HPARAMS, **hparams},
    )
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert set(terms) == {"reconstruction", "quantization", "laplacian", "weight"}


def test_hand_made_batch():
    # Two identical inputs (affinity 1) with codes ±1 apart in one bit; exact reconstruction.
    x = np.zeros((2, 3), np.float32)
    outputs = {"pre": np.array([[1.0, 1.0], [1.0, -1.0]], np.float32), "reconstruction": x}
    params = {"kernel": np.array([[3.0], [4.0]], np.float32)}
    hparams = {"lambda_quantization": 1.0, "lambda_laplacian": 1.0, "lambda_weight": 1.0}
    batch = {"inputs": x, "index": np.arange(2, dtype=np.int32)}
    loss, terms = _loss(outputs, params, batch, outputs["pre"], _prepare(x, 1.5), **hparams)
    assert float(terms["reconstruction"]) == 0.0 and float(terms["quantization"]) == 0.0
    # Σ_ij r_ij ‖a_i − u_j‖² / (2 n m) = (4 + 4) / 8.
    assert float(terms["laplacian"]) == 1.0 and float(terms["weight"]) == 5.0
    assert float(loss) == 6.0


def test_loss_ignores_labels():
    rng = np.random.default_rng(1)
    outputs, params, _ = _outputs(rng, n=8)
    train_inputs = rng.uniform(size=(8, 4, 4, 1)).astype(np.float32)
    batch = {"inputs": train_inputs, "index": np.arange(8, dtype=np.int32)}
    prepared = _prepare(train_inputs, 1.5)
    labels = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 8)]
    loss = float(_loss(outputs, params, batch, outputs["pre"], prepared, labels)[0])
    for seed in range(3):
        shuffled = np.random.default_rng(seed).permutation(labels)
        assert float(_loss(outputs, params, batch, outputs["pre"], prepared, shuffled)[0]) == loss


def test_model_decodes_the_binary_code_linearly():
    config = train.default_config()
    config.bits = 6
    config.model.features = (16,)
    model = fingerprint.make_model(config, 10)
    x = np.random.default_rng(2).uniform(size=(3, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    out = model.apply(variables, x, train=False)
    network = variables["params"]
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
    assert recipe.bank_output == "pre" and recipe.prepare is fingerprint.prepare
    assert not recipe.taxonomy.supervised
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
