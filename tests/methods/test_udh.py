"""UDH recipe: its loss against a NumPy reference, no use of labels, its autoencoder and
defaults, and a tiny run."""

import jax
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import models
from dlhash_jax import train
from dlhash_jax.methods import udh


def _naive_udh(x, x_hat, h, alpha, beta):
    """Reconstruction + α·balance + β·decorrelation, each written out over samples and bits."""
    n, bits = h.shape
    reconstruction = sum(float(np.sum((x[i] - x_hat[i]) ** 2)) for i in range(n)) / n
    balance = sum((sum(h[i, k] for i in range(n)) / n) ** 2 for k in range(bits))
    decorrelation = 0.0
    for k in range(bits):
        for m in range(bits):
            moment = sum(h[i, k] * h[i, m] for i in range(n)) / n
            decorrelation += (moment - (k == m)) ** 2
    return reconstruction + alpha * balance + beta * decorrelation


def _loss(outputs, inputs, labels, **hparams):
    hparams = {**udh.DEFAULT_HPARAMS, **hparams}
    fn = jax.jit(lambda out, batch: udh.loss_fn(out, batch, methods.LossContext(hparams=hparams)))
    return fn(outputs, {"inputs": inputs, "labels": labels})


@pytest.mark.parametrize("alpha, beta", [(1.0, 1.0), (0.5, 2.0)])
def test_loss_matches_reference(alpha, beta):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(6, 4, 4, 1)).astype(np.float32)
    x_hat = rng.uniform(size=(6, 4, 4, 1)).astype(np.float32)
    h = np.tanh(rng.normal(size=(6, 5))).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 6)]
    loss, terms = _loss({"relaxed": h, "reconstruction": x_hat}, x, labels, alpha=alpha,
                        beta=beta)
    np.testing.assert_allclose(float(loss), _naive_udh(x, x_hat, h, alpha, beta), rtol=1e-5)
    assert set(terms) == {"reconstruction", "balance", "decorrelation"}


def test_hand_made_batch():
    # Two samples, two bits: balanced (each bit +1 once, −1 once), reconstruction exact.
    x = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    h = np.array([[1.0, 1.0], [-1.0, -1.0]], np.float32)
    loss, terms = _loss({"relaxed": h, "reconstruction": x}, x, np.eye(2, dtype=np.float32))
    assert float(terms["reconstruction"]) == 0.0 and float(terms["balance"]) == 0.0
    # hᵀh / 2 = [[1, 1], [1, 1]]: the two bits are fully correlated, off-diagonal error 1 + 1.
    assert float(terms["decorrelation"]) == 2.0 and float(loss) == 2.0


def test_loss_ignores_labels():
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(8, 8, 8, 1)).astype(np.float32)
    outputs = {"relaxed": np.tanh(rng.normal(size=(8, 6))).astype(np.float32),
               "reconstruction": rng.uniform(size=(8, 8, 8, 1)).astype(np.float32)}
    labels = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 8)]
    loss = float(_loss(outputs, x, labels)[0])
    for seed in range(3):
        assert float(_loss(outputs, x, np.random.default_rng(seed).permutation(labels))[0]) == loss
    assert float(_loss(outputs, x, np.zeros_like(labels))[0]) == loss


def test_recipe_defaults_and_autoencoder():
    recipe = methods.get_recipe("udh")
    assert recipe is udh.RECIPE
    # Unit weights: the paper's constraint weights were not available (module docstring).
    assert dict(recipe.default_hparams) == {"alpha": 1.0, "beta": 1.0}
    assert recipe.bank_output is None
    assert "IPTA 2016" in recipe.citation
    config = train.default_config()
    config.bits = 12
    config.model.features = (16, 8)
    model = recipe.make_model(config, 10)
    assert isinstance(model, models.Autoencoder)
    x = np.random.default_rng(2).uniform(size=(3, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    out = model.apply(variables, x, train=False)
    assert out["pre"].shape == (3, 12) and out["reconstruction"].shape == x.shape
    np.testing.assert_allclose(out["relaxed"], np.tanh(out["pre"]), rtol=1e-5, atol=1e-6)
    assert variables["params"]["encoder"]["Dense_1"]["kernel"].shape == (16, 8)
    assert variables["params"]["decoder"]["Dense_0"]["kernel"].shape == (12, 8)


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="udh", bits=16, num_epochs=6, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,)},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.15, (before, after)
    assert after > 0.35, (before, after)
