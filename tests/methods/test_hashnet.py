"""HashNet recipe: its weighted loss against the authors' formula written pair by pair, its
continuation schedule, its model and defaults, and a tiny run."""

import math

import jax
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import hashnet


def _naive_hashnet(h, labels, alpha):
    """Σ_ij w_ij [log(1 + e^{α h_i·h_j}) − α s_ij h_i·h_j] / |S|, first half × second half,
    w = |S|/|S_1| for similar and |S|/|S_0| for dissimilar pairs (the paper's weights)."""
    half = len(h) // 2
    pairs = []
    for i in range(half):
        for j in range(half, len(h)):
            dot = alpha * float(np.dot(h[i], h[j]))
            similar = float(np.dot(labels[i], labels[j]) > 0)
            pairs.append((similar, math.log1p(math.exp(dot)) - similar * dot))
    num_pairs = len(pairs)
    num_similar = sum(s for s, _ in pairs)
    num_dissimilar = num_pairs - num_similar
    total = 0.0
    for similar, value in pairs:
        weight = num_pairs / num_similar if similar else num_pairs / num_dissimilar
        total += weight * value
    return total / num_pairs


def _loss(h, labels, **hparams):
    hparams = {**hashnet.DEFAULT_HPARAMS, **hparams}
    fn = jax.jit(
        lambda out, batch: hashnet.loss_fn(out, batch, methods.LossContext(hparams=hparams))
    )
    return fn({"relaxed": h}, {"labels": labels})


@pytest.mark.parametrize("alpha_times_bits", [10.0, 40.0])
def test_loss_matches_weighted_pairwise_reference(alpha_times_bits):
    rng = np.random.default_rng(0)
    h = np.tanh(2 * rng.normal(size=(8, 6))).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 1, 1, 0, 2, 2]]  # 3 of 16 pairs similar
    loss, terms = _loss(h, labels, alpha_times_bits=alpha_times_bits)
    expected = _naive_hashnet(h, labels, alpha=alpha_times_bits / 6)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    np.testing.assert_allclose(float(loss), float(terms["similar"] + terms["dissimilar"]),
                               rtol=1e-6)


def test_batch_without_similar_pairs_is_finite_with_finite_gradient():
    h = np.tanh(np.random.default_rng(1).normal(size=(4, 5))).astype(np.float32)
    labels = np.eye(4, dtype=np.float32)
    loss, terms = _loss(h, labels)
    assert float(terms["similar"]) == 0.0
    alpha = 10.0 / 5
    dissimilar = [math.log1p(math.exp(alpha * float(np.dot(h[i], h[j]))))
                  for i in range(2) for j in range(2, 4)]
    np.testing.assert_allclose(float(loss), sum(dissimilar) / 4, rtol=1e-5)
    grad = jax.grad(lambda x: _loss(x, labels)[0])(h)
    assert np.all(np.isfinite(grad))


def test_recipe_defaults_schedule_and_model_are_the_papers():
    recipe = methods.get_recipe("hashnet")
    assert recipe is hashnet.RECIPE
    # α = 10/L and the continuation β = (1 + 0.005 t)^0.5 every 200 steps (thuml/HashNet).
    assert dict(recipe.default_hparams) == {
        "alpha_times_bits": 10.0, "beta_init": 1.0, "beta_gamma": 0.005, "beta_power": 0.5,
        "beta_step_size": 200}
    assert recipe.bank_output is None
    assert "ICCV 2017" in recipe.citation
    beta = recipe.beta_schedule(recipe.default_hparams)
    # The authors' 1-based iteration 200 (our step 199) is the first with a larger β.
    expected = {0: 1.0, 198: 1.0, 199: math.sqrt(2.0), 399: math.sqrt(3.0), 1999: math.sqrt(11.0)}
    for step, value in expected.items():
        np.testing.assert_allclose(float(beta(step)), value, rtol=1e-6)
    np.testing.assert_allclose(float(jax.jit(beta)(np.int32(399))), math.sqrt(3.0), rtol=1e-6)
    config = train.default_config()
    config.bits = 12
    config.model.features = (8,)
    model = recipe.make_model(config, 10)
    x = np.random.default_rng(2).normal(size=(3, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    out = model.apply(variables, x, train=False, beta=3.0)
    np.testing.assert_allclose(out["relaxed"], np.tanh(3.0 * out["pre"]), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="hashnet", bits=16, num_epochs=20, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
