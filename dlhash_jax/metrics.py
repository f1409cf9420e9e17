"""Retrieval metrics for binary codes: every measure of survey §6, exact, chunked and fast.

The database is ranked by Hamming distance to each query. Relevance is binary (the query and the
item share at least one label; for one-hot labels: the same class) or graded (the number of
shared labels, for NDCG and ACG). Codes are ``{-1,+1}`` matrices ``[N, L]``, labels multi-hot
``[N, C]`` (one-hot for single-label data). Every metric is a mean over queries of a per-query
value.

Three details that published deep-hashing code disagrees on are explicit switches (DESIGN.md):

* ``ties``: the order of items at the same Hamming distance. ``"index"`` (default) ranks them by
  database index (a stable sort). ``"random"`` applies one seeded shuffle of the database
  (``np.random.default_rng(seed).permutation(N)``, the same for every query) and then ranks as
  ``"index"``, so each tie group is in a uniformly random order. ``"average"`` is the expected
  value over all orders inside every tie group, computed in closed form from per-distance counts
  (the tie-aware measures of McSherry & Najork, ECIR 2008); see *Tie-averaged formulas* below.
* ``normalize`` (AP@K only): ``"retrieved"`` (default) divides by the relevant items found in the
  top K, the convention of most published tables; ``"total"`` divides by all relevant items in
  the database (survey eq 33). They agree when K covers the database.
* ``zero_relevant``: how a query is averaged when its metric is 0/0 because it has no relevant
  item to normalise by: AP (no relevant item retrieved in the top K under ``"retrieved"``, none
  in the database under ``"total"``), recall, NDCG and ROC AUC (none in the database).
  ``"zero"`` (default) counts such a query as 0; ``"skip"`` leaves it out of that metric's mean
  (which reproduces, e.g., HashNet's mAP@K code); when every query is left out the mean is 0.
  Under ``ties="average"`` a query is 0/0 only if no order inside its tie groups gives it a
  non-zero normaliser; otherwise its expectation counts AP 0 for the orders that do not.
  Precision, ACG and precision within a radius are defined for every query and always averaged
  over all of them (a query with no relevant item scores 0 on them).

Tie-averaged formulas (``ties="average"``). For one query let the tie group at distance ``d``
hold ``n_d`` items, ``r_d`` of them relevant, preceded by ``s_d = Σ_{d'<d} n_{d'}`` items of
which ``c_d`` are relevant, and let ``m_d = clip(K - s_d, 0, n_d)`` be how many of its positions
fall in the top K. Inside a uniformly random order of the group a position holds a relevant item
with probability ``r/n`` and two positions both do with probability ``r(r-1)/(n(n-1))``, so for
the ``i``-th position of the group ``E[rel_i · (relevant up to i)] = a + (i-1) b`` with
``a = r(c+1)/n`` and ``b = r(r-1)/(n(n-1))`` (``b = 0`` when ``n = 1``). Summing over the
group's first ``m`` positions with ``ΔH = H(s+m) - H(s)`` (harmonic numbers)::

    Σ_{i=1..m} (a + (i-1) b) / (s+i)  =  a ΔH + b (m - (s+1) ΔH)

* AP@K, ``normalize="total"``: ``(1/R) Σ_d [a_d ΔH_d + b_d (m_d - (s_d+1) ΔH_d)]``; AP over the
  whole database is the case ``m_d = n_d``.
* AP@K, ``normalize="retrieved"``: the normaliser is random when K cuts a tie group ``b``: the
  number ``X`` of its relevant items in the top K is hypergeometric (``n_b`` items, ``r_b``
  relevant, ``m_b`` drawn), and ``E[AP] = Σ_x P(X=x) (F + g(x)) / (c_b + x)`` where ``F`` is the
  expected sum over the groups before ``b`` and ``g(x)`` the formula above for the ``m_b``
  positions with ``x`` relevant items (terms with ``c_b + x = 0`` count 0). A finite sum over
  ``x``, never over orders.
* Precision@K, recall@K: expected hits ``Σ_d r_d m_d / n_d``.
* DCG@K: ``Σ_d (G_d / n_d) (W(s_d + m_d) - W(s_d))`` with ``G_d`` the group's total gain
  ``Σ (2^{rel} - 1)`` and ``W(n) = Σ_{i<=n} 1/log2(i+1)``; ACG@K: ``(1/K) Σ_d A_d m_d / n_d``
  with ``A_d`` the group's total graded relevance.

Radius-based metrics (precision within a radius, the P-R curve by radius) and ROC AUC (ties
scored one half, as scikit-learn does) do not depend on the order inside a tie group.

Speed. Hamming distances are integers in ``[0, L]``. The codes are packed into ``uint32`` words
and compared with XOR and popcount under ``jit``, in chunks of queries against the whole
database, so no ``[Q, N]`` array larger than a chunk exists. A chunk holds about ``2**22``
query-item pairs unless ``chunk_size`` says otherwise: buffers that small are reused by the
allocator instead of being mapped afresh, which measured 2-3x faster on CPU than ``2**24``.
Per-distance counts come from a scatter-add histogram; orders from a sort, chosen per backend
with one API. On CPU, where XLA's sort is slow, the device computes unique ``int32`` keys
``((d·N + index) << bits) | grade`` and NumPy sorts them on the host (a SIMD sort, after
``np.partition`` for the top K), so the grades come out in rank order without a gather. On
GPU/TPU the ranking stays on the device (``lax.sort`` of the distances carrying the grades,
``lax.top_k`` for the top K, both breaking ties by index). Both paths hand the same integer
grades to one float64 host reduction, so they give identical values. The private keyword
``_backend="host"|"device"`` forces a path (tests).

References:
  Survey §6 (eq 28-36). F. McSherry and M. Najork, "Computing information retrieval performance
  measures efficiently in the presence of tied scores", ECIR 2008. K. Järvelin and
  J. Kekäläinen, "Cumulated gain-based evaluation of IR techniques", TOIS 2002 (NDCG).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from typing import Iterator, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dlhash_jax import codes

_TIES = ("index", "random", "average")
_NORMALIZE = ("retrieved", "total")
_ZERO_RELEVANT = ("zero", "skip")
_BACKENDS = ("host", "device")
_PAIRS_PER_CHUNK = 1 << 22
_PACK_BLOCK = 1 << 16
# Largest int32 ranking key; beyond it the host path falls back to a stable argsort of distances.
_MAX_KEY = 2**31 - 1
_EULER_GAMMA = 0.5772156649015329
_HARMONIC_TABLE_SIZE = 64


# ----------------------------------------------------------------------------------------------
# Validation and preparation.


def _check_choice(value, name: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")


def _check_cutoff(k, num_db: int, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(f"{name} must be a positive integer, got {k!r}.")
    if not 1 <= k <= num_db:
        raise ValueError(
            f"{name} must be between 1 and the database size {num_db}, got {k}."
        )
    return int(k)


def _check_labels(labels, name: str, num_rows: int, codes_name: str) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [N, C] multi-hot matrix, got shape {arr.shape}.")
    if arr.shape[0] != num_rows:
        raise ValueError(
            f"{name} has {arr.shape[0]} rows but {codes_name} has {num_rows}; got {name} shape "
            f"{arr.shape}."
        )
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one class, got shape {arr.shape}.")
    if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.number)):
        raise ValueError(f"{name} must be a numeric 0/1 matrix, got dtype {arr.dtype}.")
    if ((arr != 0) & (arr != 1)).any():
        raise ValueError(
            f"{name} must be multi-hot (only 0 and 1 values; one-hot for single-label data), "
            f"got values {np.unique(arr)[:5]} in an array of shape {arr.shape}."
        )
    return arr.astype(np.int8)


class _Prepared(NamedTuple):
    """Validated, packed inputs of one evaluation."""

    query_codes: np.ndarray  # uint32 [Q, W] packed query codes (host)
    db_codes: jax.Array  # uint32 [N, W] packed database codes (device)
    query_labels: np.ndarray  # int32 [Q] class ids, or uint32 [Q, Wc] packed multi-hot labels
    db_labels: jax.Array  # int32 [N] or uint32 [N, Wc] (device)
    single_label: bool
    num_bits: int
    num_db: int
    max_grade: int  # largest possible number of shared labels (at least 1)


@jax.jit
def _pack_block(block: jax.Array) -> jax.Array:
    return codes.pack_codes(block)


def _pack_rows(matrix: np.ndarray) -> np.ndarray:
    """Packs ±1 codes (or 0/1 labels) in fixed-size blocks: one compilation, bounded memory."""
    n = matrix.shape[0]
    block = min(n, _PACK_BLOCK)
    padded = -(-n // block) * block
    matrix = np.pad(matrix, ((0, padded - n), (0, 0)))
    out = [np.asarray(_pack_block(matrix[i : i + block])) for i in range(0, padded, block)]
    return np.concatenate(out)[:n]


def _prepare(query_codes, db_codes, query_labels, db_labels, *, ties: str, seed: int) -> _Prepared:
    q_codes = codes.check_codes(query_codes, "query_codes")
    d_codes = codes.check_codes(db_codes, "db_codes")
    if q_codes.shape[0] == 0:
        raise ValueError(f"query_codes must hold at least one query, got shape {q_codes.shape}.")
    if d_codes.shape[0] == 0:
        raise ValueError(f"db_codes must hold at least one item, got shape {d_codes.shape}.")
    if q_codes.shape[1] != d_codes.shape[1]:
        raise ValueError(
            "query_codes and db_codes must have the same number of bits, got shapes "
            f"{q_codes.shape} and {d_codes.shape}."
        )
    q_labels = _check_labels(query_labels, "query_labels", q_codes.shape[0], "query_codes")
    d_labels = _check_labels(db_labels, "db_labels", d_codes.shape[0], "db_codes")
    if q_labels.shape[1] != d_labels.shape[1]:
        raise ValueError(
            "query_labels and db_labels must have the same number of classes, got shapes "
            f"{q_labels.shape} and {d_labels.shape}."
        )
    if ties == "random":
        perm = np.random.default_rng(seed).permutation(d_codes.shape[0])
        d_codes, d_labels = d_codes[perm], d_labels[perm]
    q_count, d_count = q_labels.sum(1), d_labels.sum(1)
    single_label = bool((q_count == 1).all() and (d_count == 1).all())
    if single_label:
        # Comparing class ids is cheaper than popcounts over label words when C is large.
        q_lab = np.argmax(q_labels, axis=1).astype(np.int32)
        d_lab = jnp.asarray(np.argmax(d_labels, axis=1).astype(np.int32))
        max_grade = 1
    else:
        q_lab = _pack_rows(q_labels)
        d_lab = jnp.asarray(_pack_rows(d_labels))
        max_grade = max(1, int(min(q_count.max(), d_count.max())))
    return _Prepared(
        query_codes=_pack_rows(q_codes.astype(np.int8)),
        db_codes=jnp.asarray(_pack_rows(d_codes.astype(np.int8))),
        query_labels=q_lab,
        db_labels=d_lab,
        single_label=single_label,
        num_bits=q_codes.shape[1],
        num_db=d_codes.shape[0],
        max_grade=max_grade,
    )


# ----------------------------------------------------------------------------------------------
# Device kernel: distances, grades, and the ranking and histogram of one chunk of queries.


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
    static_argnames=("chunk_size", "single_label", "num_bits", "max_grade", "ranking", "length",
                     "histogram"),
)
def _chunk_kernel(q_codes, d_codes, q_lab, d_lab, start, *, chunk_size, single_label, num_bits,
                  max_grade, ranking, length, histogram):
    """Everything one chunk needs from the [q, N] block, which never leaves this function.

    The queries stay on the device whole; ``start`` (traced) picks the chunk, so a call is one
    dispatch without a transfer. ``ranking``: None, "keys" (int32 sort keys for the host),
    "dist" (distances and grades for a host argsort), or "device" (grades in rank order,
    ``length`` of them, sorted here).
    """
    q_codes = lax.dynamic_slice_in_dim(q_codes, start, chunk_size)
    q_lab = lax.dynamic_slice_in_dim(q_lab, start, chunk_size)
    dist = codes.packed_hamming_distance(q_codes, d_codes)
    grade = _grades(q_lab, d_lab, single_label)
    num_q, num_db = dist.shape
    out = {
        "count_ge": jnp.stack(
            [jnp.sum(grade >= t, axis=1, dtype=jnp.int32) for t in range(1, max_grade + 1)],
            axis=1,
        )
    }
    gdtype = _grade_dtype(max_grade)
    if ranking == "keys":
        index = lax.broadcasted_iota(jnp.int32, dist.shape, 1)
        shift = max(1, max_grade.bit_length())
        out["keys"] = ((dist * num_db + index) << shift) | grade
    elif ranking == "dist":
        out["dist"] = dist
        out["grade"] = grade.astype(gdtype)
    elif ranking == "device":
        if length < num_db:
            # lax.top_k puts the lower index first among equal values: ties by index.
            _, idx = lax.top_k(-dist, length)
            out["ranked"] = jnp.take_along_axis(grade, idx, axis=1).astype(gdtype)
        else:
            _, ranked = lax.sort((dist, grade), dimension=1, num_keys=1, is_stable=True)
            out["ranked"] = ranked.astype(gdtype)
    if histogram:
        bins = (num_bits + 1) * (max_grade + 1)
        rows = lax.broadcasted_iota(jnp.int32, dist.shape, 0)
        hist = jnp.zeros((num_q, bins), jnp.int32).at[rows, dist * (max_grade + 1) + grade].add(1)
        out["hist"] = hist
    return out


class _Chunk(NamedTuple):
    """Integer statistics of one chunk of queries, identical on every backend."""

    count_ge: np.ndarray  # [q, max_grade] items with at least t shared labels, t = 1..max_grade
    ranked: np.ndarray | None  # [q, M] grades of the first M items in rank order (may be a
    # reused buffer: valid until the next chunk is drawn)
    hist: np.ndarray | None  # [q, L+1, max_grade+1] items by distance and grade


def _default_backend() -> str:
    return "host" if jax.default_backend() == "cpu" else "device"


def _chunks(prep: _Prepared, *, length: int | None, histogram: bool, backend: str | None,
            chunk_size: int | None) -> Iterator[_Chunk]:
    """Yields the statistics of consecutive query chunks (``length``: ranked items wanted)."""
    backend = _default_backend() if backend is None else backend
    _check_choice(backend, "_backend", _BACKENDS)
    num_q, num_db = prep.query_codes.shape[0], prep.num_db
    if chunk_size is None:
        chunk_size = max(1, min(num_q, _PAIRS_PER_CHUNK // num_db))
    elif isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) or (
        chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
    chunk_size = int(min(chunk_size, num_q))
    shift = max(1, prep.max_grade.bit_length())
    ranking = None
    if length is not None:
        if backend == "device":
            ranking = "device"
        elif (prep.num_bits + 1) * num_db * (1 << shift) - 1 <= _MAX_KEY:
            ranking = "keys"
        else:
            ranking = "dist"
    kernel = functools.partial(
        _chunk_kernel,
        chunk_size=chunk_size,
        single_label=prep.single_label,
        num_bits=prep.num_bits,
        max_grade=prep.max_grade,
        ranking=ranking,
        # Only the device ranking depends on the length; keep one compilation for the others.
        length=length if ranking == "device" else None,
        histogram=histogram,
    )
    # Pad the last chunk to the common size so the kernel compiles once.
    padded = -(-num_q // chunk_size) * chunk_size
    pad = ((0, padded - num_q),) + ((0, 0),) * (prep.query_labels.ndim - 1)
    q_codes = jnp.asarray(np.pad(prep.query_codes, ((0, padded - num_q), (0, 0))))
    q_labels = jnp.asarray(np.pad(prep.query_labels, pad))
    starts = list(range(0, padded, chunk_size))

    def launch(start):
        return kernel(q_codes, prep.db_codes, q_labels, prep.db_labels, np.int32(start))

    pending = launch(starts[0])
    buffer = None
    for i, start in enumerate(starts):
        out = pending
        if i + 1 < len(starts):
            # Dispatch is asynchronous: the device computes the next chunk while the host sorts.
            pending = launch(starts[i + 1])
        valid = min(chunk_size, num_q - start)
        ranked = None
        if ranking == "keys":
            keys = np.asarray(out["keys"])
            if buffer is None:
                buffer = np.empty(keys.shape, keys.dtype)
            # Sorting in place in one reused buffer avoids a fresh allocation (and its page
            # faults) per chunk; the ranked grades it holds are valid until the next chunk.
            np.copyto(buffer, keys)
            keys = buffer[:valid]
            if length < num_db:
                keys.partition(length - 1, axis=1)
                keys = np.sort(keys[:, :length], axis=1)
            else:
                keys.sort(axis=1)
            ranked = np.bitwise_and(keys, (1 << shift) - 1, out=keys)
        elif ranking == "dist":
            dist = np.asarray(out["dist"])[:valid]
            small = np.uint8 if prep.num_bits < 256 else np.uint16
            # A stable sort of 8/16-bit keys is a radix sort in NumPy.
            order = np.argsort(dist.astype(small), axis=1, kind="stable")[:, :length]
            ranked = np.take_along_axis(np.asarray(out["grade"])[:valid], order, axis=1)
        elif ranking == "device":
            ranked = np.asarray(out["ranked"])[:valid]
        hist = None
        if histogram:
            hist = np.asarray(out["hist"])[:valid].reshape(valid, -1, prep.max_grade + 1)
        yield _Chunk(
            count_ge=np.asarray(out["count_ge"])[:valid].astype(np.int64),
            ranked=ranked,
            hist=None if hist is None else hist.astype(np.int64),
        )


# ----------------------------------------------------------------------------------------------
# Host reductions (float64) from the integer statistics.


@dataclasses.dataclass(frozen=True)
class _Request:
    """Which per-query values to compute; cutoffs are sorted tuples of K values."""

    ap_at: tuple[int, ...] = ()
    normalize: str = "retrieved"
    hits_at: tuple[int, ...] = ()
    graded_at: tuple[int, ...] = ()
    radius_curve: bool = False
    auc: bool = False

    def ranked_length(self) -> int | None:
        cutoffs = self.ap_at + self.hits_at + self.graded_at
        return max(cutoffs) if cutoffs else None


_SMALL_HARMONIC = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, _HARMONIC_TABLE_SIZE + 1))])


def _harmonic_tail(x: np.ndarray) -> np.ndarray:
    """``H(x) - ln(x) - γ`` by its asymptotic series; error below 1e-17 for ``x >= 64``."""
    inv = 1.0 / x
    inv2 = inv * inv
    return inv * (0.5 - inv * (1.0 / 12 - inv2 * (1.0 / 120 - inv2 / 252)))


def _harmonic_diff(s, m) -> np.ndarray:
    """``H(s+m) - H(s)`` to a few ulps, without subtracting two large harmonic numbers.

    The part below 64 comes from a table, the part above from ``log1p`` and the asymptotic
    series, so a short group far down the ranking (large ``s``, small ``m``) keeps its digits.
    """
    s = np.asarray(s, np.float64)
    end = s + np.asarray(m, np.float64)
    table = _SMALL_HARMONIC
    small = table[np.minimum(end, _HARMONIC_TABLE_SIZE).astype(np.int64)] - table[
        np.minimum(s, _HARMONIC_TABLE_SIZE).astype(np.int64)
    ]
    lo = np.maximum(s, _HARMONIC_TABLE_SIZE)
    hi = np.maximum(end, _HARMONIC_TABLE_SIZE)
    return small + (np.log1p((hi - lo) / lo) + (_harmonic_tail(hi) - _harmonic_tail(lo)))


def _tie_group_sum(a, b, s, m):
    """``Σ_{i=1..m} (a + (i-1) b) / (s+i)`` in closed form (module docstring)."""
    dh = _harmonic_diff(s, m)
    # The second sum is >= 0; rounding in the subtraction can leave -1 ulp.
    return a * dh + b * np.maximum(m - (s + 1) * dh, 0.0)


def _safe_div(num, den):
    num = np.asarray(num, np.float64)
    den = np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def _discount_cumsum(length: int) -> np.ndarray:
    """``W[n] = Σ_{i=1..n} 1/log2(i+1)`` for n = 0..length (the NDCG discount, eq 35)."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, length + 2)))])


def _ideal_dcg(count_ge: np.ndarray, k: int, discount: np.ndarray) -> np.ndarray:
    """IDCG@k: items with >= t shared labels fill the first ``count_ge_t`` ideal positions, and a
    gain ``2^g - 1 = Σ_{t<=g} 2^{t-1}`` splits into one layer per t."""
    layers = 2.0 ** np.arange(count_ge.shape[1])
    return (discount[np.minimum(count_ge, k)] * layers).sum(axis=1)


def _ranked_values(chunk: _Chunk, req: _Request) -> dict[str, np.ndarray]:
    """Per-query values from grades in rank order (ties by index)."""
    ranked = chunk.ranked
    num_q, length = ranked.shape
    num_relevant = chunk.count_ge[:, 0]
    out = {}
    if req.ap_at or req.hits_at:
        # Positions of relevant items, row-major: rank = column + 1, and the i-th relevant item
        # of a row has precision i / rank there, so AP sums need no [q, N] cumulative sum.
        flat = np.flatnonzero(ranked)
        row = flat // length
        rank = flat - row * length + 1
        row_starts = np.searchsorted(flat, np.arange(num_q) * length)
        order_in_row = np.arange(flat.size) - row_starts[row] + 1
        # A trailing 0 lets reduceat take segments that end at the last relevant item.
        terms = np.concatenate([order_in_row / rank, [0.0]])

        def hits_and_sums(k):
            ends = np.searchsorted(flat, np.arange(num_q) * length + k)
            hits = ends - row_starts
            # Each row's segment is summed from its own start, so chunking cannot change it.
            sums = np.add.reduceat(terms, np.stack([row_starts, ends], 1).ravel())[::2]
            return hits, np.where(hits > 0, sums, 0.0)

        if req.ap_at:
            aps, hits_list = [], []
            for k in req.ap_at:
                hits, sums = hits_and_sums(k)
                norm = hits if req.normalize == "retrieved" else num_relevant
                aps.append(_safe_div(sums, norm))
                hits_list.append(hits)
            out["ap"] = np.stack(aps, axis=1)
            out["ap_hits"] = np.stack(hits_list, axis=1).astype(np.float64)
        if req.hits_at:
            out["hits"] = np.stack([hits_and_sums(k)[0] for k in req.hits_at], axis=1).astype(
                np.float64
            )
    if req.graded_at:
        kmax = max(req.graded_at)
        grades = ranked[:, :kmax].astype(np.float64)
        discount = _discount_cumsum(kmax)
        dcg_terms = np.cumsum((2.0**grades - 1.0) * np.diff(discount), axis=1)
        grade_sums = np.cumsum(grades, axis=1)
        out["dcg"] = np.stack([dcg_terms[:, k - 1] for k in req.graded_at], axis=1)
        out["grade_sum"] = np.stack([grade_sums[:, k - 1] for k in req.graded_at], axis=1)
    return out


def _expected_ap_retrieved(n, r, s, c, k, group_sums) -> tuple[np.ndarray, np.ndarray]:
    """E[AP@k] normalised by the relevant items retrieved, and the expected hits (tie average).

    Arrays are [q, L+1] per distance; ``group_sums`` holds each group's expected AP numerator
    when wholly inside the top k.
    """
    full = (s + n <= k) & (n > 0)
    cut = (s < k) & (s + n > k)
    numer = np.where(full, group_sums, 0.0).sum(axis=1)
    hits = np.where(full, r, 0).sum(axis=1).astype(np.float64)
    ap = _safe_div(numer, hits)
    for q in np.flatnonzero(cut.any(axis=1)):
        b = int(np.argmax(cut[q]))
        nb, rb, sb, cb = int(n[q, b]), int(r[q, b]), int(s[q, b]), int(c[q, b])
        m = k - sb
        hits[q] += m * rb / nb
        x = np.arange(max(0, m - (nb - rb)), min(m, rb) + 1)
        # Hypergeometric weights by the ratio p(x+1)/p(x), normalised at the end: no factorials.
        log_ratio = np.log((rb - x[:-1]) * (m - x[:-1])) - np.log(
            (x[:-1] + 1.0) * (nb - rb - m + x[:-1] + 1.0)
        )
        log_w = np.concatenate([[0.0], np.cumsum(log_ratio)])
        w = np.exp(log_w - log_w.max())
        w /= w.sum()
        pair = x * (x - 1.0) / (m * (m - 1.0)) if m > 1 else np.zeros_like(x, np.float64)
        g = _tie_group_sum(x * (cb + 1.0) / m, pair, sb, m)
        ap[q] = np.sum(w * _safe_div(numer[q] + g, cb + x))
    return ap, hits


def _tie_average_values(chunk: _Chunk, req: _Request) -> dict[str, np.ndarray]:
    """Per-query expected values over all orders inside tie groups, from the histogram."""
    hist = chunk.hist
    n = hist.sum(axis=2)
    r = n - hist[:, :, 0]
    s = np.cumsum(n, axis=1) - n
    c = np.cumsum(r, axis=1) - r
    num_relevant = r.sum(axis=1)
    out = {}

    def in_top(k):
        return np.clip(k - s, 0, n)

    if req.ap_at:
        a = _safe_div(r * (c + 1.0), n)
        b = _safe_div(r * (r - 1.0), n * (n - 1.0))
        aps, hits_list = [], []
        for k in req.ap_at:
            if req.normalize == "total":
                numer = _tie_group_sum(a, b, s, in_top(k)).sum(axis=1)
                aps.append(_safe_div(numer, num_relevant))
                hits_list.append(_safe_div(r * in_top(k), n).sum(axis=1))
            else:
                ap, hits = _expected_ap_retrieved(n, r, s, c, k, _tie_group_sum(a, b, s, n))
                aps.append(ap)
                hits_list.append(hits)
        out["ap"] = np.stack(aps, axis=1)
        out["ap_hits"] = np.stack(hits_list, axis=1)
    if req.hits_at:
        out["hits"] = np.stack(
            [_safe_div(r * in_top(k), n).sum(axis=1) for k in req.hits_at], axis=1
        )
    if req.graded_at:
        grades = np.arange(hist.shape[2], dtype=np.float64)
        gains = (hist * (2.0**grades - 1.0)).sum(axis=2)
        grade_totals = (hist * grades).sum(axis=2)
        discount = _discount_cumsum(max(req.graded_at))
        dcg, grade_sum = [], []
        for k in req.graded_at:
            m = in_top(k)
            # A group wholly below the cutoff has m = 0 and s >= k: both indices clip to k.
            weight = discount[np.minimum(s + m, k)] - discount[np.minimum(s, k)]
            dcg.append((_safe_div(gains, n) * weight).sum(axis=1))
            grade_sum.append(_safe_div(grade_totals * m, n).sum(axis=1))
        out["dcg"] = np.stack(dcg, axis=1)
        out["grade_sum"] = np.stack(grade_sum, axis=1)
    return out


def _histogram_values(chunk: _Chunk, req: _Request) -> dict[str, np.ndarray]:
    """Order-free per-query values: radius balls and ROC AUC."""
    n = chunk.hist.sum(axis=2)
    r = n - chunk.hist[:, :, 0]
    out = {}
    if req.radius_curve:
        out["ball_size"] = np.cumsum(n, axis=1).astype(np.float64)
        out["ball_hits"] = np.cumsum(r, axis=1).astype(np.float64)
    if req.auc:
        neg = n - r
        num_relevant, num_neg = r.sum(axis=1), neg.sum(axis=1)
        # Negatives ranked strictly after each distance, plus half of those tied with it.
        after = num_neg[:, None] - np.cumsum(neg, axis=1)
        wins = (r * (after + 0.5 * neg)).sum(axis=1)
        out["auc"] = np.where(num_neg == 0, 1.0, _safe_div(wins, num_relevant * num_neg))
    return out


def _per_query(prep: _Prepared, req: _Request, *, ties: str, backend, chunk_size):
    """Concatenated per-query values for every chunk, plus counts of relevant items."""
    average = ties == "average"
    histogram = average or req.radius_curve or req.auc
    length = None if average else req.ranked_length()
    parts = []
    for chunk in _chunks(prep, length=length, histogram=histogram, backend=backend,
                         chunk_size=chunk_size):
        values = {"num_relevant": chunk.count_ge[:, 0].astype(np.float64)}
        if req.graded_at:
            discount = _discount_cumsum(max(req.graded_at))
            values["idcg"] = np.stack(
                [_ideal_dcg(chunk.count_ge, k, discount) for k in req.graded_at], axis=1
            )
        if average:
            values.update(_tie_average_values(chunk, req))
        elif length is not None:
            values.update(_ranked_values(chunk, req))
        if req.radius_curve or req.auc:
            values.update(_histogram_values(chunk, req))
        parts.append(values)
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _mean(values: np.ndarray, defined: np.ndarray | None, zero_relevant: str) -> np.ndarray:
    """Mean over queries (axis 0); under "skip" only over queries where the value is defined.

    Sums are exactly rounded (``math.fsum``), so the result does not depend on how the queries
    were chunked or on which other metrics were computed alongside.
    """
    values = np.asarray(values, np.float64)
    if defined is None or zero_relevant == "zero":
        defined = np.ones(values.shape, bool)
    defined = np.broadcast_to(defined, values.shape)
    columns = values.reshape(values.shape[0], -1).T
    masks = defined.reshape(values.shape[0], -1).T
    means = [math.fsum(col[mask]) / mask.sum() if mask.any() else 0.0
             for col, mask in zip(columns, masks)]
    return np.asarray(means).reshape(values.shape[1:])


def _check_switches(ties, zero_relevant, normalize="retrieved", seed=0) -> None:
    _check_choice(ties, "ties", _TIES)
    _check_choice(zero_relevant, "zero_relevant", _ZERO_RELEVANT)
    _check_choice(normalize, "normalize", _NORMALIZE)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an integer, got {seed!r}.")


# ----------------------------------------------------------------------------------------------
# Public metrics.


def mean_average_precision(
    query_codes: jax.typing.ArrayLike,
    db_codes: jax.typing.ArrayLike,
    query_labels: jax.typing.ArrayLike,
    db_labels: jax.typing.ArrayLike,
    topk: int | None = None,
    *,
    normalize: str = "retrieved",
    ties: str = "index",
    zero_relevant: str = "zero",
    seed: int = 0,
    chunk_size: int | None = None,
    _backend: str | None = None,
) -> float:
    """Mean average precision over the Hamming ranking (survey eq 33-34), mAP or mAP@K.

    ``AP_q = (1/Z) Σ_{i<=K} P_q@i · rel_q(i)`` with ``Z`` the relevant items in the top K
    (``normalize="retrieved"``) or in the database (``"total"``, eq 33's ``N``); mAP is the mean
    over queries (eq 34). Relevance: at least one shared label.

    Args:
      query_codes: ``[Q, L]`` query codes in {-1, +1}.
      db_codes: ``[N, L]`` database codes in {-1, +1}.
      query_labels: ``[Q, C]`` multi-hot query labels (one-hot for single-label data).
      db_labels: ``[N, C]`` multi-hot database labels.
      topk: K, the length of the ranked list (1 <= K <= N); ``None`` ranks the whole database.
      normalize: ``"retrieved"`` or ``"total"`` (module docstring; equal when K = N).
      ties: ``"index"``, ``"random"`` or ``"average"`` (module docstring).
      zero_relevant: ``"zero"`` or ``"skip"`` for a query whose AP has a zero normaliser.
      seed: seed of the database shuffle of ``ties="random"``.
      chunk_size: queries per chunk; ``None`` picks about ``2**22 / N``. Results do not depend
        on it.

    Returns:
      mAP as a Python float in [0, 1].

    Raises:
      ValueError: codes not ±1, labels not multi-hot, mismatched shapes, an empty query set or
        database, ``topk`` outside [1, N], or an unknown switch value.

    Examples:
      >>> q = np.array([[1, 1]]); db = np.array([[1, 1], [-1, -1], [1, -1]])
      >>> mean_average_precision(q, db, [[1, 0]], [[0, 1], [1, 0], [1, 0]])
      0.5833333333333333
    """
    _check_switches(ties, zero_relevant, normalize, seed)
    prep = _prepare(query_codes, db_codes, query_labels, db_labels, ties=ties, seed=seed)
    k = prep.num_db if topk is None else _check_cutoff(topk, prep.num_db, "topk")
    req = _Request(ap_at=(k,), normalize=normalize)
    values = _per_query(prep, req, ties=ties, backend=_backend, chunk_size=chunk_size)
    if normalize == "retrieved":
        defined = values["ap_hits"][:, 0] > 0
    else:
        defined = values["num_relevant"] > 0
    return float(_mean(values["ap"][:, 0], defined, zero_relevant))


def precision_at_k(query_codes, db_codes, query_labels, db_labels, k: int, *,
                   ties: str = "index", seed: int = 0, chunk_size: int | None = None,
                   _backend: str | None = None) -> float:
    """Mean precision of the top ``k`` of the Hamming ranking (survey eq 28 with ``N_s = k``).

    ``P@k = (relevant items among the first k) / k``, averaged over all queries.

    Args:
      query_codes, db_codes, query_labels, db_labels: as in :func:`mean_average_precision`.
      k: the cutoff, 1 <= k <= N.
      ties, seed, chunk_size: as in :func:`mean_average_precision`.

    Returns:
      Mean precision@k as a Python float.

    Raises:
      ValueError: as :func:`mean_average_precision`.
    """
    _check_switches(ties, "zero", seed=seed)
    prep = _prepare(query_codes, db_codes, query_labels, db_labels, ties=ties, seed=seed)
    k = _check_cutoff(k, prep.num_db)
    values = _per_query(prep, _Request(hits_at=(k,)), ties=ties, backend=_backend,
                        chunk_size=chunk_size)
    return float(_mean(values["hits"][:, 0] / k, None, "zero"))


def recall_at_k(query_codes, db_codes, query_labels, db_labels, k: int, *, ties: str = "index",
                zero_relevant: str = "zero", seed: int = 0, chunk_size: int | None = None,
                _backend: str | None = None) -> float:
    """Mean recall of the top ``k`` (survey eq 29: ``N_r / N_a``).

    ``R@k = (relevant items among the first k) / (relevant items in the database)``; a query with
    no relevant item is 0/0 and handled by ``zero_relevant``.

    Args:
      query_codes, db_codes, query_labels, db_labels: as in :func:`mean_average_precision`.
      k: the cutoff, 1 <= k <= N.
      ties, zero_relevant, seed, chunk_size: as in :func:`mean_average_precision`.

    Returns:
      Mean recall@k as a Python float.

    Raises:
      ValueError: as :func:`mean_average_precision`.
    """
    _check_switches(ties, zero_relevant, seed=seed)
    prep = _prepare(query_codes, db_codes, query_labels, db_labels, ties=ties, seed=seed)
    k = _check_cutoff(k, prep.num_db)
    values = _per_query(prep, _Request(hits_at=(k,)), ties=ties, backend=_backend,
                        chunk_size=chunk_size)
    relevant = values["num_relevant"]
    return float(_mean(_safe_div(values["hits"][:, 0], relevant), relevant > 0, zero_relevant))


def f_beta(precision: jax.typing.ArrayLike, recall: jax.typing.ArrayLike, *,
           beta: float = 1.0) -> np.ndarray | float:
    """F-measure of precision and recall (survey eq 30), elementwise.

    ``F_β = (1 + β²) P R / (β² P + R)``, and 0 where ``P = R = 0``. β > 1 weighs recall more.
    The survey prints the denominator as ``β² (P + R)``, which agrees only at β = 1; we use
    van Rijsbergen's definition above, the standard one.

    Args:
      precision: precision values in [0, 1], any shape.
      recall: recall values in [0, 1], broadcastable against ``precision``.
      beta: positive weight of recall.

    Returns:
      F-values with the broadcast shape (a Python float for scalar inputs).

    Raises:
      ValueError: ``beta`` not positive, shapes that do not broadcast, or values outside [0, 1].

    Examples:
      >>> f_beta(0.5, 1.0)
      0.6666666666666666
    """
    if not isinstance(beta, numbers.Real) or not beta > 0:
        raise ValueError(f"beta must be a positive number, got {beta!r}.")
    p = np.asarray(precision, np.float64)
    r = np.asarray(recall, np.float64)
    try:
        np.broadcast(p, r)
    except ValueError:
        raise ValueError(
            f"precision and recall must broadcast together, got shapes {p.shape} and {r.shape}."
        ) from None
    if ((p < 0) | (p > 1) | (r < 0) | (r > 1) | np.isnan(p) | np.isnan(r)).any():
        raise ValueError("precision and recall must lie in [0, 1].")
    beta2 = float(beta) ** 2
    out = _safe_div((1.0 + beta2) * p * r, beta2 * p + r)
    return float(out) if out.ndim == 0 else out


def _default_k_grid(num_db: int) -> tuple[int, ...]:
    """1, 2, 5, 10, 20, 50, ... below the database size, then the database size."""
    grid = []
    scale = 1
    while scale < num_db:
        grid.extend(v for v in (scale, 2 * scale, 5 * scale) if v < num_db)
        scale *= 10
    return tuple(grid) + (num_db,)


def precision_recall_curve(query_codes, db_codes, query_labels, db_labels, *, by: str = "radius",
                           k_values: Sequence[int] | None = None, ties: str = "index",
                           zero_relevant: str = "zero", seed: int = 0,
                           chunk_size: int | None = None,
                           _backend: str | None = None) -> dict[str, np.ndarray]:
    """Mean precision and recall along the Hamming ranking (survey §6.4), by radius or by K.

    ``by="radius"``: for every radius ``t = 0..L`` the retrieved set is the Hamming ball
    ``d <= t``; a query whose ball is empty has precision 0 there. Independent of ``ties``.
    ``by="k"``: the retrieved set is the first K of the ranking, for each K in ``k_values``.
    Recall of a query with no relevant item follows ``zero_relevant``; precision averages all
    queries.

    Args:
      query_codes, db_codes, query_labels, db_labels: as in :func:`mean_average_precision`.
      by: ``"radius"`` or ``"k"``.
      k_values: cutoffs for ``by="k"`` (each in [1, N]); default 1, 2, 5, 10, 20, ... and N.
      ties, zero_relevant, seed, chunk_size: as in :func:`mean_average_precision`.

    Returns:
      ``{"radius": [L+1] ints, "precision": ..., "recall": ...}`` for ``by="radius"``,
      ``{"k": ..., "precision": ..., "recall": ...}`` for ``by="k"``; NumPy arrays.

    Raises:
      ValueError: as :func:`mean_average_precision`, an unknown ``by``, or ``k_values`` given
        with ``by="radius"``.
    """
    _check_choice(by, "by", ("radius", "k"))
    _check_switches(ties, zero_relevant, seed=seed)
    if by == "radius" and k_values is not None:
        raise ValueError("k_values applies to by='k' only.")
    prep = _prepare(query_codes, db_codes, query_labels, db_labels, ties=ties, seed=seed)
    if by == "radius":
        values = _per_query(prep, _Request(radius_curve=True), ties="index", backend=_backend,
                            chunk_size=chunk_size)
        hits, size = values["ball_hits"], values["ball_size"]
        axis = {"radius": np.arange(prep.num_bits + 1)}
    else:
        if k_values is None:
            grid = _default_k_grid(prep.num_db)
        else:
            grid = tuple(sorted({_check_cutoff(k, prep.num_db, "k_values") for k in k_values}))
            if not grid:
                raise ValueError("k_values must hold at least one cutoff.")
        values = _per_query(prep, _Request(hits_at=grid), ties=ties, backend=_backend,
                            chunk_size=chunk_size)
        hits = values["hits"]
        size = np.broadcast_to(np.asarray(grid, np.float64), hits.shape)
        axis = {"k": np.asarray(grid)}
    relevant = values["num_relevant"][:, None]
    return {
        **axis,
        "precision": _mean(_safe_div(hits, size), None, zero_relevant),
        "recall": _mean(_safe_div(hits, relevant), relevant > 0, zero_relevant),
    }


def roc_auc(query_codes, db_codes, query_labels, db_labels, *, zero_relevant: str = "zero",
            chunk_size: int | None = None, _backend: str | None = None) -> float:
    """Mean over queries of the area under the ROC curve (survey eq 31-32), distance as score.

    For each query, TPR (eq 31) and FPR (eq 32) are traced as the Hamming radius grows; the area
    is the probability that a relevant item is closer than an irrelevant one, ties counting one
    half — scikit-learn's ``roc_auc_score(relevant, -distance)`` for that query. A query whose
    items are all relevant scores 1 (no irrelevant item can outrank a relevant one); one with no
    relevant item follows ``zero_relevant``.

    Args:
      query_codes, db_codes, query_labels, db_labels: as in :func:`mean_average_precision`.
      zero_relevant, chunk_size: as in :func:`mean_average_precision`.

    Returns:
      Mean AUC as a Python float.

    Raises:
      ValueError: as :func:`mean_average_precision`.
    """
    _check_switches("index", zero_relevant)
    prep = _prepare(query_codes, db_codes, query_labels, db_labels, ties="index", seed=0)
    values = _per_query(prep, _Request(auc=True), ties="index", backend=_backend,
                        chunk_size=chunk_size)
    return float(_mean(values["auc"], values["num_relevant"] > 0, zero_relevant))


def precision_within_radius(query_codes, db_codes, query_labels, db_labels, *, radius: int = 2,
                            chunk_size: int | None = None, _backend: str | None = None) -> float:
    """Mean precision of the Hamming ball of the given radius (hash look-up precision).

    The retrieved set of a query is every item at Hamming distance ``<= radius``. A query whose
    ball is empty counts precision 0 (as in most published tables), so codes that scatter queries
    away from every item are penalised rather than ignored.

    Args:
      query_codes, db_codes, query_labels, db_labels: as in :func:`mean_average_precision`.
      radius: non-negative integer Hamming radius (radii beyond L retrieve everything).
      chunk_size: as in :func:`mean_average_precision`.

    Returns:
      Mean precision as a Python float.

    Raises:
      ValueError: as :func:`mean_average_precision`, or a negative radius.
    """
    if isinstance(radius, bool) or not isinstance(radius, numbers.Integral) or radius < 0:
        raise ValueError(f"radius must be a non-negative integer, got {radius!r}.")
    prep = _prepare(query_codes, db_codes, query_labels, db_labels, ties="index", seed=0)
    values = _per_query(prep, _Request(radius_curve=True), ties="index", backend=_backend,
                        chunk_size=chunk_size)
    t = min(int(radius), prep.num_bits)
    return float(_mean(_safe_div(values["ball_hits"][:, t], values["ball_size"][:, t]), None,
                       "zero"))


def ndcg_at_k(query_codes, db_codes, query_labels, db_labels, k: int, *, ties: str = "index",
              zero_relevant: str = "zero", seed: int = 0, chunk_size: int | None = None,
              _backend: str | None = None) -> float:
    """Mean normalised discounted cumulative gain of the top ``k`` (survey eq 35).

    ``NDCG@k = (1/Z) Σ_{i<=k} (2^{r_i} - 1) / log2(i + 1)`` with ``r_i`` the number of labels
    the i-th item shares with the query and ``Z`` the same sum for the ideal order of the whole
    database (IDCG@k). The survey prints ``log``; base 2 is the standard and makes the first
    position's discount 1. A query with no relevant item (Z = 0) follows ``zero_relevant``.

    Args:
      query_codes, db_codes, query_labels, db_labels: as in :func:`mean_average_precision`.
      k: the cutoff, 1 <= k <= N.
      ties, zero_relevant, seed, chunk_size: as in :func:`mean_average_precision`.

    Returns:
      Mean NDCG@k as a Python float.

    Raises:
      ValueError: as :func:`mean_average_precision`.
    """
    _check_switches(ties, zero_relevant, seed=seed)
    prep = _prepare(query_codes, db_codes, query_labels, db_labels, ties=ties, seed=seed)
    k = _check_cutoff(k, prep.num_db)
    values = _per_query(prep, _Request(graded_at=(k,)), ties=ties, backend=_backend,
                        chunk_size=chunk_size)
    idcg = values["idcg"][:, 0]
    return float(_mean(_safe_div(values["dcg"][:, 0], idcg), idcg > 0, zero_relevant))


def acg_at_k(query_codes, db_codes, query_labels, db_labels, k: int, *, ties: str = "index",
             seed: int = 0, chunk_size: int | None = None, _backend: str | None = None) -> float:
    """Mean average cumulative gain of the top ``k`` (survey eq 36).

    ``ACG@k = (1/k) Σ_{i<=k} r_i`` with ``r_i`` the number of labels the i-th item shares with
    the query, averaged over all queries.

    Args:
      query_codes, db_codes, query_labels, db_labels: as in :func:`mean_average_precision`.
      k: the cutoff, 1 <= k <= N.
      ties, seed, chunk_size: as in :func:`mean_average_precision`.

    Returns:
      Mean ACG@k as a Python float.

    Raises:
      ValueError: as :func:`mean_average_precision`.
    """
    _check_switches(ties, "zero", seed=seed)
    prep = _prepare(query_codes, db_codes, query_labels, db_labels, ties=ties, seed=seed)
    k = _check_cutoff(k, prep.num_db)
    values = _per_query(prep, _Request(graded_at=(k,)), ties=ties, backend=_backend,
                        chunk_size=chunk_size)
    return float(_mean(values["grade_sum"][:, 0] / k, None, "zero"))


def evaluate_codes(query_codes, db_codes, query_labels, db_labels, *,
                   topk: Sequence[int] = (1000,), ndcg_k: int = 100, radius: int = 2,
                   ties: str = "index", normalize: str = "retrieved",
                   zero_relevant: str = "zero", seed: int = 0, chunk_size: int | None = None,
                   _backend: str | None = None) -> dict:
    """The standard set of retrieval metrics in one pass over the distances.

    Every metric below comes from the same chunked distance computation and (for the orders)
    the same sort, with the definitions and switches of the individual functions.

    Args:
      query_codes, db_codes, query_labels, db_labels: as in :func:`mean_average_precision`.
      topk: cutoffs K for ``map_at_{K}``; those not smaller than N are left out (``map`` covers
        them).
      ndcg_k: cutoff p of ``ndcg_at_{p}``, ``acg_at_{p}``, ``precision_at_{p}`` and
        ``recall_at_{p}`` (1 <= p <= N).
      radius: Hamming radius of ``precision_within_radius_{radius}``.
      ties, normalize, zero_relevant, seed, chunk_size: as in :func:`mean_average_precision`.

    Returns:
      A JSON-ready dict: floats ``map``, ``map_at_{K}``, ``precision_within_radius_{radius}``,
      ``ndcg_at_{p}``, ``acg_at_{p}``, ``precision_at_{p}``, ``recall_at_{p}``, ``roc_auc``;
      curves ``pr_curve_radius = {"radius", "precision", "recall"}`` and
      ``precision_at_k_curve = {"k", "precision", "recall"}`` (lists); and the switches
      ``ties``, ``normalize``, ``zero_relevant``.

    Raises:
      ValueError: as :func:`mean_average_precision`, or ``ndcg_k`` outside [1, N].
    """
    _check_switches(ties, zero_relevant, normalize, seed)
    if isinstance(radius, bool) or not isinstance(radius, numbers.Integral) or radius < 0:
        raise ValueError(f"radius must be a non-negative integer, got {radius!r}.")
    prep = _prepare(query_codes, db_codes, query_labels, db_labels, ties=ties, seed=seed)
    num_db = prep.num_db
    for k in topk:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"topk must hold positive integers, got {tuple(topk)!r}.")
    cutoffs = tuple(sorted({int(k) for k in topk if k < num_db}))
    ndcg_k = _check_cutoff(ndcg_k, num_db, "ndcg_k")
    grid = _default_k_grid(num_db)
    req = _Request(
        ap_at=cutoffs + (num_db,),
        normalize=normalize,
        hits_at=tuple(sorted(set(grid) | {ndcg_k})),
        graded_at=(ndcg_k,),
        radius_curve=True,
        auc=True,
    )
    values = _per_query(prep, req, ties=ties, backend=_backend, chunk_size=chunk_size)
    relevant = values["num_relevant"]
    has_relevant = relevant > 0
    ap_defined = values["ap_hits"] > 0 if normalize == "retrieved" else has_relevant[:, None]
    maps = _mean(values["ap"], ap_defined, zero_relevant)
    hits = values["hits"]
    precision_k = _mean(hits / np.asarray(req.hits_at, np.float64), None, zero_relevant)
    recall_k = _mean(_safe_div(hits, relevant[:, None]), has_relevant[:, None], zero_relevant)
    at = req.hits_at.index(ndcg_k)
    in_grid = [req.hits_at.index(k) for k in grid]
    t = min(int(radius), prep.num_bits)
    ball_precision = _safe_div(values["ball_hits"], values["ball_size"])
    idcg = values["idcg"][:, 0]
    result = {"map": float(maps[-1])}
    for i, k in enumerate(cutoffs):
        result[f"map_at_{k}"] = float(maps[i])
    result.update({
        f"precision_within_radius_{radius}": float(_mean(ball_precision[:, t], None, "zero")),
        f"ndcg_at_{ndcg_k}": float(
            _mean(_safe_div(values["dcg"][:, 0], idcg), idcg > 0, zero_relevant)
        ),
        f"acg_at_{ndcg_k}": float(_mean(values["grade_sum"][:, 0] / ndcg_k, None, "zero")),
        f"precision_at_{ndcg_k}": float(precision_k[at]),
        f"recall_at_{ndcg_k}": float(recall_k[at]),
        "roc_auc": float(_mean(values["auc"], has_relevant, zero_relevant)),
        "pr_curve_radius": {
            "radius": list(range(prep.num_bits + 1)),
            "precision": _mean(ball_precision, None, "zero").tolist(),
            "recall": _mean(
                _safe_div(values["ball_hits"], relevant[:, None]), has_relevant[:, None],
                zero_relevant,
            ).tolist(),
        },
        "precision_at_k_curve": {
            "k": list(grid),
            "precision": precision_k[in_grid].tolist(),
            "recall": recall_k[in_grid].tolist(),
        },
        "ties": ties,
        "normalize": normalize,
        "zero_relevant": zero_relevant,
    })
    return result


# ----------------------------------------------------------------------------------------------
# Cross-modal retrieval: image queries against a text database, and the reverse.

_MODALITIES = ("image", "text")
# (direction, modality of the queries, modality of the database).
_DIRECTIONS = (("image_to_text", "image", "text"), ("text_to_image", "text", "image"))


def _check_cross_modal(query_codes, db_codes) -> tuple[dict, dict]:
    """Both code dicts as ``{"image": array, "text": array}``, with matching shapes."""
    checked = []
    for name, value in (("query_codes", query_codes), ("db_codes", db_codes)):
        if not isinstance(value, Mapping) or set(value) != set(_MODALITIES):
            got = sorted(value) if isinstance(value, Mapping) else type(value).__name__
            raise ValueError(
                f"{name} must be a dict with exactly the keys {list(_MODALITIES)} (the codes of "
                f"each modality), got {got}."
            )
        arrays = {m: codes.check_codes(value[m], f"{name}[{m!r}]") for m in _MODALITIES}
        image, text = arrays["image"].shape, arrays["text"].shape
        if image != text:
            raise ValueError(
                f"{name}['image'] and {name}['text'] must have the same shape (one code of the "
                f"same length per item in both modalities), got {image} and {text}."
            )
        checked.append(arrays)
    return checked[0], checked[1]


def cross_modal_map(
    query_codes: Mapping[str, jax.typing.ArrayLike],
    db_codes: Mapping[str, jax.typing.ArrayLike],
    query_labels: jax.typing.ArrayLike,
    db_labels: jax.typing.ArrayLike,
    topk: int | None = None,
    *,
    normalize: str = "retrieved",
    ties: str = "index",
    zero_relevant: str = "zero",
    seed: int = 0,
    chunk_size: int | None = None,
    _backend: str | None = None,
) -> dict[str, float]:
    """mAP of cross-modal retrieval in both directions (image→text and text→image).

    Each query and database item has an image code and a text code in one Hamming space.
    Image→text ranks the database's text codes by Hamming distance to each query's image code;
    text→image ranks the database's image codes by distance to each query's text code. Each
    direction is :func:`mean_average_precision` with the same switches; relevance is at least
    one shared label, so an item's label applies to both of its modalities.

    Args:
      query_codes: ``{"image": [Q, L], "text": [Q, L]}`` ±1 codes of the queries.
      db_codes: ``{"image": [N, L], "text": [N, L]}`` ±1 codes of the database.
      query_labels: ``[Q, C]`` multi-hot query labels.
      db_labels: ``[N, C]`` multi-hot database labels.
      topk, normalize, ties, zero_relevant, seed, chunk_size: as in
        :func:`mean_average_precision`.

    Returns:
      ``{"image_to_text": float, "text_to_image": float}``.

    Raises:
      ValueError: a code dict without exactly the keys ``"image"`` and ``"text"``, the two
        modalities of one dict with different shapes, or as :func:`mean_average_precision`.

    Examples:
      >>> q = {"image": np.array([[1, 1]]), "text": np.array([[-1, -1]])}
      >>> db = {"image": np.array([[-1, -1], [1, 1]]), "text": np.array([[1, -1], [1, 1]])}
      >>> cross_modal_map(q, db, [[1, 0]], [[0, 1], [1, 0]])
      {'image_to_text': 1.0, 'text_to_image': 0.5}
    """
    queries, database = _check_cross_modal(query_codes, db_codes)
    return {
        direction: mean_average_precision(
            queries[source], database[target], query_labels, db_labels, topk,
            normalize=normalize, ties=ties, zero_relevant=zero_relevant, seed=seed,
            chunk_size=chunk_size, _backend=_backend,
        )
        for direction, source, target in _DIRECTIONS
    }


def evaluate_cross_modal(query_codes: Mapping[str, jax.typing.ArrayLike],
                         db_codes: Mapping[str, jax.typing.ArrayLike],
                         query_labels, db_labels, *, topk: Sequence[int] = (1000,),
                         ndcg_k: int = 100, radius: int = 2, ties: str = "index",
                         normalize: str = "retrieved", zero_relevant: str = "zero",
                         seed: int = 0, chunk_size: int | None = None,
                         _backend: str | None = None) -> dict:
    """:func:`evaluate_codes` for cross-modal retrieval, in both directions.

    Args:
      query_codes, db_codes, query_labels, db_labels: as in :func:`cross_modal_map`.
      topk, ndcg_k, radius, ties, normalize, zero_relevant, seed, chunk_size: as in
        :func:`evaluate_codes`.

    Returns:
      ``{"image_to_text": report, "text_to_image": report}``, each the dict
      :func:`evaluate_codes` returns for that direction (image queries against database texts,
      text queries against database images).

    Raises:
      ValueError: as :func:`cross_modal_map` or :func:`evaluate_codes`.
    """
    queries, database = _check_cross_modal(query_codes, db_codes)
    return {
        direction: evaluate_codes(
            queries[source], database[target], query_labels, db_labels, topk=topk,
            ndcg_k=ndcg_k, radius=radius, ties=ties, normalize=normalize,
            zero_relevant=zero_relevant, seed=seed, chunk_size=chunk_size, _backend=_backend,
        )
        for direction, source, target in _DIRECTIONS
    }
