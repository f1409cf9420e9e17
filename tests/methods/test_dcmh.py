"""DCMH recipe: its loss against the paper's objective written pair by pair, the alternation
between the two networks, a tiny cross-modal run, and the checkpointed alternating state."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import dcmh


def _naive_objective(active, own_bank, other_bank, shared_codes, batch_labels, bank_labels,
                     index, gamma, eta):
    """The authors' J_x (or J_y) for one batch, divided by N·b as in their code."""
    num_items, batch_size = other_bank.shape[0], active.shape[0]
    likelihood = 0.0
    for i in range(batch_size):
        for j in range(num_items):
            theta = 0.5 * float(np.dot(active[i], other_bank[j]))
            similar = float(np.dot(batch_labels[i], bank_labels[j]) > 0)
            likelihood += math.log1p(math.exp(theta)) - similar * theta
    quantization = sum(
        float(np.sum((shared_codes[i] - active[i]) ** 2)) for i in range(batch_size)
    )
    whole = own_bank.copy()
    whole[index] = active
    balance = float(np.sum(np.sum(whole, axis=0) ** 2))
    return (likelihood + gamma * quantization + eta * balance) / (num_items * batch_size)


def _case(seed=0, num_items=9, batch_size=4, bits=6, classes=3):
    rng = np.random.default_rng(seed)
    bank = rng.normal(size=(num_items, 2, bits)).astype(np.float32)
    bank_labels = (rng.random((num_items, classes)) < 0.4).astype(np.float32)
    index = rng.choice(num_items, batch_size, replace=False).astype(np.int32)
    stacked = rng.normal(size=(batch_size, 2, bits)).astype(np.float32)
    bank[index] = stacked  # the loop writes the batch's rows before the loss
    batch = {"labels": bank_labels[index], "index": index}
    memory = methods.MemoryBank(outputs=jnp.asarray(bank), labels=jnp.asarray(bank_labels))
    return stacked, batch, memory


@pytest.mark.parametrize("step", [0, 1, 4, 7])
def test_loss_matches_the_papers_objective_for_the_network_of_the_step(step):
    stacked, batch, memory = _case(seed=step)
    hparams = {"gamma": 1.5, "eta": 0.3}
    loss, terms = jax.jit(
        lambda out, b, m: dcmh.loss_fn(out, b, bank=m, step=step, hparams=hparams)
    )({"stacked": stacked}, batch, memory)
    bank = np.asarray(memory.outputs)
    modality = step % 2  # even steps: image network (F), odd: text network (G)
    shared = np.where(bank[batch["index"], 0] + bank[batch["index"], 1] >= 0, 1.0, -1.0)
    expected = _naive_objective(
        stacked[:, modality], bank[:, modality], bank[:, 1 - modality], shared, batch["labels"],
        np.asarray(memory.labels), batch["index"], **hparams,
    )
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert set(terms) == {"likelihood", "quantization", "balance"}


@pytest.mark.parametrize("step", [0, 1])
def test_gradient_reaches_only_the_network_of_the_step(step):
    stacked, batch, memory = _case(seed=3)

    def loss(x):
        return dcmh.loss_fn({"stacked": x}, batch, bank=memory, step=step,
                            hparams={"gamma": 1.0, "eta": 1.0})[0]

    grad = np.asarray(jax.grad(loss)(jnp.asarray(stacked)))
    assert np.all(grad[:, 1 - step] == 0.0)
    assert np.abs(grad[:, step]).min() > 0.0


def test_recipe_defaults_are_the_authors():
    recipe = methods.get_recipe("dcmh")
    assert recipe is dcmh.RECIPE
    assert dict(recipe.default_hparams) == {"gamma": 1.0, "eta": 1.0}
    assert (recipe.bank_output, recipe.bank_init) == ("stacked", "normal")
    assert recipe.cross_modal and recipe.alternating == ("image", "text")
    assert "CVPR 2017" in recipe.citation
    assert "dcmh" in methods.CROSS_MODAL and "dpsh" not in methods.CROSS_MODAL


def _tiny_cross_modal(method, **changes):
    settings = {
        "method": method, "protocol": "digits_mosaic_tags", "bits": 16, "num_epochs": 8,
        "eval_every": 0, "checkpoint_every": 1000, "log_every": 100, "model.features": (64,),
        "model.text_features": (64,), "hparams.eta": 0.001, "optimizer.learning_rate": 3e-3,
    }
    return train_helpers.tiny_config(**{**settings, **changes})


@pytest.mark.slow
def test_tiny_run_improves_cross_modal_validation_map(tmp_path):
    before, after = train_helpers.validation_map_before_and_after(
        _tiny_cross_modal("dcmh"), tmp_path
    )
    assert after > before + 0.08, (before, after)
    assert after > 0.55, (before, after)


@pytest.mark.slow
def test_alternating_state_is_checkpointed_and_resumed(tmp_path):
    config = _tiny_cross_modal("dcmh", num_epochs=1, checkpoint_every=5)
    first = train.fit(config, str(tmp_path))
    # The run is complete, so fitting again restores its last checkpoint and trains no further.
    again = train.fit(config, str(tmp_path))
    jax.tree.map(np.testing.assert_array_equal, again.state.params, first.state.params)
    jax.tree.map(np.testing.assert_array_equal, again.state.opt_state, first.state.opt_state)
    jax.tree.map(np.testing.assert_array_equal, again.state.bank, first.state.bank)
