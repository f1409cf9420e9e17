"""The device pass of an evaluation: per chunk of queries, everything the metrics need.

One jitted kernel per chunk computes the ``[q, N]`` distances and shared-label grades against the
whole database and reduces them before anything leaves the device: counts of relevant items, the
grades of the first items in rank order (:func:`dlhash_jax.hamming.rank_payload`), and a
histogram by (distance, grade). The host finishes the ranking
(:func:`dlhash_jax.hamming.ranked_payload`) while the device computes the next chunk.
"""

from __future__ import annotations

import functools
from typing import Iterator, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dlhash_jax import codes
from dlhash_jax import hamming
from dlhash_jax.metrics._prepare import Prepared


def _grades(q_lab, d_lab, single_label: bool) -> jax.Array:
    """[q, N] int32 number of shared labels (0/1 for single-label data)."""
    if single_label:
        return (q_lab[:, None] == d_lab[None, :]).astype(jnp.int32)
    grade = jnp.zeros((q_lab.shape[0], d_lab.shape[0]), jnp.int32)
    for w in range(q_lab.shape[1]):
        grade = grade + lax.population_count(q_lab[:, w, None] & d_lab[None, :, w]).astype(
            jnp.int32
        )
    return grade


def _grade_dtype(max_grade: int):
    return jnp.uint8 if max_grade < 256 else jnp.int32


@functools.partial(
    jax.jit,
    static_argnames=("single_label", "num_bits", "max_grade", "mode", "length", "histogram"),
)
def _chunk_kernel(q_codes, d_codes, q_lab, d_lab, i, *, single_label, num_bits, max_grade, mode,
                  length, histogram):
    """Everything chunk ``i`` needs from its [q, N] block, which never leaves this function.

    The queries stay on the device whole, as blocks ``[chunks, q, ...]``; ``i`` (traced) picks
    the chunk, so a call is one dispatch without a transfer. ``mode``: None (no ranking) or a
    mode of :func:`dlhash_jax.hamming.ranking_mode`, with ``length`` as
    :func:`dlhash_jax.hamming.rank_payload` takes it.
    """
    dist = codes.packed_hamming_distance(q_codes[i], d_codes)
    grade = _grades(q_lab[i], d_lab, single_label)
    out = {
        "count_ge": jnp.stack(
            [jnp.sum(grade >= t, axis=1, dtype=jnp.int32) for t in range(1, max_grade + 1)],
            axis=1,
        )
    }
    if mode is not None:
        out.update(hamming.rank_payload(
            dist, grade.astype(_grade_dtype(max_grade)), mode=mode, length=length,
            payload_bits=max(1, max_grade.bit_length()),
        ))
    if histogram:
        bins = (num_bits + 1) * (max_grade + 1)
        rows = lax.broadcasted_iota(jnp.int32, dist.shape, 0)
        hist = jnp.zeros((dist.shape[0], bins), jnp.int32)
        out["hist"] = hist.at[rows, dist * (max_grade + 1) + grade].add(1)
    return out


class Chunk(NamedTuple):
    """Integer statistics of one chunk of queries, identical on every backend."""

    count_ge: np.ndarray  # [q, max_grade] items with at least t shared labels, t = 1..max_grade
    ranked: np.ndarray | None  # [q, M] grades of the first M items in rank order (may be a
    # reused buffer: valid until the next chunk is drawn)
    hist: np.ndarray | None  # [q, L+1, max_grade+1] items by distance and grade


def chunks(prep: Prepared, *, length: int | None, histogram: bool, backend: str | None,
           chunk_size: int | None) -> Iterator[Chunk]:
    """Yields the statistics of consecutive query chunks.

    Args:
      prep: the prepared inputs.
      length: ranked items wanted per query (None: no ranking).
      histogram: whether to count items by (distance, grade).
      backend: ``"host"``, ``"device"`` or None (:func:`dlhash_jax.hamming.default_backend`).
      chunk_size: queries per chunk, or None (:func:`dlhash_jax.hamming.plan`).
    """
    backend = hamming.resolve_backend(backend, "_backend")
    num_q, num_db = prep.query_codes.shape[0], prep.num_db
    chunk_size, _ = hamming.plan(num_q, num_db, chunk_size)
    payload_bits = max(1, prep.max_grade.bit_length())
    mode = None
    if length is not None:
        mode = hamming.ranking_mode(backend, prep.num_bits, num_db, payload_bits)
    kernel = functools.partial(
        _chunk_kernel,
        single_label=prep.single_label,
        num_bits=prep.num_bits,
        max_grade=prep.max_grade,
        mode=mode,
        # Only the device ranking depends on the length; keep one compilation for the others.
        length=length if mode == "device" else None,
        histogram=histogram,
    )
    # Padding the last chunk to the common size makes the kernel compile once.
    q_codes = hamming.blocks(prep.query_codes, chunk_size)
    q_labels = hamming.blocks(prep.query_labels, chunk_size)
    rows = hamming.chunk_slices(num_q, chunk_size)

    def launch(i):
        return kernel(q_codes, prep.db_codes, q_labels, prep.db_labels, np.int32(i))

    buffer = None
    for i, out in hamming.prefetched(launch, range(len(rows))):
        valid = rows[i].stop - rows[i].start
        ranked = None
        if mode is not None:
            ranked, buffer = hamming.ranked_payload(
                out, valid, mode=mode, length=length, num_bits=prep.num_bits,
                payload_bits=payload_bits, buffer=buffer,
            )
        hist = None
        if histogram:
            hist = np.asarray(out["hist"])[:valid].reshape(valid, -1, prep.max_grade + 1)
        yield Chunk(
            count_ge=np.asarray(out["count_ge"])[:valid].astype(np.int64),
            ranked=ranked,
            hist=None if hist is None else hist.astype(np.int64),
        )
