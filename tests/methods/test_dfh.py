"""DFH recipe: the C-step against the authors' gradient descent written out, the loss against
the objective written pair by pair, its model and defaults, and a tiny run."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import dfh


def _sgn(x):
    return np.where(x >= 0, 1.0, -1.0)


def _softplus(t):
    return t + math.log1p(math.exp(-t)) if t > 0 else math.log1p(math.exp(t))


def _naive_center_descent(labels, bank_codes, nu, center_eta, steps, lr):
    """The authors' C-step: V ← V − lr ∇J(V), lr divided by 10 at 75% and 90% of the steps,
    from the label means of the codes, with J's gradient written by hand."""
    num_items, num_bits = bank_codes.shape
    num_classes = labels.shape[1]
    v = labels.T @ bank_codes / np.maximum(labels.sum(0), 1.0)[:, None]
    target = num_bits * (2 * np.eye(num_classes) - 1)
    for i in range(steps):
        grad = (2 * labels.T @ (labels @ v - bank_codes) / (num_items * num_bits)
                + nu * 4 * (v @ v.T - target) @ v / num_classes**2
                + center_eta * 2 * (v - np.sign(v)) / (num_classes * num_bits))
        step = lr * (0.1 if i >= (3 * steps) // 4 else 1.0)
        step *= 0.1 if i >= (9 * steps) // 10 else 1.0
        v = v - step * grad
    return v


def _bank(rng, num_items=12, num_bits=6, num_classes=3):
    labels = np.eye(num_classes)[rng.integers(0, num_classes, num_items)]
    labels[:num_classes] = np.eye(num_classes)  # every class present
    outputs = rng.normal(size=(num_items, num_bits))
    return outputs, labels


def test_center_step_is_the_authors_gradient_descent():
    outputs, labels = _bank(np.random.default_rng(0))
    hparams = {**dfh.DEFAULT_HPARAMS, "center_steps": 40, "nu": 0.5, "center_eta": 2.0}
    centers, relaxed = jax.jit(lambda y, b: dfh.fit_centers(y, b, hparams))(
        labels.astype(np.float32), _sgn(outputs).astype(np.float32))
    expected = _naive_center_descent(labels, _sgn(outputs), 0.5, 2.0, 40, hparams["center_lr"])
    np.testing.assert_allclose(np.asarray(relaxed), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(centers), _sgn(expected))
    # No step: the label means of the codes.
    _, start = dfh.fit_centers(labels, _sgn(outputs), {**hparams, "center_steps": 0})
    np.testing.assert_allclose(np.asarray(start), labels.T @ _sgn(outputs) / labels.sum(0)[:, None],
                               rtol=1e-6)


def test_centers_follow_the_classes_codes():
    rng = np.random.default_rng(1)
    num_classes, num_bits, num_items = 10, 32, 500
    prototypes = _sgn(rng.normal(size=(num_classes, num_bits)))
    classes = rng.integers(0, num_classes, num_items)
    flips = np.where(rng.random((num_items, num_bits)) < 0.2, -1.0, 1.0)
    labels = np.eye(num_classes, dtype=np.float32)[classes]
    centers, _ = dfh.fit_centers(labels, (prototypes[classes] * flips).astype(np.float32),
                                 dfh.DEFAULT_HPARAMS)
    assert np.mean(np.asarray(centers) == prototypes) > 0.95
    assert len({tuple(row) for row in np.asarray(centers)}) == num_classes


def _naive_dfh(u, bank, batch_labels, bank_labels, centers, hparams):
    """mean_ij [s log(1 + e^{m − θ}) + (1 − s) log(1 + e^{θ + m})] + η mean_ik (b_ik − u_ik)²,
    θ = ½ u_i·U_j over the batch × bank pairs, b_i = sgn(μ Σ_c y_ic c_c + u_i)."""
    margin, eta, mu = hparams["margin"], hparams["eta"], hparams["mu"]
    likelihood = 0.0
    for i in range(u.shape[0]):
        for j in range(bank.shape[0]):
            theta = 0.5 * float(np.dot(u[i], bank[j]))
            similar = float(np.dot(batch_labels[i], bank_labels[j]) > 0)
            likelihood += (_softplus(margin - theta) if similar else _softplus(theta + margin))
    likelihood /= u.shape[0] * bank.shape[0]
    quantization = 0.0
    for i in range(u.shape[0]):
        pushed = _sgn(mu * batch_labels[i] @ centers + u[i])
        quantization += float(np.sum((pushed - u[i]) ** 2))
    return likelihood + eta * quantization / u.size


@pytest.mark.parametrize("margin, mu", [(3.0, 1.0), (0.0, 0.1)])
def test_loss_matches_pairwise_reference(margin, mu):
    rng = np.random.default_rng(2)
    bank, bank_labels = _bank(rng, num_items=9)
    bank, bank_labels = bank.astype(np.float32), bank_labels.astype(np.float32)
    u = 2 * rng.normal(size=(4, 6)).astype(np.float32)
    batch_labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 1]]
    hparams = {**dfh.DEFAULT_HPARAMS, "margin": margin, "mu": mu}
    memory = methods.MemoryBank(outputs=jnp.asarray(bank), labels=jnp.asarray(bank_labels))
    loss_fn = jax.jit(lambda out, batch, bank: dfh.loss_fn(
        out, batch, methods.LossContext(bank=bank, hparams=hparams)))
    loss, terms = loss_fn({"relaxed": u}, {"labels": batch_labels}, memory)
    centers, _ = dfh.fit_centers(bank_labels, _sgn(bank).astype(np.float32), hparams)
    expected = _naive_dfh(u, bank, batch_labels, bank_labels, np.asarray(centers), hparams)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert set(terms) == {"likelihood", "quantization", "centers"}
    np.testing.assert_allclose(
        float(loss),
        float(terms["likelihood"]) + hparams["eta"] / 6 * float(terms["quantization"]),
        rtol=1e-6,
    )
    grad = jax.grad(lambda x: loss_fn({"relaxed": x}, {"labels": batch_labels}, memory)[0])(u)
    assert np.all(np.isfinite(grad))


def test_recipe_defaults_bank_and_model_are_the_authors():
    recipe = methods.get_recipe("dfh")
    assert recipe is dfh.RECIPE
    assert dict(recipe.default_hparams) == {
        "margin": 3.0, "mu": 1.0, "nu": 1.0, "center_eta": 1.0, "eta": 0.5,
        "center_steps": 200, "center_lr": 0.03}
    assert recipe.bank_output == "relaxed"  # the batch against the whole training set
    assert str(recipe.taxonomy) == "single × pairs"
    assert "BMVC 2019" in recipe.citation
    config = train.default_config()
    config.bits = 12
    config.model.features = (8,)
    model = recipe.make_model(config, 10)
    x = np.random.default_rng(3).normal(size=(3, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    out = model.apply(variables, x, train=False)
    assert out["pre"].shape == (3, 12)
    np.testing.assert_array_equal(out["relaxed"], out["pre"])  # u is unbounded


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="dfh", bits=16, num_epochs=20, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
