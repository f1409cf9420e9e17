"""Exact flat Hamming search, dlhash_jax against faiss's IndexBinaryFlat on the same codes.

Run from the repository root (faiss-cpu is in the ``test`` and ``faiss`` extras):

    .venv/bin/python experiments/benchmarks/flat_search.py              # 10^6 and 10^7 codes
    .venv/bin/python experiments/benchmarks/flat_search.py --sizes 1000000 --repeats 5

For each database size N it draws N random 64-bit codes and 100 random queries (seeded), packs
them once, builds a :class:`dlhash_jax.retrieval.HammingIndex` with ``add_packed`` and the faiss
index from it with :func:`dlhash_jax.retrieval.to_faiss` (the same bytes), and times, best of
``--repeats`` after one warm-up call each:

* top-k (k = 10): ``HammingIndex.search(..., packed=True)`` against ``IndexBinaryFlat.search``;
* radius (distance <= 8): ``HammingIndex.range_search`` against ``IndexBinaryFlat.range_search``
  with radius 9 (faiss's radius is strict: distance < r).

It prints the times, the ratio faiss / ours (above 1: ours is faster) and whether the results are
identical: the same distances and ids in the same order for top-k (both break ties by index), the
same (distance, id) pairs for radius search (faiss does not order them). faiss runs with its
default OpenMP threads and ours with ``dlhash_jax.hamming.host_threads()``; both are printed.
"""

from __future__ import annotations

import argparse

import faiss
import numpy as np
from timing import best_time

from dlhash_jax import hamming
from dlhash_jax.codes import num_words
from dlhash_jax.retrieval import HammingIndex, to_faiss


def random_words(rng, n: int, num_bits: int) -> np.ndarray:
    """``uint32 [n, W]`` random packed codes, zero beyond bit ``num_bits``."""
    words = rng.integers(0, 2**32, size=(n, num_words(num_bits)), dtype=np.uint32)
    if num_bits % 32:
        words[:, -1] &= np.uint32((1 << (num_bits % 32)) - 1)
    return words


def same_radius_results(ours, lims, dist, ids) -> bool:
    """Whether faiss's unordered range results hold exactly our (distance, id) pairs."""
    for q, (our_dist, our_ids) in enumerate(ours):
        theirs = sorted(zip(dist[lims[q]:lims[q + 1]].tolist(), ids[lims[q]:lims[q + 1]].tolist()))
        if theirs != list(zip(our_dist.tolist(), our_ids.tolist())):
            return False
    return True


def run(num_db: int, args) -> None:
    rng = np.random.default_rng(args.seed)
    index = HammingIndex(args.bits)
    index.add_packed(random_words(rng, num_db, args.bits))
    queries = random_words(rng, args.queries, args.bits)
    flat = to_faiss(index)
    query_bytes = hamming.bytes_from_words(queries, args.bits)
    print(f"\n=== {args.queries} queries x {num_db:,} codes x {args.bits} bits; threads: ours "
          f"{hamming.host_threads()}, faiss {faiss.omp_get_max_threads()} "
          f"(faiss {faiss.__version__}) ===")

    ours_t, (dist, ids) = best_time(
        lambda: index.search(queries, args.k, packed=True), args.repeats)
    faiss_t, (faiss_dist, faiss_ids) = best_time(
        lambda: flat.search(query_bytes, args.k), args.repeats)
    same = np.array_equal(dist, faiss_dist) and np.array_equal(ids, faiss_ids)
    print(f"top-{args.k:<10} ours {ours_t:7.3f} s   faiss {faiss_t:7.3f} s   faiss/ours "
          f"{faiss_t / ours_t:5.2f}x   identical: {'yes' if same else 'NO'}")

    ours_t, found = best_time(
        lambda: index.range_search(queries, args.radius, packed=True), args.repeats)
    faiss_t, (lims, faiss_dist, faiss_ids) = best_time(
        lambda: flat.range_search(query_bytes, args.radius + 1), args.repeats)
    same = same_radius_results(found, lims, faiss_dist, faiss_ids)
    hits = sum(len(i) for _, i in found)
    print(f"radius <= {args.radius:<4} ours {ours_t:7.3f} s   faiss {faiss_t:7.3f} s   faiss/ours "
          f"{faiss_t / ours_t:5.2f}x   identical: {'yes' if same else 'NO'} ({hits} hits)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--bits", type=int, default=64, help="a multiple of 8 (faiss)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--radius", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for num_db in args.sizes:
        run(num_db, args)


if __name__ == "__main__":
    main()
