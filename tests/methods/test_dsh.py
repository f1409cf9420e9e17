"""DSH recipe: its loss against a naive loop over pairs, and no [B, N, L] intermediate."""

import jax
import jax.numpy as jnp
import numpy as np

from dlhash_jax import methods
from dlhash_jax.methods import dsh


def _naive_dsh(u, bank, batch_labels, bank_labels, alpha, margin_per_bit):
    margin = margin_per_bit * u.shape[1]
    pair_terms = []
    for i in range(u.shape[0]):
        for j in range(bank.shape[0]):
            distance = float(np.sum((u[i] - bank[j]) ** 2))
            if np.dot(batch_labels[i], bank_labels[j]) > 0:
                pair_terms.append(0.5 * distance)
            else:
                pair_terms.append(0.5 * max(margin - distance, 0.0))
    constraint = np.mean([np.sum(np.abs(np.abs(row) - 1.0)) for row in u])
    return np.mean(pair_terms) + alpha * constraint


def _loss(u, bank, batch_labels, bank_labels, hparams):
    memory = methods.MemoryBank(outputs=bank, labels=bank_labels)
    return dsh.loss_fn(
        {"relaxed": u}, {"labels": batch_labels}, methods.LossContext(bank=memory, hparams=hparams)
    )[0]


def test_loss_matches_pairwise_reference():
    rng = np.random.default_rng(0)
    # Outputs of size ~1 and L = 4: squared distances straddle the margin 2L = 8.
    u = rng.normal(size=(5, 4)).astype(np.float32)
    bank = rng.normal(size=(7, 4)).astype(np.float32)
    batch_labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1]]
    bank_labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 7)]
    hparams = {"alpha": 0.3, "margin_per_bit": 2.0}
    loss = jax.jit(_loss, static_argnums=())(u, bank, batch_labels, bank_labels, hparams)
    expected = _naive_dsh(u, bank, batch_labels, bank_labels, **hparams)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def _intermediate_shapes(jaxpr):
    for eqn in jaxpr.eqns:
        for var in eqn.outvars:
            yield tuple(getattr(var.aval, "shape", ()))
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", param)
            if hasattr(inner, "eqns"):
                yield from _intermediate_shapes(inner)


def test_no_batch_by_bank_by_bits_tensor_in_loss_or_gradient():
    batch, items, bits = 3, 11, 5
    u = jnp.ones((batch, bits))
    bank = jnp.ones((items, bits))
    labels = jnp.eye(2)[jnp.array([0, 1, 0])]
    bank_labels = jnp.eye(2)[jnp.arange(items) % 2]
    hparams = dict(dsh.DEFAULT_HPARAMS)
    grad = jax.grad(_loss)
    jaxpr = jax.make_jaxpr(lambda u: grad(u, bank, labels, bank_labels, hparams))(u).jaxpr
    shapes = set(_intermediate_shapes(jaxpr))
    assert (batch, items) in shapes  # the pair block is there
    big = [s for s in shapes if len(s) >= 3 and batch * items * bits <= np.prod(s)]
    assert not big, f"[B, N, L]-sized intermediates: {big}"


def test_recipe_defaults_are_the_papers():
    recipe = methods.get_recipe("dsh")
    assert recipe.bank_output == "relaxed"
    assert dict(recipe.default_hparams) == {"alpha": 0.01, "margin_per_bit": 2.0}
    assert "CVPR 2016" in recipe.citation
