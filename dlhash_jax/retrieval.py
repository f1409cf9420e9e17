"""Hamming ranking over packed codes: exact top-k, radius look-up, and a saveable index.

Codes go in as ±1 matrices ``[N, L]`` (docs/design.md), are validated, packed 32 bits to a
``uint32`` word and searched with :mod:`dlhash_jax.hamming`: XOR + population count under ``jit`` on whatever
device JAX has, in blocks of ``chunk_size`` queries by ``db_chunk_size`` database items, so no
``[Q, N]`` array larger than one block is ever materialised.

Every ranking is exact and deterministic: items are ordered by (Hamming distance, database
index), the ``ties="index"`` convention of the evaluation protocol. The k nearest are selected
on the host on CPU (counting per distance in NumPy) and with ``lax.top_k`` under ``jit`` on
GPU/TPU; the results are identical (see :mod:`dlhash_jax.hamming` for both strategies).

Results are returned as NumPy arrays on the host, because what follows (looking up ids or labels,
computing metrics over ragged radius results) is host work.
"""

from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np

from dlhash_jax import hamming
from dlhash_jax._checks import check_int, is_int
from dlhash_jax.codes import WORD_BITS, check_codes, num_words, unpack_codes

DEFAULT_CHUNK_SIZE = 256
DEFAULT_DB_CHUNK_SIZE = 65_536
_FORMAT_VERSION = 1


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


def hamming_topk(
    query_codes,
    db_codes,
    k: int,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    db_chunk_size: int = DEFAULT_DB_CHUNK_SIZE,
    _path: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest database codes of every query by Hamming distance (exact).

    Items are ordered by (distance, database index): among equal distances the smaller database
    index comes first, the deterministic ``ties="index"`` convention (docs/design.md, evaluation
    protocol). The result does not depend on the chunk sizes or on the backend: on CPU the
    selection counts per distance on the host, on GPU/TPU it is ``lax.top_k`` under ``jit`` (see
    :mod:`dlhash_jax.hamming` for why).

    Args:
      query_codes: ``[Q, L]`` codes in {-1, +1} (any real or integer dtype), ``Q >= 1``.
      db_codes: ``[N, L]`` codes in {-1, +1}, ``N >= 1``.
      k: number of neighbours, ``1 <= k <= N``.
      chunk_size: queries per block.
      db_chunk_size: database items per block; the largest distance array held at once is
        ``[chunk_size, db_chunk_size]``.

    Returns:
      ``(distances, indices)``: NumPy ``int32 [Q, k]`` Hamming distances in ``[0, L]`` and
      ``int64 [Q, k]`` row indices into ``db_codes``, sorted by (distance, index) along each row.

    Raises:
      ValueError: if codes are not ±1 matrices, are empty, have different bit lengths, or ``k``
        is not in ``[1, N]``, or a chunk size is not a positive integer.

    Examples:
      >>> db = np.array([[1, 1, 1], [-1, 1, 1], [1, 1, -1], [-1, -1, -1]])
      >>> dist, idx = hamming_topk(np.array([[1, 1, 1]]), db, 3)
      >>> dist.tolist(), idx.tolist()
      ([[0, 1, 1]], [[0, 1, 2]])
    """
    query_codes, db_codes = _check_pair(query_codes, db_codes)
    k = _check_k(k, db_codes.shape[0])
    backend = hamming.resolve_backend(_path, "_path")
    return hamming.topk(
        hamming.pack(query_codes), hamming.pack(db_codes), query_codes.shape[1], k,
        chunk_size=chunk_size, db_chunk_size=db_chunk_size, backend=backend,
    )


def radius_search(
    query_codes,
    db_codes,
    radius: int,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    db_chunk_size: int = DEFAULT_DB_CHUNK_SIZE,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """All database codes within Hamming distance ``radius`` of each query (hash look-up).

    This is the "Hamming radius" retrieval of the survey's evaluation section (precision within
    radius 2 is computed from it). Distances are computed under ``jit`` on the default device in
    blocks; the comparison and the extraction of hits run on the host on every backend, because
    the number of hits is data-dependent.

    Args:
      query_codes: ``[Q, L]`` codes in {-1, +1}, ``Q >= 1``.
      db_codes: ``[N, L]`` codes in {-1, +1}, ``N >= 1``.
      radius: non-negative integer; items with distance ``<= radius`` are returned.
      chunk_size: queries per block.
      db_chunk_size: database items per block.

    Returns:
      A list of ``Q`` pairs ``(distances, indices)``, one per query, in the same order as
      :func:`hamming_topk`'s result: NumPy ``int32 [n_q]`` distances and ``int64 [n_q]`` indices
      into ``db_codes``, sorted by (distance, index); ``n_q`` may be 0.

    Raises:
      ValueError: if codes are not ±1 matrices, are empty or have different bit lengths, or
        ``radius`` is not a non-negative integer.

    Examples:
      >>> db = np.array([[1, 1, 1], [-1, 1, 1], [1, 1, -1], [-1, -1, -1]])
      >>> [(d.tolist(), i.tolist()) for d, i in radius_search(np.array([[1, 1, 1]]), db, 1)]
      [([0, 1, 1], [0, 1, 2])]
    """
    query_codes, db_codes = _check_pair(query_codes, db_codes)
    radius = check_int(radius, "radius", minimum=0)
    return hamming.within_radius(
        hamming.pack(query_codes), hamming.pack(db_codes), query_codes.shape[1], radius,
        chunk_size=chunk_size, db_chunk_size=db_chunk_size,
    )


class HammingIndex:
    """A growable database of packed codes with optional ids and labels, searchable and saveable.

    Codes are stored packed (``uint32 [N, ceil(L / 32)]``, the layout of
    :func:`dlhash_jax.codes.pack_codes`), so 10⁷ 64-bit codes take 80 MB (plus 8 bytes per id).
    Searches rank by (distance, insertion position) exactly like :func:`hamming_topk` and return
    the stored ids.

    Args:
      num_bits: code length ``L``.

    Examples:
      >>> index = HammingIndex(3)
      >>> index.add(np.array([[1, 1, 1], [-1, 1, 1]]), ids=np.array([10, 20]))
      >>> dist, ids = index.search(np.array([[-1, 1, 1]]), 2)
      >>> dist.tolist(), ids.tolist()
      ([[0, 1]], [[20, 10]])
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
        """``uint32 [N, ceil(L / 32)]`` stored codes, in insertion order."""
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
        n = codes.shape[0]
        if codes.shape[1] != self._num_bits:
            raise ValueError(
                f"codes have {codes.shape[1]} bits but the index holds {self._num_bits}-bit "
                f"codes; got codes of shape {codes.shape}."
            )
        if ids is None:
            ids = np.arange(len(self), len(self) + n, dtype=np.int64)
        else:
            ids = np.asarray(ids)
            if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
                raise ValueError(
                    f"ids must be an integer array of shape ({n},) to match codes of shape "
                    f"{codes.shape}, got {ids.dtype} array of shape {ids.shape}."
                )
        labels = self._check_new_labels(labels, codes.shape)
        self._packed = np.concatenate([self._packed, hamming.pack(codes)])
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

    def _check_queries(self, query_codes) -> np.ndarray:
        query_codes = _nonempty_codes(query_codes, "query_codes")
        if query_codes.shape[1] != self._num_bits:
            raise ValueError(
                f"query_codes have {query_codes.shape[1]} bits but the index holds "
                f"{self._num_bits}-bit codes; got query_codes of shape {query_codes.shape}."
            )
        if not len(self):
            raise ValueError("the index is empty; add codes before searching.")
        return query_codes

    def search(
        self,
        query_codes,
        k: int,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        db_chunk_size: int = DEFAULT_DB_CHUNK_SIZE,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest stored codes of each query, as :func:`hamming_topk`.

        Args:
          query_codes: ``[Q, L]`` codes in {-1, +1}.
          k: ``1 <= k <= len(self)``.
          chunk_size: queries per block.
          db_chunk_size: stored codes per block.

        Returns:
          ``(distances int32 [Q, k], ids int64 [Q, k])``, sorted by (distance, insertion
          position) along each row.
        """
        query_codes = self._check_queries(query_codes)
        k = _check_k(k, len(self))
        dist, idx = hamming.topk(
            hamming.pack(query_codes), self._packed, self._num_bits, k, chunk_size=chunk_size,
            db_chunk_size=db_chunk_size,
        )
        return dist, self._ids[idx]

    def range_search(
        self,
        query_codes,
        radius: int,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        db_chunk_size: int = DEFAULT_DB_CHUNK_SIZE,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """All stored codes within Hamming distance ``radius`` of each query, as
        :func:`radius_search`.

        Returns:
          A list of ``Q`` pairs ``(distances int32 [n_q], ids int64 [n_q])`` sorted by (distance,
          insertion position).
        """
        query_codes = self._check_queries(query_codes)
        radius = check_int(radius, "radius", minimum=0)
        found = hamming.within_radius(
            hamming.pack(query_codes), self._packed, self._num_bits, radius,
            chunk_size=chunk_size, db_chunk_size=db_chunk_size,
        )
        return [(dist, self._ids[idx]) for dist, idx in found]

    def save(self, path) -> None:
        """Writes the index to ``path`` (exactly that name) as an uncompressed ``.npz`` archive.

        Keys: ``format_version``, ``num_bits``, ``packed_codes`` (``uint32 [N, W]``), ``ids``
        (``int64 [N]``) and, when present, ``labels`` (``[N, C]``). No pickled objects, so the
        file loads with ``np.load(path, allow_pickle=False)``.
        """
        arrays = {
            "format_version": np.asarray(_FORMAT_VERSION, np.int64),
            "num_bits": np.asarray(self._num_bits, np.int64),
            "packed_codes": self._packed,
            "ids": self._ids,
        }
        if self._labels is not None:
            arrays["labels"] = self._labels
        with open(os.fspath(path), "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path) -> "HammingIndex":
        """Reads an index written by :meth:`save`, validating every key and shape.

        Raises:
          ValueError: if the file is not a readable ``.npz`` archive, holds pickled objects, or
            is not a HammingIndex (missing, unknown or malformed keys, padding bits set).
        """
        path = os.fspath(path)
        try:
            archive = np.load(path, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("it holds a single .npy array, not an .npz archive")
            with archive:
                arrays = {key: archive[key] for key in archive.files}
        except (OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError) as err:
            raise ValueError(f"{path} is not a readable HammingIndex file: {err}") from err
        return cls._from_arrays(arrays, path)

    @classmethod
    def _from_arrays(cls, arrays: dict, path: str) -> "HammingIndex":
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
        if spare and np.any(packed[:, -1] >> np.uint32(WORD_BITS - spare)):
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
        index._ids = ids.astype(np.int64)
        index._labels = labels
        return index
