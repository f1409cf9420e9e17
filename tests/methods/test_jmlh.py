"""JMLH recipe: its loss against a loop, the stochastic binary neuron (sampling, threshold,
gradient), the head's use of the dropout RNG, defaults, config and a tiny run."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import jmlh

from experiments.configs import jmlh as jmlh_config


def _naive_jmlh(z, logits, labels, kl_weight, prior):
    """Softmax cross-entropy + λ · mean over samples of Σ_bits KL(Bern(σ(z)) ‖ Bern(p))."""
    n, bits = z.shape
    cross_entropy = kl = 0.0
    for i in range(n):
        y = int(np.argmax(labels[i]))
        cross_entropy += math.log(sum(math.exp(v) for v in logits[i])) - logits[i, y]
        for j in range(bits):
            q = 1 / (1 + math.exp(-z[i, j]))
            kl += q * math.log(q / prior) + (1 - q) * math.log((1 - q) / (1 - prior))
    return cross_entropy / n + kl_weight * kl / n


def _model(bits=6, num_classes=3):
    config = train.default_config()
    config.bits = bits
    config.model.features = (8,)
    return jmlh.make_model(config, num_classes)


def test_loss_matches_loop_reference():
    rng = np.random.default_rng(0)
    z = rng.normal(scale=2.0, size=(6, 8)).astype(np.float32)
    logits = rng.normal(size=(6, 4)).astype(np.float32)
    labels = np.eye(4, dtype=np.float32)[[0, 3, 1, 1, 2, 0]]
    hparams = {"kl_weight": 0.2, "prior": 0.5}
    loss, terms = jax.jit(
        lambda out, batch: jmlh.loss_fn(out, batch, methods.LossContext(hparams=hparams))
    )({"pre": z, "logits": logits}, {"labels": labels})
    expected = _naive_jmlh(z.astype(np.float64), logits.astype(np.float64), labels, 0.2, 0.5)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert set(terms) == {"classification", "kl"}


def test_binary_neuron_thresholds_and_passes_the_gradient_through_the_sigmoid():
    z = jnp.array([-2.0, -0.1, 0.3, 1.5])
    threshold = jnp.array([0.5, 0.4, 0.6, 0.9])
    # σ(z) = 0.119, 0.475, 0.574, 0.818 against ε: 0, 1, 0, 0.
    np.testing.assert_array_equal(jmlh.stochastic_binary(z, threshold), [0.0, 1.0, 0.0, 0.0])
    weights = jnp.array([1.0, -2.0, 3.0, 0.5])
    grad_z, grad_threshold = jax.grad(
        lambda z, t: jnp.sum(weights * jmlh.stochastic_binary(z, t)), argnums=(0, 1)
    )(z, threshold)
    q = jax.nn.sigmoid(z)
    np.testing.assert_allclose(grad_z, weights * q * (1 - q), rtol=1e-6)
    np.testing.assert_array_equal(grad_threshold, 0.0)


def test_training_samples_bernoulli_codes_from_the_dropout_rng():
    model = _model()
    x = np.random.default_rng(1).normal(size=(4, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    evaluation = model.apply(variables, x, train=False)
    # Evaluation: the threshold is 0.5, so the code is sgn(z) on the ±1 scale.
    np.testing.assert_array_equal(evaluation["relaxed"], np.where(evaluation["pre"] > 0, 1.0, -1.0))
    np.testing.assert_array_equal(evaluation["bits"], (evaluation["relaxed"] + 1) / 2)
    assert evaluation["logits"].shape == (4, 3)

    def sample(key):
        return model.apply(variables, x, train=True, rngs={"dropout": key})["bits"]

    with pytest.raises(Exception, match="dropout"):
        model.apply(variables, x, train=True)
    np.testing.assert_array_equal(sample(jax.random.key(1)), sample(jax.random.key(1)))
    draws = jax.jit(jax.vmap(sample))(jax.random.split(jax.random.key(2), 2000))
    assert not np.array_equal(draws[0], draws[1])
    # Each bit is 1 with probability σ(z).
    np.testing.assert_allclose(np.mean(draws, axis=0), jax.nn.sigmoid(evaluation["pre"]),
                               atol=0.05)


def test_recipe_defaults_are_the_authors():
    recipe = methods.get_recipe("jmlh")
    assert recipe is jmlh.RECIPE
    assert recipe.bank_output is None
    assert dict(recipe.default_hparams) == {"kl_weight": 0.2, "prior": 0.5}
    assert "ICCV Workshops 2019" in recipe.citation
    assert str(recipe.taxonomy) == "single × single"


def test_config_defaults():
    config = jmlh_config.get_config()
    assert (config.method, config.protocol, config.bits) == ("jmlh", "digits", 32)
    assert config.hparams.to_dict() == dict(jmlh.DEFAULT_HPARAMS)
    assert train.validate_config(config) is jmlh.RECIPE
    assert "--config=experiments/configs/jmlh.py:digits,bits=32" in jmlh_config.__doc__


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="jmlh", bits=16, num_epochs=10, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
