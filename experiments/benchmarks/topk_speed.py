"""Speed of exact Hamming top-k: dlhash_jax.retrieval.hamming_topk against NumPy and faiss.

Run:  python experiments/benchmarks/topk_speed.py  [--queries 1000 --database 54000 --bits 64
      --k 1000 --repeats 3]

Two baselines, timed in the same run on the same codes, after one warm-up call each (so
compilation is excluded): what evaluation scripts of published deep-hashing code do (float
distances ``(L - Q Dᵀ) / 2`` by a matrix product, then a stable ``np.argsort`` per query, ties by
index, in chunks of queries), and faiss's exact ``IndexBinaryFlat.search`` on the codes packed
once (its index built outside the timing). Ours takes the ±1 codes, so its time includes
validating and packing them. The results must be identical (faiss also breaks ties by index);
the ratios are printed. ``--bits`` must be a multiple of 8 (faiss).
"""

from __future__ import annotations

import argparse

import faiss
import jax
import numpy as np
from timing import best_time

from dlhash_jax.retrieval import hamming_topk


def numpy_topk(query_codes, db_codes, k, chunk_size=100):
    """Float distances and a stable argsort per query, ``chunk_size`` queries at a time."""
    query_codes = query_codes.astype(np.float32)
    db_t = db_codes.astype(np.float32).T
    num_bits = query_codes.shape[1]
    dists, idxs = [], []
    for start in range(0, query_codes.shape[0], chunk_size):
        dist = 0.5 * (num_bits - query_codes[start : start + chunk_size] @ db_t)
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]
        dists.append(np.take_along_axis(dist, order, axis=1).astype(np.int32))
        idxs.append(order)
    return np.concatenate(dists), np.concatenate(idxs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--database", type=int, default=54000)
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    query_codes = rng.choice(np.array([-1, 1], np.int8), size=(args.queries, args.bits))
    db_codes = rng.choice(np.array([-1, 1], np.int8), size=(args.database, args.bits))

    ours, (dist, idx) = best_time(lambda: hamming_topk(query_codes, db_codes, args.k), args.repeats)
    base, (ref_dist, ref_idx) = best_time(
        lambda: numpy_topk(query_codes, db_codes, args.k), args.repeats
    )
    flat = faiss.IndexBinaryFlat(args.bits)
    # faiss's byte layout: bit j of a code in byte j // 8 at bit j % 8.
    flat.add(np.packbits(db_codes > 0, axis=1, bitorder="little"))
    query_bytes = np.packbits(query_codes > 0, axis=1, bitorder="little")
    faiss_time, (faiss_dist, faiss_idx) = best_time(
        lambda: flat.search(query_bytes, args.k), args.repeats
    )
    identical = all(
        np.array_equal(dist, other_dist) and np.array_equal(idx, other_idx)
        for other_dist, other_idx in ((ref_dist, ref_idx), (faiss_dist, faiss_idx))
    )

    print(
        f"hamming_topk k={args.k}: {args.queries} queries x {args.database} database x "
        f"{args.bits} bits, backend={jax.default_backend()} ({jax.devices()[0].device_kind})"
    )
    print(f"  dlhash_jax.retrieval.hamming_topk : {ours:8.3f} s (best of {args.repeats})")
    print(f"  NumPy float matmul + stable argsort: {base:8.3f} s (best of {args.repeats})")
    print(f"  faiss IndexBinaryFlat.search        : {faiss_time:8.3f} s (best of {args.repeats}, "
          f"{faiss.omp_get_max_threads()} threads)")
    print(f"  speed-up: {base / ours:.1f}x over NumPy, {faiss_time / ours:.2f}x over faiss   "
          f"identical results: {identical}")
    if not identical:
        raise SystemExit("results differ from a baseline")


if __name__ == "__main__":
    main()
