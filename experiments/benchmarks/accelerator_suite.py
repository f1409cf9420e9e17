"""The accelerator paths of retrieval, metrics, training and sharded search, in one table.

Run on whatever devices JAX sees (a GPU or TPU machine; on CPU it runs too, for comparison):

    .venv/bin/python experiments/benchmarks/accelerator_suite.py [--database 10000000]

Rows, each timed after a warm-up call (compilation excluded) and checked against the host path
measured in the same run (identical values):

- mAP@1,000 and mAP over the whole database, 1,000 queries x 54,000 codes of 64 bits, 10
  classes: ``metrics.mean_average_precision`` on the device backend against the host one;
- exact top-10 and radius <= 8, 100 queries x ``--database`` codes of 64 bits:
  ``hamming.topk`` / ``hamming.within_radius`` on the device against the host engine;
- the DPSH train step (MLP 64-256-256-48, batch 128, bank of 1,500; ``train_speed.py``'s
  setting) in steps/s on one device;
- ``ShardedHammingIndex`` over every device against the flat ``HammingIndex`` (top-10).

The defaults (10⁷ codes) finish in well under 8 minutes on one accelerator; ``--database``
shrinks them for a CPU run.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from timing import best_time
from train_speed import _split
from train_speed import train_steps_per_second

from dlhash_jax import hamming
from dlhash_jax import methods
from dlhash_jax import metrics
from dlhash_jax.retrieval import HammingIndex
from dlhash_jax.retrieval import ShardedHammingIndex

BITS = 64


def _codes(rng, n):
    return rng.choice(np.array([-1, 1], np.int8), size=(n, BITS))


def _same(a, b) -> bool:
    if isinstance(a, list):
        return all(np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    if isinstance(a, tuple):
        return all(np.array_equal(x, y) for x, y in zip(a, b))
    return bool(np.isclose(a, b, rtol=0, atol=1e-6))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", type=int, default=10_000_000)
    parser.add_argument("--train_steps", type=int, default=500)
    args = parser.parse_args()
    start = time.perf_counter()
    devices = jax.devices()
    print(f"{len(devices)} x {devices[0].device_kind} ({jax.default_backend()}), jax "
          f"{jax.__version__}")
    rng = np.random.default_rng(0)
    rows = []

    queries, database = _codes(rng, 1000), _codes(rng, 54_000)
    eye = np.eye(10, dtype=np.float32)
    q_labels, d_labels = eye[rng.integers(0, 10, 1000)], eye[rng.integers(0, 10, 54_000)]
    for name, topk in (("mAP@1000, 1,000 x 54,000", 1000), ("mAP@all, 1,000 x 54,000", None)):
        host = best_time(lambda t=topk: metrics.mean_average_precision(
            queries, database, q_labels, d_labels, t, _backend="host"))
        device = best_time(lambda t=topk: metrics.mean_average_precision(
            queries, database, q_labels, d_labels, t, _backend="device"))
        rows.append((name, host, device))

    packed_db = hamming.pack(_codes(rng, args.database))
    packed_q = hamming.pack(_codes(rng, 100))
    size = f"100 x {args.database:,}"
    rows.append((f"top-10, {size}",
                 best_time(lambda: hamming.topk(packed_q, packed_db, BITS, 10, backend="host")),
                 best_time(lambda: hamming.topk(packed_q, packed_db, BITS, 10, backend="device"))))
    rows.append((f"radius <= 8, {size}",
                 best_time(lambda: hamming.within_radius(packed_q, packed_db, BITS, 8,
                                                         backend="host")),
                 best_time(lambda: hamming.within_radius(packed_q, packed_db, BITS, 8,
                                                         backend="device"))))

    flat = HammingIndex(BITS)
    flat.add(_codes(rng, args.database))
    sharded = ShardedHammingIndex.from_index(flat)
    queries = _codes(rng, 100)
    rows.append((f"sharded top-10 on {sharded.num_shards} device(s), {size}",
                 best_time(lambda: flat.search(queries, 10)),
                 best_time(lambda: sharded.search(queries, 10))))

    print(f"{'benchmark':<46}{'host / flat':>13}{'device':>11}{'ratio':>8}  same")
    for name, (host_time, host_out), (device_time, device_out) in rows:
        print(f"{name:<46}{host_time:>12.3f}s{device_time:>10.3f}s"
              f"{host_time / device_time:>7.2f}x  {'yes' if _same(host_out, device_out) else 'NO'}")
    steps = train_steps_per_second(methods.dpsh.RECIPE, _split(np.random.default_rng(0)),
                                   args.train_steps)
    print(f"{'DPSH train step, batch 128, one device':<46}{steps:>22,.0f} steps/s")
    print(f"suite: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
