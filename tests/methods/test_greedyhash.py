"""GreedyHash recipe: loss against a loop, straight-through codes, defaults, config, a tiny run."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import greedyhash

from experiments.configs import greedyhash as greedyhash_config


def _naive_greedyhash(h, logits, labels, alpha, p):
    """Softmax cross-entropy + α · mean over all N·L entries of ||h| − 1|^p (authors' code)."""
    n, bits = h.shape
    cross_entropy = 0.0
    for i in range(n):
        y = int(np.argmax(labels[i]))
        log_norm = math.log(sum(math.exp(z) for z in logits[i]))
        cross_entropy += log_norm - logits[i, y]
    penalty = sum(abs(abs(h[i, k]) - 1) ** p for i in range(n) for k in range(bits))
    return cross_entropy / n + alpha * penalty / (n * bits)


def _loss(h, logits, labels, hparams):
    outputs = {"pre": h, "logits": logits}
    return greedyhash.loss_fn(outputs, {"labels": labels}, methods.LossContext(hparams=hparams))


def test_loss_matches_loop_reference():
    rng = np.random.default_rng(0)
    h = rng.normal(scale=1.5, size=(6, 8)).astype(np.float32)
    logits = rng.normal(size=(6, 4)).astype(np.float32)
    labels = np.eye(4, dtype=np.float32)[[0, 3, 1, 1, 2, 0]]
    hparams = {"alpha": 0.1, "p": 3.0}
    loss, terms = jax.jit(_loss)(h, logits, labels, hparams)
    expected = _naive_greedyhash(h.astype(np.float64), logits.astype(np.float64), labels, 0.1, 3)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert set(terms) == {"classification", "penalty"}


def test_codes_are_signs_and_gradient_passes_straight_through():
    config = train.default_config()
    config.bits = 6
    config.model.features = (8,)
    model = greedyhash.RECIPE.make_model(config, 3)
    x = np.random.default_rng(1).normal(size=(4, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    out = model.apply(variables, x, train=False)
    np.testing.assert_array_equal(out["relaxed"], np.where(out["pre"] >= 0, 1.0, -1.0))
    assert out["logits"].shape == (4, 3)
    # d(sum of codes)/d(pre) is 1 everywhere: the identity gradient of the straight-through sgn.
    head = variables["params"]["head"]["hash"]
    grad = jax.grad(
        lambda bias: jnp.sum(model.apply(
            {"params": {**variables["params"], "head": {
                **variables["params"]["head"], "hash": {**head, "bias": bias}}}},
            x, train=False)["relaxed"])
    )(head["bias"])
    np.testing.assert_allclose(np.asarray(grad), np.full(6, 4.0))


def test_recipe_defaults_are_the_papers():
    recipe = methods.get_recipe("greedyhash")
    assert recipe is greedyhash.RECIPE
    assert recipe.bank_output is None
    assert dict(recipe.default_hparams) == {"alpha": 0.1, "p": 3.0}
    assert "NeurIPS 2018" in recipe.citation


def test_config_defaults():
    config = greedyhash_config.get_config()
    assert (config.method, config.protocol, config.bits) == ("greedyhash", "digits", 32)
    assert config.hparams.to_dict() == dict(greedyhash.DEFAULT_HPARAMS)
    assert train.validate_config(config) is greedyhash.RECIPE
    assert "--config=experiments/configs/greedyhash.py:digits,bits=32" in greedyhash_config.__doc__


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="greedyhash", bits=16, num_epochs=10, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
