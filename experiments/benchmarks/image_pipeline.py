"""Images per second of dlhash_jax.data.image_pipeline against a single-threaded loop, in one run.

Run from the repository root:

    .venv/bin/python experiments/benchmarks/image_pipeline.py
    .venv/bin/python experiments/benchmarks/image_pipeline.py --images 1024 --threads 1 2 4 8

It writes ``--images`` JPEGs (default 512) of 500×375 pixels, the typical ImageNet size, into a
temporary folder (seeded: smooth random colour fields plus pixel noise, quality 90, about 40 KB
each), reads each file once so that every method finds them in the page cache, and times one
training epoch at 256 → 224 (batches of ``--batch-size``, default 64) with:

* the baseline: a plain Python loop in one thread, ``ImageSource.raw`` (decode) then
  ``train_transform`` for each image of the epoch's order, stacked into batches;
* ``train_batches`` with grain at each of ``--threads`` (default 1, 2, 4) threads.

Each is timed ``--repeats`` times (default 2) and the best is printed as images per second and
as a ratio to the baseline. Every method must produce the same batches (the pipeline's draws are
a pure function of seed, epoch and position, which the baseline reproduces), which it checks.

grain's worker processes (``mp_prefetch``) are not timed: in grain 0.2.18 they fail outside
``absl.app`` until absl flags are marked parsed (google/grain#1355, fixed after 0.2.18) and leave
shared-memory warnings at exit, and threads already use every core, since PIL releases the GIL.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from PIL import Image

from dlhash_jax.data import batching
from dlhash_jax.data import image_pipeline

WIDTH, HEIGHT = 500, 375
SEED, EPOCH = 0, 0


def write_jpegs(folder: str, count: int) -> list[str]:
    """``count`` seeded 500×375 JPEGs with photo-like content (smooth colours, fine noise)."""
    rng = np.random.default_rng(SEED)
    names = []
    for i in range(count):
        field = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        image = np.asarray(Image.fromarray(field).resize((WIDTH, HEIGHT), Image.BICUBIC))
        noise = rng.integers(-12, 13, image.shape)
        image = np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        name = f"{i:05d}.jpg"
        Image.fromarray(image).save(os.path.join(folder, name), quality=90)
        names.append(name)
    return names


def baseline_epoch(source, labels, batch_size):
    """One epoch decoded and transformed image by image in this thread, in the pipeline's order."""
    count = len(source) // batch_size
    order = batching.epoch_permutation(len(source), seed=SEED, epoch=EPOCH)
    epoch = []
    for step in range(count):
        crops = []
        for position in range(step * batch_size, (step + 1) * batch_size):
            # The pipeline's per-item generator (module docstring), so both give the same batches.
            rng = np.random.default_rng([SEED, EPOCH, image_pipeline._TRAIN_STREAM, position])
            crops.append(image_pipeline.train_transform(source.raw(int(order[position])), rng))
        rows = order[step * batch_size : (step + 1) * batch_size].astype(np.int32)
        epoch.append({"inputs": np.stack(crops), "labels": labels[rows], "index": rows})
    return epoch


def pipeline_epoch(source, labels, batch_size, num_threads):
    return list(image_pipeline.train_batches(source, labels, batch_size, seed=SEED, epoch=EPOCH,
                                             num_threads=num_threads))


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return value, min(times)


def same_batches(a, b) -> bool:
    keys = ("inputs", "labels", "index")
    return len(a) == len(b) and all(
        np.array_equal(x[key], y[key]) for x, y in zip(a, b) for key in keys
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512, help="JPEGs to write and read")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4],
                        help="grain thread counts to time")
    parser.add_argument("--repeats", type=int, default=2, help="timings per method; best kept")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        names = write_jpegs(folder, args.images)
        size_kib = sum(os.path.getsize(os.path.join(folder, n)) for n in names) / len(names) / 1024
        print(f"=== {args.images} JPEGs {WIDTH}x{HEIGHT} (mean {size_kib:.0f} KiB, written in "
              f"{time.perf_counter() - start:.1f} s); train transform "
              f"{image_pipeline.RESIZE} -> {image_pipeline.CROP}, batches of {args.batch_size}; "
              f"{os.cpu_count()} CPUs ===")
        for name in names:  # into the page cache, so no method pays for the first disk read
            with open(os.path.join(folder, name), "rb") as file:
                file.read()
        source = image_pipeline.ImageSource.from_files(folder, names)
        labels = np.eye(10, dtype=np.float32)[np.arange(len(names)) % 10]
        count = len(names) // args.batch_size * args.batch_size

        reference, t_base = best_time(lambda: baseline_epoch(source, labels, args.batch_size),
                                      args.repeats)
        print(f"{'method':<44}{'images/s':>10}{'time':>9}{'ratio':>8}{'same batches':>14}")
        print(f"{'baseline: one-thread loop (raw + transform)':<44}{count / t_base:>10.1f}"
              f"{t_base:>8.2f}s{1.0:>7.2f}x{'-':>14}")
        for threads in args.threads:
            epoch, elapsed = best_time(
                lambda: pipeline_epoch(source, labels, args.batch_size, threads), args.repeats)
            same = "yes" if same_batches(epoch, reference) else "NO"
            print(f"{f'train_batches, grain, {threads} thread(s)':<44}{count / elapsed:>10.1f}"
                  f"{elapsed:>8.2f}s{t_base / elapsed:>7.2f}x{same:>14}")


if __name__ == "__main__":
    main()
