"""DPN recipe: random targets, its loss against a loop over bits, defaults, config, a run."""

import jax
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import dpn

from experiments.configs import dpn as dpn_config


def _naive_dpn(v, labels, targets, margin):
    """(1/B) Σ_i Σ_(c ∈ labels(i)) Σ_k max(m − v_ik t_ck, 0), item by item and bit by bit."""
    total = 0.0
    for i in range(v.shape[0]):
        for c in np.flatnonzero(labels[i]):
            for k in range(v.shape[1]):
                total += max(0.0, margin - v[i, k] * targets[c, k])
    return total / v.shape[0]


def test_loss_matches_bitwise_reference():
    rng = np.random.default_rng(0)
    v = rng.normal(scale=1.5, size=(5, 8)).astype(np.float32)
    # One-hot items, a two-label item (its targets pull some bits both ways) and an unlabelled one.
    labels = np.array([[1, 0, 0], [0, 0, 1], [1, 1, 0], [0, 1, 0], [0, 0, 0]], np.float32)
    loss, terms = jax.jit(
        lambda out, batch: dpn.loss_fn(out, batch, methods.LossContext(hparams={"margin": 0.7}))
    )({"pre": v, "relaxed": v}, {"labels": labels})
    expected = _naive_dpn(v.astype(np.float64), labels, dpn.target_vectors(3, 8), 0.7)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert set(terms) == {"polarization"}


def test_target_vectors_are_fixed_random_signs():
    targets = dpn.target_vectors(10, 64)
    assert targets.shape == (10, 64) and targets.dtype == np.float32
    assert set(np.unique(targets)) == {-1.0, 1.0}
    np.testing.assert_array_equal(targets, dpn.target_vectors(10, 64))  # deterministic
    np.testing.assert_array_equal(targets[:4], dpn.target_vectors(4, 64))  # prefix-stable
    # Independent fair bits: about half the bits of two targets differ.
    distances = (64 - targets @ targets.T)[~np.eye(10, dtype=bool)] / 2
    assert 16 < distances.mean() < 48 and distances.min() > 8


def test_recipe_defaults_model_and_config():
    recipe = methods.get_recipe("dpn")
    assert recipe is dpn.RECIPE
    assert str(recipe.taxonomy) == "multi × single"
    assert dict(recipe.default_hparams) == {"margin": 1.0}
    assert "IJCAI 2020" in recipe.citation
    for protocol in ("digits", "digits_mosaic"):
        config = dpn_config.get_config(f"{protocol},bits=32")
        assert (config.method, config.protocol) == ("dpn", protocol)
        assert config.hparams.to_dict() == dict(dpn.DEFAULT_HPARAMS)
        assert train.validate_config(config) is recipe
    assert config.model.backbone == "mlp"
    assert "--config=experiments/configs/dpn.py:digits_mosaic,bits=32" in dpn_config.__doc__
    config.bits = 12
    config.model.features = (8,)
    model = recipe.make_model(config, 10)
    x = np.random.default_rng(1).normal(size=(3, 16, 16, 1)).astype(np.float32)
    out = model.apply(model.init(jax.random.key(0), x, train=False), x, train=False)
    np.testing.assert_array_equal(out["relaxed"], out["pre"])  # v is the linear layer


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="dpn", bits=16, num_epochs=10, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
