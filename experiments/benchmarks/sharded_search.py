"""Speed of ShardedHammingIndex (codes split over every device JAX sees) against HammingIndex.

Run:  python experiments/benchmarks/sharded_search.py  [--database 1000000 --queries 100
      --bits 64 --k 10 --radius 8 --repeats 3]

On a CPU-only machine, ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` before the command
splits the cores into 4 devices. Both indexes hold the same codes; each search is timed after
one warm-up call (compilation and the placement of the shards excluded), the results are
checked to be identical, and the ratio is printed with the queries/s per device, the figure
docs/sharded_search.md scales to 10⁹–10¹⁰ codes.
"""

from __future__ import annotations

import argparse

import jax
import numpy as np
from timing import best_time

from dlhash_jax.retrieval import HammingIndex
from dlhash_jax.retrieval import ShardedHammingIndex


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--radius", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    db_codes = rng.choice(np.array([-1, 1], np.int8), size=(args.database, args.bits))
    query_codes = rng.choice(np.array([-1, 1], np.int8), size=(args.queries, args.bits))
    flat = HammingIndex(args.bits)
    flat.add(db_codes)
    sharded = ShardedHammingIndex.from_index(flat)
    devices = sharded.num_shards
    print(f"{args.database:,} codes of {args.bits} bits, {args.queries} queries, "
          f"{devices} {jax.devices()[0].platform} device(s)")
    print(f"{'search':<22}{'HammingIndex':>14}{'sharded':>12}{'ratio':>8}{'queries/s/device':>18}")
    for name, run_flat, run_sharded in (
        (f"top-{args.k}", lambda: flat.search(query_codes, args.k),
         lambda: sharded.search(query_codes, args.k)),
        (f"radius <= {args.radius}", lambda: flat.range_search(query_codes, args.radius),
         lambda: sharded.range_search(query_codes, args.radius)),
    ):
        flat_time, expected = best_time(run_flat, args.repeats)
        sharded_time, got = best_time(run_sharded, args.repeats)
        if isinstance(expected, tuple):
            same = all(np.array_equal(a, b) for a, b in zip(expected, got))
        else:
            same = all(np.array_equal(a[1], b[1]) for a, b in zip(expected, got))
        if not same:
            raise SystemExit(f"{name}: the sharded results differ from HammingIndex's.")
        per_device = args.queries / sharded_time / devices
        print(f"{name:<22}{flat_time:>13.3f}s{sharded_time:>11.3f}s"
              f"{flat_time / sharded_time:>7.2f}x{per_device:>18,.0f}")


if __name__ == "__main__":
    main()
