"""Multi-index hashing: exact Hamming k-NN and radius search that reads a part of the database.

Norouzi, Punjani & Fleet, "Fast Exact Search in Hamming Space with Multi-Index Hashing", IEEE
TPAMI 36(6), 2014 (arXiv:1307.2982; CVPR 2012). Every ``L``-bit code is cut into ``m`` disjoint
substrings of consecutive bits (``ceil(L / m)`` bits for the first ``L mod m``, ``floor(L / m)``
for the others), and substring ``j`` of every stored code indexes hash table ``j``.

Why it is exact (the paper's pigeonhole argument, Proposition 1 and its refinement): a Hamming
distance is the sum of the ``m`` substring distances. If table ``j`` has been probed at every
substring value within ``rho_j`` of the query's substring ``j``, a code that none of the probes
found differs from the query in at least ``rho_j + 1`` bits of every substring, so in at least
``sum_j (rho_j + 1)`` bits: every code within

    R = sum_j rho_j + m - 1

of the query has been found. Probing the tables in turn, each time the next ring (the substring
values at exactly one more bit from the query's) of the next table, raises ``R`` by one per
probe; after ``r + 1`` probes table ``j`` has been searched to ``rho_j = floor((r - j) / m)``,
which for ``r = s m + a`` (``0 <= a < m``) is the paper's rule: the first ``a + 1`` substrings
within ``s`` bits, the others within ``s - 1``.

* :meth:`MultiIndexHashing.range_search` probes every table once, at once to its ``rho_j`` for
  ``R = radius``, verifies the candidates' full distances and keeps those within the radius.
* :meth:`MultiIndexHashing.search` is the paper's incremental k-NN search: probes one ring at a
  time and stops as soon as ``k`` verified codes lie within the guaranteed radius ``R``. The
  ``k``-th smallest distance ``t`` is then at most ``R``, so every code at distance ``<= t`` is
  among the candidates, and sorting them by (distance, insertion position) gives exactly the
  result of :class:`~dlhash_jax.retrieval.HammingIndex`, ties included.

A code found by several tables is verified once: a candidate of table ``j`` is new exactly when,
for every other table ``i``, its substring ``i`` is farther than ``rho_i`` from the query's (else
table ``i``'s probes found it already), which the verification reads off the XOR it computes
anyway. Candidates farther than the distance of the ``k``-th best verified code so far are
dropped as they come: the answer cannot need them.

Everything is vectorised over a chunk of queries probing in lock step (all of them have the same
``rho_j`` after the same number of probes) and over their candidates; Python loops only over
probes. Each table is stored in CSR form (database positions sorted by substring value and the
start of every bucket, built with one ``argsort``), with a copy of the codes in that order, so
the codes of a bucket are read contiguously when they are verified.

The rings grow fast with the radius (``C(b, rho)`` values for ``b``-bit substrings), and a ring
near the centre of a cluster of codes holds many candidates; for a large ``k`` or radius, or
uniformly random codes at small ``N``, a linear scan is cheaper. A query whose work (candidates
plus ``LOOKUP_COST`` per look-up) would pass ``SCAN_FRACTION`` of the database size is answered
by the flat engine (:mod:`dlhash_jax.hamming`) instead, which gives the same result; the check
comes before each ring is built.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from dlhash_jax import hamming
from dlhash_jax._checks import check_int, is_int
from dlhash_jax.codes import WORD_BITS
from dlhash_jax.index_store import CodeStore, check_queries

# Queries probed in lock step: enough to spread the per-probe Python overhead, few enough that
# one probe's candidate arrays stay small.
DEFAULT_CHUNK_SIZE = 128
# A query whose work would pass this fraction of the database goes to the flat engine. Work is
# verified candidates plus LOOKUP_COST per bucket look-up: measured on 2 CPUs, a candidate costs
# about 8 ns (gathers, XOR, popcount, the bound test) against 1-2 ns per code for the flat
# engine, and a look-up 50-200 ns (a cache miss in the bucket offsets, more for large rings).
SCAN_FRACTION = 1 / 10
LOOKUP_COST = 16
# The flat engine's blocks: HammingIndex's defaults.
_FLAT_CHUNK = 256
_FLAT_DB_CHUNK = 65_536
# Substring values index the bucket offsets directly when 2**bits is at most this many times the
# database size (the default rule gives 2**bits close to N); longer substrings use a sorted key
# array and binary search.
_DENSE_FACTOR = 2
_MIN_DENSE_BITS = 16
_KEY_BITS = 64


def default_num_tables(num_bits: int, num_codes: int) -> int:
    """The paper's number of substrings, ``m = L / log2 N`` rounded, within ``[ceil(L/64), L]``.

    With ``log2 N``-bit substrings a table has about one code per bucket for uniformly
    distributed codes, which the paper finds close to the fastest choice. Substrings are at most
    64 bits (a substring value is a ``uint64`` key).

    Args:
      num_bits: code length ``L``.
      num_codes: database size ``N`` (values below 2 count as 2).

    Returns:
      The number of tables ``m``.

    Examples:
      >>> [default_num_tables(64, 10**6), default_num_tables(128, 10**6)]
      [3, 6]
    """
    num_bits = check_int(num_bits, "num_bits")
    num_codes = check_int(num_codes, "num_codes", minimum=0)
    tables = round(num_bits / math.log2(max(num_codes, 2)))
    return min(num_bits, max(tables, -(-num_bits // _KEY_BITS)))


def _check_num_tables(num_tables, num_bits: int) -> int | None:
    num_tables = check_int(num_tables, "num_tables", allow_none=True)
    if num_tables is None:
        return None
    if num_tables > num_bits:
        raise ValueError(
            f"num_tables must be at most num_bits = {num_bits} (one bit per substring), got "
            f"{num_tables}."
        )
    if -(-num_bits // num_tables) > _KEY_BITS:
        raise ValueError(
            f"num_tables must be at least {-(-num_bits // _KEY_BITS)} for {num_bits}-bit codes, "
            f"so that every substring fits a {_KEY_BITS}-bit key; got {num_tables}."
        )
    return num_tables


def _words64(packed: np.ndarray) -> np.ndarray:
    """``uint32 [N, W]`` packed codes as ``uint64 [N, ceil(W / 2)]``: code bit ``i`` is bit
    ``i % 64`` of word ``i // 64``, whatever the machine's byte order."""
    words = packed.astype(np.uint64)
    if words.shape[1] % 2:
        words = np.concatenate([words, np.zeros((words.shape[0], 1), np.uint64)], axis=1)
    return words[:, 0::2] | (words[:, 1::2] << np.uint64(WORD_BITS))


def _substrings(words: np.ndarray, start: int, length: int) -> np.ndarray:
    """``uint64 [N]``: bits ``start ... start + length - 1`` of each code, bit ``start`` lowest."""
    word, shift = divmod(start, _KEY_BITS)
    value = words[:, word] >> np.uint64(shift)
    if shift + length > _KEY_BITS:
        # shift > 0 here, so the left shift is below 64 (a shift by 64 is undefined in C).
        value |= words[:, word + 1] << np.uint64(_KEY_BITS - shift)
    return value & np.uint64((1 << length) - 1)


@functools.lru_cache(maxsize=None)
def _ring(length: int, radius: int) -> np.ndarray:
    """``uint64``: every ``length``-bit value with exactly ``radius`` set bits (read-only).

    The values with the top bit clear, then those with it set: C(l, r) = C(l-1, r) + C(l-1, r-1).
    """
    if radius == 0:
        ring = np.zeros(1, np.uint64)
    elif radius > length:
        ring = np.zeros(0, np.uint64)
    else:
        top = np.uint64(1 << (length - 1))
        ring = np.concatenate([_ring(length - 1, radius), _ring(length - 1, radius - 1) | top])
    ring.flags.writeable = False
    return ring


@functools.lru_cache(maxsize=None)
def _ball(length: int, radius: int) -> np.ndarray:
    """``uint64``: every ``length``-bit value with at most ``radius`` set bits (read-only)."""
    ball = np.concatenate([_ring(length, r) for r in range(radius + 1)])
    ball.flags.writeable = False
    return ball


def _ball_size(length: int, radius: int) -> int:
    return sum(math.comb(length, r) for r in range(min(radius, length) + 1))


class _Table:
    """One substring's hash table in CSR form.

    Attributes:
      start, length: the substring's first bit and its number of bits.
      parts: ``((word, mask), ...)``: the substring's bits within the ``uint64`` code words.
      order: ``[N]`` database positions sorted by substring value (``int32`` below 2**31 codes).
      columns: per code word, ``uint64 [N]``: the stored codes in ``order``.
      offsets: ``[U + 1]``, ``order``'s dtype: bucket ``u`` is ``order[offsets[u]:offsets[u+1]]``.
      keys: ``uint64 [U]`` sorted substring values of the buckets, or None when every value
        ``0 ... 2**length - 1`` is a bucket (``U = 2**length``, looked up by indexing).
    """

    def __init__(self, words: np.ndarray, start: int, length: int):
        self.start, self.length = start, length
        word, shift = divmod(start, _KEY_BITS)
        low = min(length, _KEY_BITS - shift)
        self.parts = ((word, np.uint64(((1 << low) - 1) << shift)),)
        if low < length:
            self.parts += ((word + 1, np.uint64((1 << (length - low)) - 1)),)
        n = words.shape[0]
        values = _substrings(words, start, length)
        order = np.argsort(values)
        self.order = order.astype(np.int32 if n < 2**31 else np.int64)
        self.columns = tuple(np.ascontiguousarray(words[order, w]) for w in range(words.shape[1]))
        if 2**length <= _DENSE_FACTOR * max(n, 2**_MIN_DENSE_BITS):
            counts = np.bincount(values.astype(np.intp), minlength=2**length)
            self.keys = None
        else:
            values = values[order]
            first = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))
            counts = np.diff(np.append(first, n))
            self.keys = values[first]
        # int32 offsets halve the memory that look-ups miss in.
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(self.order.dtype)

    def substrings(self, words: np.ndarray) -> np.ndarray:
        """``uint64 [Q]`` substring values of ``uint64 [Q, V]`` code words."""
        return _substrings(words, self.start, self.length)

    def lookup(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(lo, hi)``: the bucket of each value is ``order[lo:hi]`` (empty when absent)."""
        if self.keys is None:
            bucket = values.astype(np.intp)
            return self.offsets[bucket], self.offsets[bucket + 1]
        bucket = np.minimum(np.searchsorted(self.keys, values), len(self.keys) - 1)
        lo, hi = self.offsets[bucket], self.offsets[bucket + 1]
        return lo, np.where(self.keys[bucket] == values, hi, lo)

    def distances(self, xor: list[np.ndarray]) -> np.ndarray:
        """``uint8 [n]`` substring Hamming distances from the XOR of query and code words."""
        (word, mask), *rest = self.parts
        dist = np.bitwise_count(xor[word] & mask)
        for word, mask in rest:
            dist += np.bitwise_count(xor[word] & mask)
        return dist


class MultiIndexHashing(CodeStore):
    """Exact Hamming search by multi-index hashing, with :class:`HammingIndex`'s API and results.

    Norouzi, Punjani & Fleet, TPAMI 2014 (see the module docstring for the algorithm). Searches
    return exactly what :class:`~dlhash_jax.retrieval.HammingIndex` returns for the same codes:
    the same distances and ids, ordered by (distance, insertion position). Like
    ``HammingIndex`` it is a :class:`~dlhash_jax.index_store.CodeStore`: the packed codes
    (``uint32 [N, ceil(L / 32)]``), ids and labels, ``add``, ``add_packed``, ``save`` and
    ``load`` are the store's. The file is ``HammingIndex``'s plus ``num_tables`` when it was
    given to the constructor (a file without it is also a ``HammingIndex`` file); ``load``
    rebuilds the tables. So does every add (one ``argsort`` of ``N`` substring values per
    table), so add codes in large batches. Memory: the packed codes and ids, plus per table the
    sorted positions (4 bytes a code), a copy of the codes in that order (8 bytes a code per 64
    bits) and the bucket offsets (at most 16 bytes a code): about 0.6 GB for 10⁷ 64-bit codes
    and ``m = 3``.

    Args:
      num_bits: code length ``L``.
      num_tables: number of substrings ``m``, in ``[ceil(L / 64), L]``; None (default): the
        paper's ``L / log2 N`` (:func:`default_num_tables`), re-chosen from the database size at
        every add.

    Raises:
      ValueError: if ``num_bits`` is not a positive integer or ``num_tables`` is out of range.

    Examples:
      >>> index = MultiIndexHashing(3)
      >>> index.add(np.array([[1, 1, 1], [-1, 1, 1]]), ids=np.array([10, 20]))
      >>> dist, ids = index.search(np.array([[-1, 1, 1]]), 2)
      >>> dist.tolist(), ids.tolist()
      ([[0, 1]], [[20, 10]])
    """

    _SETTINGS = ("num_tables",)

    def __init__(self, num_bits: int, num_tables: int | None = None):
        super().__init__(num_bits)
        self._fixed_tables = _check_num_tables(num_tables, self.num_bits)
        self._tables: list[_Table] = []

    @property
    def num_tables(self) -> int:
        """Number of substrings ``m`` of the current tables (or that the next add uses)."""
        if self._fixed_tables is not None:
            return self._fixed_tables
        return default_num_tables(self.num_bits, len(self))

    @property
    def substrings(self) -> list[tuple[int, int]]:
        """``[(first bit, number of bits)]`` of each substring, in table order."""
        base, extra = divmod(self.num_bits, self.num_tables)
        lengths = [base + 1] * extra + [base] * (self.num_tables - extra)
        starts = np.cumsum([0] + lengths[:-1]).tolist()
        return list(zip(starts, lengths))

    def _settings(self) -> dict[str, int]:
        return {} if self._fixed_tables is None else {"num_tables": self._fixed_tables}

    def _codes_changed(self) -> None:
        # The tables index every stored code: rebuilt whole after every add and load.
        words = _words64(self.packed_codes)
        self._tables = [_Table(words, start, length) for start, length in self.substrings]

    def search(self, query_codes, k: int, *, packed: bool = False,
               chunk_size: int = DEFAULT_CHUNK_SIZE) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest stored codes of each query, exactly as :meth:`HammingIndex.search`.

        Incremental multi-index search: rings of the tables are probed in turn until ``k``
        verified codes lie within the guaranteed radius (module docstring).

        Args:
          query_codes: ``[Q, L]`` codes in {-1, +1}; with ``packed``, packed codes in either
            layout of :meth:`add_packed`.
          k: ``1 <= k <= len(self)``.
          packed: whether ``query_codes`` are packed.
          chunk_size: queries probed in lock step.

        Returns:
          ``(distances int32 [Q, k], ids int64 [Q, k])``, sorted by (distance, insertion
          position) along each row.

        Raises:
          ValueError: if the queries are not a non-empty ``[Q, L]`` ±1 matrix (or packed
            codes of ``L`` bits), the index is empty, ``k`` is not in ``[1, len(self)]`` or
            ``chunk_size`` is not a positive integer.
        """
        query_packed = check_queries(query_codes, self.num_bits, len(self), packed=packed)
        if not is_int(k) or not 1 <= k <= len(self):
            raise ValueError(
                f"k must be an integer in [1, database size = {len(self)}], got k = {k!r}; a "
                "top-k search cannot return more items than the database holds."
            )
        chunk_size = check_int(chunk_size, "chunk_size")
        query_words = _words64(query_packed)
        num_queries = query_packed.shape[0]
        dist = np.empty((num_queries, k), np.int32)
        pos = np.empty((num_queries, k), np.int64)
        flat = np.zeros(num_queries, bool)
        for rows in hamming.chunk_slices(num_queries, chunk_size):
            dist[rows], pos[rows], flat[rows] = self._search_chunk(query_words[rows], int(k))
        if flat.any():
            dist[flat], pos[flat] = hamming.topk(
                query_packed[flat], self.packed_codes, self.num_bits, int(k),
                chunk_size=_FLAT_CHUNK, db_chunk_size=_FLAT_DB_CHUNK,
            )
        return dist, self.ids[pos]

    def range_search(self, query_codes, radius: int, *, packed: bool = False,
                     chunk_size: int = DEFAULT_CHUNK_SIZE) -> list[tuple[np.ndarray, np.ndarray]]:
        """All stored codes within Hamming distance ``radius`` of each query, exactly as
        :meth:`HammingIndex.range_search`.

        Table ``j`` is probed within ``floor((radius - j) / m)`` bits of the query's substring
        (the paper's rule), which finds every code within the radius.

        Args:
          query_codes: ``[Q, L]`` codes in {-1, +1}; with ``packed``, packed codes.
          radius: non-negative integer; codes at distance ``<= radius`` are returned.
          packed: whether ``query_codes`` are packed.
          chunk_size: queries probed together.

        Returns:
          A list of ``Q`` pairs ``(distances int32 [n_q], ids int64 [n_q])`` sorted by (distance,
          insertion position); ``n_q`` may be 0.

        Raises:
          ValueError: if the queries are not a non-empty ``[Q, L]`` ±1 matrix (or packed
            codes of ``L`` bits), the index is empty, or ``radius`` or ``chunk_size`` is not a
            valid integer.
        """
        query_packed = check_queries(query_codes, self.num_bits, len(self), packed=packed)
        # Distances never exceed L, and a larger radius would only enlarge the probes.
        radius = min(check_int(radius, "radius", minimum=0), self.num_bits)
        chunk_size = check_int(chunk_size, "chunk_size")
        query_words = _words64(query_packed)
        num_queries = query_packed.shape[0]
        found: list = [None] * num_queries
        flat = np.zeros(num_queries, bool)
        probes = [
            (j, (radius - j) // len(self._tables))
            for j in range(min(radius + 1, len(self._tables)))
        ]
        lookups = sum(_ball_size(self._tables[j].length, rho) for j, rho in probes)
        if LOOKUP_COST * lookups > self._budget():
            flat[:] = True
        else:
            for rows in hamming.chunk_slices(num_queries, chunk_size):
                found[rows], flat[rows] = self._range_chunk(query_words[rows], radius, probes)
        if flat.any():
            hits = hamming.within_radius(
                query_packed[flat], self.packed_codes, self.num_bits, radius,
                chunk_size=_FLAT_CHUNK, db_chunk_size=_FLAT_DB_CHUNK,
            )
            for row, hit in zip(np.flatnonzero(flat), hits):
                found[row] = hit
        return [(dist, self.ids[pos]) for dist, pos in found]

    def _budget(self) -> float:
        return SCAN_FRACTION * len(self)

    def _distance_dtype(self):
        # Population counts are uint8; distances up to 255 add up in it without a widening pass.
        return np.uint8 if self.num_bits <= np.iinfo(np.uint8).max else np.int32

    def _probe(self, j: int, masks: np.ndarray, rows: np.ndarray, query_keys: np.ndarray,
               query_words: np.ndarray, searched: list[int], bound: np.ndarray,
               work: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """Looks up ``query substring j ^ masks`` in table ``j`` for ``rows`` and verifies.

        Args:
          j: the table.
          masks: ``uint64 [C]`` the substring offsets to probe (a ring or a ball).
          rows: ``[q]`` chunk rows of the queries to probe.
          query_keys: ``uint64 [Qc, m]`` substrings of the chunk's queries.
          query_words: ``uint64 [Qc, V]`` the chunk's queries.
          searched: radius to which each other table has been probed (-1: not yet); a candidate
            of table ``j`` within it in another table was found there already.
          bound: ``[Qc]`` largest distance still of use per query; farther candidates are dropped.
          work: ``int64 [Qc]`` work so far per query (``LOOKUP_COST`` per look-up plus the
            candidates), updated in place.

        Returns:
          ``((rows, distances, positions), over)``: the new candidates within the bound (chunk
          row, int distance, database position) and ``bool [q]``: which of ``rows`` passed the
          budget with this probe's candidates (none of theirs is returned).
        """
        table = self._tables[j]
        values = (query_keys[rows, j][:, None] ^ masks[None, :]).ravel()
        lo, hi = table.lookup(values)
        lengths = (hi - lo).reshape(rows.size, masks.size)
        work[rows] += LOOKUP_COST * masks.size + lengths.sum(axis=1)
        over = work[rows] > self._budget()
        lengths[over] = 0
        # Only the non-empty buckets go on: most are empty.
        lengths = lengths.ravel()
        full = np.flatnonzero(lengths)
        lo, lengths = lo[full], lengths[full]
        bucket_rows = np.repeat(rows, masks.size)[full]
        ends = np.cumsum(lengths)
        # Bucket i's slots in the table are lo[i] ... lo[i] + lengths[i] - 1, laid end to end.
        slots = np.repeat(lo - (ends - lengths), lengths)
        slots += np.arange(slots.size)
        xor = [
            column[slots] ^ np.repeat(query_words[bucket_rows, w], lengths)
            for w, column in enumerate(table.columns)
        ]
        dist = np.bitwise_count(xor[0]).astype(self._distance_dtype(), copy=False)
        for word in xor[1:]:
            dist += np.bitwise_count(word)
        # The bound drops most candidates: only the few left are tested for duplicates.
        near = np.flatnonzero(dist <= np.repeat(bound[bucket_rows], lengths))
        cand_rows = bucket_rows[np.searchsorted(ends, near, side="right")]
        xor = [word[near] for word in xor]
        keep = np.ones(near.size, bool)
        for i, radius in enumerate(searched):
            if i != j and radius >= 0:
                keep &= self._tables[i].distances(xor) > radius
        near, cand_rows = near[keep], cand_rows[keep]
        return (cand_rows, dist[near], table.order[slots[near]]), over

    def _search_chunk(self, query_words: np.ndarray,
                      k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The incremental k-NN search of a chunk of queries in lock step.

        Returns:
          ``(distances int32 [Qc, k], positions int64 [Qc, k], flat bool [Qc])``; rows with
          ``flat`` passed the budget and are left for the flat engine (their rows are garbage).
        """
        tables = self._tables
        num_queries, width = query_words.shape[0], self.num_bits + 1
        query_keys = np.stack([table.substrings(query_words) for table in tables], axis=1)
        # Per query: verified codes kept, by distance; the distance of the k-th kept code.
        counts = np.zeros((num_queries, width), np.int64)
        bound = np.full(num_queries, self.num_bits, self._distance_dtype())
        work = np.zeros(num_queries, np.int64)
        flat = np.zeros(num_queries, bool)
        searched = [-1] * len(tables)
        active = np.arange(num_queries)
        # Seeded with no candidates, so a chunk whose queries all go flat at once still joins up.
        found = [(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64))]
        step = 0
        while active.size:
            j = step % len(tables)
            rho = searched[j] + 1
            # Checked before the ring is built: rings of long substrings grow huge.
            ring_size = math.comb(tables[j].length, rho)
            over = work[active] + LOOKUP_COST * ring_size > self._budget()
            flat[active[over]] = True
            active = active[~over]
            if ring_size and active.size:
                (rows, dist, pos), over = self._probe(
                    j, _ring(tables[j].length, rho), active, query_keys, query_words, searched,
                    bound, work,
                )
                found.append((rows, dist, pos))
                counts += np.bincount(
                    rows * width + dist, minlength=num_queries * width
                ).reshape(num_queries, width)
                flat[active[over]] = True
                active = active[~over]
            searched[j] = rho
            # After probe number step + 1 every code within distance `step` has been found.
            cumulative = np.cumsum(counts[active], axis=1)
            enough = cumulative[:, -1] >= k
            bound[active[enough]] = np.argmax(cumulative[enough] >= k, axis=1)
            active = active[cumulative[:, min(step, self.num_bits)] < k]
            step += 1
        rows, dist, pos = (np.concatenate(part) for part in zip(*found))
        keep = (dist <= bound[rows]) & ~flat[rows]
        rows, dist, pos = rows[keep], dist[keep], pos[keep]
        order = np.lexsort((pos, dist, rows))
        rows, dist, pos = rows[order], dist[order], pos[order]
        rank = np.arange(rows.size) - np.searchsorted(rows, rows)
        take = rank < k
        out_dist = np.zeros((num_queries, k), np.int32)
        out_pos = np.zeros((num_queries, k), np.int64)
        out_dist[rows[take], rank[take]] = dist[take]
        out_pos[rows[take], rank[take]] = pos[take]
        return out_dist, out_pos, flat

    def _range_chunk(self, query_words: np.ndarray, radius: int,
                     probes: list[tuple[int, int]]) -> tuple[list, np.ndarray]:
        """Every code within ``radius`` of a chunk of queries: each table probed once.

        Returns:
          ``(found, flat)``: per query ``(distances int32, positions int64)`` sorted by (distance,
          position), and ``bool [Qc]``: the queries that passed the budget (their entries are
          garbage, left for the flat engine).
        """
        num_queries = query_words.shape[0]
        query_keys = np.stack([table.substrings(query_words) for table in self._tables], axis=1)
        bound = np.full(num_queries, radius, self._distance_dtype())
        work = np.zeros(num_queries, np.int64)
        flat = np.zeros(num_queries, bool)
        searched = [-1] * len(self._tables)
        active = np.arange(num_queries)
        found = []
        for j, rho in probes:
            masks = _ball(self._tables[j].length, min(rho, self._tables[j].length))
            candidates, over = self._probe(
                j, masks, active, query_keys, query_words, searched, bound, work
            )
            found.append(candidates)
            flat[active[over]] = True
            active = active[~over]
            searched[j] = rho
        rows, dist, pos = (np.concatenate(part) for part in zip(*found))
        keep = ~flat[rows]
        rows, dist, pos = rows[keep], dist[keep], pos[keep]
        order = np.lexsort((pos, dist, rows))
        bounds = np.cumsum(np.bincount(rows, minlength=num_queries))[:-1]
        dist = np.split(dist[order].astype(np.int32), bounds)
        pos = np.split(pos[order].astype(np.int64), bounds)
        return list(zip(dist, pos)), flat
