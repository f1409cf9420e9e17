"""Packed Hamming distances in blocks: the one engine under ``metrics`` and ``retrieval``.

Codes are ±1 matrices ``[N, L]`` (docs/design.md). They are packed 32 bits to a ``uint32`` word
(:func:`dlhash_jax.codes.pack_bits`, the layout of :func:`dlhash_jax.codes.pack_codes`) and
compared with XOR and population count (:func:`dlhash_jax.codes.packed_hamming_distance`) under
``jit``, in blocks of rows: each side is zero-padded to a whole number of blocks and held on the
device as ``[blocks, size, W]`` (:func:`blocks`); a traced block index picks one, so every block
is one compiled call, and the next block is dispatched before the current one is read
(:func:`prefetched`), so the device computes while the host works. No ``[Q, N]`` array larger
than one block ever exists.

Every ranking is by (distance, database index): among equal distances the lower index comes
first. Distances are small integers in ``[0, L]``, which both backends exploit. The backend
(:func:`resolve_backend`) is ``"host"`` on CPU, where XLA's sort and ``top_k`` are slow and NumPy
does the ordering, and ``"device"`` on GPU/TPU, where the ordering stays under ``jit``. Both give
identical results.

* :func:`topk`, the k nearest items. Host: each distance block comes back to NumPy; the k-th
  smallest distance ``t`` of a row is found by bisection over ``[0, L]`` with vectorised counts,
  the items below ``t`` and the first items at ``t`` by index are taken in one scan, and only
  those are sorted (a radix sort on 16-bit keys). XLA's CPU ``top_k`` and ``argsort`` cost about
  25x more on 1,000 x 54,000 distances. Device: ``lax.top_k`` on the distinct key
  ``distance * block + position`` inside a ``lax.scan`` over database blocks, merging each
  block's candidates into the running best k with a two-key ``lax.sort``.
* :func:`within_radius`, every item at distance ``<= r``: on the host for every backend, because
  the number of hits is data-dependent.
* :func:`rank_payload` (traced, inside a caller's kernel) and :func:`ranked_payload` (host): an
  integer payload per item (e.g. a relevance grade) of the first ``length`` items of the whole
  database in rank order. ``"keys"`` (host): the device builds unique ``int32`` keys
  ``((d N + index) << bits) | payload`` and NumPy sorts them (after ``np.partition`` for a top
  K), so the payloads come out in rank order without a gather. ``"dist"``, the host fallback when
  a key would overflow ``int32``: a stable argsort of the distances. ``"device"``: ``lax.top_k``
  for a top K, else a stable ``lax.sort`` carrying the payload.
"""

from __future__ import annotations

import functools
from typing import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dlhash_jax import codes
from dlhash_jax._checks import check_choice, check_int

BACKENDS = ("host", "device")
# Rows packed per compiled call: bounded memory, one compilation per shape.
PACK_BLOCK = 1 << 16
# Query-item pairs of a default query chunk: buffers this small are reused by the allocator
# instead of being mapped afresh, which measured 2-3x faster on CPU than 2**24.
PAIRS_PER_CHUNK = 1 << 22
# Largest int32 key, for the host ranking keys and the device top-k keys.
_MAX_KEY = 2**31 - 1


def default_backend() -> str:
    """``"host"`` when JAX's default backend is the CPU, ``"device"`` otherwise."""
    return "host" if jax.default_backend() == "cpu" else "device"


def resolve_backend(backend: str | None, name: str = "backend") -> str:
    """The backend to use: ``backend`` itself, checked, or :func:`default_backend` for None.

    Args:
      backend: ``"host"``, ``"device"`` or None.
      name: the argument's name in the error message.

    Returns:
      ``"host"`` or ``"device"``.

    Raises:
      ValueError: for any other value.
    """
    if backend is None:
        return default_backend()
    check_choice(backend, BACKENDS, name)
    return backend


_pack_block = jax.jit(codes.pack_bits)


def pack(matrix) -> np.ndarray:
    """Packs validated ±1 codes or 0/1 labels to ``uint32`` words on the host, block by block.

    Entries ``> 0`` are set bits (:func:`dlhash_jax.codes.pack_bits`). Rows go through one
    compiled call per ``PACK_BLOCK`` rows (the last block zero-padded), so memory stays bounded.

    Args:
      matrix: ``[N, L]`` ±1 codes or 0/1 bits, any numeric dtype; ``N`` may be 0.

    Returns:
      ``uint32 [N, ceil(L / 32)]`` NumPy array.

    Raises:
      ValueError: if ``matrix`` is not 2-D.
    """
    # Booleans make one compiled shape per (block, L) whatever the input dtype.
    bits = np.asarray(matrix) > 0
    if bits.ndim != 2:
        raise ValueError(f"matrix must be a 2-D [N, L] matrix, got shape {bits.shape}.")
    n, num_bits = bits.shape
    block = max(1, min(n, PACK_BLOCK))
    out = np.empty((n, codes.num_words(num_bits)), np.uint32)
    for rows in chunk_slices(n, block):
        part = bits[rows]
        valid = part.shape[0]
        if valid < block:
            part = np.concatenate([part, np.zeros((block - valid, num_bits), bool)])
        out[rows] = np.asarray(_pack_block(part))[:valid]
    return out


def plan(num_queries: int, num_db: int, chunk_size: int | None = None,
         db_chunk_size: int | None = None) -> tuple[int, int]:
    """Rows per block, ``(queries, database items)``, each capped at the rows there are.

    Args:
      num_queries: ``Q >= 1``.
      num_db: ``N >= 1``.
      chunk_size: queries per block; None: as many as keep a block near ``PAIRS_PER_CHUNK``
        query-item pairs (at least one).
      db_chunk_size: database items per block; None: the whole database in one block.

    Returns:
      ``(query rows, database rows)`` per block.

    Raises:
      ValueError: a size that is neither None nor a positive integer.
    """
    db_chunk = num_db
    if db_chunk_size is not None:
        db_chunk = min(check_int(db_chunk_size, "db_chunk_size"), num_db)
    if chunk_size is None:
        return max(1, min(num_queries, PAIRS_PER_CHUNK // db_chunk)), db_chunk
    return min(check_int(chunk_size, "chunk_size"), num_queries), db_chunk


def chunk_slices(num_rows: int, size: int) -> list[slice]:
    """The rows of each block: consecutive slices of ``size`` rows covering ``range(num_rows)``.

    Args:
      num_rows: rows to cover (may be 0).
      size: rows per block.

    Returns:
      ``ceil(num_rows / size)`` slices; block ``i`` of :func:`blocks` holds the rows of slice
      ``i``, and only the last may be shorter than ``size``.

    Raises:
      ValueError: if ``size`` is not a positive integer.
    """
    size = check_int(size, "size")
    return [slice(start, min(start + size, num_rows)) for start in range(0, num_rows, size)]


def blocks(rows, size: int) -> jax.Array:
    """Host rows as device blocks, so a traced block index picks one without a transfer.

    Args:
      rows: ``[N, ...]`` array.
      size: rows per block.

    Returns:
      ``[ceil(N / size), size, ...]`` device array of ``rows``' dtype, zero-padded at the end.
    """
    rows = np.asarray(rows)
    count = -(-rows.shape[0] // size)
    padded = np.zeros((count * size,) + rows.shape[1:], rows.dtype)
    padded[: rows.shape[0]] = rows
    return jnp.asarray(padded.reshape((count, size) + rows.shape[1:]))


def prefetched(launch: Callable, keys: Iterable) -> Iterator[tuple]:
    """Runs ``launch`` over ``keys`` one step ahead of the caller.

    JAX dispatch is asynchronous, so the device computes the next block while the caller reads
    (and waits for) the current one.

    Args:
      launch: ``key -> result``, typically a jitted call.
      keys: the keys, in order.

    Yields:
      ``(key, launch(key))`` in order; ``launch`` of the next key has been called before each
      pair is yielded.
    """
    keys = list(keys)
    pending = launch(keys[0]) if keys else None
    for position, key in enumerate(keys):
        current = pending
        if position + 1 < len(keys):
            pending = launch(keys[position + 1])
        yield key, current


def distance_dtype(num_bits: int):
    """The narrowest integer dtype holding ``[0, num_bits]``: it shrinks each block's host copy."""
    if num_bits <= np.iinfo(np.uint8).max:
        return jnp.uint8
    if num_bits <= np.iinfo(np.int16).max:
        return jnp.int16
    return jnp.int32


def _sort_dtype(num_bits: int):
    # NumPy's stable sort is a radix sort for 16-bit integers (a merge sort for wider ones).
    return np.int16 if num_bits <= np.iinfo(np.int16).max else np.int32


@functools.partial(jax.jit, static_argnames=("dtype",))
def _block_distances(query_blocks, db_blocks, i, j, *, dtype):
    return codes.packed_hamming_distance(query_blocks[i], db_blocks[j]).astype(dtype)


def distance_blocks(query_packed: np.ndarray, db_packed: np.ndarray, num_bits: int,
                    chunk_size: int, db_chunk_size: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Every block of the distance matrix on the host, query block by query block.

    Args:
      query_packed: ``uint32 [Q, W]`` packed queries.
      db_packed: ``uint32 [N, W]`` packed database.
      num_bits: ``L``.
      chunk_size, db_chunk_size: rows per block, as :func:`plan` returns them.

    Yields:
      ``(i, j, distances)``: query block ``i``, database block ``j`` (``j`` fastest) and their
      distances ``[rows of i, rows of j]`` in :func:`distance_dtype`, padding removed.
    """
    query_rows = chunk_slices(query_packed.shape[0], chunk_size)
    db_rows = chunk_slices(db_packed.shape[0], db_chunk_size)
    query_blocks = blocks(query_packed, chunk_size)
    db_blocks = blocks(db_packed, db_chunk_size)
    dtype = distance_dtype(num_bits)

    def launch(pair):
        return _block_distances(query_blocks, db_blocks, *pair, dtype=dtype)

    pairs = [(i, j) for i in range(len(query_rows)) for j in range(len(db_rows))]
    for (i, j), dist in prefetched(launch, pairs):
        rows, cols = query_rows[i], db_rows[j]
        yield i, j, np.asarray(dist)[: rows.stop - rows.start, : cols.stop - cols.start]


# ----------------------------------------------------------------------------------------------
# Top-k.


def _kth_smallest(row: np.ndarray, k: int, num_bits: int) -> int:
    """The k-th smallest value of ``row`` (values in ``[0, num_bits]``, ``1 <= k <= len(row)``)."""
    low, high = 0, num_bits
    while low < high:
        mid = (low + high) // 2
        if np.count_nonzero(row <= mid) >= k:
            high = mid
        else:
            low = mid + 1
    return low


def _smallest_per_row(dist: np.ndarray, k: int, num_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest entries of each row of ``dist`` ``[q, n]`` by (value, column).

    Counting instead of comparison sorting: everything below the k-th smallest value ``t`` plus
    the first ``k - count(< t)`` columns at ``t`` are exactly the answer, and only the part below
    ``t`` (fewer than k items) needs sorting. Memory stays ``O(n)`` per row even when all tie.

    Returns:
      ``(distances int32 [q, k], columns int64 [q, k])``.
    """
    out_dist = np.empty((dist.shape[0], k), np.int32)
    out_cols = np.empty((dist.shape[0], k), np.int64)
    for r, row in enumerate(dist):
        kth = _kth_smallest(row, k, num_bits)
        candidates = np.flatnonzero(row <= kth)
        values = row[candidates]
        below = values < kth
        cols_below = candidates[below]
        order = np.argsort(values[below].astype(_sort_dtype(num_bits)), kind="stable")
        m = cols_below.shape[0]
        out_dist[r, :m] = values[below][order]
        out_cols[r, :m] = cols_below[order]
        out_dist[r, m:] = kth
        out_cols[r, m:] = candidates[~below][: k - m]
    return out_dist, out_cols


def _merge_host(best, new, k, num_bits):
    """Merges two per-row candidate lists; ``best`` holds only smaller indices than ``new``."""
    dist = np.concatenate([best[0], new[0]], axis=1)
    cols = np.concatenate([best[1], new[1]], axis=1)
    # A stable sort by distance keeps index order within each distance, because every column of
    # best precedes every column of new.
    order = np.argsort(dist.astype(_sort_dtype(num_bits)), axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, order, 1), np.take_along_axis(cols, order, 1)


def _topk_host(query_packed, db_packed, num_bits, k, chunk_size, db_chunk_size):
    out_dist = np.empty((query_packed.shape[0], k), np.int32)
    out_idx = np.empty((query_packed.shape[0], k), np.int64)
    query_rows = chunk_slices(query_packed.shape[0], chunk_size)
    last_block = len(chunk_slices(db_packed.shape[0], db_chunk_size)) - 1
    best = None
    for i, j, dist in distance_blocks(query_packed, db_packed, num_bits, chunk_size,
                                      db_chunk_size):
        found = _smallest_per_row(dist, min(k, dist.shape[1]), num_bits)
        found = (found[0], found[1] + j * db_chunk_size)
        best = found if j == 0 else _merge_host(best, found, k, num_bits)
        if j == last_block:
            out_dist[query_rows[i]], out_idx[query_rows[i]] = best
    return out_dist, out_idx


@functools.partial(jax.jit, static_argnames=("k", "num_bits", "num_db"))
def _topk_device_block(query_block, db_blocks, *, k, num_bits, num_db):
    """Top-k by (distance, index) of one query block against all database blocks, under jit."""
    rows = query_block.shape[0]
    num_blocks, block, _ = db_blocks.shape
    block_k = min(k, block)
    positions = jnp.arange(block, dtype=jnp.int32)
    # Padded database rows and the initial fillers sort after every real item: distance L + 1.
    filler = num_bits + 1

    def step(carry, inputs):
        best_dist, best_idx = carry
        j, db_block = inputs
        index = j * block + positions
        dist = codes.packed_hamming_distance(query_block, db_block)
        dist = jnp.where(index < num_db, dist, filler)
        # Distinct keys make top_k's result independent of how a backend breaks ties.
        neg_key, _ = lax.top_k(-(dist * block + positions), block_k)
        key = -neg_key
        merged_dist = jnp.concatenate([best_dist, key // block], axis=1)
        merged_idx = jnp.concatenate([best_idx, j * block + key % block], axis=1)
        merged_dist, merged_idx = lax.sort((merged_dist, merged_idx), dimension=1, num_keys=2)
        return (merged_dist[:, :k], merged_idx[:, :k]), None

    init = (jnp.full((rows, k), filler, jnp.int32), jnp.full((rows, k), num_db, jnp.int32))
    steps = (jnp.arange(num_blocks, dtype=jnp.int32), db_blocks)
    (dist, idx), _ = lax.scan(step, init, steps)
    return dist, idx


def _topk_device(query_packed, db_packed, num_bits, k, chunk_size, db_chunk_size):
    # The key distance * block + position must fit in int32.
    db_chunk_size = min(db_chunk_size, _MAX_KEY // (num_bits + 2))
    query_blocks = blocks(query_packed, chunk_size)
    db_blocks = blocks(db_packed, db_chunk_size)
    results = [
        _topk_device_block(query_blocks[i], db_blocks, k=k, num_bits=num_bits,
                           num_db=db_packed.shape[0])
        for i in range(query_blocks.shape[0])
    ]
    num_queries = query_packed.shape[0]
    dist = np.concatenate([np.asarray(d) for d, _ in results])[:num_queries]
    idx = np.concatenate([np.asarray(i) for _, i in results])[:num_queries]
    return dist.astype(np.int32), idx.astype(np.int64)


def topk(query_packed: np.ndarray, db_packed: np.ndarray, num_bits: int, k: int, *,
         chunk_size: int | None = None, db_chunk_size: int | None = None,
         backend: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest database rows of every query, by (distance, index); exact.

    Args:
      query_packed: ``uint32 [Q, W]`` packed queries, ``Q >= 1``.
      db_packed: ``uint32 [N, W]`` packed database, ``N >= 1``.
      num_bits: ``L``.
      k: ``1 <= k <= N`` (checked by the caller).
      chunk_size, db_chunk_size: block sizes, as in :func:`plan`.
      backend: ``"host"``, ``"device"`` or None (:func:`default_backend`).

    Returns:
      ``(distances int32 [Q, k], indices int64 [Q, k])``, sorted by (distance, index) per row;
      identical on both backends and for every block size.
    """
    backend = resolve_backend(backend)
    chunk, db_chunk = plan(query_packed.shape[0], db_packed.shape[0], chunk_size, db_chunk_size)
    search = _topk_host if backend == "host" else _topk_device
    return search(query_packed, db_packed, num_bits, k, chunk, db_chunk)


def within_radius(query_packed: np.ndarray, db_packed: np.ndarray, num_bits: int, radius: int,
                  *, chunk_size: int | None = None,
                  db_chunk_size: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every database row within Hamming distance ``radius`` of each query.

    Args:
      query_packed, db_packed, num_bits, chunk_size, db_chunk_size: as in :func:`topk`.
      radius: ``>= 0``.

    Returns:
      ``Q`` pairs ``(distances int32 [n_q], indices int64 [n_q])`` sorted by (distance, index).
    """
    chunk, db_chunk = plan(query_packed.shape[0], db_packed.shape[0], chunk_size, db_chunk_size)
    # Distances never exceed L; clamping keeps the comparison inside the narrow distance dtype.
    radius = min(radius, num_bits)
    last_block = len(chunk_slices(db_packed.shape[0], db_chunk)) - 1
    results, hits = [], []
    for _, j, dist in distance_blocks(query_packed, db_packed, num_bits, chunk, db_chunk):
        rows, cols = np.nonzero(dist <= radius)
        hits.append((rows, cols + j * db_chunk, dist[rows, cols].astype(np.int32)))
        if j == last_block:
            rows, cols, values = (np.concatenate(part) for part in zip(*hits))
            order = np.lexsort((cols, values, rows))
            bounds = np.cumsum(np.bincount(rows, minlength=dist.shape[0]))[:-1]
            results.extend(zip(np.split(values[order], bounds), np.split(cols[order], bounds)))
            hits = []
    return results


# ----------------------------------------------------------------------------------------------
# Payloads in rank order, for whole-database passes.


def ranking_mode(backend: str, num_bits: int, num_db: int, payload_bits: int) -> str:
    """How :func:`rank_payload` ranks a payload against a database of ``num_db`` items.

    Args:
      backend: ``"host"`` or ``"device"``.
      num_bits: ``L``.
      num_db: ``N``.
      payload_bits: bits of the largest payload.

    Returns:
      ``"device"`` on the device backend; on the host ``"keys"`` when every key
      ``((d N + index) << payload_bits) | payload`` fits ``int32``, else ``"dist"``.
    """
    if backend == "device":
        return "device"
    if (num_bits + 1) * num_db * (1 << payload_bits) - 1 <= _MAX_KEY:
        return "keys"
    return "dist"


def rank_payload(dist: jax.Array, payload: jax.Array, *, mode: str, length: int | None,
                 payload_bits: int) -> dict[str, jax.Array]:
    """The traced half of ranking: what the host needs, computed inside the caller's ``jit``.

    Args:
      dist: ``int32 [q, N]`` distances of a query chunk to the whole database.
      payload: ``[q, N]`` non-negative integers below ``2**payload_bits``.
      mode: from :func:`ranking_mode`.
      length: items wanted per query (``"device"`` only; pass None otherwise, so one
        compilation serves every length).
      payload_bits: payload width in the keys (``"keys"`` only).

    Returns:
      ``{"keys": int32 [q, N]}``, ``{"dist", "payload"}`` or ``{"ranked": [q, length]}`` (the
      payload in rank order, its dtype kept), for :func:`ranked_payload`.
    """
    if mode == "keys":
        index = lax.broadcasted_iota(jnp.int32, dist.shape, 1)
        return {"keys": ((dist * dist.shape[1] + index) << payload_bits) | payload}
    if mode == "dist":
        return {"dist": dist, "payload": payload}
    if length < dist.shape[1]:
        # lax.top_k puts the lower index first among equal values: ties by index.
        _, idx = lax.top_k(-dist, length)
        return {"ranked": jnp.take_along_axis(payload, idx, axis=1)}
    _, ranked = lax.sort((dist, payload), dimension=1, num_keys=1, is_stable=True)
    return {"ranked": ranked}


def ranked_payload(out: dict, valid: int, *, mode: str, length: int, num_bits: int,
                   payload_bits: int,
                   buffer: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The host half of ranking: the first ``length`` payloads of each query in rank order.

    Args:
      out: :func:`rank_payload`'s output for one chunk (possibly padded rows at the end).
      valid: the chunk's real rows.
      mode, payload_bits: as given to :func:`rank_payload`.
      length: items wanted per query, ``1 <= length <= N``.
      num_bits: ``L``.
      buffer: scratch from the previous chunk's call, or None. ``"keys"`` sorts in place in it:
        reusing one buffer avoids a fresh allocation (and its page faults) per chunk.

    Returns:
      ``(ranked [valid, length], buffer)``. Under ``"keys"`` ``ranked`` lives in ``buffer``: it
      is valid until the buffer is passed to the next call.
    """
    if mode == "keys":
        keys = np.asarray(out["keys"])
        if buffer is None:
            buffer = np.empty(keys.shape, keys.dtype)
        np.copyto(buffer, keys)
        keys = buffer[:valid]
        if length < keys.shape[1]:
            keys.partition(length - 1, axis=1)
            keys = np.sort(keys[:, :length], axis=1)
        else:
            keys.sort(axis=1)
        return np.bitwise_and(keys, (1 << payload_bits) - 1, out=keys), buffer
    if mode == "dist":
        dist = np.asarray(out["dist"])[:valid].astype(_sort_dtype(num_bits))
        order = np.argsort(dist, axis=1, kind="stable")[:, :length]
        return np.take_along_axis(np.asarray(out["payload"])[:valid], order, axis=1), buffer
    return np.asarray(out["ranked"])[:valid], buffer
