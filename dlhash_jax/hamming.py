"""Packed Hamming distances in blocks: the one engine under ``metrics`` and ``retrieval``.

Codes are ±1 matrices ``[N, L]`` (docs/design.md). They are packed 32 bits to a ``uint32`` word
(:func:`pack`, the layout of :func:`dlhash_jax.codes.pack_codes`: bit ``j`` of a code is bit
``j % 32`` of word ``j // 32``, so on a little-endian machine the words' bytes are faiss's binary
layout, :func:`words_from_bytes`) and compared with XOR and population count.

Every ranking is by (distance, database index): among equal distances the lower index comes
first. Distances are small integers in ``[0, L]``, which every path exploits. The backend
(:func:`resolve_backend`) is ``"host"`` on CPU and ``"device"`` on GPU/TPU; both give identical
results.

* Host (:func:`topk`, :func:`within_radius`): the database is cut into one contiguous share
  per CPU, scanned by a thread each, in tiles of ``TILE_DB`` codes against ``TILE_PAIRS /
  TILE_DB`` queries. A tile is one jitted call (:func:`_tile_kernel`) in which XLA fuses XOR,
  population count and each row's minimum; the host reads the minima and fetches the distances
  of a row only when its minimum can enter the answer. Top-k keeps, per query, the best ``k`` as
  int64 keys ``(distance << 40) | index`` and their k-th distance: a later item enters only
  strictly below it, because every later item has a larger index and so loses every tie;
  candidates wait in a list and are merged (a sort) once there are ``Q k`` of them. From
  ``k = DENSE_MIN_K`` on, re-sorting long lists costs more than ranking whole rows: each thread
  takes a share of the queries and picks each row's k smallest keys by counting
  (:func:`_first_keys`). Radius search keeps the hits of the rows whose minimum is within the
  radius. NumPy does the ordering, because XLA's CPU sort and ``top_k`` are slow.
* Device (:func:`topk`): ``lax.top_k`` on the distinct key ``distance * block + position``
  inside a ``lax.scan`` over database blocks of a jitted XOR/popcount kernel
  (:func:`dlhash_jax.codes.packed_hamming_distance`), merging each block's candidates into the
  running best k with a two-key ``lax.sort``. :func:`within_radius` holds each side on the
  device as ``[blocks, size, W]`` (:func:`blocks`), counts each block's hits in a first pass,
  because their number is data-dependent, and gathers them with ``jnp.nonzero`` at a
  power-of-two size in a second, so only the hits cross to the host.
* :func:`rank_payload` (traced, inside a caller's kernel) and :func:`ranked_payload` (host): an
  integer payload per item (e.g. a relevance grade) of the first ``length`` items of the whole
  database in rank order. ``"keys"`` (host): the device builds unique ``int32`` keys
  ``((d N + index) << bits) | payload`` and NumPy sorts them (for a top K only the K smallest,
  found by counting distances, :func:`_first_keys`), so the payloads come out in rank order
  without a gather. ``"dist"``, the host fallback when a key would overflow ``int32``: a stable
  argsort of the distances. ``"device"``: ``lax.top_k`` for a top K, else a stable ``lax.sort``
  carrying the payload.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dlhash_jax import codes
from dlhash_jax._checks import check_choice, check_int

BACKENDS = ("host", "device")
# Rows packed per NumPy call: bounded temporary memory whatever N.
PACK_BLOCK = 1 << 16
# Query-item pairs of a default query chunk: buffers this small are reused by the allocator
# instead of being mapped afresh, which measured 2-3x faster on CPU than 2**24.
PAIRS_PER_CHUNK = 1 << 22
# Host tiles: database codes per tile, and query-item pairs per tile: one XLA call each, large
# enough that its dispatch is noise, small enough that its distances (2 MiB) stay in cache.
TILE_DB = 1 << 14
TILE_PAIRS = 1 << 21
# Largest int32 key, for the host ranking keys and the device top-k keys.
_MAX_KEY = 2**31 - 1
# Host top-k keys are (distance << _INDEX_BITS) | index: 10^12 items, codes of 2^22 bits.
_INDEX_BITS = 40
# Columns of the sample on which the host ranking of keys guesses each row's k-th distance.
_SAMPLE_COLUMNS = 4096
# From this k on, host top-k ranks whole rows of distances (_topk_dense) instead of scanning,
# in blocks of at most this many codes.
DENSE_MIN_K = 256
_DENSE_BLOCK = 1 << 20


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


def host_threads() -> int:
    """Threads of the host engine: the CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# ----------------------------------------------------------------------------------------------
# Packing.


def _word_view(padded_bytes: np.ndarray) -> np.ndarray:
    """``uint8 [N, 4 W]`` codes, least significant bit first, as ``uint32 [N, W]`` words."""
    # Little-endian words put byte b of a code at bits 8 (b % 4) ... of word b // 4, which is
    # where pack_codes keeps bits 8b ... 8b + 7; astype is a no-op on little-endian machines.
    return padded_bytes.view("<u4").astype(np.uint32, copy=False)


def pack(matrix) -> np.ndarray:
    """Packs validated ±1 codes or 0/1 labels to ``uint32`` words on the host, block by block.

    Entries ``> 0`` are set bits, in the layout of :func:`dlhash_jax.codes.pack_bits`. Rows are
    packed ``PACK_BLOCK`` at a time by ``np.packbits``, so temporary memory stays bounded.

    Args:
      matrix: ``[N, L]`` ±1 codes or 0/1 bits, any numeric dtype; ``N`` may be 0.

    Returns:
      ``uint32 [N, ceil(L / 32)]`` NumPy array.

    Raises:
      ValueError: if ``matrix`` is not 2-D.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"matrix must be a 2-D [N, L] matrix, got shape {matrix.shape}.")
    n, num_bits = matrix.shape
    out = np.zeros((n, 4 * codes.num_words(num_bits)), np.uint8)
    for rows in chunk_slices(n, PACK_BLOCK):
        out[rows, : -(-num_bits // 8)] = np.packbits(matrix[rows] > 0, axis=1, bitorder="little")
    return _word_view(out)


def words_from_bytes(packed_bytes: np.ndarray) -> np.ndarray:
    """Codes packed 8 bits to a byte, least significant bit first, as :func:`pack`'s words.

    That byte layout is faiss's for binary codes (bit ``j`` in byte ``j // 8`` at bit ``j % 8``)
    and ``np.packbits(bits, axis=1, bitorder="little")``'s; NumPy's default ``bitorder="big"``
    is not it.

    Args:
      packed_bytes: ``uint8 [N, B]``.

    Returns:
      ``uint32 [N, ceil(B / 4)]``, the words of the same bits (zero beyond byte ``B``).

    Raises:
      ValueError: if ``packed_bytes`` is not a 2-D ``uint8`` matrix.
    """
    packed_bytes = np.asarray(packed_bytes)
    if packed_bytes.ndim != 2 or packed_bytes.dtype != np.uint8:
        raise ValueError(
            f"packed_bytes must be a 2-D uint8 matrix, got {packed_bytes.dtype} of shape "
            f"{packed_bytes.shape}."
        )
    n, num_bytes = packed_bytes.shape
    padded = np.zeros((n, 4 * -(-num_bytes // 4)), np.uint8)
    padded[:, :num_bytes] = packed_bytes
    return _word_view(padded)


def bytes_from_words(packed: np.ndarray, num_bits: int) -> np.ndarray:
    """Inverse of :func:`words_from_bytes`: ``uint32 [N, W]`` words as ``uint8 [N, ceil(L / 8)]``.

    Args:
      packed: ``uint32 [N, ceil(L / 32)]`` packed codes.
      num_bits: ``L``.

    Returns:
      C-contiguous ``uint8 [N, ceil(L / 8)]`` bytes, least significant bit first.
    """
    words = np.ascontiguousarray(packed).astype("<u4", copy=False)
    return np.ascontiguousarray(words.view(np.uint8)[:, : -(-num_bits // 8)])


# ----------------------------------------------------------------------------------------------
# Plans, blocks and the device pipeline.


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


# ----------------------------------------------------------------------------------------------
# The host engine: tiles of jitted popcounts, NumPy ordering, one thread per share.


@functools.partial(jax.jit, static_argnames=("dtype",))
def _tile_kernel(query_tile, db_tile, *, dtype):
    """Distances of a query tile to a database tile and each row's minimum, fused by XLA."""
    dist = codes.packed_hamming_distance(query_tile, db_tile).astype(dtype)
    return dist, jnp.min(dist, axis=1)


class _Tiles:
    """Distances of query tiles to database tiles: one compiled XLA call per tile.

    XLA fuses the XOR, the population count and the row minimum and vectorises them; NumPy's
    ``np.bitwise_xor`` then ``np.bitwise_count`` through memory measured 4x slower per pair on
    a 2-core CPU, and faiss in between. Every tile is padded to one shape, so a search
    compiles once; the host reads only the row minima unless a row can have an answer.

    Args:
      queries: ``uint32 [Q, W]`` packed queries.
      num_bits: ``L``, which sets the distance dtype (:func:`distance_dtype`).
      tile_q, tile_db: rows of the query and database tiles.
    """

    def __init__(self, queries: np.ndarray, num_bits: int, tile_q: int, tile_db: int):
        self._tile_db = tile_db
        self._dtype = distance_dtype(num_bits)
        # Queries go to the device once, as padded tiles keyed by their first row.
        self._queries = {rows.start: jnp.asarray(_padded(queries[rows], tile_q))
                         for rows in chunk_slices(queries.shape[0], tile_q)}

    def __call__(self, rows: slice, db_tile: np.ndarray) -> tuple[np.ndarray, Callable]:
        """``(row minima [rows], distances)``: ``distances()`` gives ``[rows, len(db_tile)]``.

        The minima may count padding columns (so a row may look nearer than it is); the
        distances never do.
        """
        dist, minima = _tile_kernel(self._queries[rows.start], _padded(db_tile, self._tile_db),
                                    dtype=self._dtype)
        num_rows, num_cols = rows.stop - rows.start, db_tile.shape[0]
        return np.asarray(minima)[:num_rows], lambda: np.asarray(dist)[:num_rows, :num_cols]


def _padded(rows: np.ndarray, size: int) -> np.ndarray:
    """``rows`` zero-padded to ``size`` rows (as they are when they have that many)."""
    if rows.shape[0] == size:
        return rows
    out = np.zeros((size,) + rows.shape[1:], rows.dtype)
    out[: rows.shape[0]] = rows
    return out


def _host_tiles(database: np.ndarray, span: slice,
                tile_db: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(first index, tile)`` of the database rows in ``span``, ``tile_db`` at a time."""
    for start in range(span.start, span.stop, tile_db):
        yield start, database[start : min(start + tile_db, span.stop)]


def _shares(num_db: int, tile_db: int) -> list[slice]:
    """One contiguous share of the database per thread, each a whole number of tiles."""
    tiles = -(-num_db // tile_db)
    per_share = -(-tiles // max(1, min(host_threads(), tiles))) * tile_db
    return chunk_slices(num_db, per_share)


def _in_shares(work: Callable[[slice], object], num_db: int, tile_db: int) -> list:
    """``work(share)`` for every share, in share order, one thread each."""
    shares = _shares(num_db, tile_db)
    if len(shares) == 1:
        return [work(shares[0])]
    with ThreadPoolExecutor(len(shares)) as pool:
        return list(pool.map(work, shares))


def _host_plan(num_q: int, num_db: int, chunk_size: int | None, db_chunk_size: int | None,
               min_db: int = 1) -> tuple[int, int]:
    """``(query rows, database rows)`` of a host tile: ``TILE_PAIRS`` pairs of ``TILE_DB`` (or
    ``min_db``) codes, capped by the caller's block sizes (checked) and by the rows there are."""
    tile_db = min(max(TILE_DB, min_db), num_db, db_chunk_size or num_db)
    return min(max(1, TILE_PAIRS // tile_db), num_q, chunk_size or num_q), tile_db


def _sentinel(num_bits: int) -> int:
    """A key above every real key ``(d << _INDEX_BITS) | index``: the empty place of a list."""
    return (num_bits + 1) << _INDEX_BITS


def _merge(best: np.ndarray, limit: np.ndarray, rows: list[np.ndarray], keys: list[np.ndarray],
           num_bits: int) -> None:
    """Merges pending candidates into each query's best list and its limit, in place.

    Args:
      best: ``int64 [Q, k]`` sorted keys of each query's best items so far.
      limit: ``int64 [Q]``: only items at a distance below it can enter (``L + 1`` while a list
        is not full, else its k-th distance).
      rows: query rows of the pending candidates, in pieces; emptied.
      keys: their keys ``(distance << _INDEX_BITS) | index``, in pieces; emptied.
      num_bits: ``L``.
    """
    k = best.shape[1]
    touched, row = np.unique(np.concatenate(rows), return_inverse=True)
    new_keys = np.concatenate(keys)
    rows.clear()
    keys.clear()
    # Each touched row's candidates go after its k best, in a row of the width of the longest.
    order = np.argsort(row, kind="stable")
    row = row[order]
    counts = np.bincount(row, minlength=touched.size)
    merged = np.full((touched.size, k + int(counts.max())), _sentinel(num_bits), np.int64)
    merged[:, :k] = best[touched]
    merged[row, k + np.arange(row.size) - (np.cumsum(counts) - counts)[row]] = new_keys[order]
    if merged.shape[1] > k:
        merged.partition(k - 1, axis=1)
    merged = np.sort(merged[:, :k], axis=1)
    best[touched] = merged
    kth = merged[:, -1]
    limit[touched] = np.where(kth >= _sentinel(num_bits), num_bits + 1, kth >> _INDEX_BITS)


def _topk_host(queries, database, num_bits, k, tile_q, tile_db):
    num_q = queries.shape[0]
    query_tiles = chunk_slices(num_q, tile_q)
    # Candidates wait until there are as many as the lists hold: a merge sorts, a tile does not.
    # Until then the limits are older, which only lets more candidates wait.
    budget = num_q * k

    def scan(share: slice) -> np.ndarray:
        distances = _Tiles(queries, num_bits, tile_q, tile_db)
        best = np.full((num_q, k), _sentinel(num_bits), np.int64)
        limit = np.full(num_q, num_bits + 1, np.int64)
        rows, keys, waiting = [], [], 0
        for start, db_tile in _host_tiles(database, share, tile_db):
            for tile_rows in query_tiles:
                minima, dist = distances(tile_rows, db_tile)
                below = limit[tile_rows]
                # Most rows end at their minimum once lists are full.
                hit = np.flatnonzero(minima < below)
                if not hit.size:
                    continue
                near, below = dist()[hit], below[hit]
                if below.max() > num_bits and near.shape[1] >= k:
                    # A list not yet full takes only what is within this tile's k-th distance:
                    # k items of the tile are that near, so nothing farther can be an answer.
                    kth = np.partition(near, k - 1, axis=1)[:, k - 1]
                    below = np.minimum(below, kth.astype(np.int64) + 1)
                # A 2-D np.nonzero costs ten times a flat one.
                flat = np.flatnonzero(near < below[:, None])
                if not flat.size:
                    # The minimum counted a padding column.
                    continue
                r, c = np.divmod(flat, near.shape[1])
                rows.append(hit[r] + tile_rows.start)
                keys.append((near.ravel()[flat].astype(np.int64) << _INDEX_BITS) | (c + start))
                waiting += flat.size
                if waiting >= budget:
                    _merge(best, limit, rows, keys, num_bits)
                    waiting = 0
        if rows:
            _merge(best, limit, rows, keys, num_bits)
        return best

    parts = _in_shares(scan, database.shape[0], tile_db)
    # Keys are distinct and carry the index, so sorting them merges the shares exactly.
    keys = parts[0] if len(parts) == 1 else np.sort(np.concatenate(parts, axis=1), axis=1)[:, :k]
    return (keys >> _INDEX_BITS).astype(np.int32), keys & ((1 << _INDEX_BITS) - 1)


def _topk_dense(queries, database, num_bits, k, chunk_size, db_chunk_size):
    """Top-k for a large ``k``: whole rows of distances, selected by counting per row.

    The scan of :func:`_topk_host` re-sorts every list it touches, which for large ``k`` costs
    more than ranking whole rows. Here each thread takes a share of the queries; a chunk of
    queries gets its distances to a block of up to ``_DENSE_BLOCK`` codes as int32 keys
    ``d n + column`` and :func:`_first_keys` picks the k smallest; blocks merge like shares.
    """
    num_q, num_db = queries.shape[0], database.shape[0]
    # Keys d n + column stay inside int32 for blocks of 2^31 / (L + 1) codes.
    block = min(num_db, db_chunk_size or num_db, _DENSE_BLOCK, _MAX_KEY // (num_bits + 1))
    rows_per_chunk = min(chunk_size or num_q, max(1, PAIRS_PER_CHUNK // block))

    def rank(share: slice) -> np.ndarray:
        distances = _Tiles(queries, num_bits, rows_per_chunk, block)
        keys = np.empty(rows_per_chunk * block, np.int32)
        mask = np.empty(rows_per_chunk * block, bool)
        best = np.empty((share.stop - share.start, k), np.int64)
        for rows in chunk_slices(share.stop - share.start, rows_per_chunk):
            rows = slice(rows.start + share.start, rows.stop + share.start)
            found = []
            for start in range(0, num_db, block):
                dist = distances(rows, database[start : start + block])[1]()
                n = dist.shape[1]
                chunk_keys = keys[: dist.size].reshape(dist.shape)
                np.multiply(dist, n, out=chunk_keys, dtype=np.int32)
                chunk_keys += np.arange(n, dtype=np.int32)
                if k < n:
                    chunk_keys = _first_keys(chunk_keys, k, num_bits, 0,
                                             mask[: dist.size].reshape(dist.shape))
                else:
                    chunk_keys = np.sort(chunk_keys, axis=1)
                distance, column = np.divmod(chunk_keys.astype(np.int64), n)
                found.append((distance << _INDEX_BITS) | (column + start))
            merged = np.concatenate(found, axis=1)
            if len(found) > 1:
                merged = np.sort(merged, axis=1)[:, :k]
            best[rows.start - share.start : rows.stop - share.start] = merged
        return best

    keys = np.concatenate(_in_shares(rank, num_q, rows_per_chunk))
    return (keys >> _INDEX_BITS).astype(np.int32), keys & ((1 << _INDEX_BITS) - 1)


def _radius_host(queries, database, num_bits, radius, tile_q, tile_db):
    query_tiles = chunk_slices(queries.shape[0], tile_q)

    def scan(share: slice) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        distances = _Tiles(queries, num_bits, tile_q, tile_db)
        hits = []
        for start, db_tile in _host_tiles(database, share, tile_db):
            for rows in query_tiles:
                minima, dist = distances(rows, db_tile)
                hit = np.flatnonzero(minima <= radius)
                if hit.size:
                    near = dist()[hit]
                    # A 2-D np.nonzero costs ten times a flat one.
                    r, c = np.divmod(np.flatnonzero(near <= radius), near.shape[1])
                    hits.append((hit[r] + rows.start, c + start, near[r, c]))
        return hits

    return [hit for part in _in_shares(scan, database.shape[0], tile_db) for hit in part]


# ----------------------------------------------------------------------------------------------
# Top-k and radius search.


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
      db_packed: ``uint32 [N, W]`` packed database, ``N >= 1`` (a ``np.memmap`` is scanned in
        place).
      num_bits: ``L``.
      k: ``1 <= k <= N`` (checked by the caller).
      chunk_size, db_chunk_size: block sizes, as in :func:`plan`; on the host they cap the
        tiles (``TILE_PAIRS``, ``TILE_DB``), None leaves them as they are.
      backend: ``"host"``, ``"device"`` or None (:func:`default_backend`).

    Returns:
      ``(distances int32 [Q, k], indices int64 [Q, k])``, sorted by (distance, index) per row;
      identical on both backends and for every block size.
    """
    backend = resolve_backend(backend)
    num_q, num_db = query_packed.shape[0], db_packed.shape[0]
    chunk, db_chunk = plan(num_q, num_db, chunk_size, db_chunk_size)
    if backend == "device":
        return _topk_device(query_packed, db_packed, num_bits, k, chunk, db_chunk)
    if k >= DENSE_MIN_K:
        return _topk_dense(query_packed, db_packed, num_bits, k, chunk_size, db_chunk_size)
    # A tile as wide as k fills a list in one tile; narrower, every tile would re-sort k items.
    tiles = _host_plan(num_q, num_db, chunk_size, db_chunk_size, min_db=k)
    return _topk_host(query_packed, db_packed, num_bits, k, *tiles)


def _radius_mask(query_blocks, db_blocks, i, j, radius, num_q, num_db):
    dist = codes.packed_hamming_distance(query_blocks[i], db_blocks[j])
    rows, cols = dist.shape
    # The blocks are zero-padded: padding rows must never count as hits.
    valid = (((i * rows + jnp.arange(rows)) < num_q)[:, None]
             & ((j * cols + jnp.arange(cols)) < num_db)[None, :])
    return dist, (dist <= radius) & valid


@jax.jit
def _radius_count(query_blocks, db_blocks, i, j, radius, num_q, num_db):
    return jnp.count_nonzero(_radius_mask(query_blocks, db_blocks, i, j, radius, num_q,
                                          num_db)[1])


@functools.partial(jax.jit, static_argnames=("size",))
def _radius_hits(query_blocks, db_blocks, i, j, radius, num_q, num_db, *, size):
    dist, mask = _radius_mask(query_blocks, db_blocks, i, j, radius, num_q, num_db)
    rows, cols = jnp.nonzero(mask, size=size, fill_value=0)
    return rows, cols, dist[rows, cols]


def _radius_device(query_packed, db_packed, radius, chunk, db_chunk):
    """The hits of each block, compacted on the device so only they cross to the host.

    A first pass counts each block's hits; the second gathers them with ``jnp.nonzero`` at a
    power-of-two size (few compilations). Moving whole distance blocks instead made radius
    search on an H200 17x slower than the host engine at 10^7 codes.
    """
    query_blocks = blocks(query_packed, chunk)
    db_blocks = blocks(db_packed, db_chunk)
    shape = (query_packed.shape[0], db_packed.shape[0])
    pairs = [(i, j) for i in range(query_blocks.shape[0]) for j in range(db_blocks.shape[0])]
    counts = [_radius_count(query_blocks, db_blocks, i, j, radius, *shape) for i, j in pairs]
    pending = []
    for (i, j), count in zip(pairs, counts):
        count = int(count)
        if count:
            size = 1 << (count - 1).bit_length()
            pending.append((i, j, count, _radius_hits(query_blocks, db_blocks, i, j, radius,
                                                      *shape, size=size)))
    hits = []
    for i, j, count, (rows, cols, dist) in pending:
        hits.append((np.asarray(rows)[:count].astype(np.int64) + i * chunk,
                     np.asarray(cols)[:count].astype(np.int64) + j * db_chunk,
                     np.asarray(dist)[:count]))
    return hits


def within_radius(query_packed: np.ndarray, db_packed: np.ndarray, num_bits: int, radius: int,
                  *, chunk_size: int | None = None, db_chunk_size: int | None = None,
                  backend: str | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every database row within Hamming distance ``radius`` of each query.

    Args:
      query_packed, db_packed, num_bits, chunk_size, db_chunk_size, backend: as in
        :func:`topk`.
      radius: ``>= 0``.

    Returns:
      ``Q`` pairs ``(distances int32 [n_q], indices int64 [n_q])`` sorted by (distance, index);
      ``n_q`` may be 0.
    """
    backend = resolve_backend(backend)
    num_q = query_packed.shape[0]
    chunk, db_chunk = plan(num_q, db_packed.shape[0], chunk_size, db_chunk_size)
    # Distances never exceed L; clamping keeps the comparison inside the narrow distance dtype.
    radius = min(radius, num_bits)
    if backend == "host":
        tiles = _host_plan(num_q, db_packed.shape[0], chunk_size, db_chunk_size)
        hits = _radius_host(query_packed, db_packed, num_bits, radius, *tiles)
    else:
        hits = _radius_device(query_packed, db_packed, radius, chunk, db_chunk)
    if hits:
        rows, cols, values = (np.concatenate(part) for part in zip(*hits))
    else:
        rows, cols, values = (np.zeros(0, np.int64) for _ in range(3))
    order = np.lexsort((cols, values, rows))
    bounds = np.cumsum(np.bincount(rows, minlength=num_q))[:-1]
    return list(zip(np.split(values[order].astype(np.int32), bounds),
                    np.split(cols[order].astype(np.int64), bounds)))


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


def _first_keys(keys: np.ndarray, length: int, num_bits: int, payload_bits: int,
                mask: np.ndarray) -> np.ndarray:
    """The ``length`` smallest keys of each row of ``keys`` ``[q, N]``, sorted, by counting.

    A key ``((d N + index) << payload_bits) | payload`` is at most ``((t N) << payload_bits) - 1``
    exactly when its distance ``d`` is below ``t``. The row's length-th key has the distance
    ``t`` with ``count(d < t) < length <= count(d <= t)``: the answer is every key at a distance
    below ``t`` (fewer than ``length``; sorted) and then the first keys at ``t``, which NumPy
    finds in index order, hence in key order. A bisection over a sample of the columns guesses
    ``t``; one compare and ``np.flatnonzero`` over the whole rows take every key up to one
    distance beyond the guess, and counts of those give ``t`` exactly. ``np.partition`` of the
    whole rows measured 1.5-2x slower.

    Args:
      keys: ``int32 [q, N]`` distinct non-negative keys (read only).
      length: ``1 <= length < N``.
      num_bits: ``L``.
      payload_bits: the payload's width in the keys.
      mask: ``bool [q, N]`` scratch.

    Returns:
      ``int32 [q, length]`` keys, sorted along each row.
    """
    q, n = keys.shape

    def last_key(t):
        # The largest key at a distance below t, -1 for t = 0: inside int32 for t <= L + 1
        # (ranking_mode), and compared as int32 it stays a SIMD compare.
        return (((t.astype(np.int64) * n) << payload_bits) - 1).astype(keys.dtype)

    sample = np.ascontiguousarray(keys[:, :: max(1, n // _SAMPLE_COLUMNS)])
    scratch = mask[:, : sample.shape[1]]
    want = -(-length * sample.shape[1] // n)
    low, high = np.zeros(q, np.int64), np.full(q, num_bits, np.int64)
    while (low < high).any():
        mid = (low + high) // 2
        near = np.less_equal(sample, last_key(mid + 1)[:, None], out=scratch)
        enough = near.sum(axis=1) >= want
        low, high = np.where(enough, low, mid + 1), np.where(enough, mid, high)
    # One pass takes every key up to one distance beyond the guess (a sample's quantile is
    # often one off); the exact t of each row then comes from counts of what it took. Only a
    # row with fewer than length keys taken needs another pass, further out.
    reach = np.minimum(low + 1, num_bits)
    while True:
        flat = np.flatnonzero(np.less_equal(keys, last_key(reach + 1)[:, None], out=mask))
        row, found = flat // n, keys.ravel()[flat]
        short = np.bincount(row, minlength=q) < length
        if not short.any():
            break
        reach = np.where(short, np.minimum(2 * reach + 1, num_bits), reach)
    distance = (found >> payload_bits) // n
    per_distance = np.bincount(row * (num_bits + 1) + distance, minlength=q * (num_bits + 1))
    t = np.argmax(np.cumsum(per_distance.reshape(q, num_bits + 1), axis=1) >= length, axis=1)
    nearer = distance < t[row]
    count = np.bincount(row[nearer], minlength=q)
    at_t = distance == t[row]
    row, found = row[nearer | at_t], found[nearer | at_t]
    nearer = nearer[nearer | at_t]
    out = np.empty((q, length), keys.dtype)
    # Below t: sorted by (row, key) in one sort of int64 (keys are non-negative int32).
    pairs = np.sort((row[nearer] << 32) | found[nearer])
    row_below = pairs >> 32
    start = np.cumsum(count) - count
    out[row_below, np.arange(pairs.size) - start[row_below]] = pairs & 0xFFFFFFFF
    # At t: the first length - count of each row, already in key order.
    row_at, key_at = row[~nearer], found[~nearer]
    count_at = np.bincount(row_at, minlength=q)
    place = count[row_at] + np.arange(row_at.size) - (np.cumsum(count_at) - count_at)[row_at]
    keep = place < length
    out[row_at[keep], place[keep]] = key_at[keep]
    return out


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
      buffer: scratch from the previous chunk's call, or None. ``"keys"`` works in it (a mask
        for a top K, else a copy of the keys sorted in place): reusing one buffer avoids a
        fresh allocation (and its page faults) per chunk.

    Returns:
      ``(ranked [valid, length], buffer)``. Under ``"keys"`` ``ranked`` may live in ``buffer``:
      it is valid until the buffer is passed to the next call.
    """
    if mode == "keys":
        keys = np.asarray(out["keys"])
        top = length < keys.shape[1]
        dtype = bool if top else keys.dtype
        if buffer is None or buffer.dtype != dtype or buffer.shape != keys.shape:
            buffer = np.empty(keys.shape, dtype)
        if top:
            # Rows are independent: one thread per CPU takes a share of them.
            parts = _in_shares(
                lambda rows: _first_keys(keys[rows], length, num_bits, payload_bits,
                                         buffer[rows]),
                valid, 1)
            keys = parts[0] if len(parts) == 1 else np.concatenate(parts)
        else:
            np.copyto(buffer, keys)
            keys = buffer[:valid]
            keys.sort(axis=1)
        return np.bitwise_and(keys, (1 << payload_bits) - 1, out=keys), buffer
    if mode == "dist":
        dist = np.asarray(out["dist"])[:valid].astype(_sort_dtype(num_bits))
        order = np.argsort(dist, axis=1, kind="stable")[:, :length]
        return np.take_along_axis(np.asarray(out["payload"])[:valid], order, axis=1), buffer
    return np.asarray(out["ranked"])[:valid], buffer
