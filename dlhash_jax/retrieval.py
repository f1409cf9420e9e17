"""Hamming ranking over packed codes: exact top-k, radius look-up, and a saveable index.

Codes go in as ±1 matrices ``[N, L]`` (docs/design.md), validated and packed 32 bits to a
``uint32`` word, or already packed (``packed=True``, :meth:`HammingIndex.add_packed`): in that
layout (:func:`dlhash_jax.codes.pack_codes`) or as ``uint8`` bytes with the least significant
bit first, faiss's layout. They are searched with :mod:`dlhash_jax.hamming`: XOR + population
count under ``jit`` in tiles, the ordering in NumPy on CPU (one thread per CPU) and under
``jit`` on GPU/TPU. No ``[Q, N]`` array larger than one block is ever materialised.

Every ranking is exact and deterministic: items are ordered by (Hamming distance, database
index), the ``ties="index"`` convention of the evaluation protocol; the results are identical on
every backend (see :mod:`dlhash_jax.hamming` for the strategies). :func:`to_faiss` and
:meth:`HammingIndex.from_faiss` convert to and from faiss's exact binary index, which ranks the
same way.

Results are returned as NumPy arrays on the host, because what follows (looking up ids or labels,
computing metrics over ragged radius results) is host work.
"""

from __future__ import annotations

import math
import os
import pickle
import struct
import zipfile

import numpy as np

from dlhash_jax import hamming
from dlhash_jax._checks import check_int, is_int
from dlhash_jax.codes import WORD_BITS, check_codes, num_words, unpack_codes
# Re-exported: the sub-linear exact index, with HammingIndex's API and results.
from dlhash_jax.multi_index import MultiIndexHashing  # noqa: F401

DEFAULT_CHUNK_SIZE = 256
DEFAULT_DB_CHUNK_SIZE = 65_536
_FORMAT_VERSION = 1
# Members of an index file that load(mmap=True) maps; the small ones are read.
_MAPPED = ("packed_codes", "ids", "labels")
# The fixed part of a zip local file header; the lengths of the name and extra field end it.
_ZIP_LOCAL_HEADER = 30
_ZIP_LOCAL_SIGNATURE = b"PK\x03\x04"


def _nonempty_codes(codes, name: str) -> np.ndarray:
    codes = check_codes(codes, name)
    if codes.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {codes.shape}); need at least one code.")
    return codes


def _check_pair(query_codes, db_codes) -> tuple[np.ndarray, np.ndarray]:
    query_codes = _nonempty_codes(query_codes, "query_codes")
    db_codes = _nonempty_codes(db_codes, "db_codes")
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


def _packed_words(packed, num_bits: int, name: str) -> np.ndarray:
    """Validated packed codes of ``num_bits`` bits as ``uint32 [n, ceil(L / 32)]`` words."""
    arr = np.asarray(packed)
    words, num_bytes = num_words(num_bits), -(-num_bits // 8)
    if arr.ndim == 2 and arr.dtype == np.uint32 and arr.shape[1] == words:
        arr = np.ascontiguousarray(arr)
    elif arr.ndim == 2 and arr.dtype == np.uint8 and arr.shape[1] == num_bytes:
        arr = hamming.words_from_bytes(arr)
    else:
        raise ValueError(
            f"{name} must be packed {num_bits}-bit codes: uint32 [n, {words}] words "
            f"(dlhash_jax.codes.pack_codes) or uint8 [n, {num_bytes}] bytes, least significant "
            "bit first (faiss's layout, np.packbits(bits, axis=1, bitorder='little')); got "
            f"{arr.dtype} of shape {arr.shape}."
        )
    spare = words * WORD_BITS - num_bits
    if spare and arr.shape[0] and np.any(arr[:, -1] >> np.uint32(WORD_BITS - spare)):
        raise ValueError(
            f"{name} has bits set beyond bit {num_bits}; packed {num_bits}-bit codes must be "
            "zero there."
        )
    return arr


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
    query = _packed_words(query_codes, num_bits, "query_codes")
    return query, _packed_words(db_codes, num_bits, "db_codes"), num_bits


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


class HammingIndex:
    """A growable database of packed codes with optional ids and labels, searchable and saveable.

    Codes are stored packed (``uint32 [N, ceil(L / 32)]``, the layout of
    :func:`dlhash_jax.codes.pack_codes`), so 10⁷ 64-bit codes take 80 MB (plus 8 bytes per id).
    Searches rank by (distance, insertion position) exactly like :func:`hamming_topk` and return
    the stored ids. :meth:`load` can map a saved index instead of reading it, and
    :func:`to_faiss` / :meth:`from_faiss` convert to and from faiss's exact binary index.

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

    def __init__(self, num_bits: int):
        self._num_bits = check_int(num_bits, "num_bits")
        self._packed = np.zeros((0, num_words(self._num_bits)), np.uint32)
        self._ids = np.zeros((0,), np.int64)
        self._labels: np.ndarray | None = None

    @property
    def num_bits(self) -> int:
        """Code length ``L``."""
        return self._num_bits

    @property
    def packed_codes(self) -> np.ndarray:
        """``uint32 [N, ceil(L / 32)]`` stored codes, in insertion order (a ``np.memmap`` when
        loaded with ``mmap=True`` and not added to since)."""
        return self._packed

    @property
    def ids(self) -> np.ndarray:
        """``int64 [N]`` ids, in insertion order."""
        return self._ids

    @property
    def labels(self) -> np.ndarray | None:
        """``[N, C]`` labels in insertion order, or None when the index was built without."""
        return self._labels

    def __len__(self) -> int:
        return self._packed.shape[0]

    def codes(self) -> np.ndarray:
        """The stored codes unpacked, ``float32 [N, L]`` in {-1, +1}."""
        return np.asarray(unpack_codes(self._packed, self._num_bits))

    def add(self, codes, ids=None, labels=None) -> None:
        """Appends codes (and their ids and labels) to the index.

        Args:
          codes: ``[n, L]`` codes in {-1, +1}.
          ids: optional integer ``[n]``; default: the running positions ``len(self)`` ...
            ``len(self) + n - 1``. Ids are returned by searches as they are; they need not be
            unique.
          labels: optional ``[n, C]`` labels (multi-hot). Give them in every call or in none.

        Raises:
          ValueError: if codes are not ±1, have a bit length other than ``num_bits``, or ids or
            labels have the wrong shape or type, or labels are given in some calls only.
        """
        codes = check_codes(codes, "codes")
        if codes.shape[1] != self._num_bits:
            raise ValueError(
                f"codes have {codes.shape[1]} bits but the index holds {self._num_bits}-bit "
                f"codes; got codes of shape {codes.shape}."
            )
        self._append(hamming.pack(codes), ids, labels, codes.shape)

    def add_packed(self, packed, ids=None, labels=None) -> None:
        """Appends codes that are packed already, as :meth:`add` does ±1 codes.

        Args:
          packed: ``uint32 [n, ceil(L / 32)]`` words in the layout of
            :func:`dlhash_jax.codes.pack_codes`, or ``uint8 [n, ceil(L / 8)]`` bytes with bit
            ``j`` of a code in byte ``j // 8`` at bit ``j % 8`` (least significant first:
            faiss's layout, ``np.packbits(bits, axis=1, bitorder="little")``). Bits beyond
            ``L`` must be 0.
          ids, labels: as in :meth:`add`.

        Raises:
          ValueError: if ``packed`` has another dtype or width, bits set beyond ``L``, or ids
            or labels are wrong as in :meth:`add`.
        """
        words = _packed_words(packed, self._num_bits, "packed")
        self._append(words, ids, labels, np.shape(packed))

    def _append(self, words: np.ndarray, ids, labels, shape: tuple) -> None:
        """Appends validated ``uint32`` words; ``shape`` is the caller's input, for messages."""
        n = words.shape[0]
        if ids is None:
            ids = np.arange(len(self), len(self) + n, dtype=np.int64)
        else:
            ids = np.asarray(ids)
            if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
                raise ValueError(
                    f"ids must be an integer array of shape ({n},) to match codes of shape "
                    f"{shape}, got {ids.dtype} array of shape {ids.shape}."
                )
        labels = self._check_new_labels(labels, shape)
        self._packed = np.concatenate([self._packed, words])
        self._ids = np.concatenate([self._ids, ids.astype(np.int64)])
        if labels is not None:
            self._labels = labels if self._labels is None else np.concatenate(
                [self._labels, labels]
            )

    def _check_new_labels(self, labels, codes_shape) -> np.ndarray | None:
        n = codes_shape[0]
        if labels is None:
            if self._labels is not None:
                raise ValueError(
                    "this index stores labels; add(...) must be given labels of shape "
                    f"({n}, {self._labels.shape[1]}) with codes of shape {codes_shape}."
                )
            return None
        labels = np.asarray(labels)
        if labels.ndim != 2 or labels.shape[0] != n:
            raise ValueError(
                f"labels must have shape [n, C] with n = {n} rows to match codes of shape "
                f"{codes_shape}, got shape {labels.shape}."
            )
        if not (labels.dtype == bool or np.issubdtype(labels.dtype, np.number)):
            raise ValueError(f"labels must be numeric (multi-hot), got dtype {labels.dtype}.")
        if self._labels is None and len(self):
            raise ValueError(
                f"this index holds {len(self)} codes added without labels; labels must be given "
                "in every add(...) call or in none."
            )
        if self._labels is not None and labels.shape[1] != self._labels.shape[1]:
            raise ValueError(
                f"labels have {labels.shape[1]} classes but the index stores "
                f"{self._labels.shape[1]}; got labels of shape {labels.shape}."
            )
        return labels

    def _queries(self, query_codes, packed: bool) -> np.ndarray:
        """Validated queries, ±1 or packed, as ``uint32`` words."""
        if packed:
            words = _packed_words(query_codes, self._num_bits, "query_codes")
            if words.shape[0] == 0:
                raise ValueError(
                    f"query_codes is empty (shape {np.shape(query_codes)}); need at least one "
                    "code."
                )
        else:
            query_codes = _nonempty_codes(query_codes, "query_codes")
            if query_codes.shape[1] != self._num_bits:
                raise ValueError(
                    f"query_codes have {query_codes.shape[1]} bits but the index holds "
                    f"{self._num_bits}-bit codes; got query_codes of shape {query_codes.shape}."
                )
            words = hamming.pack(query_codes)
        if not len(self):
            raise ValueError("the index is empty; add codes before searching.")
        return words

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
        query = self._queries(query_codes, packed)
        k = _check_k(k, len(self))
        dist, idx = hamming.topk(query, self._packed, self._num_bits, k, chunk_size=chunk_size,
                                 db_chunk_size=db_chunk_size)
        return dist, self._ids[idx]

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
        query = self._queries(query_codes, packed)
        radius = check_int(radius, "radius", minimum=0)
        found = hamming.within_radius(query, self._packed, self._num_bits, radius,
                                      chunk_size=chunk_size, db_chunk_size=db_chunk_size)
        return [(dist, self._ids[idx]) for dist, idx in found]

    def save(self, path) -> None:
        """Writes the index to ``path`` (exactly that name) as an uncompressed ``.npz`` archive.

        Keys: ``format_version``, ``num_bits``, ``packed_codes`` (``uint32 [N, W]``), ``ids``
        (``int64 [N]``) and, when present, ``labels`` (``[N, C]``). No pickled objects, so the
        file loads with ``np.load(path, allow_pickle=False)``; the members are stored, not
        compressed, so :meth:`load` can map them. The file is replaced only once it is whole.
        """
        path = os.fspath(path)
        arrays = {
            "format_version": np.asarray(_FORMAT_VERSION, np.int64),
            "num_bits": np.asarray(self._num_bits, np.int64),
            "packed_codes": self._packed,
            "ids": self._ids,
        }
        if self._labels is not None:
            arrays["labels"] = self._labels
        # Written beside the target and renamed over it: an index mapped from the old file
        # (load(mmap=True)) keeps reading the old file's data, and a failed write leaves it.
        partial = f"{path}.{os.urandom(4).hex()}.partial"
        try:
            with open(partial, "xb") as f:
                np.savez(f, **arrays)
            os.replace(partial, path)
        finally:
            if os.path.exists(partial):
                os.remove(partial)

    @classmethod
    def load(cls, path, *, mmap: bool = False) -> "HammingIndex":
        """Reads an index written by :meth:`save`, validating every key and shape.

        Args:
          path: the file.
          mmap: map ``packed_codes``, ``ids`` and ``labels`` from the file (``np.memmap``, read
            only) instead of reading them: loading takes no time and memory whatever ``N``, and
            searches read the codes through the page cache. The file must stay in place while
            the index is used. Files of every version of :meth:`save` can be mapped (their
            members are stored uncompressed). Mapped codes are not scanned for bits set beyond
            ``L`` (that would read them all); :meth:`save` never writes such bits. :meth:`add`
            copies the mapped arrays into memory.

        Returns:
          The index.

        Raises:
          ValueError: if the file is not a readable ``.npz`` archive, holds pickled objects, is
            not a HammingIndex (missing, unknown or malformed keys, padding bits set), or, with
            ``mmap``, a member is compressed.
        """
        path = os.fspath(path)
        try:
            archive = np.load(path, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("it holds a single .npy array, not an .npz archive")
            with archive:
                mapped = [key for key in _MAPPED if mmap and key in archive.files]
                arrays = {key: archive[key] for key in archive.files if key not in mapped}
                for key in mapped:
                    arrays[key] = _map_member(path, archive.zip.getinfo(key + ".npy"))
        except (OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError) as err:
            raise ValueError(f"{path} is not a readable HammingIndex file: {err}") from err
        return cls._from_arrays(arrays, path, check_padding=not mmap)

    @classmethod
    def _from_arrays(cls, arrays: dict, path: str, check_padding: bool = True) -> "HammingIndex":
        required = {"format_version", "num_bits", "packed_codes", "ids"}
        allowed = required | {"labels"}
        keys = set(arrays)
        if not required <= keys or not keys <= allowed:
            raise ValueError(
                f"{path} is not a HammingIndex file: expected keys {sorted(required)} (and "
                f"optionally 'labels'), found {sorted(keys)}."
            )

        def fail(what: str):
            raise ValueError(f"{path} is a corrupt HammingIndex file: {what}.")

        version, num_bits = arrays["format_version"], arrays["num_bits"]
        for name, value in (("format_version", version), ("num_bits", num_bits)):
            if value.shape != () or not np.issubdtype(value.dtype, np.integer):
                fail(f"{name} must be an integer scalar, got {value.dtype} of shape {value.shape}")
        if int(version) != _FORMAT_VERSION:
            fail(f"format_version {int(version)} is not supported (expected {_FORMAT_VERSION})")
        if int(num_bits) <= 0:
            fail(f"num_bits must be positive, got {int(num_bits)}")
        num_bits = int(num_bits)
        packed, ids = arrays["packed_codes"], arrays["ids"]
        words = num_words(num_bits)
        if packed.dtype != np.uint32 or packed.ndim != 2 or packed.shape[1] != words:
            fail(
                f"packed_codes must be uint32 of shape [N, {words}] for {num_bits} bits, got "
                f"{packed.dtype} of shape {packed.shape}"
            )
        spare = words * WORD_BITS - num_bits
        if check_padding and spare and np.any(packed[:, -1] >> np.uint32(WORD_BITS - spare)):
            fail(f"packed_codes has bits set beyond bit {num_bits}")
        n = packed.shape[0]
        if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
            fail(f"ids must be integer of shape ({n},), got {ids.dtype} of shape {ids.shape}")
        labels = arrays.get("labels")
        if labels is not None and (
            labels.ndim != 2
            or labels.shape[0] != n
            or not (labels.dtype == bool or np.issubdtype(labels.dtype, np.number))
        ):
            fail(f"labels must be numeric of shape [{n}, C], got {labels.dtype} {labels.shape}")
        index = cls(num_bits)
        index._packed = packed
        # copy=False keeps mapped int64 ids mapped.
        index._ids = ids.astype(np.int64, copy=False)
        index._labels = labels
        return index

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


def _map_member(path: str, info: zipfile.ZipInfo) -> np.ndarray:
    """A stored ``.npy`` member of an ``.npz`` archive, memory-mapped where it lies in the file.

    ``np.savez`` stores members uncompressed, so a member's array is contiguous bytes after its
    zip local header and its ``.npy`` header; ``np.load(mmap_mode=...)`` maps only lone ``.npy``
    files, so the offset is read here.
    """
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(
            f"member {info.filename} is compressed and cannot be memory-mapped; load with "
            "mmap=False"
        )
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(_ZIP_LOCAL_HEADER)
        if len(local) != _ZIP_LOCAL_HEADER or local[:4] != _ZIP_LOCAL_SIGNATURE:
            raise ValueError(f"member {info.filename} has no zip local header")
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + _ZIP_LOCAL_HEADER + name_length + extra_length)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"member {info.filename} is .npy version {version}, not 1.0 or 2.0")
        offset = f.tell()
    if dtype.hasobject:
        raise ValueError(f"member {info.filename} holds Python objects")
    if math.prod(shape) == 0:
        # mmap cannot map zero bytes.
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                     order="F" if fortran_order else "C")
