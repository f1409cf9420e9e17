"""DH recipe: its loss against the paper's objective written out, no use of labels, the
parameters reaching the loss, its model and defaults, and a tiny run."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import models
from dlhash_jax import train
from dlhash_jax.methods import dh


def _naive_dh_objective(h, weights, lambdas):
    """The paper's J over n samples, with W^m = Kᵀ ([d_out, d_in]) and B = sgn(H)."""
    lambda1, lambda2, lambda3 = lambdas
    n = h.shape[0]
    codes = np.where(h >= 0, 1.0, -1.0)
    j1 = 0.5 * np.sum((codes - h) ** 2)
    j2 = np.trace(h.T @ h) / (2 * n)  # tr(H Hᵀ) in the paper's L × N layout
    j3 = 0.5 * sum(np.sum((w @ w.T - np.eye(w.shape[0])) ** 2) for w in weights)
    j4 = 0.5 * sum(np.sum(w**2) for w in weights)
    return j1 - lambda1 * j2 + lambda2 * j3 + lambda3 * j4


def _params(rng):
    return {
        "Dense_0": {"kernel": rng.normal(size=(5, 4)).astype(np.float32) / 2,
                    "bias": rng.normal(size=(4,)).astype(np.float32)},
        "hash": {"kernel": rng.normal(size=(4, 3)).astype(np.float32) / 2,
                 "bias": rng.normal(size=(3,)).astype(np.float32)},
    }


def _loss(h, params, labels, **hparams):
    hparams = {**dh.DEFAULT_HPARAMS, **hparams}
    fn = jax.jit(
        lambda out, batch, params: dh.loss_fn(
            out, batch, methods.LossContext(params=params, hparams=hparams)
        )
    )
    return fn({"relaxed": h}, {"labels": labels}, params)


@pytest.mark.parametrize("lambdas", [(100.0, 0.001, 0.001), (3.0, 0.5, 0.2)])
def test_loss_is_twice_the_papers_objective_per_sample(lambdas):
    rng = np.random.default_rng(0)
    h = np.tanh(2 * rng.normal(size=(6, 3))).astype(np.float32)
    params = _params(rng)
    labels = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 6)]
    names = ("lambda_variance", "lambda_orthogonality", "lambda_weight")
    loss, terms = _loss(h, params, labels, **dict(zip(names, lambdas)))
    weights = [params["Dense_0"]["kernel"].T, params["hash"]["kernel"].T]
    expected = 2 * _naive_dh_objective(h, weights, lambdas) / len(h)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert set(terms) == {"quantization", "variance", "orthogonality", "weight"}


def test_hand_made_batch():
    # Saturated codes (no quantization error), orthonormal kernels (no orthogonality error).
    h = np.array([[1.0, -1.0], [-1.0, 1.0]], np.float32)
    params = {"hash": {"kernel": np.eye(2, dtype=np.float32), "bias": np.ones(2, np.float32)}}
    loss, terms = _loss(h, params, np.eye(2, dtype=np.float32))
    assert float(terms["quantization"]) == 0.0
    np.testing.assert_allclose(float(terms["orthogonality"]), 0.0, atol=1e-6)
    assert float(terms["variance"]) == -2.0 and float(terms["weight"]) == 2.0  # biases excluded
    np.testing.assert_allclose(float(loss), (100.0 * -2.0 + 0.001 * 2.0) / 2, rtol=1e-6)


def test_loss_ignores_labels():
    rng = np.random.default_rng(1)
    h = np.tanh(rng.normal(size=(8, 3))).astype(np.float32)
    params = _params(rng)
    labels = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 8)]
    loss = float(_loss(h, params, labels)[0])
    for seed in range(3):
        assert float(_loss(h, params, np.random.default_rng(seed).permutation(labels))[0]) == loss


def test_model_is_plain_tanh_network():
    config = train.default_config()
    config.bits = 6
    config.model.features = (7,)
    model = dh.make_model(config, 10)
    assert isinstance(model, models.HashNetwork)
    x = np.random.default_rng(2).uniform(size=(3, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    assert set(variables["params"]) == {"backbone", "head"}  # not nested under a wrapper
    out = model.apply(variables, x, train=False)
    np.testing.assert_allclose(out["relaxed"], np.tanh(out["pre"]), rtol=1e-5, atol=1e-6)
    hidden = variables["params"]["backbone"]["Dense_0"]
    x_flat = x.reshape(3, -1)
    np.testing.assert_allclose(
        out["features"], np.tanh(x_flat @ hidden["kernel"] + hidden["bias"]), rtol=1e-5, atol=1e-6
    )  # DH's hidden layers are tanh


def test_gradient_reaches_the_parameters_through_ctx_params():
    config = train.default_config()
    config.bits = 6
    config.model.features = (7,)
    model = dh.make_model(config, 10)
    x = np.random.default_rng(2).uniform(size=(3, 8, 8, 1)).astype(np.float32)
    params = model.init(jax.random.key(0), x, train=False)["params"]
    # Weights large enough that the orthogonality and decay terms move the gradient visibly.
    lambda1, lambda2, lambda3 = 2.0, 0.5, 0.3
    hparams = {
        "lambda_variance": lambda1, "lambda_orthogonality": lambda2, "lambda_weight": lambda3
    }

    def loss(params, ctx_params):
        outputs = model.apply({"params": params}, x, train=False)
        ctx = methods.LossContext(params=ctx_params, hparams=hparams)
        return dh.loss_fn(outputs, {}, ctx)[0]

    def by_hand(params):
        # 2J/n written out: codes held fixed, W = Kᵀ, biases not decayed.
        h = model.apply({"params": params}, x, train=False)["relaxed"]
        n = h.shape[0]
        codes = jax.lax.stop_gradient(jnp.where(h >= 0, 1.0, -1.0))
        kernels = [p for p in jax.tree.leaves(params) if p.ndim == 2]
        orthogonal = sum(jnp.sum((k.T @ k - jnp.eye(k.shape[1])) ** 2) for k in kernels)
        decay = sum(jnp.sum(k**2) for k in kernels)
        return (
            jnp.sum((codes - h) ** 2) / n
            - lambda1 / n * jnp.sum(h**2) / n
            + lambda2 / n * orthogonal
            + lambda3 / n * decay
        )

    np.testing.assert_allclose(float(loss(params, params)), float(by_hand(params)), rtol=1e-5)
    grads = jax.grad(lambda p: loss(p, p))(params)
    expected = jax.grad(by_hand)(params)
    jax.tree.map(
        lambda g, e: np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6), grads, expected
    )
    # The weight terms' share of the gradient is what flows through ctx.params alone:
    # d/dK [λ2 ‖KᵀK − I‖² + λ3 ‖K‖²] / n = (4 λ2 K (KᵀK − I) + 2 λ3 K) / n on kernels, 0 on biases.
    frozen = jax.grad(lambda p: loss(p, jax.lax.stop_gradient(p)))(params)
    through_ctx = jax.tree.map(lambda g, f: g - f, grads, frozen)
    n = x.shape[0]

    def weight_gradient(p):
        if p.ndim != 2:
            return np.zeros_like(p)
        p = np.asarray(p, np.float64)
        return (4 * lambda2 * p @ (p.T @ p - np.eye(p.shape[1])) + 2 * lambda3 * p) / n

    expected_weight = jax.tree.map(weight_gradient, params)
    jax.tree.map(
        lambda g, e: np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6),
        through_ctx,
        expected_weight,
    )
    assert max(np.abs(leaf).max() for leaf in jax.tree.leaves(through_ctx)) > 1e-2


def test_orthogonality_is_on_the_weight_rows():
    kernel = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]], np.float32)  # W = Kᵀ: 3 × 2
    # W Wᵀ = diag(1, 4, 0): errors 0, 9, 1 on the diagonal.
    np.testing.assert_allclose(
        float(dh.orthogonality({"kernel": kernel, "bias": np.zeros(3)})), 10.0, rtol=1e-6)


def test_recipe_defaults_are_the_papers():
    recipe = methods.get_recipe("dh")
    assert recipe is dh.RECIPE
    # λ1 = 100, λ2 = 0.001, λ3 = 0.001 (Erin Liong et al., CVPR 2015).
    assert dict(recipe.default_hparams) == {
        "lambda_variance": 100.0, "lambda_orthogonality": 0.001, "lambda_weight": 0.001}
    assert recipe.bank_output is None
    assert "CVPR 2015" in recipe.citation


@pytest.mark.slow
def test_tiny_run_lowers_the_objective(tmp_path):
    # DH's objective is what training lowers; its codes do not improve on digits (module
    # docstring), so this run checks the optimisation, not the mAP.
    config = train_helpers.tiny_config(
        method="dh", bits=16, num_epochs=6, eval_every=0, checkpoint_every=1000, log_every=10,
        **{"model.features": (64,)},
    )
    result = train.fit(config, str(tmp_path))
    with open(os.path.join(tmp_path, train.METRICS_FILE)) as f:
        records = [json.loads(line) for line in f]
    assert records[-1]["loss"] < records[0]["loss"] - 1.0, records
    assert records[-1]["quantization"] < records[0]["quantization"] / 2, records
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(result.state.params))
