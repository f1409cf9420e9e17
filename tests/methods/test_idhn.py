"""IDHN recipe: soft similarity, its loss against a loop over pairs, defaults, config, a run."""

import math

import jax
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import idhn

from experiments.configs import idhn as idhn_config


def _naive_idhn(x, labels, alpha, beta, gamma):
    """The authors' loss, pair by pair, on u = softsign(x)."""
    u = x / (1.0 + np.abs(x))
    n, bits = u.shape
    total = 0.0
    for i in range(n):
        for j in range(n):
            norm = math.sqrt(labels[i] @ labels[i]) * math.sqrt(labels[j] @ labels[j])
            s = float(labels[i] @ labels[j]) / norm
            inner = float(u[i] @ u[j])
            if s < 0.01 or s > 0.99:
                theta = beta * inner / bits
                total += math.log1p(math.exp(theta)) - s * theta
            else:
                total += gamma * bits * ((inner + bits) / (2 * bits) - s) ** 2
    quantization = float(np.mean(np.abs(np.abs(u) - 1.0)))
    return total / n**2 + alpha * quantization


def _multi_label_batch(rng, n=7, num_classes=4, bits=6):
    x = rng.normal(scale=2.0, size=(n, bits)).astype(np.float32)
    labels = (rng.random((n, num_classes)) < 0.45).astype(np.float32)
    labels[np.arange(n), rng.integers(0, num_classes, n)] = 1.0
    labels[1] = labels[0]  # a pair with the same label set: s = 1
    return x, labels


def test_loss_matches_pairwise_reference():
    x, labels = _multi_label_batch(np.random.default_rng(0))
    hparams = {"alpha": 0.1, "beta": 5.0, "gamma": 0.1}
    loss, terms = jax.jit(
        lambda out, batch: idhn.loss_fn(out, batch, methods.LossContext(hparams=hparams))
    )({"pre": x, "relaxed": x}, {"labels": labels})
    expected = _naive_idhn(x.astype(np.float64), labels.astype(np.float64), 0.1, 5.0, 0.1)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert set(terms) == {"pairwise", "quantization"}


def test_soft_similarity_is_the_label_cosine():
    labels = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0]], np.float32)
    s = np.asarray(idhn.soft_similarity(labels, labels))
    np.testing.assert_allclose(s[0, 1], 1 / math.sqrt(2), rtol=1e-6)
    np.testing.assert_allclose(np.diag(s)[:3], 1.0, rtol=1e-6)
    assert s[0, 2] == 0.0 and np.all(s[3] == 0.0) and np.all(s[:, 3] == 0.0)  # no NaN


def test_recipe_defaults_model_and_config():
    recipe = methods.get_recipe("idhn")
    assert recipe is idhn.RECIPE
    assert str(recipe.taxonomy) == "multi × pairs"
    assert dict(recipe.default_hparams) == {"alpha": 0.1, "beta": 5.0, "gamma": 0.1}
    assert "Transactions on Multimedia" in recipe.citation
    for protocol in ("digits", "digits_mosaic"):
        config = idhn_config.get_config(f"{protocol},bits=32")
        assert (config.method, config.protocol) == ("idhn", protocol)
        assert config.hparams.to_dict() == dict(idhn.DEFAULT_HPARAMS)
        assert train.validate_config(config) is recipe
    assert config.model.backbone == "mlp"
    assert "--config=experiments/configs/idhn.py:digits_mosaic,bits=32" in idhn_config.__doc__
    config.bits = 12
    config.model.features = (8,)
    model = recipe.make_model(config, 10)
    x = np.random.default_rng(1).normal(size=(3, 16, 16, 1)).astype(np.float32)
    out = model.apply(model.init(jax.random.key(0), x, train=False), x, train=False)
    np.testing.assert_array_equal(out["relaxed"], out["pre"])  # softsign is in the loss


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="idhn", bits=16, num_epochs=20, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
