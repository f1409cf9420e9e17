"""Packed Hamming distances in blocks: the one engine under ``metrics`` and ``retrieval``.

Codes are ±1 matrices ``[N, L]`` (docs/design.md). They are packed 32 bits to a ``uint32`` word
(:func:`pack`, the layout of :func:`dlhash_jax.codes.pack_codes`: bit ``j`` of a code is bit
``j % 32`` of word ``j // 32``, so on a little-endian machine the words' bytes are faiss's binary
layout, :func:`words_from_bytes`) and compared with XOR and population count.

Every ranking is by (distance, database index): among equal distances the lower index comes
first. Distances are small integers in ``[0, L]``, which every path exploits. The backend
(:func:`resolve_backend`) is ``"host"`` on CPU and ``"device"`` on GPU/TPU; both give identical
results.

* Host (:func:`topk`, :func:`within_radius`; :mod:`dlhash_jax.hamming_host`): the database is
  cut into one contiguous share per CPU, scanned by a thread each in tiles; a tile is one
  jitted call in which XLA fuses XOR, population count and each row's minimum, and NumPy orders
  only the rows whose minimum can enter the answer, because XLA's CPU sort and ``top_k`` are
  slow.
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
  found by counting distances, :func:`dlhash_jax.hamming_host.first_keys`), so the payloads
  come out in rank order without a gather. ``"dist"``, the host fallback when a key would
  overflow ``int32``: a stable argsort of the distances. ``"device"``: ``lax.top_k`` for a top
  K, else a stable ``lax.sort`` carrying the payload.
"""

from __future__ import annotations

import functools
from typing import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dlhash_jax import codes
from dlhash_jax import hamming_host
from dlhash_jax._checks import check_choice, check_int
# Re-exported: the host engine's block helper, thread count and sizes belong to this module's
# API (the engine reads the sizes from hamming_host).
from dlhash_jax.hamming_host import DENSE_MIN_K, PAIRS_PER_CHUNK, TILE_DB, TILE_PAIRS  # noqa: F401
from dlhash_jax.hamming_host import chunk_slices, host_threads  # noqa: F401
# The ranking keys and the device top-k keys are int32: this is the largest.
from dlhash_jax.hamming_host import MAX_KEY as _MAX_KEY

BACKENDS = ("host", "device")
# Rows packed per NumPy call: bounded temporary memory whatever N.
PACK_BLOCK = 1 << 16


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


def _sort_dtype(num_bits: int):
    # NumPy's stable sort is a radix sort for 16-bit integers (a merge sort for wider ones).
    return np.int16 if num_bits <= np.iinfo(np.int16).max else np.int32


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
    return hamming_host.topk(query_packed, db_packed, num_bits, k, chunk_size=chunk_size,
                             db_chunk_size=db_chunk_size)


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
        hits = hamming_host.radius_hits(query_packed, db_packed, num_bits, radius,
                                        chunk_size=chunk_size, db_chunk_size=db_chunk_size)
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
            parts = hamming_host.in_shares(
                lambda rows: hamming_host.first_keys(keys[rows], length, num_bits, payload_bits,
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
