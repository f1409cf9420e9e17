"""ADSH recipe: its loss against the paper's objective written pair by pair, its V-step against
brute force, its defaults and model, and a tiny run evaluated with its learned codes."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import train_helpers

from dlhash_jax import evaluate
from dlhash_jax import methods
from dlhash_jax import metrics
from dlhash_jax import models
from dlhash_jax import train
from dlhash_jax.methods import adsh

HPARAMS = {"gamma": 200.0, "inner_epochs": 3, "soft_constraint": True}


def _adsh_objective(U, V, S, omega, gamma, dissimilar):
    """Paper eq 3: Σ_{i∈Ω} Σ_{j∈Γ} (u_iᵀ v_j − c s_ij)² + γ Σ_{i∈Ω} ‖v_{Ω_i} − u_i‖², loops."""
    num_bits = U.shape[1]
    total = 0.0
    for a, i in enumerate(omega):
        for j in range(V.shape[0]):
            target = 1.0 if S[a, j] else dissimilar
            total += (float(np.dot(U[a], V[j])) - num_bits * target) ** 2
        total += gamma * float(np.sum((V[i] - U[a]) ** 2))
    return total


def _problem(rng, n=4, m=6, num_bits=3):
    labels = np.eye(3)[rng.integers(0, 3, m)]
    omega = rng.choice(m, n, replace=False)
    U = np.tanh(rng.normal(size=(n, num_bits)) * 2)
    S = (labels[omega] @ labels.T) > 0
    return U, S, omega, labels


def test_loss_matches_pairwise_reference():
    rng = np.random.default_rng(0)
    num_items, n, num_bits = 9, 4, 6
    labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, num_items)]
    index = np.array([2, 7, 0, 5], np.int32)
    u = np.tanh(rng.normal(size=(n, num_bits))).astype(np.float32)
    V = rng.choice([-1.0, 1.0], (num_items, num_bits)).astype(np.float32)
    bank = methods.MemoryBank(outputs=jnp.zeros((num_items, num_bits)), labels=jnp.asarray(labels))
    for gamma, dissimilar in ((200.0, -1.0), (3.0, -0.25)):
        variables = {"V": jnp.asarray(V), "objective": jnp.float32(2.0),
                     "dissimilar": jnp.float32(dissimilar)}
        hparams = {**HPARAMS, "gamma": gamma}
        loss_fn = jax.jit(lambda out, batch, d, h=hparams: adsh.loss_fn(
            out, batch, methods.LossContext(bank=bank, hparams=h, discrete=d)))
        loss, terms = loss_fn({"relaxed": u}, {"labels": labels[index], "index": index},
                              variables)
        S = (labels[index] @ labels.T) > 0
        expected = _adsh_objective(u, V, S, index, gamma, dissimilar) / (n * num_items)
        np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
        assert set(terms) == {"pairs", "quantization", "discrete_objective"}
        np.testing.assert_allclose(
            float(loss),
            float(terms["pairs"]) + gamma / num_items * float(terms["quantization"]),
            rtol=1e-5)


def test_soft_constraint_target_is_the_authors_ratio():
    labels = np.eye(2, dtype=np.float32)[[0, 0, 0, 1]]
    # Pairs (16, (i, i) included): similar 9 + 1 = 10, dissimilar 6 -> r = 10/6.
    target = adsh.dissimilar_target(labels, soft_constraint=True)
    np.testing.assert_allclose(float(target), -10 / 6, rtol=1e-6)
    assert float(adsh.dissimilar_target(labels, soft_constraint=False)) == -1.0
    assert float(adsh.dissimilar_target(np.ones((3, 1)), soft_constraint=True)) == -1.0


@pytest.mark.parametrize("dissimilar", [-1.0, -0.3])
def test_v_step_sets_each_bit_to_its_brute_force_minimiser(dissimilar):
    rng = np.random.default_rng(1)
    gamma = 2.0
    for trial in range(3):
        U, S, omega, _ = _problem(rng)
        V = rng.choice([-1.0, 1.0], (S.shape[1], U.shape[1])) if trial else np.zeros(
            (S.shape[1], U.shape[1]))  # the authors start from V = 0
        result = np.array(adsh.solve_database_codes(
            V, U, S, omega, gamma=gamma, dissimilar=dissimilar))
        expected = V.copy()
        values = []
        for k in range(U.shape[1]):
            best = min(
                itertools.product([-1.0, 1.0], repeat=V.shape[0]),
                key=lambda column: _adsh_objective(
                    U, np.column_stack([expected[:, :k], column, expected[:, k + 1:]]), S,
                    omega, gamma, dissimilar),
            )
            expected[:, k] = best
            values.append(_adsh_objective(U, expected, S, omega, gamma, dissimilar))
        np.testing.assert_array_equal(result, expected, err_msg=f"trial {trial}")
        assert all(b <= a + 1e-9 for a, b in zip(values, values[1:])), values
        if trial:
            assert values[-1] <= _adsh_objective(U, V, S, omega, gamma, dissimilar) + 1e-9


def test_init_update_and_train_codes_from_the_bank():
    rng = np.random.default_rng(2)
    outputs = np.tanh(rng.normal(size=(10, 5))).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 10)]
    bank = methods.MemoryBank(outputs=jnp.asarray(outputs), labels=jnp.asarray(labels))
    initial = adsh.RECIPE.discrete.init(methods.LossContext(bank=bank, hparams=HPARAMS))
    np.testing.assert_array_equal(initial["V"], np.zeros((10, 5)))
    r = float(adsh.dissimilar_target(labels, soft_constraint=True))
    np.testing.assert_allclose(float(initial["dissimilar"]), r)
    update = jax.jit(lambda d, b: adsh.RECIPE.discrete.update(
        d, methods.LossContext(bank=b, hparams=HPARAMS)))
    values = []
    state = initial
    for _ in range(3):
        state = update(state, bank)
        S = (labels @ labels.T) > 0
        values.append(_adsh_objective(outputs, np.asarray(state["V"]), S, np.arange(10),
                                      200.0, r))
        np.testing.assert_allclose(float(state["objective"]), values[-1] / 100, rtol=1e-4)
    assert all(b <= a * (1 + 1e-6) for a, b in zip(values, values[1:])), values
    assert set(np.unique(state["V"])) <= {-1.0, 1.0}
    np.testing.assert_array_equal(adsh.RECIPE.discrete.train_codes(state), state["V"])
    assert adsh.RECIPE.discrete.period(HPARAMS, steps_per_epoch=10) == 30


def test_recipe_defaults_and_model_are_the_papers():
    recipe = methods.get_recipe("adsh")
    assert recipe is adsh.RECIPE
    assert dict(recipe.default_hparams) == HPARAMS
    assert recipe.bank_output == "relaxed"
    assert str(recipe.taxonomy) == "single × pairs"
    assert "AAAI 2018" in recipe.citation
    config = train.default_config()
    config.bits = 12
    config.model.features = (8,)
    model = recipe.make_model(config, 10)
    x = np.random.default_rng(3).normal(size=(3, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    out = model.apply(variables, x, train=False)
    np.testing.assert_allclose(out["relaxed"], np.tanh(out["pre"]), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_tiny_run_improves_validation_map_and_evaluates_with_its_codes(tmp_path):
    config = train_helpers.tiny_config(
        method="adsh", bits=16, num_epochs=12, eval_every=30, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, _ = train_helpers.validation_map_before_and_after(config, tmp_path)
    result = train.fit(config, str(tmp_path))  # resumes the finished run: nothing to do
    run = result.run
    V = np.asarray(result.state.discrete["V"])
    after = train.validation_map(run, {"params": result.state.params}, V)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)

    # Evaluation ranks the queries' network codes against V for the training items and the
    # network's codes for the other database items.
    results = evaluate.evaluate_run(str(tmp_path), run=run, checkpoint="last")
    assert results["database_codes"].startswith(f"learned codes for the {len(run.data.train)}")
    assert "database codes: learned codes" in open(results["report"]).read()
    variables = {"params": result.state.params}
    query_codes = models.encode(run.model.apply, variables, run.data.query.inputs)
    db_codes = np.array(models.encode(run.model.apply, variables, run.data.database.inputs))
    rows = np.searchsorted(run.data.database.indices, run.data.train.indices)
    assert not np.array_equal(db_codes[rows], V)  # V is not what the network gives
    db_codes[rows] = V
    expected = metrics.mean_average_precision(
        query_codes, db_codes, run.data.query.labels, run.data.database.labels)
    assert results["map"] == pytest.approx(float(expected), abs=1e-9)
