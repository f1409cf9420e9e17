"""Unsupervised GreedyHash recipe: loss against a loop over the authors' half-batch pairs,
straight-through codes, no use of labels, defaults, config, a tiny run."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import greedyhash_unsupervised

from experiments.configs import greedyhash_unsupervised as greedyhash_unsupervised_config


def _cos(u, v):
    return float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))


def _naive_greedyhash_unsupervised(h, inputs, alpha, p, mean=0.0):
    """The authors' unsupervised_vgg.py: mse_loss of cos(b[:N/2], b[N/2:]) against
    cos(x[:N/2], x[N/2:]) plus α · mean over all N·L entries of | |h| − 1 |^p, b = sgn(h);
    x the flattened inputs minus ``mean``."""
    n, bits = h.shape
    x = inputs.reshape(n, -1) - mean
    b = np.where(h >= 0, 1.0, -1.0)
    half = n // 2
    gaps = [(_cos(b[i], b[half + i]) - _cos(x[i], x[half + i])) ** 2 for i in range(half)]
    penalty = sum(abs(abs(h[i, k]) - 1) ** p for i in range(n) for k in range(bits))
    return sum(gaps) / half + alpha * penalty / (n * bits)


def _prepare(inputs):
    split = types.SimpleNamespace(inputs=inputs, labels=np.zeros((len(inputs), 2), np.float32))
    return greedyhash_unsupervised.prepare(split, None)


def _loss(h, inputs, hparams, labels=None, prepared=None):
    outputs = {"pre": h, "relaxed": jnp.where(h >= 0, 1.0, -1.0).astype(h.dtype)}
    batch = {"inputs": inputs}
    if labels is not None:
        batch["labels"] = labels
    hparams = {"center_features": False, **hparams}
    ctx = methods.LossContext(hparams=hparams, prepared=prepared)
    return greedyhash_unsupervised.loss_fn(outputs, batch, ctx)


@pytest.mark.parametrize("n", [6, 7])
def test_loss_matches_loop_reference(n):
    rng = np.random.default_rng(n)
    h = rng.normal(scale=1.5, size=(n, 8)).astype(np.float32)
    inputs = rng.uniform(size=(n, 4, 4, 1)).astype(np.float32)
    hparams = {"alpha": 0.1, "p": 3.0}
    loss, terms = jax.jit(lambda h, x: _loss(h, x, hparams))(h, inputs)
    expected = _naive_greedyhash_unsupervised(h.astype(np.float64), inputs.astype(np.float64),
                                              0.1, 3)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert set(terms) == {"similarity", "penalty"}


def test_prepare_is_the_training_mean_and_the_loss_centres_the_features():
    rng = np.random.default_rng(4)
    train_inputs = rng.uniform(size=(10, 4, 4, 1)).astype(np.float32)
    prepared = _prepare(train_inputs)
    assert prepared["feature_mean"].shape == (16,) and prepared["feature_mean"].dtype == np.float32
    np.testing.assert_allclose(prepared["feature_mean"], train_inputs.reshape(10, -1).mean(0),
                               rtol=1e-6)
    h = rng.normal(scale=1.5, size=(6, 8)).astype(np.float32)
    inputs = rng.uniform(size=(6, 4, 4, 1)).astype(np.float32)
    hparams = {"alpha": 0.1, "p": 3.0, "center_features": True}
    loss, _ = jax.jit(lambda h, x, prep: _loss(h, x, hparams, prepared=prep))(h, inputs, prepared)
    expected = _naive_greedyhash_unsupervised(
        h.astype(np.float64), inputs.astype(np.float64), 0.1, 3,
        mean=train_inputs.reshape(10, -1).astype(np.float64).mean(0))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    # Without centring the mean is not read.
    raw = _loss(h, inputs, {**hparams, "center_features": False}, prepared=prepared)[0]
    np.testing.assert_allclose(
        float(raw), _naive_greedyhash_unsupervised(h.astype(np.float64),
                                                   inputs.astype(np.float64), 0.1, 3), rtol=1e-5)
    assert abs(float(raw) - float(loss)) > 1e-3


def test_hand_made_batch():
    # Two pairs: (0, 2) and (1, 3). Pair (0, 2) has equal inputs (cosine 1) and equal codes;
    # pair (1, 3) orthogonal inputs (cosine 0) and codes that differ in 1 of 4 bits (cosine ½).
    h = np.array([[1.0, -1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0],
                  [1.0, -1.0, 1.0, 1.0], [-1.0, 1.0, 1.0, 1.0]], np.float32)
    inputs = np.array([[1.0, 2.0], [1.0, 0.0], [2.0, 4.0], [0.0, 5.0]], np.float32)
    loss, terms = _loss(h, inputs, {"alpha": 0.1, "p": 3.0})
    assert float(terms["similarity"]) == pytest.approx((0.0 + 0.25) / 2, rel=1e-6)
    assert float(terms["penalty"]) == 0.0  # |h| = 1 everywhere
    assert float(loss) == pytest.approx(0.125, rel=1e-6)
    h_off = h * 2.0
    loss, terms = _loss(h_off, inputs, {"alpha": 0.1, "p": 3.0})
    # Same codes; the penalty is 1 per entry, so (α / L) · (16 / 4) = 0.1.
    assert float(terms["penalty"]) == pytest.approx(4.0)
    assert float(loss) == pytest.approx(0.125 + 0.1, rel=1e-6)


def test_loss_ignores_labels():
    rng = np.random.default_rng(1)
    h = rng.normal(size=(8, 6)).astype(np.float32)
    inputs = rng.uniform(size=(8, 8, 8, 1)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    loss, _ = _loss(h, inputs, {"alpha": 0.1, "p": 3.0}, labels)
    for seed in range(3):
        shuffled = np.random.default_rng(seed).permutation(labels)
        assert float(_loss(h, inputs, {"alpha": 0.1, "p": 3.0}, shuffled)[0]) == float(loss)


def test_batch_of_one_is_refused():
    with pytest.raises(ValueError, match=r"at least 2 items to pair its halves, got shape"):
        _loss(np.ones((1, 4), np.float32), np.ones((1, 3), np.float32), {"alpha": 0.1, "p": 3.0})


def test_gradient_reaches_the_outputs_through_the_straight_through_codes():
    config = train.default_config()
    config.bits = 6
    config.model.features = (8,)
    model = greedyhash_unsupervised.RECIPE.make_model(config, 3)
    x = np.random.default_rng(2).uniform(size=(6, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    out = model.apply(variables, x, train=False)
    np.testing.assert_array_equal(out["relaxed"], np.where(out["pre"] >= 0, 1.0, -1.0))
    assert "logits" not in out

    def similarity(params):
        outputs = model.apply({"params": params}, x, train=False)
        ctx = methods.LossContext(hparams={"alpha": 0.0, "p": 3.0, "center_features": False})
        return greedyhash_unsupervised.loss_fn(outputs, {"inputs": x}, ctx)[0]

    grads = jax.grad(similarity)(variables["params"])
    # With α = 0 only the cosine term is left: its gradient reaches the hash layer only
    # through the codes, so it is nonzero only because sgn passes the gradient straight through.
    assert np.any(np.asarray(grads["head"]["hash"]["kernel"]) != 0.0)


def test_recipe_defaults_and_model():
    recipe = methods.get_recipe("greedyhash_unsupervised")
    assert recipe is greedyhash_unsupervised.RECIPE
    # α and p are the authors'; centring the features is ours (module docstring).
    assert dict(recipe.default_hparams) == {"alpha": 0.1, "p": 3.0, "center_features": True}
    assert recipe.bank_output is None and recipe.prepare is greedyhash_unsupervised.prepare
    assert recipe.taxonomy == methods.Taxonomy("none", "single")
    assert not recipe.taxonomy.supervised
    for author in ("Shupeng Su", "Chao Zhang", "Kai Han", "Yonghong Tian"):
        assert author in recipe.citation
    assert "NeurIPS 2018" in recipe.citation


def test_config_defaults():
    config = greedyhash_unsupervised_config.get_config()
    assert (config.method, config.protocol, config.bits) == (
        "greedyhash_unsupervised", "digits", 32)
    assert config.hparams.to_dict() == dict(greedyhash_unsupervised.DEFAULT_HPARAMS)
    assert train.validate_config(config) is greedyhash_unsupervised.RECIPE
    assert ("--config=experiments/configs/greedyhash_unsupervised.py:digits,bits=32"
            in greedyhash_unsupervised_config.__doc__)


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="greedyhash_unsupervised", bits=16, num_epochs=20, eval_every=0,
        checkpoint_every=1000, log_every=100,
        **{"model.features": (64,), "optimizer.learning_rate": 1e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    # Measured (seed 0): validation mAP 0.29 before, 0.59 after.
    assert after > before + 0.15, (before, after)
    assert after > 0.45, (before, after)
