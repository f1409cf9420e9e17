"""CNNH recipe: stage 1 (coordinate descent), stage 2 loss against a loop, defaults, a tiny run."""

import math
import os
import sys

import jax
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import cnnh

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "experiments"))
from configs import cnnh as cnnh_config  # noqa: E402  (experiments/ is not a package)


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


def test_class_level_stage_one_matches_item_level_on_balanced_classes():
    # With equal class counts, stage 1 on the items reaches the objective of the class-level
    # codes repeated over each class's items (the reduction the recipe relies on).
    classes = np.repeat(np.arange(4), 5)
    S = _block_similarity(classes)
    item_level = cnnh.approximate_codes(S, 8)
    class_level = cnnh.class_target_codes(4, 8)[classes]
    assert _objective(class_level, S) == pytest.approx(_objective(item_level, S))


def test_class_codes_are_far_apart():
    codes = cnnh.class_target_codes(10, 32)
    distances = (32 - codes @ codes.T) / 2
    off = distances[~np.eye(10, dtype=bool)]
    assert off.min() >= 12 and off.mean() > 16


def _naive_cnnh(logits, labels, codes):
    """Per-bit sigmoid cross-entropy to the class code mapped to {0, 1}, summed over bits."""
    total = 0.0
    for i in range(logits.shape[0]):
        target = codes[int(np.argmax(labels[i]))]
        for k in range(logits.shape[1]):
            p = 1.0 / (1.0 + math.exp(-logits[i, k]))
            t = (target[k] + 1) / 2
            total -= t * math.log(p) + (1 - t) * math.log(1 - p)
    return total / logits.shape[0]


def test_stage_two_loss_matches_loop_reference():
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=2.0, size=(5, 8)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[[2, 0, 1, 1, 0]]
    hparams = {"stage1_sweeps": 3}
    loss, terms = jax.jit(
        lambda out, batch: cnnh.loss_fn(out, batch, bank=None, step=0, hparams=hparams)
    )({"pre": logits}, {"labels": labels})
    codes = cnnh.class_target_codes(3, 8, num_sweeps=3)
    np.testing.assert_allclose(float(loss), _naive_cnnh(logits.astype(np.float64), labels, codes),
                               rtol=1e-5)
    assert set(terms) == {"fit"}


def test_multi_hot_labels_get_majority_targets():
    codes = cnnh.class_target_codes(3, 8, num_sweeps=3)
    tie_break = cnnh.centers.tie_break_code(8, seed=cnnh.STAGE1_SEED)
    labels = np.array([[1, 1, 0], [1, 1, 1], [0, 0, 0]], np.float32)
    votes = labels @ codes
    targets = np.where(votes > 0, 1.0, np.where(votes < 0, -1.0, tie_break))
    hparams = {"stage1_sweeps": 3}

    def loss(logits):
        return float(cnnh.loss_fn({"pre": logits}, {"labels": labels}, bank=None, step=0,
                                  hparams=hparams)[0])

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
    assert recipe.bank_output is None
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
