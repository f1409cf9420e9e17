"""LCDSH recipe: its loss against the paper's objective written pair by pair, its gradient (the
codes carry none), its model and defaults, and a tiny run."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import train_helpers
from jax.test_util import check_grads

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import lcdsh


def _sigmoid(t):
    return 1.0 / (1.0 + math.exp(-t)) if t >= 0 else math.exp(t) / (1.0 + math.exp(t))


def _naive_lcdsh(h, labels, lam):
    """[Σ_ij −log p(s_ij | h_i, h_j) + λ Σ_ij (p(s_ij | h_i, h_j) − p(s_ij | b_i, b_j))²] / B²,
    over every pair (i, j) of the batch, (i, i) included, with ±1 labels: p(s | ·) = σ(s θ)."""
    size = len(h)
    codes = np.where(h >= 0, 1.0, -1.0)
    total = 0.0
    for i in range(size):
        for j in range(size):
            s = 1.0 if float(np.dot(labels[i], labels[j])) > 0 else -1.0
            theta = 0.5 * float(np.dot(h[i], h[j]))
            phi = 0.5 * float(np.dot(codes[i], codes[j]))
            total += -math.log(_sigmoid(s * theta))
            total += lam * (_sigmoid(s * theta) - _sigmoid(s * phi)) ** 2
    return total / size**2


def _loss(h, labels, **hparams):
    hparams = {**lcdsh.DEFAULT_HPARAMS, **hparams}
    fn = jax.jit(
        lambda out, batch: lcdsh.loss_fn(out, batch, methods.LossContext(hparams=hparams))
    )
    return fn({"relaxed": h}, {"labels": labels})


@pytest.mark.parametrize("lam", [3.0, 0.5])
def test_loss_matches_pairwise_reference(lam):
    rng = np.random.default_rng(0)
    h = rng.normal(scale=1.5, size=(7, 6)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 1, 1, 0, 2]]
    labels[3, 2] = 1.0  # a multi-hot row: similar to every item sharing one of its labels
    loss, terms = _loss(h, labels, lam=lam)
    np.testing.assert_allclose(float(loss), _naive_lcdsh(h, labels, lam), rtol=1e-5)
    assert set(terms) == {"likelihood", "locality"}
    np.testing.assert_allclose(
        float(loss), float(terms["likelihood"]) + lam * float(terms["locality"]), rtol=1e-6
    )


def test_gradient_matches_finite_differences(x64):
    # The codes b = sgn(h) enter under stop_gradient; away from h = 0 they are locally
    # constant, so the finite differences of the whole objective agree with the gradient.
    rng = np.random.default_rng(1)
    h = rng.uniform(0.2, 1.5, (5, 4)) * rng.choice([-1.0, 1.0], (5, 4))
    labels = np.eye(3)[[0, 1, 2, 0, 1]]
    hparams = dict(lcdsh.DEFAULT_HPARAMS)
    objective = jax.jit(lambda x: lcdsh.loss_fn(
        {"relaxed": x}, {"labels": labels}, methods.LossContext(hparams=hparams))[0])
    check_grads(objective, (jnp.asarray(h),), order=1, modes=("rev",))


def test_gradient_is_finite_for_large_outputs():
    h = 100.0 * np.random.default_rng(2).normal(size=(4, 5)).astype(np.float32)
    labels = np.eye(4, dtype=np.float32)
    grad = jax.grad(lambda x: _loss(x, labels)[0])(h)
    assert np.all(np.isfinite(grad))


def test_recipe_defaults_and_model_are_the_papers():
    recipe = methods.get_recipe("lcdsh")
    assert recipe is lcdsh.RECIPE
    assert dict(recipe.default_hparams) == {"lam": 3.0}
    assert recipe.bank_output is None  # pairs within the batch
    assert str(recipe.taxonomy) == "single × pairs"
    assert "Hao Zhu and Shenghua Gao" in recipe.citation and "IJCAI 2017" in recipe.citation
    config = train.default_config()
    config.bits = 12
    config.model.features = (8,)
    model = recipe.make_model(config, 10)
    x = np.random.default_rng(3).normal(size=(3, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    out = model.apply(variables, x, train=False)
    assert out["pre"].shape == (3, 12)
    np.testing.assert_array_equal(out["relaxed"], out["pre"])  # the real features h


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="lcdsh", bits=16, num_epochs=20, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
