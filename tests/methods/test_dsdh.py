"""DSDH recipe: its loss against the paper's objective written pair by pair, its discrete step
against brute force, its defaults and model, and a tiny run."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import dsdh

HPARAMS = {"mu": 1.0, "nu": 0.1, "eta": 55.0, "dcc_iterations": 1}


def _naive_dsdh(u, bank, batch_labels, bank_labels, codes, W, mu, nu, eta):
    """The paper's J on the batch rows (likelihood against all N bank rows, ν‖W‖² once),
    divided by n·N (the authors' normalisation)."""
    n, num_items = u.shape[0], bank.shape[0]
    total = 0.0
    for i in range(n):
        for j in range(num_items):
            psi = 0.5 * float(np.dot(u[i], bank[j]))
            similar = float(np.dot(batch_labels[i], bank_labels[j]) > 0)
            total += math.log1p(math.exp(psi)) - similar * psi
        total += mu * float(np.sum((batch_labels[i] - W.T @ codes[i]) ** 2))
        total += eta * float(np.sum((codes[i] - u[i]) ** 2))
    total += nu * float(np.sum(W**2))
    return total / (n * num_items)


def _dsdh_objective(B, U, Y, W, mu, nu, eta):
    return mu * np.sum((Y - B @ W) ** 2) + nu * np.sum(W**2) + eta * np.sum((B - U) ** 2)


def test_loss_matches_pairwise_reference():
    rng = np.random.default_rng(0)
    num_items, n, num_bits = 9, 4, 6
    bank = rng.normal(size=(num_items, num_bits)).astype(np.float32)
    bank_labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, num_items)]
    index = np.array([2, 7, 0, 5], np.int32)
    u = rng.normal(size=(n, num_bits)).astype(np.float32)
    bank[index] = u  # the bank already holds this step's rows
    codes = rng.choice([-1.0, 1.0], (num_items, num_bits)).astype(np.float32)
    W = rng.normal(size=(num_bits, 3)).astype(np.float32)
    variables = {"B": jnp.asarray(codes), "W": jnp.asarray(W), "objective": jnp.float32(7.0)}
    memory = methods.MemoryBank(outputs=jnp.asarray(bank), labels=jnp.asarray(bank_labels))
    for hparams in (HPARAMS, {**HPARAMS, "mu": 2.0, "nu": 1.5, "eta": 3.0}):
        loss_fn = jax.jit(lambda out, batch, bank, d, h=hparams: dsdh.loss_fn(
            out, batch, methods.LossContext(bank=bank, hparams=h, discrete=d)))
        batch = {"labels": bank_labels[index], "index": index}
        loss, terms = loss_fn({"relaxed": u}, batch, memory, variables)
        expected = _naive_dsdh(u, bank, bank_labels[index], bank_labels, codes[index], W,
                               hparams["mu"], hparams["nu"], hparams["eta"])
        np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
        assert set(terms) == {"likelihood", "quantization", "classification",
                              "discrete_objective"}
        assert float(terms["discrete_objective"]) == 7.0
        np.testing.assert_allclose(
            float(terms["quantization"]), np.sum((codes[index] - u) ** 2) / n, rtol=1e-5)


def test_network_gradient_is_likelihood_plus_quantization_only():
    rng = np.random.default_rng(1)
    u = rng.normal(size=(3, 4)).astype(np.float32)
    bank = np.concatenate([u, rng.normal(size=(5, 4)).astype(np.float32)])
    labels = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 8)]
    codes = rng.choice([-1.0, 1.0], (8, 4)).astype(np.float32)
    ctx = methods.LossContext(
        bank=methods.MemoryBank(outputs=jnp.asarray(bank), labels=jnp.asarray(labels)),
        hparams=HPARAMS,
        discrete={"B": codes, "W": rng.normal(size=(4, 2)).astype(np.float32),
                  "objective": 0.0},
    )
    batch = {"labels": labels[:3], "index": np.arange(3)}

    def loss(x):
        return dsdh.loss_fn({"relaxed": x}, batch, ctx)[0]

    grad = jax.grad(loss)(u)
    # Changing μ and ν (which weigh only the codes' terms) leaves the gradient unchanged.
    other = methods.LossContext(bank=ctx.bank, discrete=ctx.discrete,
                                hparams={**HPARAMS, "mu": 9.0, "nu": 4.0})
    grad_other = jax.grad(lambda x: dsdh.loss_fn({"relaxed": x}, batch, other)[0])(u)
    np.testing.assert_allclose(grad, grad_other, rtol=1e-6)


def test_discrete_step_is_exact_and_never_increases_the_objective():
    rng = np.random.default_rng(2)
    n, num_bits, num_classes = 6, 4, 3
    U = rng.normal(size=(n, num_bits))
    Y = np.eye(num_classes)[rng.integers(0, num_classes, n)]
    mu, nu, eta = 1.0, 0.1, 0.7
    B = np.sign(U)
    previous = None
    for _ in range(4):
        result = jax.device_get(dsdh.solve_codes(B, U, Y, mu=mu, nu=nu, eta=eta, iterations=1))
        # W-step: the ridge solution for the codes it started from.
        W = np.linalg.solve(B.T @ B + nu / mu * np.eye(num_bits), B.T @ Y)
        np.testing.assert_allclose(result["W"], W, rtol=1e-4, atol=1e-5)
        # B-step: each bit in turn the brute-force minimiser of the paper's objective.
        expected = B.copy()
        for k in range(num_bits):
            best = min(
                itertools.product([-1.0, 1.0], repeat=n),
                key=lambda column: _dsdh_objective(
                    np.column_stack([expected[:, :k], column, expected[:, k + 1:]]),
                    U, Y, W, mu, nu, eta),
            )
            expected[:, k] = best
        np.testing.assert_array_equal(result["B"], expected)
        value = _dsdh_objective(expected, U, Y, W, mu, nu, eta)
        np.testing.assert_allclose(result["objective"], value / n, rtol=1e-4)
        # The objective of (B, W) never increases from one step to the next.
        before = _dsdh_objective(B, U, Y, W, mu, nu, eta)
        assert value <= before + 1e-6
        if previous is not None:
            assert before <= previous + 1e-6
        previous = value
        B = np.asarray(result["B"], np.float64)


def test_init_and_update_from_the_bank():
    rng = np.random.default_rng(3)
    outputs = rng.normal(size=(10, 5)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 10)]
    bank = methods.MemoryBank(outputs=jnp.asarray(outputs), labels=jnp.asarray(labels))
    ctx = methods.LossContext(bank=bank, hparams=HPARAMS)
    initial = dsdh.RECIPE.discrete.init(ctx)
    np.testing.assert_array_equal(initial["B"], np.where(outputs >= 0, 1.0, -1.0))
    assert initial["W"].shape == (5, 3) and float(initial["objective"]) == 0.0
    updated = jax.jit(lambda d, b: dsdh.RECIPE.discrete.update(
        d, methods.LossContext(bank=b, hparams=HPARAMS)))(initial, bank)
    expected = dsdh.solve_codes(initial["B"], outputs, labels, mu=1.0, nu=0.1, eta=55.0,
                                iterations=1)
    np.testing.assert_array_equal(updated["B"], expected["B"])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), updated, expected)
    twice = dsdh.RECIPE.discrete.update(initial, methods.LossContext(
        bank=bank, hparams={**HPARAMS, "dcc_iterations": 2}))
    assert float(twice["objective"]) <= float(updated["objective"]) + 1e-4
    assert dsdh.RECIPE.discrete.period(HPARAMS, steps_per_epoch=10) == 10
    assert dsdh.RECIPE.discrete.train_codes is None  # the network encodes the database


def test_recipe_defaults_and_model_are_the_papers():
    recipe = methods.get_recipe("dsdh")
    assert recipe is dsdh.RECIPE
    assert dict(recipe.default_hparams) == HPARAMS
    assert recipe.bank_output == "relaxed"
    assert str(recipe.taxonomy) == "single × pairs"
    assert "NeurIPS 2017" in recipe.citation
    config = train.default_config()
    config.bits = 12
    config.model.features = (8,)
    model = recipe.make_model(config, 10)
    x = np.random.default_rng(4).normal(size=(3, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    out = model.apply(variables, x, train=False)
    assert out["pre"].shape == (3, 12)
    np.testing.assert_array_equal(out["relaxed"], out["pre"])  # u is a linear output


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="dsdh", bits=16, num_epochs=20, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3,
                          "hparams.eta": 5.5},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
