"""CNNH recipe: stage 1 (coordinate descent), stage 2 loss against a loop, defaults, a tiny run."""

import math
import types

import jax
import ml_collections
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import cnnh
from experiments.configs import cnnh as cnnh_config


def _objective(codes, S):
    return float(np.sum((codes @ codes.T - codes.shape[1] * S) ** 2))


def _block_similarity(classes):
    return np.where(classes[:, None] == classes[None, :], 1.0, -1.0)


def test_stage_one_returns_codes_that_fit_the_similarity():
    classes = np.repeat(np.arange(3), 4)
    S = _block_similarity(classes)
    codes = cnnh.approximate_codes(S, 8, num_sweeps=5, seed=1)
    assert codes.shape == (12, 8) and codes.dtype == np.float32
    assert set(np.unique(codes)) == {-1.0, 1.0}
    # Same class, same code: within-class entries of S are met exactly.
    for c in range(3):
        assert len({tuple(row) for row in codes[classes == c]}) == 1
    # Far better than random codes of the same length.
    random_codes = np.where(np.random.default_rng(0).random((12, 8)) < 0.5, -1.0, 1.0)
    assert _objective(codes, S) < 0.5 * _objective(random_codes, S)
    np.testing.assert_array_equal(codes, cnnh.approximate_codes(S, 8, num_sweeps=5, seed=1))


def _prepare(labels, bits, sweeps=3):
    config = ml_collections.ConfigDict({"bits": bits, "hparams": {"stage1_sweeps": sweeps}})
    split = types.SimpleNamespace(inputs=np.zeros((len(labels), 2), np.float32), labels=labels)
    return cnnh.prepare(split, config)["targets"]


def test_prepare_runs_stage_one_over_the_training_items():
    # Multi-hot labels: items 0 and 1 share label 1, item 2 shares nothing with them.
    labels = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], np.float32)
    S = np.array(
        [[1, 1, -1, 1], [1, 1, -1, -1], [-1, -1, 1, -1], [1, -1, -1, 1]], np.float64
    )
    targets = _prepare(labels, 8)
    assert targets.shape == (4, 8) and targets.dtype == np.float32
    expected = cnnh.approximate_codes(S, 8, num_sweeps=3, seed=cnnh.STAGE1_SEED)
    np.testing.assert_array_equal(targets, expected)


def test_prepared_codes_separate_the_classes_of_the_training_split():
    classes = np.repeat(np.arange(10), 20)
    targets = _prepare(np.eye(10, dtype=np.float32)[classes], 32, sweeps=10)
    distances = (32 - targets @ targets.T) / 2
    same = classes[:, None] == classes[None, :]
    assert distances[same].mean() < 1.0
    assert distances[~same].mean() > 14.0


def _naive_cnnh(logits, targets):
    """Per-bit sigmoid cross-entropy to the item's code mapped to {0, 1}, summed over bits."""
    total = 0.0
    for i in range(logits.shape[0]):
        for k in range(logits.shape[1]):
            p = 1.0 / (1.0 + math.exp(-logits[i, k]))
            t = (targets[i, k] + 1) / 2
            total -= t * math.log(p) + (1 - t) * math.log(1 - p)
    return total / logits.shape[0]


def test_stage_two_loss_matches_loop_reference():
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=2.0, size=(5, 8)).astype(np.float32)
    prepared = {"targets": np.where(rng.random((9, 8)) < 0.5, -1.0, 1.0).astype(np.float32)}
    index = np.array([7, 0, 3, 3, 8], np.int32)
    loss, terms = jax.jit(
        lambda out, batch, prepared: cnnh.loss_fn(
            out, batch, methods.LossContext(prepared=prepared)
        )
    )({"pre": logits}, {"index": index}, prepared)
    expected = _naive_cnnh(logits.astype(np.float64), prepared["targets"][index])
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert set(terms) == {"fit"}


def test_loss_is_minimal_at_the_targets_of_the_batch_rows():
    prepared = {"targets": _prepare(np.eye(3, dtype=np.float32)[[0, 1, 2, 0]], 8)}
    index = np.array([2, 0], np.int32)
    targets = prepared["targets"][index]

    def loss(logits):
        ctx = methods.LossContext(prepared=prepared)
        return float(cnnh.loss_fn({"pre": logits}, {"index": index}, ctx)[0])

    assert loss(20.0 * targets) < 1e-6
    assert loss(-20.0 * targets) > 100.0


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match=r"S must be a square \[n, n\] matrix, got shape \(2, 3\)"):
        cnnh.approximate_codes(np.ones((2, 3)), 4)
    with pytest.raises(ValueError, match=r"bits must be a positive integer, got 0"):
        cnnh.approximate_codes(np.ones((2, 2)), 0)
    with pytest.raises(ValueError, match=r"num_sweeps must be a positive integer"):
        cnnh.approximate_codes(np.ones((2, 2)), 4, num_sweeps=0)


def test_recipe_defaults_and_config():
    recipe = methods.get_recipe("cnnh")
    assert recipe is cnnh.RECIPE
    assert recipe.bank_output is None and recipe.prepare is cnnh.prepare
    assert dict(recipe.default_hparams) == {"stage1_sweeps": 10}
    assert "AAAI 2014" in recipe.citation
    config = cnnh_config.get_config()
    assert (config.method, config.protocol, config.bits) == ("cnnh", "digits", 32)
    assert config.hparams.to_dict() == dict(cnnh.DEFAULT_HPARAMS)
    assert train.validate_config(config) is cnnh.RECIPE
    assert "--config=experiments/configs/cnnh.py:digits,bits=32" in cnnh_config.__doc__


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="cnnh", bits=16, num_epochs=10, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
