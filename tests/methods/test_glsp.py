"""GLSP recipe: DCMH's cross-modal objective plus the intra-modal KL term of survey eq 18."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import train_helpers
from test_dcmh import _case
from test_dcmh import _group_of_step
from test_dcmh import _tiny_cross_modal

from dlhash_jax import methods
from dlhash_jax.methods import dcmh
from dlhash_jax.methods import glsp


def _naive_kl(outputs, labels):
    """Σ_{i≠j} p_ij log(p_ij / v_ij), p ∝ shared labels, v ∝ exp(−relaxed Hamming distance)."""
    n, bits = outputs.shape
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    shared = {pair: float(np.dot(labels[pair[0]], labels[pair[1]])) for pair in pairs}
    weight = {
        (i, j): math.exp(-(bits - float(np.dot(outputs[i], outputs[j]))) / 2) for i, j in pairs
    }
    p_total, v_total = sum(shared.values()), sum(weight.values())
    return sum(
        shared[pair] / p_total * math.log((shared[pair] / p_total) / (weight[pair] / v_total))
        for pair in pairs
        if shared[pair] > 0
    )


@pytest.mark.parametrize("step", [0, 1, 2])
def test_loss_is_dcmh_plus_alpha_times_the_intra_modal_kl(step):
    stacked, batch, memory = _case(seed=10 + step, batch_size=5)
    hparams = {"alpha": 0.7, "gamma": 1.2, "eta": 0.4}
    ctx = methods.LossContext(bank=memory, step=step, hparams=hparams, group=_group_of_step(step))
    loss, terms = glsp.loss_fn({"stacked": stacked}, batch, ctx)
    dcmh_ctx = dataclasses.replace(ctx, hparams={"gamma": 1.2, "eta": 0.4})
    dcmh_loss, _ = dcmh.loss_fn({"stacked": stacked}, batch, dcmh_ctx)
    local = _naive_kl(stacked[:, step % 2].astype(np.float64), batch["labels"])
    assert local > 0.0
    np.testing.assert_allclose(float(terms["local_kl"]), local, rtol=1e-4)
    np.testing.assert_allclose(float(loss), float(dcmh_loss) + 0.7 * local, rtol=1e-5)


@pytest.mark.parametrize("step", [0, 1])
def test_gradient_reaches_only_the_network_of_the_step(step):
    stacked, batch, memory = _case(seed=4, batch_size=5)

    ctx = methods.LossContext(
        bank=memory, step=step, hparams=dict(glsp.DEFAULT_HPARAMS), group=_group_of_step(step)
    )

    def loss(x):
        return glsp.loss_fn({"stacked": x}, batch, ctx)[0]

    grad = np.asarray(jax.grad(loss)(jnp.asarray(stacked)))
    assert np.all(grad[:, 1 - step] == 0.0)
    assert np.abs(grad[:, step]).min() > 0.0


def test_loss_needs_the_group_of_the_step():
    stacked, batch, memory = _case(batch_size=5)
    ctx = methods.LossContext(bank=memory, hparams=dict(glsp.DEFAULT_HPARAMS))
    with pytest.raises(ValueError, match="ctx.group"):
        glsp.loss_fn({"stacked": stacked}, batch, ctx)


def test_recipe_shares_dcmh_networks_and_alternation():
    recipe = methods.get_recipe("glsp")
    assert recipe is glsp.RECIPE
    assert set(recipe.default_hparams) == {"alpha", "gamma", "eta"}
    assert recipe.cross_modal and recipe.alternating == dcmh.RECIPE.alternating
    assert recipe.taxonomy.cross_modal and recipe.make_model is dcmh.RECIPE.make_model
    assert (recipe.bank_output, recipe.bank_init) == ("stacked", "normal")
    assert "Neurocomputing" in recipe.citation


@pytest.mark.slow
def test_tiny_run_improves_cross_modal_validation_map(tmp_path):
    before, after = train_helpers.validation_map_before_and_after(
        _tiny_cross_modal("glsp"), tmp_path
    )
    assert after > before + 0.08, (before, after)
    assert after > 0.55, (before, after)
