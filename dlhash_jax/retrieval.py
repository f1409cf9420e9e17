"""Hamming ranking over packed codes: exact top-k, radius look-up, and a saveable index.

Codes go in as ±1 matrices ``[N, L]`` (docs/design.md), validated and packed 32 bits to a
``uint32`` word, or already packed (``packed=True``, :meth:`HammingIndex.add_packed`): in that
layout (:func:`dlhash_jax.codes.pack_codes`) or as ``uint8`` bytes with the least significant
bit first, faiss's layout. They are searched with :mod:`dlhash_jax.hamming`: XOR + population
count under ``jit`` in tiles, the ordering in NumPy on CPU (one thread per CPU) and under
``jit`` on GPU/TPU. No ``[Q, N]`` array larger than one block is ever materialised.

Every ranking is exact and deterministic: items are ordered by (Hamming distance, database
index), the ``ties="index"`` convention of the evaluation protocol; the results are identical on
every backend (see :mod:`dlhash_jax.hamming` for the strategies). :class:`HammingIndex` is a
:class:`~dlhash_jax.index_store.CodeStore` (codes, ids, labels, the ``.npz`` file) with
searches; :func:`to_faiss` and :meth:`HammingIndex.from_faiss` convert to and from faiss's exact
binary index, which ranks the same way. The other indexes with the same API and results are
re-exported here: :class:`~dlhash_jax.multi_index.MultiIndexHashing` (sub-linear) and
:class:`~dlhash_jax.sharded_index.ShardedHammingIndex` (split over a mesh of devices).

Results are returned as NumPy arrays on the host, because what follows (looking up ids or labels,
computing metrics over ragged radius results) is host work.
"""

from __future__ import annotations

import numpy as np

from dlhash_jax import hamming
from dlhash_jax._checks import check_int, is_int
from dlhash_jax.index_store import CodeStore, check_queries, nonempty_codes, packed_words
# Re-exported: the indexes with HammingIndex's API and results.
from dlhash_jax.multi_index import MultiIndexHashing  # noqa: F401
from dlhash_jax.sharded_index import ShardedHammingIndex  # noqa: F401

DEFAULT_CHUNK_SIZE = 256
DEFAULT_DB_CHUNK_SIZE = 65_536


def _check_pair(query_codes, db_codes) -> tuple[np.ndarray, np.ndarray]:
    query_codes = nonempty_codes(query_codes, "query_codes")
    db_codes = nonempty_codes(db_codes, "db_codes")
    if query_codes.shape[1] != db_codes.shape[1]:
        raise ValueError(
            "query_codes and db_codes must have the same number of bits (last axis), got shapes "
            f"{query_codes.shape} and {db_codes.shape}."
        )
    return query_codes, db_codes


def _check_k(k, db_size: int) -> int:
    if not is_int(k):
        raise ValueError(f"k must be an integer in [1, database size], got {k!r}.")
    if not 1 <= k <= db_size:
        raise ValueError(
            f"k must be in [1, database size = {db_size}], got k = {k}; a top-k search cannot "
            "return more items than the database holds."
        )
    return int(k)


def _packed_bits(packed, name: str) -> int:
    """The bits of a packed matrix given without a code length: its whole width."""
    arr = np.asarray(packed)
    if arr.ndim != 2 or arr.dtype not in (np.uint32, np.uint8) or arr.shape[1] == 0:
        raise ValueError(
            f"{name} must be a 2-D uint32 or uint8 matrix of packed codes, got {arr.dtype} of "
            f"shape {arr.shape}."
        )
    return arr.shape[1] * arr.dtype.itemsize * 8


def _packed_pair(query_codes, db_codes) -> tuple[np.ndarray, np.ndarray, int]:
    """Packed queries and database as words, and their code length (the whole width)."""
    num_bits = _packed_bits(query_codes, "query_codes")
    db_bits = _packed_bits(db_codes, "db_codes")
    if np.asarray(query_codes).dtype != np.asarray(db_codes).dtype or db_bits != num_bits:
        raise ValueError(
            "packed query_codes and db_codes must have the same dtype and width, got "
            f"{np.asarray(query_codes).dtype} {np.shape(query_codes)} and "
            f"{np.asarray(db_codes).dtype} {np.shape(db_codes)}."
        )
    for name, arr in (("query_codes", query_codes), ("db_codes", db_codes)):
        if np.shape(arr)[0] == 0:
            raise ValueError(f"{name} is empty (shape {np.shape(arr)}); need at least one code.")
    query = packed_words(query_codes, num_bits, "query_codes")
    return query, packed_words(db_codes, num_bits, "db_codes"), num_bits


def _pair(query_codes, db_codes, packed: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """``(query words, database words, L)`` of ±1 or packed inputs, validated."""
    if packed:
        return _packed_pair(query_codes, db_codes)
    query_codes, db_codes = _check_pair(query_codes, db_codes)
    return hamming.pack(query_codes), hamming.pack(db_codes), query_codes.shape[1]


def hamming_topk(
    query_codes,
    db_codes,
    k: int,
    *,
    packed: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    db_chunk_size: int = DEFAULT_DB_CHUNK_SIZE,
    _path: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest database codes of every query by Hamming distance (exact).

    Items are ordered by (distance, database index): among equal distances the smaller database
    index comes first, the deterministic ``ties="index"`` convention (docs/design.md, evaluation
    protocol). The result does not depend on the chunk sizes or on the backend: on CPU NumPy
    keeps each query's best k from tiles of distances computed under ``jit``, on GPU/TPU it is
    ``lax.top_k`` under ``jit`` (see :mod:`dlhash_jax.hamming` for why).

    Args:
      query_codes: ``[Q, L]`` codes in {-1, +1} (any real or integer dtype), ``Q >= 1``; with
        ``packed``, packed codes (below).
      db_codes: ``[N, L]`` codes in {-1, +1}, ``N >= 1``; with ``packed``, packed codes.
      k: number of neighbours, ``1 <= k <= N``.
      packed: whether both inputs are packed, as ``uint32 [n, W]`` words
        (:func:`dlhash_jax.codes.pack_codes`) or ``uint8 [n, B]`` bytes, least significant bit
        first (faiss's layout); both the same. Every stored bit counts, ``L`` is the width.
      chunk_size: queries per block.
      db_chunk_size: database items per block; the largest distance array held at once is
        ``[chunk_size, db_chunk_size]`` (the CPU path may use smaller tiles).

    Returns:
      ``(distances, indices)``: NumPy ``int32 [Q, k]`` Hamming distances in ``[0, L]`` and
      ``int64 [Q, k]`` row indices into ``db_codes``, sorted by (distance, index) along each row.

    Raises:
      ValueError: if codes are not ±1 matrices (or packed codes of one dtype and width), are
        empty, have different bit lengths, or ``k`` is not in ``[1, N]``, or a chunk size is not
        a positive integer.

    Examples:
      >>> db = np.array([[1, 1, 1], [-1, 1, 1], [1, 1, -1], [-1, -1, -1]])
      >>> dist, idx = hamming_topk(np.array([[1, 1, 1]]), db, 3)
      >>> dist.tolist(), idx.tolist()
      ([[0, 1, 1]], [[0, 1, 2]])
    """
    query, database, num_bits = _pair(query_codes, db_codes, packed)
    k = _check_k(k, database.shape[0])
    backend = hamming.resolve_backend(_path, "_path")
    return hamming.topk(query, database, num_bits, k, chunk_size=chunk_size,
                        db_chunk_size=db_chunk_size, backend=backend)


def radius_search(
    query_codes,
    db_codes,
    radius: int,
    *,
    packed: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    db_chunk_size: int = DEFAULT_DB_CHUNK_SIZE,
    _path: str | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """All database codes within Hamming distance ``radius`` of each query (hash look-up).

    This is the "Hamming radius" retrieval of the survey's evaluation section (precision within
    radius 2 is computed from it). Distances are computed under ``jit`` in blocks and the hits
    extracted on the host, because their number is data-dependent; on CPU a tile's distances
    come to the host only for the queries that have a hit in it.

    Args:
      query_codes: ``[Q, L]`` codes in {-1, +1}, ``Q >= 1``; with ``packed``, packed codes.
      db_codes: ``[N, L]`` codes in {-1, +1}, ``N >= 1``; with ``packed``, packed codes.
      radius: non-negative integer; items with distance ``<= radius`` are returned.
      packed: whether both inputs are packed, as in :func:`hamming_topk`.
      chunk_size: queries per block.
      db_chunk_size: database items per block.

    Returns:
      A list of ``Q`` pairs ``(distances, indices)``, one per query, in the same order as
      :func:`hamming_topk`'s result: NumPy ``int32 [n_q]`` distances and ``int64 [n_q]`` indices
      into ``db_codes``, sorted by (distance, index); ``n_q`` may be 0.

    Raises:
      ValueError: if codes are not ±1 matrices (or packed codes of one dtype and width), are
        empty or have different bit lengths, or ``radius`` is not a non-negative integer.

    Examples:
      >>> db = np.array([[1, 1, 1], [-1, 1, 1], [1, 1, -1], [-1, -1, -1]])
      >>> [(d.tolist(), i.tolist()) for d, i in radius_search(np.array([[1, 1, 1]]), db, 1)]
      [([0, 1, 1], [0, 1, 2])]
    """
    query, database, num_bits = _pair(query_codes, db_codes, packed)
    radius = check_int(radius, "radius", minimum=0)
    backend = hamming.resolve_backend(_path, "_path")
    return hamming.within_radius(query, database, num_bits, radius, chunk_size=chunk_size,
                                 db_chunk_size=db_chunk_size, backend=backend)


class HammingIndex(CodeStore):
    """A growable database of packed codes with optional ids and labels, searchable and saveable.

    A :class:`~dlhash_jax.index_store.CodeStore`, which holds the codes packed (``uint32 [N,
    ceil(L / 32)]``: 10⁷ 64-bit codes take 80 MB, plus 8 bytes per id) and gives ``add``,
    ``add_packed``, ``codes``, ``save`` and ``load`` (which can map a saved index instead of
    reading it, ``mmap=True``). Searches rank by (distance, insertion position) exactly like
    :func:`hamming_topk` and return the stored ids; :func:`to_faiss` / :meth:`from_faiss`
    convert to and from faiss's exact binary index.

    Args:
      num_bits: code length ``L``.

    Examples:
      >>> index = HammingIndex(3)
      >>> index.add(np.array([[1, 1, 1], [-1, 1, 1]]), ids=np.array([10, 20]))
      >>> dist, ids = index.search(np.array([[-1, 1, 1]]), 2)
      >>> dist.tolist(), ids.tolist()
      ([[0, 1]], [[20, 10]])
      >>> index.add_packed(np.array([[0b011]], np.uint8))  # bit j is code entry j: [1, 1, -1]
      >>> index.search(np.array([[0b011]], np.uint8), 3, packed=True)[1].tolist()
      [[2, 10, 20]]
    """

    def search(
        self,
        query_codes,
        k: int,
        *,
        packed: bool = False,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        db_chunk_size: int = DEFAULT_DB_CHUNK_SIZE,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest stored codes of each query, as :func:`hamming_topk`.

        Args:
          query_codes: ``[Q, L]`` codes in {-1, +1}; with ``packed``, packed codes in either
            layout of :meth:`add_packed`.
          k: ``1 <= k <= len(self)``.
          packed: whether ``query_codes`` are packed.
          chunk_size: queries per block.
          db_chunk_size: stored codes per block.

        Returns:
          ``(distances int32 [Q, k], ids int64 [Q, k])``, sorted by (distance, insertion
          position) along each row.
        """
        query = check_queries(query_codes, self.num_bits, len(self), packed=packed)
        k = _check_k(k, len(self))
        dist, idx = hamming.topk(query, self.packed_codes, self.num_bits, k,
                                 chunk_size=chunk_size, db_chunk_size=db_chunk_size)
        return dist, self.ids[idx]

    def range_search(
        self,
        query_codes,
        radius: int,
        *,
        packed: bool = False,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        db_chunk_size: int = DEFAULT_DB_CHUNK_SIZE,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """All stored codes within Hamming distance ``radius`` of each query, as
        :func:`radius_search`.

        Args:
          query_codes: ``[Q, L]`` codes in {-1, +1}; with ``packed``, packed codes.
          radius: non-negative integer; items with distance ``<= radius`` are returned.
          packed: whether ``query_codes`` are packed.
          chunk_size: queries per block.
          db_chunk_size: stored codes per block.

        Returns:
          A list of ``Q`` pairs ``(distances int32 [n_q], ids int64 [n_q])`` sorted by (distance,
          insertion position).
        """
        query = check_queries(query_codes, self.num_bits, len(self), packed=packed)
        radius = check_int(radius, "radius", minimum=0)
        found = hamming.within_radius(query, self.packed_codes, self.num_bits, radius,
                                      chunk_size=chunk_size, db_chunk_size=db_chunk_size)
        return [(dist, self.ids[idx]) for dist, idx in found]

    @classmethod
    def from_faiss(cls, faiss_index) -> "HammingIndex":
        """An index holding the codes (and ids) of a faiss exact binary index.

        Args:
          faiss_index: ``faiss.IndexBinaryFlat``, or ``faiss.IndexBinaryIDMap`` around one
            (its ids become the index's ids). Its codes are bytes in faiss's layout (bit ``j``
            in byte ``j // 8`` at bit ``j % 8``), which :meth:`add_packed` takes.

        Returns:
          A :class:`HammingIndex` of ``faiss_index.d`` bits whose searches return the same
          distances and ids as faiss's, in the same order.

        Raises:
          ImportError: if faiss is not installed.
          ValueError: for any other kind of faiss index.
        """
        faiss = _import_faiss()
        ids = None
        flat = faiss_index
        if isinstance(faiss_index, faiss.IndexBinaryIDMap):
            ids = faiss.vector_to_array(faiss_index.id_map).astype(np.int64)
            flat = faiss.downcast_IndexBinary(faiss_index.index)
        if not isinstance(flat, faiss.IndexBinaryFlat):
            raise ValueError(
                "from_faiss needs a faiss.IndexBinaryFlat or an IndexBinaryIDMap around one, got "
                f"{type(faiss_index).__name__}"
                + ("" if flat is faiss_index else f" around {type(flat).__name__}") + "."
            )
        index = cls(flat.d)
        index.add_packed(flat.reconstruct_n(0, flat.ntotal), ids=ids)
        return index


def _import_faiss():
    """The faiss module, or an ImportError that says how to install it."""
    try:
        import faiss
    except ImportError as err:
        raise ImportError(
            "faiss interop needs faiss-cpu: pip install 'dlhash_jax[faiss]'."
        ) from err
    return faiss


def to_faiss(index: HammingIndex):
    """A faiss exact binary index holding ``index``'s codes, for faiss's tools and index types.

    faiss stores a code of ``L`` bits (a multiple of 8) as ``L / 8`` bytes, bit ``j`` in byte
    ``j // 8`` at bit ``j % 8`` (``faiss.real_to_binary``'s layout); on a little-endian machine
    those are the bytes of the index's ``uint32`` words, so the conversion is a copy. faiss ranks
    by (distance, position) as :meth:`HammingIndex.search` does, so both return the same
    distances and ids in the same order.

    Args:
      index: a :class:`HammingIndex` of a multiple of 8 bits.

    Returns:
      ``faiss.IndexBinaryFlat`` when the ids are the positions ``0 ... N - 1`` (the default of
      :meth:`HammingIndex.add`), else ``faiss.IndexBinaryIDMap`` around one, holding the ids.
      Labels are not carried over.

    Raises:
      ImportError: if faiss is not installed.
      ValueError: if ``index.num_bits`` is not a multiple of 8 (faiss's binary indexes need
        whole bytes).
    """
    if not isinstance(index, HammingIndex):
        raise ValueError(f"to_faiss needs a HammingIndex, got {type(index).__name__}.")
    if index.num_bits % 8:
        raise ValueError(
            f"faiss binary indexes hold whole bytes; this index has {index.num_bits}-bit codes, "
            "not a multiple of 8."
        )
    faiss = _import_faiss()
    flat = faiss.IndexBinaryFlat(index.num_bits)
    data = hamming.bytes_from_words(index.packed_codes, index.num_bits)
    if np.array_equal(index.ids, np.arange(len(index))):
        flat.add(data)
        return flat
    mapped = faiss.IndexBinaryIDMap(flat)
    mapped.add_with_ids(data, np.ascontiguousarray(index.ids, np.int64))
    return mapped

