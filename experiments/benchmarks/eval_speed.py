"""Speed of dlhash_jax.metrics against the NumPy ways of computing mAP, in one run.

Run from the repository root:

    .venv/bin/python experiments/benchmarks/eval_speed.py            # both sizes
    .venv/bin/python experiments/benchmarks/eval_speed.py --sizes 54000

For each database size (default: 54,000, the CIFAR-10 protocol's, and 1,000,000 for scale) a
fresh subprocess (so that its peak memory is its own) builds 1,000 query and N database codes of
64 bits for 10 classes (class centre codes with 20% of bits flipped, so there are realistic
Hamming-distance ties) and times, on the same data:

* ours: ``metrics.mean_average_precision`` for mAP@1000 and mAP@all, ``ties="index"``, timed on
  a second call (the first, with compilation, is printed separately);
* NumPy, vectorised: float32 distances by matrix product and a stable argsort, in chunks of
  queries, then cumulative precision — the fastest straightforward NumPy code with the same tie
  rule;
* NumPy, per-query loop, in the style of common deep-hashing code (distance, full argsort,
  cumulative precision for one query at a time); on the 10^6 database it is timed on
  ``--loop-queries`` queries and scaled to 1,000;
* faiss ``IndexBinaryFlat`` search plus AP (faiss-cpu is in the ``test`` and ``faiss`` extras;
  skipped if it is not importable); mAP@all (a search for all N items) only up to
  ``FAISS_ALL_MAX`` items, because faiss returns the whole ``[1000, N]`` ranking.

It prints the times, the ratios against ours, the largest difference between our values and the
NumPy ones (they must agree to 1e-6), and the peak resident memory (VmHWM) of the subprocess after
our part and after the baselines.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

NUM_QUERIES = 1000
NUM_BITS = 64
NUM_CLASSES = 10
TOPK = 1000
# Largest database for faiss's mAP@all: its [1000, N] distances and ids take 12 N bytes.
FAISS_ALL_MAX = 100_000


def _peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _make_data(num_db: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.choice(np.array([-1, 1], np.int8), size=(NUM_CLASSES, NUM_BITS))

    def codes_for(labels):
        codes = centres[labels]
        flip = rng.random(codes.shape) < 0.2
        codes[flip] *= -1
        return codes

    q_lab = rng.integers(0, NUM_CLASSES, NUM_QUERIES)
    d_lab = rng.integers(0, NUM_CLASSES, num_db)
    return codes_for(q_lab), codes_for(d_lab), q_lab, d_lab


def _ap_from_ranked(relevant: np.ndarray, k: int | None) -> np.ndarray:
    """Per-row AP of relevance in rank order, normalised by the relevant items retrieved."""
    if k is not None:
        relevant = relevant[:, :k]
    hits = np.cumsum(relevant, axis=1)
    precision = hits / np.arange(1, relevant.shape[1] + 1)
    found = hits[:, -1]
    return np.where(found > 0, (precision * relevant).sum(1) / np.maximum(found, 1), 0.0)


def numpy_vectorised(q, db, q_lab, d_lab, k, chunk=None):
    qf, dbf = q.astype(np.float32), db.astype(np.float32)
    chunk = chunk or max(1, (1 << 24) // len(db))
    aps = []
    for start in range(0, len(q), chunk):
        dist = 0.5 * (NUM_BITS - qf[start : start + chunk] @ dbf.T)
        order = np.argsort(dist, axis=1, kind="stable")
        relevant = q_lab[start : start + chunk, None] == d_lab[order]
        aps.append(_ap_from_ranked(relevant, k))
    return float(np.concatenate(aps).mean())


def numpy_per_query(q, db, q_lab, d_lab, k, num_queries=None):
    qf, dbf = q.astype(np.float32), db.astype(np.float32)
    num_queries = num_queries or len(q)
    aps = []
    for i in range(num_queries):
        hamm = 0.5 * (NUM_BITS - dbf @ qf[i])
        ind = np.argsort(hamm, kind="stable")
        gnd = (d_lab[ind] == q_lab[i]).astype(np.float32)
        if k is not None:
            gnd = gnd[:k]
        count = np.cumsum(gnd)
        found = count[-1]
        if found == 0:
            aps.append(0.0)
            continue
        rank = np.arange(1, len(gnd) + 1)
        aps.append(float(np.sum(gnd * count / rank) / found))
    return float(np.mean(aps))


def faiss_search(q, db, q_lab, d_lab, k):
    import faiss

    # faiss's byte layout: bit j of a code in byte j // 8 at bit j % 8.
    qb = np.packbits(q > 0, axis=1, bitorder="little")
    dbb = np.packbits(db > 0, axis=1, bitorder="little")
    index = faiss.IndexBinaryFlat(NUM_BITS)
    index.add(dbb)
    _, ids = index.search(qb, k)
    return float(_ap_from_ranked(q_lab[:, None] == d_lab[ids], None).mean())


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def run_case(num_db: int, loop_queries: int) -> None:
    """Runs one database size in this process and prints its report."""
    import jax

    from dlhash_jax import metrics

    q, db, q_lab, d_lab = _make_data(num_db)
    eye = np.eye(NUM_CLASSES, dtype=np.float32)
    ql, dl = eye[q_lab], eye[d_lab]
    print(f"\n=== {NUM_QUERIES} queries x {num_db:,} database x {NUM_BITS} bits, "
          f"{NUM_CLASSES} classes; JAX backend: {jax.default_backend()}, "
          f"{os.cpu_count()} CPUs ===")

    _, first = _timed(metrics.mean_average_precision, q, db, ql, dl, TOPK)
    _, first_all = _timed(metrics.mean_average_precision, q, db, ql, dl)
    print(f"first calls (with compilation): mAP@{TOPK} {first:.2f} s, mAP@all {first_all:.2f} s")
    ours_k, t_ours_k = _timed(metrics.mean_average_precision, q, db, ql, dl, TOPK)
    ours_all, t_ours_all = _timed(metrics.mean_average_precision, q, db, ql, dl)
    peak_ours = _peak_rss_mib()

    np_k, t_np_k = _timed(numpy_vectorised, q, db, q_lab, d_lab, TOPK)
    np_all, t_np_all = _timed(numpy_vectorised, q, db, q_lab, d_lab, None)
    n_loop = NUM_QUERIES if num_db <= 100_000 else min(loop_queries, NUM_QUERIES)
    loop_k, t_loop_k = _timed(numpy_per_query, q, db, q_lab, d_lab, TOPK, n_loop)
    loop_all, t_loop_all = _timed(numpy_per_query, q, db, q_lab, d_lab, None, n_loop)
    scale = NUM_QUERIES / n_loop
    t_loop_k, t_loop_all = t_loop_k * scale, t_loop_all * scale
    peak_all = _peak_rss_mib()

    ref_loop_k = metrics.mean_average_precision(q[:n_loop], db, ql[:n_loop], dl, TOPK)
    ref_loop_all = metrics.mean_average_precision(q[:n_loop], db, ql[:n_loop], dl)
    loop_note = "" if n_loop == NUM_QUERIES else f" (timed on {n_loop} queries, x{scale:g})"

    print(f"{'method':<34}{'mAP@' + str(TOPK):>12}{'time':>10}{'ratio':>8}"
          f"{'mAP@all':>12}{'time':>10}{'ratio':>8}")
    rows = [
        ("dlhash_jax.metrics", ours_k, t_ours_k, ours_all, t_ours_all),
        ("NumPy vectorised (stable argsort)", np_k, t_np_k, np_all, t_np_all),
        ("NumPy per-query loop" + ("*" if loop_note else ""), loop_k, t_loop_k, loop_all,
         t_loop_all),
    ]
    try:
        import faiss  # noqa: F401
    except ImportError:
        faiss_note = "faiss: not importable, skipped"
    else:
        fk, t_fk = _timed(faiss_search, q, db, q_lab, d_lab, TOPK)
        fa, t_fa = float("nan"), float("nan")
        if num_db <= FAISS_ALL_MAX:
            fa, t_fa = _timed(faiss_search, q, db, q_lab, d_lab, num_db)
        rows.append(("faiss IndexBinaryFlat + AP", fk, t_fk, fa, t_fa))
        faiss_note = (f"faiss differs from ours by {abs(fk - ours_k):.1e} (mAP@{TOPK}), "
                      f"{abs(fa - ours_all):.1e} (mAP@all)")
    for name, vk, tk, va, ta in rows:
        print(f"{name:<34}{vk:>12.6f}{tk:>9.2f}s{tk / t_ours_k:>7.1f}x"
              f"{va:>12.6f}{ta:>9.2f}s{ta / t_ours_all:>7.1f}x")
    if loop_note:
        print(f"* per-query loop{loop_note}; its values are for those queries")
    print(f"|ours - NumPy vectorised|: mAP@{TOPK} {abs(ours_k - np_k):.1e}, "
          f"mAP@all {abs(ours_all - np_all):.1e}; |ours - loop| on the same queries: "
          f"{abs(ref_loop_k - loop_k):.1e}, {abs(ref_loop_all - loop_all):.1e}")
    print(faiss_note)
    print(f"speed-up over NumPy vectorised: mAP@{TOPK} {t_np_k / t_ours_k:.1f}x (target >= 6), "
          f"mAP@all {t_np_all / t_ours_all:.1f}x (target >= 3)")
    print(f"peak RSS: {peak_ours:.0f} MiB after ours, {peak_all:.0f} MiB after the baselines")
    agree = abs(ours_k - np_k) <= 1e-6 and abs(ours_all - np_all) <= 1e-6
    print("values identical to 1e-6:", "yes" if agree else "NO")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[54_000, 1_000_000],
                        help="database sizes, each run in its own subprocess")
    parser.add_argument("--loop-queries", type=int, default=50,
                        help="queries timed by the per-query loop above 10^5 items")
    parser.add_argument("--case", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case is not None:
        run_case(args.case, args.loop_queries)
        return
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root,
                                                                   os.environ.get("PYTHONPATH")])))
    for size in args.sizes:
        subprocess.run([sys.executable, os.path.abspath(__file__), "--case", str(size),
                        "--loop-queries", str(args.loop_queries)], check=True, env=env)


if __name__ == "__main__":
    main()
