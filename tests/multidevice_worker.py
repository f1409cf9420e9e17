"""Subprocess for the multi-device test: the same DPSH steps on 1 device and on 4 fake devices,
the same DCMH steps (cross-modal inputs, alternating networks) on 1 and on 4, and the same DSDH
and ADSH steps (discrete variables updated inside the step) on 1 and on 4.

Runs a few training steps from one initial state with the same global batches in four ways
(pmap and shard_map, each on 1 device and on 4), blocking on every step, and prints one JSON line
with every path's parameters and memory-bank replicas compared against the single-device pmap.
"""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "").replace("--xla_force_host_platform_device_count=4", "")
    + " --xla_force_host_platform_device_count=4"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import json

import jax
import numpy as np

from dlhash_jax import data as data_lib
from dlhash_jax import methods
from dlhash_jax import train

NUM_STEPS = 4
GLOBAL_BATCH = 16


def run_path(parallel, devices, run, initial_state, steps_per_epoch=None):
    runner = train.ReplicatedStep(
        train.make_step(run.recipe, run.hparams, steps_per_epoch=steps_per_epoch),
        parallel=parallel,
        devices=devices,
    )
    placed = runner.put_state(initial_state)
    losses = []
    batches = data_lib.batches(run.data.train, GLOBAL_BATCH, seed=0, epoch=0)
    for _ in range(NUM_STEPS):
        placed, step_metrics = runner(placed, runner.put_batch(next(batches)))
        jax.block_until_ready(placed)
        losses.append(float(runner.get(step_metrics)["loss"]))
    bank_replicas = [bank.outputs for bank in runner.replicas(placed.bank)]
    params = runner.get(placed.params)
    if initial_state.discrete is not None:
        return params, bank_replicas, losses, runner.replicas(placed.discrete)
    return params, bank_replicas, losses, int(runner.get(placed.step))


def max_abs_diff(tree_a, tree_b):
    diffs = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), tree_a, tree_b)
    return max(jax.tree.leaves(diffs))


def main():
    assert jax.device_count() == 4, jax.devices()
    config = train.default_config()
    config.bits = 8
    config.model.features = (32,)
    config.batch_size = GLOBAL_BATCH
    # Plain SGD: unlike Adam, its update scales with the gradient, so a gradient summed instead
    # of averaged over devices shows up in the parameters.
    config.optimizer.name = "sgd"
    config.optimizer.momentum = 0.0
    config.optimizer.learning_rate = 0.5
    config.num_devices = 4
    run = train.setup_run(config, recipe=methods.get_recipe("dpsh"))
    initial = jax.device_get(
        train.create_train_state(
            run.model,
            run.tx,
            seed=0,
            sample_inputs=run.data.train.inputs[:GLOBAL_BATCH],
            recipe=run.recipe,
            train_split=run.data.train,
        )
    )
    devices = jax.devices()
    reference = run_path("pmap", devices[:1], run, initial)
    report = {"initial_param_change": max_abs_diff(reference[0], initial.params)}
    for parallel, count in (("shard_map", 1), ("pmap", 4), ("shard_map", 4)):
        params, banks, losses, step = run_path(parallel, devices[:count], run, initial)
        report[f"{parallel}_{count}"] = {
            "param_diff": max_abs_diff(params, reference[0]),
            "bank_diff": float(np.max(np.abs(banks[0] - reference[1][0]))),
            "replica_bank_spread": max(float(np.max(np.abs(b - banks[0]))) for b in banks),
            "num_replicas": len(banks),
            "loss_diff": float(np.max(np.abs(np.array(losses) - np.array(reference[2])))),
            "step": step,
        }
    for method in ("dsdh", "adsh"):
        for parallel in ("pmap", "shard_map"):
            report[f"{method}_{parallel}_4"] = discrete_report(config, devices, method, parallel)
    report["dcmh_pmap_4"] = cross_modal_report(config, devices)
    print(json.dumps(report))


def discrete_report(config, devices, method, parallel):
    """A recipe with discrete variables updated every 2 steps (steps 0 and 2 of 4): the
    variables, parameters and bank on 4 devices must equal one device's, on every replica."""
    config = config.copy_and_resolve_references()
    config.method = method
    if method == "adsh":
        config.hparams.inner_epochs = 1
    run = train.setup_run(config, recipe=methods.get_recipe(method))
    initial = jax.device_get(
        train.create_train_state(
            run.model, run.tx, seed=0, sample_inputs=run.data.train.inputs[:GLOBAL_BATCH],
            recipe=run.recipe, train_split=run.data.train, hparams=run.hparams,
        )
    )
    reference = run_path("pmap", devices[:1], run, initial, steps_per_epoch=2)
    params, banks, losses, discrete = run_path(parallel, devices[:4], run, initial,
                                               steps_per_epoch=2)
    first = discrete[0]
    return {
        "initial_discrete_change": max_abs_diff(reference[3][0], initial.discrete),
        "param_diff": max_abs_diff(params, reference[0]),
        "bank_diff": float(np.max(np.abs(banks[0] - reference[1][0]))),
        "loss_diff": float(np.max(np.abs(np.array(losses) - np.array(reference[2])))),
        "discrete_diff": max_abs_diff(first, reference[3][0]),
        "replica_discrete_spread": max(max_abs_diff(d, first) for d in discrete),
        "num_replicas": len(discrete),
    }


def cross_modal_report(config, devices):
    """DCMH on the cross-modal protocol: dict inputs split over devices, per-device balance
    weights and the alternating optimizer must give the single-device steps."""
    config.method = "dcmh"
    config.protocol = "digits_mosaic_tags"
    config.model.text_features = (16,)
    config.optimizer.learning_rate = 0.05
    run = train.setup_run(config, recipe=methods.get_recipe("dcmh"))
    sample = jax.tree.map(lambda x: x[:GLOBAL_BATCH], run.data.train.inputs)
    initial = jax.device_get(
        train.create_train_state(
            run.model, run.tx, seed=0, sample_inputs=sample, recipe=run.recipe,
            train_split=run.data.train,
        )
    )
    reference = run_path("pmap", devices[:1], run, initial)
    params, banks, _, step = run_path("pmap", devices[:4], run, initial)
    return {
        "initial_param_change": {
            name: max_abs_diff(reference[0][name], initial.params[name])
            for name in ("image", "text")
        },
        "param_diff": max_abs_diff(params, reference[0]),
        "bank_diff": float(np.max(np.abs(banks[0] - reference[1][0]))),
        "step": step,
    }


if __name__ == "__main__":
    main()
