"""DBDH recipe: its loss against the objective written pair by pair, the straight-through
gradient through sgn, its model and defaults, and a tiny run."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import relaxations
from dlhash_jax import train
from dlhash_jax.methods import dbdh


def _softplus(t):
    return t + math.log1p(math.exp(-t)) if t > 0 else math.log1p(math.exp(t))


def _naive_dbdh(b, bank, labels, bank_labels, alpha, p):
    """Σ_ij [log(1 + e^θ_ij) − s_ij θ_ij] / (B·N) + α Σ_i |mean_k b_ik|^p / B, θ = ½ b_iᵀb̄_j."""
    likelihood = 0.0
    for i in range(b.shape[0]):
        for j in range(bank.shape[0]):
            theta = 0.5 * float(np.dot(b[i], bank[j]))
            similar = float(np.dot(labels[i], bank_labels[j]) > 0)
            likelihood += _softplus(theta) - similar * theta
    balance = sum(abs(float(np.mean(row))) ** p for row in b)
    return likelihood / (b.shape[0] * bank.shape[0]) + alpha * balance / b.shape[0]


def _problem(rng, batch=4, items=9, bits=6):
    u = rng.uniform(0.1, 2.0, (batch, bits)) * rng.choice([-1.0, 1.0], (batch, bits))
    bank = rng.choice([-1.0, 1.0], (items, bits))
    labels = np.eye(3)[[0, 1, 2, 1]][:batch]
    labels[1, 0] = 1.0  # a multi-hot row
    bank_labels = np.eye(3)[rng.integers(0, 3, items)]
    bank[:batch] = np.sign(u)  # the bank already holds the batch's codes
    bank_labels[:batch] = labels
    return u.astype(np.float32), bank.astype(np.float32), labels, bank_labels


def _context(bank, bank_labels, **hparams):
    memory = methods.MemoryBank(outputs=jnp.asarray(bank), labels=jnp.asarray(bank_labels))
    return methods.LossContext(bank=memory, hparams={**dbdh.DEFAULT_HPARAMS, **hparams})


def _loss_of_pre(u, labels, ctx):
    """The recipe's loss as a function of the hash layer's pre-activations u, through the
    model's relaxation (HashHead(relaxation="ste_clipped"))."""
    b = relaxations.sign_ste(u, clipped=True)
    return dbdh.loss_fn({"relaxed": b}, {"labels": labels}, ctx)


@pytest.mark.parametrize("alpha, p", [(0.1, 2.0), (2.0, 1.0)])
def test_loss_matches_pairwise_reference(alpha, p):
    u, bank, labels, bank_labels = _problem(np.random.default_rng(0))
    ctx = _context(bank, bank_labels, alpha=alpha, p=p)
    loss, terms = jax.jit(lambda u: _loss_of_pre(u, labels, ctx))(u)
    expected = _naive_dbdh(np.sign(u), bank, labels, bank_labels, alpha, p)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert set(terms) == {"likelihood", "balance"}
    np.testing.assert_allclose(
        float(loss), float(terms["likelihood"]) + alpha * float(terms["balance"]), rtol=1e-6
    )


def test_straight_through_gradient_is_the_code_gradient_where_the_output_is_within_one():
    u, bank, labels, bank_labels = _problem(np.random.default_rng(1))
    ctx = _context(bank, bank_labels)
    grad_u = jax.grad(lambda u: _loss_of_pre(u, labels, ctx)[0])(u)
    # Closed form of the gradient in the codes b = sgn(u): the likelihood's
    # (σ(θ) − S) b̄ / (2 B N) and the balance's 2 α mean_k(b_i) / (B L).
    b = np.sign(u).astype(np.float64)
    similar = (labels @ bank_labels.T > 0).astype(np.float64)
    theta = 0.5 * b @ bank.T
    grad_b = (1.0 / (1.0 + np.exp(-theta)) - similar) @ bank / (2 * similar.size)
    grad_b += 2 * 0.1 * b.mean(axis=1, keepdims=True) / b.size
    # The clipped straight-through estimator passes it where |u| ≤ 1 and blocks it elsewhere.
    inside = np.abs(u) <= 1
    assert inside.any() and (~inside).any()
    np.testing.assert_allclose(np.asarray(grad_u), np.where(inside, grad_b, 0.0), rtol=1e-5,
                               atol=1e-8)
    # The same gradient as the recipe's loss taken in the codes themselves.
    direct = jax.grad(lambda b: dbdh.loss_fn({"relaxed": b}, {"labels": labels}, ctx)[0])(
        np.sign(u))
    np.testing.assert_allclose(np.asarray(grad_u), np.where(inside, direct, 0.0), rtol=1e-6)


def test_gradient_is_finite_for_saturated_outputs():
    u, bank, labels, bank_labels = _problem(np.random.default_rng(2))
    grad = jax.grad(lambda u: _loss_of_pre(u, labels, _context(bank, bank_labels))[0])(1e4 * u)
    assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad) == 0.0)


def test_recipe_defaults_and_model_are_the_papers():
    recipe = methods.get_recipe("dbdh")
    assert recipe is dbdh.RECIPE
    assert dict(recipe.default_hparams) == {"alpha": 0.1, "p": 2.0}
    assert recipe.bank_output == "relaxed"  # the codes of all training items
    assert str(recipe.taxonomy) == "single × pairs"
    assert "Xiangtao Zheng, Yichao Zhang and Xiaoqiang Lu" in recipe.citation
    assert "Neurocomputing 2020" in recipe.citation
    config = train.default_config()
    config.bits = 12
    config.model.features = (8,)
    model = recipe.make_model(config, 10)
    assert model.head.relaxation == "ste_clipped"
    x = np.random.default_rng(3).normal(size=(3, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    out = model.apply(variables, x, train=False)
    assert out["pre"].shape == (3, 12)
    np.testing.assert_array_equal(out["relaxed"], np.where(out["pre"] >= 0, 1.0, -1.0))


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    # The straight-through codes need the small RMSprop rate of the digits config (a larger
    # rate makes the codes of the whole batch flip together; see experiments/configs/dbdh.py).
    config = train_helpers.tiny_config(
        method="dbdh", bits=32, num_epochs=80, eval_every=0, checkpoint_every=1000,
        log_every=200,
        **{"model.features": (256, 256), "optimizer.name": "rmsprop",
           "optimizer.learning_rate": 1e-4},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.25, (before, after)
    assert after > 0.5, (before, after)
