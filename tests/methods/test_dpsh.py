"""DPSH recipe: its loss against a naive loop over pairs, its model, its defaults."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import dpsh


def _naive_dpsh(u, bank, batch_labels, bank_labels, eta):
    """J / (B·N) of the paper, written pair by pair (authors' code normalisation)."""
    total = 0.0
    for i in range(u.shape[0]):
        for j in range(bank.shape[0]):
            theta = 0.5 * float(np.dot(u[i], bank[j]))
            similar = float(np.dot(batch_labels[i], bank_labels[j]) > 0)
            total += math.log1p(math.exp(theta)) - similar * theta
    quantization = sum(
        float(np.sum((u[i] - np.where(u[i] >= 0, 1.0, -1.0)) ** 2)) for i in range(u.shape[0])
    )
    return (total + eta * quantization) / (u.shape[0] * bank.shape[0])


def test_loss_matches_pairwise_reference():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(4, 6)).astype(np.float32)
    bank = rng.normal(size=(9, 6)).astype(np.float32)
    batch_labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 1]]
    bank_labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 9)]
    memory = methods.MemoryBank(outputs=jnp.asarray(bank), labels=jnp.asarray(bank_labels))
    loss_fn = jax.jit(
        lambda out, batch, bank: dpsh.loss_fn(
            out, batch, methods.LossContext(bank=bank, hparams={"eta": 10.0})
        )
    )
    loss, terms = loss_fn({"relaxed": u}, {"labels": batch_labels}, memory)
    expected = _naive_dpsh(u, bank, batch_labels, bank_labels, eta=10.0)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert set(terms) == {"likelihood", "quantization"}
    np.testing.assert_allclose(
        float(loss), float(terms["likelihood"]) + 10.0 / 9 * float(terms["quantization"]),
        rtol=1e-6,
    )


def test_recipe_model_is_linear_hash_layer_with_bank():
    recipe = methods.get_recipe("dpsh")
    assert recipe is dpsh.RECIPE
    assert recipe.bank_output == "relaxed"
    assert dict(recipe.default_hparams) == {"eta": 10.0}
    assert "IJCAI 2016" in recipe.citation
    config = train.default_config()
    config.bits = 12
    config.model.features = (8,)
    model = recipe.make_model(config, 10)
    x = np.random.default_rng(1).normal(size=(3, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    out = model.apply(variables, x, train=False)
    assert out["pre"].shape == (3, 12)
    np.testing.assert_array_equal(out["relaxed"], out["pre"])  # no squashing: u is unbounded
