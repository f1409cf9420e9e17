"""Speed of the DPSH and DSH train steps and of the bare pairwise losses, against a naive baseline.

    .venv/bin/python experiments/benchmarks/train_speed.py

Train steps: MLP 64-256-256-48 (48 bits), global batch 128, memory bank of 1,500 items, one
device, steps/s after warm-up. Bare losses: value and gradient of each pair term for a batch of
128 / 512 / 2,048 outputs against the 1,500-row bank.

The baseline, measured in the same run, is the DSH loss as common PyTorch re-implementations write
it: squared distances from an explicit ``[B, N, L]`` difference tensor. Ours computes them from
norms and the Gram matrix (``losses.contrastive_loss(distance="squared_l2")``) and never forms
that tensor; the ratio column is baseline time / our time.
"""

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app
from absl import flags
from absl import logging

from dlhash_jax import losses
from dlhash_jax import methods
from dlhash_jax import similarity
from dlhash_jax import train

_STEPS = flags.DEFINE_integer("steps", 200, "Timed train steps per method.")
_REPEATS = flags.DEFINE_integer("repeats", 20, "Timed calls per bare-loss measurement.")
_BATCHES = flags.DEFINE_list("batches", ["128", "512", "2048"], "Batch sizes of the bare losses.")

BANK_SIZE = 1500
INPUT_DIM = 64
BITS = 48
NUM_CLASSES = 10
TRAIN_BATCH = 128


@dataclasses.dataclass
class _Split:
    inputs: np.ndarray
    labels: np.ndarray


def _naive_dsh_loss(outputs, batch, ctx):
    """DSH with the ``[B, N, L]`` difference tensor (the baseline)."""
    u = outputs["relaxed"]
    s = similarity.label_similarity(batch["labels"], ctx.bank.labels)
    distance = jnp.sum((u[:, None, :] - ctx.bank.outputs[None, :, :]) ** 2, axis=-1)
    margin = ctx.hparams["margin_per_bit"] * u.shape[1]
    pairs = 0.5 * jnp.mean(s * distance + (1 - s) * jax.nn.relu(margin - distance))
    return pairs + ctx.hparams["alpha"] * losses.hash_constraint_l1(u), {}


def _split(rng) -> _Split:
    inputs = rng.uniform(size=(BANK_SIZE, INPUT_DIM)).astype(np.float32)
    labels = np.eye(NUM_CLASSES, dtype=np.float32)[rng.integers(0, NUM_CLASSES, BANK_SIZE)]
    return _Split(inputs, labels)


def train_steps_per_second(recipe: methods.Recipe, split: _Split, num_steps: int) -> float:
    config = train.default_config()
    config.bits = BITS
    config.model.features = (256, 256)
    model = recipe.make_model(config, NUM_CLASSES)
    tx = train.make_optimizer(config.optimizer, num_steps)
    state = train.create_train_state(
        model, tx, seed=0, sample_inputs=split.inputs[:TRAIN_BATCH], recipe=recipe,
        train_split=split,
    )
    runner = train.ReplicatedStep(
        train.make_step(recipe, recipe.default_hparams), devices=jax.local_devices()[:1]
    )
    placed = runner.put_state(jax.device_get(state))
    rng = np.random.default_rng(1)
    batches = []
    for _ in range(8):
        index = rng.choice(BANK_SIZE, TRAIN_BATCH, replace=False).astype(np.int32)
        batch = {"inputs": split.inputs[index], "labels": split.labels[index], "index": index}
        batches.append(runner.put_batch(batch))
    for batch in batches[:3]:
        placed, _ = runner(placed, batch)
    jax.block_until_ready(placed)
    start = time.perf_counter()
    for step in range(num_steps):
        placed, _ = runner(placed, batches[step % len(batches)])
    jax.block_until_ready(placed)
    return num_steps / (time.perf_counter() - start)


def _time_call(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / repeats


def _bare_losses():
    margin = 2.0 * BITS

    def naive_contrastive(a1, a2, s):
        distance = jnp.sum((a1[:, None, :] - a2[None, :, :]) ** 2, axis=-1)
        return jnp.mean(s * distance + (1 - s) * jax.nn.relu(margin - distance))

    return {
        "pairwise_likelihood": losses.pairwise_likelihood_loss,
        "contrastive_squared_l2": lambda a1, a2, s: losses.contrastive_loss(
            a1, a2, s, margin=margin, distance="squared_l2"),
        "naive_contrastive_[B,N,L]": naive_contrastive,
    }


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    device = jax.devices()[0]
    print(f"device: {device.device_kind} ({jax.default_backend()}), jax {jax.__version__}")
    split = _split(np.random.default_rng(0))
    print(f"\ntrain steps: MLP {INPUT_DIM}-256-256-{BITS}, batch {TRAIN_BATCH}, bank {BANK_SIZE}")
    naive_recipe = dataclasses.replace(methods.get_recipe("dsh"), loss_fn=_naive_dsh_loss)
    rates = {
        "dpsh": train_steps_per_second(methods.get_recipe("dpsh"), split, _STEPS.value),
        "dsh": train_steps_per_second(methods.get_recipe("dsh"), split, _STEPS.value),
        "dsh_naive_[B,N,L]": train_steps_per_second(naive_recipe, split, _STEPS.value),
    }
    for name, rate in rates.items():
        print(f"  {name:22s} {rate:9.1f} steps/s")
    speedup = rates["dsh"] / rates["dsh_naive_[B,N,L]"]
    print(f"  dsh speed-up over the [B, N, L] baseline: {speedup:.2f}x")

    print(f"\nbare losses, value and gradient, batch B against a bank of {BANK_SIZE} ({BITS} bits)")
    rng = np.random.default_rng(2)
    bank = jnp.asarray(rng.normal(size=(BANK_SIZE, BITS)), jnp.float32)
    bank_labels = jnp.asarray(split.labels)
    print(f"  {'B':>6s} " + " ".join(f"{name:>28s}" for name in _bare_losses()) + "   ratio")
    for batch_size in (int(b) for b in _BATCHES.value):
        outputs = jnp.asarray(rng.normal(size=(batch_size, BITS)), jnp.float32)
        labels = bank_labels[rng.integers(0, BANK_SIZE, batch_size)]
        s = similarity.label_similarity(labels, bank_labels)
        times = {
            name: _time_call(jax.jit(jax.value_and_grad(fn)), outputs, bank, s,
                             repeats=_REPEATS.value)
            for name, fn in _bare_losses().items()
        }
        cells = " ".join(f"{1e3 * t:25.3f} ms" for t in times.values())
        ratio = times["naive_contrastive_[B,N,L]"] / times["contrastive_squared_l2"]
        print(f"  {batch_size:6d} {cells}   {ratio:5.1f}x")


if __name__ == "__main__":
    app.run(main)
