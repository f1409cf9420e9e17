"""The storage of every Hamming index: packed codes, ids and labels, their checks and their file.

:class:`CodeStore` keeps ``uint32 [N, ceil(L / 32)]`` codes packed as
:func:`dlhash_jax.codes.pack_codes` does, ``int64`` ids and optional ``[N, C]`` labels, and
refuses what does not fit them: ±1 codes of another length, packed codes of another width or
with bits set beyond ``L``, ids or labels of the wrong shape, labels in some additions only.
:class:`~dlhash_jax.retrieval.HammingIndex` and
:class:`~dlhash_jax.multi_index.MultiIndexHashing` are code stores with searches;
:class:`~dlhash_jax.sharded_index.ShardedHammingIndex` keeps one on the host.
:func:`check_queries` validates a search's queries against a store.

The file is an uncompressed ``.npz`` archive without pickled objects: ``format_version``,
``num_bits``, ``packed_codes``, ``ids``, optionally ``labels`` and the integer settings of a
subclass (``num_tables`` of a multi-index). It is written beside its target and renamed over
it, and loading checks every key, dtype and shape, so a foreign, pickled, truncated or corrupt
file is refused with what is wrong; :meth:`CodeStore.load` can map the arrays instead of
reading them (``mmap=True``).
"""

from __future__ import annotations

import math
import os
import pickle
import struct
import zipfile

import numpy as np

from dlhash_jax import hamming
from dlhash_jax._checks import check_int
from dlhash_jax.codes import WORD_BITS, check_codes, num_words, unpack_codes

FORMAT_VERSION = 1
# Members of a file that load(mmap=True) maps; the small ones are read.
_MAPPED = ("packed_codes", "ids", "labels")
# The fixed part of a zip local file header; the lengths of the name and extra field end it.
_ZIP_LOCAL_HEADER = 30
_ZIP_LOCAL_SIGNATURE = b"PK\x03\x04"


def nonempty_codes(codes, name: str) -> np.ndarray:
    """``codes`` validated as a ±1 matrix with at least one row (:func:`check_codes`).

    Raises:
      ValueError: if ``codes`` is not a ±1 ``[n, L]`` matrix or ``n`` is 0.
    """
    codes = check_codes(codes, name)
    if codes.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {codes.shape}); need at least one code.")
    return codes


def packed_words(packed, num_bits: int, name: str) -> np.ndarray:
    """Validated packed codes of ``num_bits`` bits as ``uint32 [n, ceil(L / 32)]`` words.

    Args:
      packed: ``uint32 [n, ceil(L / 32)]`` words (:func:`dlhash_jax.codes.pack_codes`), or
        ``uint8 [n, ceil(L / 8)]`` bytes with bit ``j`` of a code in byte ``j // 8`` at bit
        ``j % 8`` (faiss's layout).
      num_bits: ``L``.
      name: the argument's name in the error messages.

    Returns:
      C-contiguous ``uint32 [n, ceil(L / 32)]`` words.

    Raises:
      ValueError: for another dtype or width, or bits set beyond ``L``.
    """
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
    if _padding_set(arr, num_bits):
        raise ValueError(
            f"{name} has bits set beyond bit {num_bits}; packed {num_bits}-bit codes must be "
            "zero there."
        )
    return arr


def _padding_set(words: np.ndarray, num_bits: int) -> bool:
    """Whether any of ``uint32 [n, ceil(L / 32)]`` words has a bit set beyond bit ``L``."""
    spare = words.shape[1] * WORD_BITS - num_bits
    return bool(spare) and bool(np.any(words[:, -1] >> np.uint32(WORD_BITS - spare)))


def check_queries(query_codes, num_bits: int, num_stored: int, *,
                  packed: bool = False) -> np.ndarray:
    """The queries of a search of a store of ``num_stored`` ``num_bits``-bit codes, as words.

    Args:
      query_codes: ``[Q, L]`` codes in {-1, +1}; with ``packed``, packed codes in either layout
        of :func:`packed_words`.
      num_bits: ``L``.
      num_stored: the store's size ``N``.
      packed: whether ``query_codes`` are packed.

    Returns:
      ``uint32 [Q, ceil(L / 32)]`` packed queries.

    Raises:
      ValueError: if the queries are not a non-empty ``[Q, L]`` ±1 matrix (or packed codes of
        ``L`` bits), or the store is empty.
    """
    if packed:
        words = packed_words(query_codes, num_bits, "query_codes")
        if words.shape[0] == 0:
            raise ValueError(
                f"query_codes is empty (shape {np.shape(query_codes)}); need at least one code."
            )
    else:
        query_codes = nonempty_codes(query_codes, "query_codes")
        if query_codes.shape[1] != num_bits:
            raise ValueError(
                f"query_codes have {query_codes.shape[1]} bits but the index holds "
                f"{num_bits}-bit codes; got query_codes of shape {query_codes.shape}."
            )
        words = hamming.pack(query_codes)
    if not num_stored:
        raise ValueError("the index is empty; add codes before searching.")
    return words


class CodeStore:
    """A growable store of packed codes with ids and optional labels, saveable and loadable.

    Codes are stored packed (``uint32 [N, ceil(L / 32)]``), so 10⁷ 64-bit codes take 80 MB
    (plus 8 bytes per id). A subclass that derives structures from the codes (the tables of a
    multi-index) rebuilds them in ``_codes_changed``, which every add and load calls; one whose
    file keeps integer settings beyond the codes names them in ``_SETTINGS`` (keywords of its
    constructor) and returns their values from ``_settings``.

    Args:
      num_bits: code length ``L``.

    Raises:
      ValueError: if ``num_bits`` is not a positive integer.

    Examples:
      >>> store = CodeStore(3)
      >>> store.add(np.array([[1, 1, 1], [-1, 1, 1]]), ids=np.array([10, 20]))
      >>> store.add_packed(np.array([[0b011]], np.uint8))  # bit j is code entry j: [1, 1, -1]
      >>> store.codes().tolist(), store.ids.tolist()
      ([[1.0, 1.0, 1.0], [-1.0, 1.0, 1.0], [1.0, 1.0, -1.0]], [10, 20, 2])
    """

    # Integer scalars the file keeps beyond the codes, each a keyword of the constructor.
    _SETTINGS: tuple[str, ...] = ()

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
        """``[N, C]`` labels in insertion order, or None when the store was built without."""
        return self._labels

    def __len__(self) -> int:
        return self._packed.shape[0]

    def codes(self) -> np.ndarray:
        """The stored codes unpacked, ``float32 [N, L]`` in {-1, +1}."""
        return np.asarray(unpack_codes(self._packed, self._num_bits))

    def add(self, codes, ids=None, labels=None) -> None:
        """Appends codes (and their ids and labels).

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
        words = packed_words(packed, self._num_bits, "packed")
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
        self._codes_changed()

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

    def _codes_changed(self) -> None:
        """Called after every add and load; the store itself derives nothing from the codes."""

    def _settings(self) -> dict[str, int]:
        """The values of ``_SETTINGS`` to save (those left at their default may be omitted)."""
        return {}

    def save(self, path) -> None:
        """Writes the store to ``path`` (exactly that name) as an uncompressed ``.npz`` archive.

        Keys: ``format_version``, ``num_bits``, ``packed_codes`` (``uint32 [N, W]``), ``ids``
        (``int64 [N]``), the settings of a subclass (integer scalars) and, when present,
        ``labels`` (``[N, C]``). No pickled objects, so the file loads with ``np.load(path,
        allow_pickle=False)``; the members are stored, not compressed, so :meth:`load` can map
        them. The file is replaced only once it is whole.
        """
        path = os.fspath(path)
        arrays = {
            "format_version": np.asarray(FORMAT_VERSION, np.int64),
            "num_bits": np.asarray(self._num_bits, np.int64),
            "packed_codes": self._packed,
            "ids": self._ids,
        }
        arrays.update({key: np.asarray(value, np.int64) for key, value in self._settings().items()})
        if self._labels is not None:
            arrays["labels"] = self._labels
        # Written beside the target and renamed over it: a store mapped from the old file
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
    def load(cls, path, *, mmap: bool = False) -> "CodeStore":
        """Reads a file written by :meth:`save`, validating every key and shape.

        Args:
          path: the file.
          mmap: map ``packed_codes``, ``ids`` and ``labels`` from the file (``np.memmap``, read
            only) instead of reading them: loading takes no time and memory whatever ``N``, and
            searches read the codes through the page cache. The file must stay in place while
            the store is used. Files of every version of :meth:`save` can be mapped (their
            members are stored uncompressed). Mapped codes are not scanned for bits set beyond
            ``L`` (that would read them all); :meth:`save` never writes such bits. :meth:`add`
            copies the mapped arrays into memory.

        Returns:
          An instance of the class it is called on (a subclass builds what it derives).

        Raises:
          ValueError: if the file is not a readable ``.npz`` archive, holds pickled objects, is
            not a file of this class (missing, unknown or malformed keys, padding bits set, a
            setting the constructor refuses), or, with ``mmap``, a member is compressed.
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
            raise ValueError(f"{path} is not a readable {cls.__name__} file: {err}") from err
        return cls._from_arrays(arrays, path, check_padding=not mmap)

    @classmethod
    def _from_arrays(cls, arrays: dict, path: str, check_padding: bool = True) -> "CodeStore":
        kind = cls.__name__
        required = {"format_version", "num_bits", "packed_codes", "ids"}
        optional = ("labels", *cls._SETTINGS)
        keys = set(arrays)
        if not required <= keys or not keys <= required.union(optional):
            raise ValueError(
                f"{path} is not a {kind} file: expected keys {sorted(required)} (and optionally "
                f"{', '.join(repr(key) for key in optional)}), found {sorted(keys)}."
            )

        def fail(what: str):
            raise ValueError(f"{path} is a corrupt {kind} file: {what}.")

        for name in ("format_version", "num_bits", *cls._SETTINGS):
            value = arrays.get(name)
            if value is not None and (
                value.shape != () or not np.issubdtype(value.dtype, np.integer)
            ):
                fail(f"{name} must be an integer scalar, got {value.dtype} of shape {value.shape}")
        if int(arrays["format_version"]) != FORMAT_VERSION:
            fail(
                f"format_version {int(arrays['format_version'])} is not supported (expected "
                f"{FORMAT_VERSION})"
            )
        num_bits = int(arrays["num_bits"])
        if num_bits <= 0:
            fail(f"num_bits must be positive, got {num_bits}")
        settings = {name: int(arrays[name]) for name in cls._SETTINGS if name in arrays}
        try:
            store = cls(num_bits, **settings)
        except ValueError as err:
            fail(str(err).rstrip("."))
        packed, ids = arrays["packed_codes"], arrays["ids"]
        words = num_words(num_bits)
        if packed.dtype != np.uint32 or packed.ndim != 2 or packed.shape[1] != words:
            fail(
                f"packed_codes must be uint32 of shape [N, {words}] for {num_bits} bits, got "
                f"{packed.dtype} of shape {packed.shape}"
            )
        if check_padding and _padding_set(packed, num_bits):
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
        store._packed = packed
        # copy=False keeps mapped int64 ids mapped.
        store._ids = ids.astype(np.int64, copy=False)
        store._labels = labels
        store._codes_changed()
        return store


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
