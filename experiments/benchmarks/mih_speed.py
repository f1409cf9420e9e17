"""Speed of multi-index hashing against flat scans and faiss, on the same codes, in one run.

Run from the repository root (faiss is optional: ``.venv/bin/pip install faiss-cpu``):

    .venv/bin/python experiments/benchmarks/mih_speed.py                  # 10^6 and 10^7 codes
    .venv/bin/python experiments/benchmarks/mih_speed.py --sizes 1000000 --queries 200

Each database size runs in its own subprocess (so its peak memory, VmHWM, is its own) and draws,
seeded, ``--queries`` queries and N database codes of 64 bits of two kinds:

* ``uniform``: independent fair bits;
* ``learned``: the structure of trained codes: ``--classes`` random class centres, each code its
  class's centre with a fraction of its bits flipped, drawn per code uniformly in
  ``--flips`` (10-20%); queries are drawn the same way.

The same bytes (faiss's layout: bit ``j`` in byte ``j // 8`` at bit ``j % 8``) go into

* ``MultiIndexHashing`` (dlhash_jax.multi_index, default number of tables m = L / log2 N);
* ``HammingIndex`` (dlhash_jax.retrieval, the flat exact scan);
* faiss ``IndexBinaryFlat`` (exact scan) and ``IndexBinaryMultiHash`` with the same m tables of
  ``L // m`` bits. faiss's multi-hash search probes every table to a fixed ``nflip`` bits, so it
  is exact only with ``nflip`` large enough: for k-NN it is given the smallest that makes every
  query's k distances exact (``floor(max k-th distance / m)``, read off our exact results, which
  favours faiss), for radius r it is ``floor(r / m)`` (exact by the pigeonhole principle).

For k in ``--ks`` and radius in ``--radii`` it prints the milliseconds per query of each, the
ratios baseline / MIH (above 1: MIH is faster), whether MIH's results are identical to the flat
index's (same distances and ids in the same (distance, index) order), whether faiss's are (flat:
identical; multi-hash: the same distances, or the same set of hits), and the hits per query of
the radius searches. Build times and peak memory are printed per kind. The baselines run on the
first ``--baseline-queries`` queries (all by default) and their times are per query. Every
search is timed once after a warm-up call on a few queries; faiss uses all its OpenMP threads,
the flat index one thread per CPU, MIH one thread.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

NUM_BITS = 64
# Codes drawn per step of the generator: bounds its temporary memory (64 float32 per code).
DRAW_CHUNK = 1 << 20


def _peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def draw_codes(rng, n: int, centres: np.ndarray | None, flips: tuple[float, float]) -> np.ndarray:
    """``uint8 [n, L / 8]`` codes in faiss's byte layout: uniform, or centres with bits flipped."""
    num_bytes = NUM_BITS // 8
    if centres is None:
        return rng.integers(0, 256, size=(n, num_bytes), dtype=np.uint8)
    out = np.empty((n, num_bytes), np.uint8)
    for start in range(0, n, DRAW_CHUNK):
        rows = min(DRAW_CHUNK, n - start)
        labels = rng.integers(len(centres), size=rows)
        rate = rng.uniform(*flips, size=(rows, 1)).astype(np.float32)
        flip = rng.random((rows, NUM_BITS), dtype=np.float32) < rate
        out[start : start + rows] = centres[labels] ^ np.packbits(flip, axis=1, bitorder="little")
    return out


def check_faiss_layout(faiss) -> bool:
    """Whether faiss hashes bit j of a code from byte j // 8, bit j % 8 (least significant first).

    A one-table multi-hash index on bits 0-7 with no flips finds a code with one bit changed
    exactly when that bit is outside the table's 8 bits.
    """
    rng = np.random.default_rng(0)
    code = rng.integers(0, 256, size=(1, NUM_BITS // 8), dtype=np.uint8)
    index = faiss.IndexBinaryMultiHash(NUM_BITS, 1, 8)
    index.nflip = 0
    index.add(code)
    found = []
    for bit in range(16):
        query = code.copy()
        query[0, bit // 8] ^= np.uint8(1 << (bit % 8))
        _, ids = index.search(query, 1)
        found.append(bool(ids[0, 0] == 0))
    return found == [False] * 8 + [True] * 8


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def _same_hits(ours, lims, dist, ids) -> bool:
    """Whether faiss's unordered range results hold exactly our (distance, index) pairs."""
    for q, (our_dist, our_ids) in enumerate(ours):
        span = slice(lims[q], lims[q + 1])
        if sorted(zip(dist[span].tolist(), ids[span].tolist())) != list(
            zip(our_dist.tolist(), our_ids.tolist())
        ):
            return False
    return True


def _row(name, ours_ms, cells, exact, extra=""):
    text = f"{name:<8}{ours_ms:>9.3f}"
    for ms, note in cells:
        ratio = ms / ours_ms if ours_ms > 0 else float("nan")
        text += f"{ms:>11.3f}{ratio:>7.1f}x{note:>6}"
    return text + f"  {exact:<13}{extra}"


def run_case(num_db: int, args) -> list[tuple]:
    """Runs one database size in this process and prints its report; returns the k-NN ratios."""
    from dlhash_jax import hamming
    from dlhash_jax.multi_index import MultiIndexHashing
    from dlhash_jax.retrieval import HammingIndex

    try:
        import faiss
    except ImportError:
        faiss = None
    ratios = []
    for kind in args.kinds:
        rng = np.random.default_rng(args.seed)
        centres = None
        if kind == "learned":
            centres = rng.integers(0, 256, size=(args.classes, NUM_BITS // 8), dtype=np.uint8)
        database = draw_codes(rng, num_db, centres, tuple(args.flips))
        queries = draw_codes(rng, args.queries, centres, tuple(args.flips))
        base = queries[: args.baseline_queries]

        mih = MultiIndexHashing(NUM_BITS)
        _, t_mih = _timed(lambda: mih.add_packed(database))
        flat = HammingIndex(NUM_BITS)
        _, t_flat = _timed(lambda: flat.add_packed(database))
        m = mih.num_tables
        builds = f"build: MIH {t_mih:.1f} s, HammingIndex {t_flat:.1f} s"
        if faiss is not None:
            faiss_flat = faiss.IndexBinaryFlat(NUM_BITS)
            _, t_ff = _timed(lambda: faiss_flat.add(database))
            multihash = faiss.IndexBinaryMultiHash(NUM_BITS, m, NUM_BITS // m)
            _, t_mh = _timed(lambda: multihash.add(database))
            builds += f", faiss flat {t_ff:.1f} s, faiss multi-hash {t_mh:.1f} s"
        substrings = "/".join(str(length) for _, length in mih.substrings)
        title = kind
        if centres is not None:
            title += f" ({args.classes} classes, {args.flips[0]:.0%}-{args.flips[1]:.0%} flipped)"
        threads = f"flat {hamming.host_threads()}"
        if faiss is not None:
            threads += f", faiss {faiss.omp_get_max_threads()}"
        print(f"\n=== {title} codes: {args.queries} queries x {num_db:,} x {NUM_BITS} bits; MIH "
              f"m = {m} (substrings {substrings}); threads: {threads} ===")
        print(builds + f"; peak RSS {_peak_rss_mib():.0f} MiB")
        if len(base) < len(queries):
            print(f"baselines timed on the first {len(base)} queries, per query")
        header = f"{'search':<8}{'MIH ms/q':>9}{'flat ms/q':>11}{'ratio':>8}{'':>6}"
        if faiss is not None:
            header += f"{'faiss flat':>11}{'ratio':>8}{'':>6}{'faiss MH':>11}{'ratio':>8}"
            header += f"{'nflip':>6}"
        print(header + "  identical")

        # Warm-up: caches, thread pools, first touch of the tables.
        for index in (mih, flat):
            index.search(queries[:4], 1, packed=True)
            index.range_search(queries[:4], 1, packed=True)
        for k in args.ks:
            (dist, ids), t_ours = _timed(lambda: mih.search(queries, k, packed=True))
            (ref_dist, ref_ids), t_base = _timed(lambda: flat.search(base, k, packed=True))
            ours_ms = 1e3 * t_ours / len(queries)
            cells = [(1e3 * t_base / len(base), "")]
            same = np.array_equal(dist[: len(base)], ref_dist) and np.array_equal(
                ids[: len(base)], ref_ids)
            exact = f"MIH {'yes' if same else 'NO'}"
            if faiss is not None:
                (f_dist, f_ids), t_ff = _timed(lambda: faiss_flat.search(base, k))
                multihash.nflip = int(ref_dist[:, -1].max()) // m
                (h_dist, _), t_mh = _timed(lambda: multihash.search(base, k))
                cells += [(1e3 * t_ff / len(base), ""),
                          (1e3 * t_mh / len(base), str(multihash.nflip))]
                same = np.array_equal(f_dist, ref_dist) and np.array_equal(f_ids, ref_ids)
                exact += f", faiss {'yes' if same else 'NO'}"
                exact += f", MH dist {'yes' if np.array_equal(h_dist, ref_dist) else 'NO'}"
                ratios.append((centres is not None, num_db, k, 1e3 * t_ff / len(base) / ours_ms))
            print(_row(f"k={k}", ours_ms, cells, exact))
        for radius in args.radii:
            found, t_ours = _timed(lambda: mih.range_search(queries, radius, packed=True))
            ref, t_base = _timed(lambda: flat.range_search(base, radius, packed=True))
            ours_ms = 1e3 * t_ours / len(queries)
            cells = [(1e3 * t_base / len(base), "")]
            same = all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
                       for a, b in zip(found, ref))
            exact = f"MIH {'yes' if same else 'NO'}"
            if faiss is not None:
                # faiss's radius is strict (distance < r).
                (lims, f_dist, f_ids), t_ff = _timed(
                    lambda: faiss_flat.range_search(base, radius + 1))
                multihash.nflip = radius // m
                (h_lims, h_dist, h_ids), t_mh = _timed(
                    lambda: multihash.range_search(base, radius + 1))
                cells += [(1e3 * t_ff / len(base), ""),
                          (1e3 * t_mh / len(base), str(multihash.nflip))]
                exact += (f", faiss {'yes' if _same_hits(ref, lims, f_dist, f_ids) else 'NO'}"
                          f", MH {'yes' if _same_hits(ref, h_lims, h_dist, h_ids) else 'NO'}")
            hits = sum(len(i) for _, i in found) / len(found)
            print(_row(f"r<={radius}", ours_ms, cells, exact, f"  {hits:.1f} hits/q"))
        print(f"peak RSS {_peak_rss_mib():.0f} MiB")
        del mih, flat
        if faiss is not None:
            del faiss_flat, multihash
    return ratios


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000],
                        help="database sizes, each run in its own subprocess")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--baseline-queries", type=int, default=1000,
                        help="queries timed by the flat index and faiss (the first ones)")
    parser.add_argument("--kinds", nargs="+", default=["uniform", "learned"],
                        choices=["uniform", "learned"])
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--flips", type=float, nargs=2, default=[0.10, 0.20])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--radii", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--case", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case is not None:
        for learned, num_db, k, ratio in run_case(args.case, args):
            if learned and k == 10 and num_db >= 10**7:
                verdict = "met" if ratio >= 10 else "NOT met"
                print(f"\ntarget: faiss IndexBinaryFlat / MIH at {num_db:,} learned codes, "
                      f"k = 10: {ratio:.1f}x (target >= 10x: {verdict})")
        return
    try:
        import faiss
    except ImportError:
        print("faiss is not importable: the faiss columns are left out. Install it with "
              "`.venv/bin/pip install faiss-cpu` to compare against IndexBinaryFlat and "
              "IndexBinaryMultiHash.")
    else:
        print(f"faiss {faiss.__version__}; bit layout (bit j = byte j // 8, bit j % 8) "
              f"{'verified' if check_faiss_layout(faiss) else 'NOT as assumed'}")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root,
                                                                   os.environ.get("PYTHONPATH")])))
    forwarded = list(argv if argv is not None else sys.argv[1:])
    for size in args.sizes:
        subprocess.run(
            [sys.executable, os.path.abspath(__file__), *forwarded, "--case", str(size)],
            check=True, env=env,
        )


if __name__ == "__main__":
    main()
