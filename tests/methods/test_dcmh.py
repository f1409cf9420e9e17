"""DCMH recipe: its loss against the paper's objective written pair by pair, the alternation
between the two networks, a tiny cross-modal run, and the checkpointed alternating state."""

import math
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
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


def _group_of_step(step):
    """The network the training step updates at ``step``: even steps image (F), odd text (G)."""
    index = methods.active_group_index(step, len(dcmh.RECIPE.alternating))
    assert index == step % 2
    group = dcmh.RECIPE.alternating[index]
    assert group == dcmh.MODALITY_GROUPS[step % 2] == ("image", "text")[step % 2]
    return group


@pytest.mark.parametrize("step", [0, 1, 4, 7])
def test_loss_matches_the_papers_objective_for_the_network_of_the_step(step):
    stacked, batch, memory = _case(seed=step)
    hparams = {"gamma": 1.5, "eta": 0.3}
    group = _group_of_step(step)
    loss, terms = jax.jit(
        lambda out, b, m: dcmh.loss_fn(
            out, b, methods.LossContext(bank=m, step=step, hparams=hparams, group=group)
        )
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
    by_name, _ = dcmh.modality_terms(
        {"stacked": stacked}, batch, memory, modality=group, **hparams
    )
    np.testing.assert_allclose(float(by_name), expected, rtol=1e-5)


@pytest.mark.parametrize("step", [0, 1])
def test_gradient_reaches_only_the_network_of_the_step(step):
    stacked, batch, memory = _case(seed=3)
    ctx = methods.LossContext(
        bank=memory, step=step, hparams={"gamma": 1.0, "eta": 1.0}, group=_group_of_step(step)
    )

    def loss(x):
        return dcmh.loss_fn({"stacked": x}, batch, ctx)[0]

    grad = np.asarray(jax.grad(loss)(jnp.asarray(stacked)))
    assert np.all(grad[:, 1 - step] == 0.0)
    assert np.abs(grad[:, step]).min() > 0.0


@pytest.mark.parametrize("group", [None, "both", 0])
def test_loss_needs_the_group_of_the_step(group):
    stacked, batch, memory = _case()
    ctx = methods.LossContext(bank=memory, hparams={"gamma": 1.0, "eta": 1.0}, group=group)
    with pytest.raises(ValueError, match="ctx.group"):
        dcmh.loss_fn({"stacked": stacked}, batch, ctx)


def test_training_step_updates_the_image_network_on_even_steps_and_text_on_odd():
    # Through the real step (make_step + ReplicatedStep) with plain SGD, so nothing but the
    # loss's group decides which network moves: the other network's gradient must be zero.
    rng = np.random.default_rng(5)
    num_items, batch_size = 8, 4
    inputs = {
        "image": rng.random((num_items, 4, 4, 1)).astype(np.float32),
        "text": (rng.random((num_items, 7)) < 0.4).astype(np.float32),
    }
    split = types.SimpleNamespace(
        inputs=inputs, labels=(rng.random((num_items, 3)) < 0.5).astype(np.float32)
    )
    config = train.default_config()
    config.bits = 6
    config.model.features = (8,)
    config.model.text_features = (8,)
    model = dcmh.RECIPE.make_model(config, 3)
    state = train.create_train_state(
        model, optax.sgd(0.1), seed=0,
        sample_inputs=jax.tree.map(lambda x: x[:batch_size], inputs), recipe=dcmh.RECIPE,
        train_split=split,
    )
    runner = train.ReplicatedStep(
        train.make_step(dcmh.RECIPE, dict(dcmh.DEFAULT_HPARAMS)), parallel="pmap",
        devices=jax.devices()[:1],
    )
    placed = runner.put_state(jax.device_get(state))
    index = np.arange(batch_size, dtype=np.int32)
    batch = {
        "inputs": jax.tree.map(lambda x: x[index], inputs), "labels": split.labels[index],
        "index": index,
    }
    for step in range(4):
        before = runner.get(placed.params)
        placed, _ = runner(placed, runner.put_batch(batch))
        after = runner.get(placed.params)
        moved = {
            group: any(
                not np.array_equal(a, b)
                for a, b in zip(jax.tree.leaves(before[group]), jax.tree.leaves(after[group]))
            )
            for group in ("image", "text")
        }
        updated = _group_of_step(step)
        assert moved == {"image": updated == "image", "text": updated == "text"}, (step, moved)


def test_recipe_defaults_are_the_authors():
    recipe = methods.get_recipe("dcmh")
    assert recipe is dcmh.RECIPE
    assert dict(recipe.default_hparams) == {"gamma": 1.0, "eta": 1.0}
    assert (recipe.bank_output, recipe.bank_init) == ("stacked", "normal")
    assert recipe.cross_modal and recipe.alternating == ("image", "text")
    assert recipe.taxonomy.cross_modal
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
