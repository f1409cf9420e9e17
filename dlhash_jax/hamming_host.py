"""The CPU engine of :mod:`dlhash_jax.hamming`: jitted popcount tiles, NumPy ordering, threads.

On a CPU, XLA's sort and ``top_k`` are slow, so the distances come from XLA and the ordering
from NumPy. The database is cut into one contiguous share per CPU (:func:`host_threads`),
scanned by a thread each, in tiles of ``TILE_DB`` codes against ``TILE_PAIRS / TILE_DB``
queries. A tile is one jitted call in which XLA fuses XOR, population count and each row's
minimum; the host reads the minima and fetches the distances of a row only when its minimum can
enter the answer.

* :func:`topk` keeps, per query, the best ``k`` as int64 keys ``(distance << 40) | index`` and
  their k-th distance: a later item enters only strictly below it, because every later item has
  a larger index and so loses every tie; candidates wait in a list and are merged (a sort) once
  there are ``Q k`` of them. From ``k = DENSE_MIN_K`` on, re-sorting long lists costs more than
  ranking whole rows: each thread takes a share of the queries and picks each row's k smallest
  keys by counting (:func:`first_keys`).
* :func:`radius_hits` keeps the hits of the rows whose minimum is within the radius.
* :func:`first_keys` is also the host half of :func:`dlhash_jax.hamming.ranked_payload`'s
  top-K ranking of payload keys.

Results equal the device paths of :mod:`dlhash_jax.hamming` exactly, ties included.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from dlhash_jax import codes
from dlhash_jax._checks import check_int

# Query-item pairs of a default query chunk: buffers this small are reused by the allocator
# instead of being mapped afresh, which measured 2-3x faster on CPU than 2**24.
PAIRS_PER_CHUNK = 1 << 22
# Tiles: database codes per tile, and query-item pairs per tile: one XLA call each, large
# enough that its dispatch is noise, small enough that its distances (2 MiB) stay in cache.
TILE_DB = 1 << 14
TILE_PAIRS = 1 << 21
# Largest int32 key, for the host ranking keys and the device top-k keys.
MAX_KEY = 2**31 - 1
# Top-k keys are (distance << _INDEX_BITS) | index: 10^12 items, codes of 2^22 bits.
_INDEX_BITS = 40
# Columns of the sample on which the ranking of keys guesses each row's k-th distance.
_SAMPLE_COLUMNS = 4096
# From this k on, top-k ranks whole rows of distances (_topk_dense) instead of scanning, in
# blocks of at most this many codes.
DENSE_MIN_K = 256
_DENSE_BLOCK = 1 << 20


def host_threads() -> int:
    """Threads of the host engine: the CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def chunk_slices(num_rows: int, size: int) -> list[slice]:
    """The rows of each block: consecutive slices of ``size`` rows covering ``range(num_rows)``.

    Args:
      num_rows: rows to cover (may be 0).
      size: rows per block.

    Returns:
      ``ceil(num_rows / size)`` slices; block ``i`` of :func:`dlhash_jax.hamming.blocks` holds
      the rows of slice ``i``, and only the last may be shorter than ``size``.

    Raises:
      ValueError: if ``size`` is not a positive integer.
    """
    size = check_int(size, "size")
    return [slice(start, min(start + size, num_rows)) for start in range(0, num_rows, size)]


def distance_dtype(num_bits: int):
    """The narrowest integer dtype holding ``[0, num_bits]``: it shrinks each block's host copy."""
    if num_bits <= np.iinfo(np.uint8).max:
        return jnp.uint8
    if num_bits <= np.iinfo(np.int16).max:
        return jnp.int16
    return jnp.int32


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


def _db_tiles(database: np.ndarray, span: slice,
              tile_db: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(first index, tile)`` of the database rows in ``span``, ``tile_db`` at a time."""
    for start in range(span.start, span.stop, tile_db):
        yield start, database[start : min(start + tile_db, span.stop)]


def _shares(num_db: int, tile_db: int) -> list[slice]:
    """One contiguous share of the database per thread, each a whole number of tiles."""
    tiles = -(-num_db // tile_db)
    per_share = -(-tiles // max(1, min(host_threads(), tiles))) * tile_db
    return chunk_slices(num_db, per_share)


def in_shares(work: Callable[[slice], object], num_db: int, tile_db: int) -> list:
    """``work(share)`` for every share, in share order, one thread each."""
    shares = _shares(num_db, tile_db)
    if len(shares) == 1:
        return [work(shares[0])]
    with ThreadPoolExecutor(len(shares)) as pool:
        return list(pool.map(work, shares))


def _tile_plan(num_q: int, num_db: int, chunk_size: int | None, db_chunk_size: int | None,
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


def _topk_scan(queries, database, num_bits, k, tile_q, tile_db):
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
        for start, db_tile in _db_tiles(database, share, tile_db):
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

    parts = in_shares(scan, database.shape[0], tile_db)
    # Keys are distinct and carry the index, so sorting them merges the shares exactly.
    keys = parts[0] if len(parts) == 1 else np.sort(np.concatenate(parts, axis=1), axis=1)[:, :k]
    return (keys >> _INDEX_BITS).astype(np.int32), keys & ((1 << _INDEX_BITS) - 1)


def _topk_dense(queries, database, num_bits, k, chunk_size, db_chunk_size):
    """Top-k for a large ``k``: whole rows of distances, selected by counting per row.

    The scan of :func:`_topk_scan` re-sorts every list it touches, which for large ``k`` costs
    more than ranking whole rows. Here each thread takes a share of the queries; a chunk of
    queries gets its distances to a block of up to ``_DENSE_BLOCK`` codes as int32 keys
    ``d n + column`` and :func:`first_keys` picks the k smallest; blocks merge like shares.
    """
    num_q, num_db = queries.shape[0], database.shape[0]
    # Keys d n + column stay inside int32 for blocks of 2^31 / (L + 1) codes.
    block = min(num_db, db_chunk_size or num_db, _DENSE_BLOCK, MAX_KEY // (num_bits + 1))
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
                    chunk_keys = first_keys(chunk_keys, k, num_bits, 0,
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

    keys = np.concatenate(in_shares(rank, num_q, rows_per_chunk))
    return (keys >> _INDEX_BITS).astype(np.int32), keys & ((1 << _INDEX_BITS) - 1)


def _radius_scan(queries, database, num_bits, radius, tile_q, tile_db):
    query_tiles = chunk_slices(queries.shape[0], tile_q)

    def scan(share: slice) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        distances = _Tiles(queries, num_bits, tile_q, tile_db)
        hits = []
        for start, db_tile in _db_tiles(database, share, tile_db):
            for rows in query_tiles:
                minima, dist = distances(rows, db_tile)
                hit = np.flatnonzero(minima <= radius)
                if hit.size:
                    near = dist()[hit]
                    # A 2-D np.nonzero costs ten times a flat one.
                    r, c = np.divmod(np.flatnonzero(near <= radius), near.shape[1])
                    hits.append((hit[r] + rows.start, c + start, near[r, c]))
        return hits

    return [hit for part in in_shares(scan, database.shape[0], tile_db) for hit in part]


def topk(queries: np.ndarray, database: np.ndarray, num_bits: int, k: int, *,
         chunk_size: int | None = None,
         db_chunk_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest database rows of every query, by (distance, index), on the host.

    Args:
      queries, database, num_bits, k: as in :func:`dlhash_jax.hamming.topk` (``queries`` and
        ``database`` packed ``uint32``, ``1 <= k <= N``).
      chunk_size, db_chunk_size: caps on the query and database rows of a tile (or of a block
        of whole rows, from ``DENSE_MIN_K`` on), or None; the caller has checked them.

    Returns:
      ``(distances int32 [Q, k], indices int64 [Q, k])``, sorted by (distance, index) per row.
    """
    if k >= DENSE_MIN_K:
        return _topk_dense(queries, database, num_bits, k, chunk_size, db_chunk_size)
    # A tile as wide as k fills a list in one tile; narrower, every tile would re-sort k items.
    tiles = _tile_plan(queries.shape[0], database.shape[0], chunk_size, db_chunk_size, min_db=k)
    return _topk_scan(queries, database, num_bits, k, *tiles)


def radius_hits(queries: np.ndarray, database: np.ndarray, num_bits: int, radius: int, *,
                chunk_size: int | None = None,
                db_chunk_size: int | None = None) -> list[tuple[np.ndarray, ...]]:
    """Every (query, database row) pair within Hamming distance ``radius``, on the host.

    Args:
      queries, database, num_bits, chunk_size, db_chunk_size: as in :func:`topk`.
      radius: ``0 <= radius <= L``.

    Returns:
      Pieces ``(query rows, database indices, distances)`` of the hits, three 1-D arrays each,
      in no particular order.
    """
    tiles = _tile_plan(queries.shape[0], database.shape[0], chunk_size, db_chunk_size)
    return _radius_scan(queries, database, num_bits, radius, *tiles)


def first_keys(keys: np.ndarray, length: int, num_bits: int, payload_bits: int,
               mask: np.ndarray) -> np.ndarray:
    """The ``length`` smallest keys of each row of ``keys`` ``[q, N]``, sorted, by counting.

    A key ``((d N + index) << payload_bits) | payload`` is at most ``((t N) << payload_bits) - 1``
    exactly when its distance ``d`` is below ``t``, so the keys up to some distance are a
    threshold away. A bisection over a sample of the columns guesses each row's length-th
    distance; one compare and ``np.flatnonzero`` over the whole rows take every key up to one
    distance beyond the guess (another pass, further out, only for a row that got fewer than
    ``length``). ``np.flatnonzero`` yields each row's keys in index order, so a stable sort by
    (row, distance), a radix sort on 16-bit groups, puts them in key order, and each row's first
    ``length`` are the answer. ``np.partition`` of the whole rows measured 1.5-2x slower; sorting
    the taken keys themselves (int64 ``(row, key)`` pairs) made this function 1.9x slower.

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
    # A sample's quantile is often one off: take one distance more than the guess.
    reach = np.minimum(low + 1, num_bits)
    while True:
        flat = np.flatnonzero(np.less_equal(keys, last_key(reach + 1)[:, None], out=mask))
        row = flat // n
        count = np.bincount(row, minlength=q)
        short = count < length
        if not short.any():
            break
        reach = np.where(short, np.minimum(2 * reach + 1, num_bits), reach)
    found = keys.ravel()[flat]
    group = row * (num_bits + 1) + (found >> payload_bits) // n
    narrow = np.int16 if q * (num_bits + 1) <= np.iinfo(np.int16).max else np.int32
    order = np.argsort(group.astype(narrow), kind="stable")
    start = np.cumsum(count) - count
    return found[order[(start[:, None] + np.arange(length)).ravel()]].reshape(q, length)

