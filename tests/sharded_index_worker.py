"""One process of a ShardedHammingIndex spread over several processes (2 CPU devices each).

Usage: python tests/sharded_index_worker.py COORDINATOR NUM_PROCESSES PROCESS_ID OUT.npz

Every process builds the same index (seeded codes) and asks the same queries; each holds only
its own devices' shards. Process 0 writes the top-k and radius results to OUT.npz.
"""

import sys

import jax
import numpy as np

from dlhash_jax.sharded_index import ShardedHammingIndex

NUM_CODES, NUM_BITS, NUM_QUERIES, K, RADIUS = 203, 32, 6, 9, 12


def codes():
    """The database and queries every process (and the test's reference) draws."""
    rng = np.random.default_rng(0)
    pool = np.where(rng.random((30, NUM_BITS)) < 0.5, -1.0, 1.0).astype(np.float32)
    database = pool[rng.integers(0, 30, NUM_CODES)]
    queries = np.concatenate([database[:2], pool[rng.integers(0, 30, NUM_QUERIES - 2)] * -1])
    return database, queries


def main(coordinator: str, num_processes: str, process_id: str, out: str) -> None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator,
        num_processes=int(num_processes),
        process_id=int(process_id),
        coordinator_bind_address=coordinator,
        cluster_detection_method="deactivate",
        initialization_timeout=60,
        shutdown_timeout_seconds=30,
    )
    database, queries = codes()
    index = ShardedHammingIndex(NUM_BITS)
    index.add(database, ids=np.arange(NUM_CODES) * 3)
    # Each process holds the shards of its own devices only.
    placed = index._database()
    local = {shard.device for shard in placed.addressable_shards}
    assert local == set(jax.local_devices()) and index.num_shards == jax.device_count()
    dist, ids = index.search(queries, K)
    found = index.range_search(queries, RADIUS)
    if jax.process_index() == 0:
        np.savez(
            out, dist=dist, ids=ids, num_shards=index.num_shards,
            range_dist=np.concatenate([d for d, _ in found]),
            range_ids=np.concatenate([i for _, i in found]),
            range_sizes=np.array([len(i) for _, i in found]),
        )
    print(f"process {jax.process_index()} done", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
