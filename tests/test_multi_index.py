"""Tests for dlhash_jax.multi_index: HammingIndex's exact results, by brute force and by the index.

Every exactness test runs twice: with the flat engine forbidden (``tables``: every query is
answered by the multi-index probes, and a call of the engine fails the test) and with every
query sent to the flat engine (``flat``), plus a run where the budget splits the queries.
"""

import doctest
import math

import numpy as np
import pytest
from code_helpers import brute_distances
from code_helpers import brute_topk
from code_helpers import tied_codes

from dlhash_jax import hamming
from dlhash_jax import multi_index
from dlhash_jax.multi_index import MultiIndexHashing, default_num_tables
from dlhash_jax.retrieval import HammingIndex

NUM_DB = 200
NUM_QUERIES = 23


def brute_radius(query_codes, db_codes, radius):
    """Per query ``(distances, indices)`` within the radius, sorted by (distance, index)."""
    result = []
    for row in brute_distances(query_codes, db_codes):
        idx = np.flatnonzero(row <= radius)
        order = np.argsort(row[idx], kind="stable")
        result.append((row[idx][order], idx[order]))
    return result


def make_codes(kind, num_bits, seed=0, n=NUM_DB, q=NUM_QUERIES):
    """``(queries [q, L], database [n, L])`` drawn together, so they share their structure."""
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        codes = rng.choice(np.array([-1, 1]), size=(n + q, num_bits))
    elif kind == "clustered":
        # Class centres with 15% of the bits flipped: the structure of learned codes.
        codes = tied_codes(rng, n + q, num_bits, num_bases=6, flip=0.15)
    else:
        # Four distinct codes only: every distance ties with about a quarter of the database.
        codes = tied_codes(rng, n + q, num_bits, num_bases=4, flip=0.0)
    return codes[n:], codes[:n]


@pytest.fixture(params=["tables", "flat"])
def path(request, monkeypatch):
    """Forces the multi-index probes (the flat engine refused) or the flat engine for all."""
    if request.param == "tables":
        monkeypatch.setattr(multi_index, "SCAN_FRACTION", math.inf)

        def refuse(*args, **kwargs):
            raise AssertionError("the flat engine was called")

        monkeypatch.setattr(hamming, "topk", refuse)
        monkeypatch.setattr(hamming, "within_radius", refuse)
    else:
        monkeypatch.setattr(multi_index, "SCAN_FRACTION", 0.0)
    return request.param


def check_search(index, query_codes, db_codes, k, **kwargs):
    dist, ids = index.search(query_codes, k, **kwargs)
    ref_dist, ref_idx = brute_topk(query_codes, db_codes, k)
    assert dist.shape == ids.shape == (query_codes.shape[0], k)
    assert dist.dtype == np.int32 and ids.dtype == np.int64
    np.testing.assert_array_equal(dist, ref_dist)
    np.testing.assert_array_equal(ids, ref_idx)


def check_range(index, query_codes, db_codes, radius, **kwargs):
    found = index.range_search(query_codes, radius, **kwargs)
    assert len(found) == query_codes.shape[0]
    for (dist, ids), (ref_dist, ref_idx) in zip(found, brute_radius(query_codes, db_codes, radius)):
        assert dist.dtype == np.int32 and ids.dtype == np.int64
        np.testing.assert_array_equal(dist, ref_dist)
        np.testing.assert_array_equal(ids, ref_idx)


@pytest.mark.parametrize("num_bits", [8, 33, 64, 90])
@pytest.mark.parametrize("kind", ["uniform", "clustered", "ties"])
def test_equals_brute_force_with_default_tables(path, kind, num_bits):
    query_codes, db_codes = make_codes(kind, num_bits, seed=num_bits)
    index = MultiIndexHashing(num_bits)
    index.add(db_codes)
    assert index.num_tables == default_num_tables(num_bits, NUM_DB)
    if num_bits == 90:
        # 12 substrings of 7-8 bits: bits 62-68 straddle the 64-bit word boundary.
        assert (62, 7) in index.substrings
    for k in (1, 10, NUM_DB):
        check_search(index, query_codes, db_codes, k)
    for radius in (0, 2, 5, num_bits, num_bits + 7):
        check_range(index, query_codes, db_codes, radius)


@pytest.mark.parametrize("num_tables", [1, 2, 3, 5, 16])
def test_equals_brute_force_for_every_number_of_tables(path, num_tables):
    # 16 bits: one 16-bit table, 8-bit halves (L/8 = 2), uneven splits, 1-bit substrings.
    query_codes, db_codes = make_codes("clustered", 16, seed=num_tables)
    index = MultiIndexHashing(16, num_tables)
    index.add(db_codes)
    assert index.num_tables == num_tables
    assert sum(length for _, length in index.substrings) == 16
    for k in (1, 10, NUM_DB):
        check_search(index, query_codes, db_codes, k)
    for radius in (0, 3, 16):
        check_range(index, query_codes, db_codes, radius)


@pytest.mark.parametrize("num_bits, num_tables, k", [(40, 2, 10), (100, 3, 3), (64, 1, 1)])
def test_long_substrings_use_sorted_keys(path, num_bits, num_tables, k):
    # Substrings of 20, 33-34 and 64 bits are looked up by binary search in the sorted keys; at
    # 100 bits the second substring straddles the word boundary; 64 bits is one whole word. The
    # k and radii keep the probes of the tables-only run small (rings of C(64, r) values).
    rng = np.random.default_rng(num_bits)
    db_codes = tied_codes(rng, NUM_DB, num_bits, num_bases=6, flip=0.05)
    # Stored codes with one bit flipped: the nearest is at distance <= 1.
    query_codes = db_codes[:NUM_QUERIES].copy()
    query_codes[np.arange(NUM_QUERIES), rng.integers(num_bits, size=NUM_QUERIES)] *= -1
    index = MultiIndexHashing(num_bits, num_tables)
    index.add(db_codes)
    assert all(table.keys is not None for table in index._tables)
    check_search(index, query_codes, db_codes, 1)
    check_search(index, query_codes, db_codes, k)
    for radius in (0, 1, 2):
        check_range(index, query_codes, db_codes, radius)


def test_ties_break_by_insertion_position(path):
    db = np.array([[1, 1, 1, 1], [-1, 1, 1, 1], [1, 1, 1, -1], [1, 1, 1, 1], [1, -1, 1, 1]])
    index = MultiIndexHashing(4, 2)
    index.add(db)
    dist, ids = index.search(np.array([[1, 1, 1, 1]]), 4)
    assert dist.tolist() == [[0, 0, 1, 1]] and ids.tolist() == [[0, 3, 1, 2]]
    [(dist, ids)] = index.range_search(np.array([[1, 1, 1, 1]]), 1)
    assert dist.tolist() == [0, 0, 1, 1, 1] and ids.tolist() == [0, 3, 1, 2, 4]


def test_empty_radius_results(path):
    query_codes, db_codes = make_codes("ties", 33)
    index = MultiIndexHashing(33)
    index.add(db_codes)
    # The complement of a stored code is at distance 33 from it and far from the other bases.
    far = -db_codes[:3]
    for dist, ids in index.range_search(far, 0):
        assert dist.shape == ids.shape == (0,)
        assert dist.dtype == np.int32 and ids.dtype == np.int64
    check_range(index, np.concatenate([far, query_codes]), db_codes, 0)


def test_chunk_sizes_do_not_change_results(path):
    query_codes, db_codes = make_codes("clustered", 33, seed=7)
    index = MultiIndexHashing(33)
    index.add(db_codes)
    for chunk_size in (1, 5, 1000):
        check_search(index, query_codes, db_codes, 17, chunk_size=chunk_size)
        check_range(index, query_codes, db_codes, 6, chunk_size=chunk_size)


def test_packed_codes_in_both_layouts(path):
    query_codes, db_codes = make_codes("clustered", 33, seed=13)
    words = hamming.pack(db_codes)
    # faiss's layout: bit j of a code in byte j // 8 at bit j % 8.
    db_bytes = np.packbits(db_codes > 0, axis=1, bitorder="little")
    query_bytes = np.packbits(query_codes > 0, axis=1, bitorder="little")
    ref_dist, ref_idx = brute_topk(query_codes, db_codes, 10)
    ref_radius = brute_radius(query_codes, db_codes, 5)
    for packed, queries in ((words, hamming.pack(query_codes)), (db_bytes, query_bytes)):
        index = MultiIndexHashing(33)
        index.add_packed(packed[:120])
        index.add(db_codes[120:])
        np.testing.assert_array_equal(index.packed_codes, words)
        dist, ids = index.search(queries, 10, packed=True)
        np.testing.assert_array_equal(dist, ref_dist)
        np.testing.assert_array_equal(ids, ref_idx)
        found = index.range_search(queries, 5, packed=True)
        for (dist, ids), (expected_dist, expected_idx) in zip(found, ref_radius):
            np.testing.assert_array_equal(dist, expected_dist)
            np.testing.assert_array_equal(ids, expected_idx)


def test_budget_splits_queries_between_tables_and_flat_engine(monkeypatch):
    # Queries near the stored codes finish in a few probes, uniform ones pass the budget.
    rng = np.random.default_rng(8)
    db_codes = tied_codes(rng, 2000, 32, num_bases=6, flip=0.05)
    near = db_codes[:10]
    query_codes = np.concatenate([near, rng.choice(np.array([-1, 1]), size=(10, 32))])
    index = MultiIndexHashing(32)
    index.add(db_codes)
    monkeypatch.setattr(multi_index, "SCAN_FRACTION", 0.2)
    flat_queries = []
    topk = hamming.topk

    def spy(query_packed, *args, **kwargs):
        flat_queries.append(query_packed.shape[0])
        return topk(query_packed, *args, **kwargs)

    monkeypatch.setattr(hamming, "topk", spy)
    check_search(index, query_codes, db_codes, 5, chunk_size=7)
    assert 0 < sum(flat_queries) < query_codes.shape[0]


def test_same_results_as_hamming_index_with_ids_and_labels(monkeypatch):
    # The tables answer every query (at 200 codes the default budget sends most to the engine).
    monkeypatch.setattr(multi_index, "SCAN_FRACTION", math.inf)
    query_codes, db_codes = make_codes("clustered", 64, seed=9)
    rng = np.random.default_rng(9)
    ids = rng.permutation(10_000)[:NUM_DB]
    labels = (rng.random((NUM_DB, 5)) < 0.3).astype(np.float32)
    flat = HammingIndex(64)
    flat.add(db_codes, ids=ids, labels=labels)
    mih = MultiIndexHashing(64)
    for part in np.split(np.arange(NUM_DB), [30, 31, 120]):
        mih.add(db_codes[part], ids=ids[part], labels=labels[part])
    np.testing.assert_array_equal(mih.packed_codes, flat.packed_codes)
    np.testing.assert_array_equal(mih.ids, ids)
    np.testing.assert_array_equal(mih.labels, labels)
    np.testing.assert_array_equal(mih.codes(), db_codes)
    for k in (1, 10, NUM_DB):
        for got, expected in zip(mih.search(query_codes, k), flat.search(query_codes, k)):
            np.testing.assert_array_equal(got, expected)
    for radius in (0, 4, 8, 64):
        for got, expected in zip(
            mih.range_search(query_codes, radius), flat.range_search(query_codes, radius)
        ):
            np.testing.assert_array_equal(got[0], expected[0])
            np.testing.assert_array_equal(got[1], expected[1])


def test_default_number_of_tables_follows_the_database_size():
    assert default_num_tables(64, 10**6) == 3
    assert default_num_tables(64, 10**7) == 3
    assert default_num_tables(128, 10**6) == 6
    assert default_num_tables(8, 0) == 8
    # Substrings are at most 64 bits: 65-bit codes need 2 tables even for a huge database.
    assert default_num_tables(65, 2**62) == 2
    index = MultiIndexHashing(64)
    rng = np.random.default_rng(10)
    index.add(tied_codes(rng, 10, 64))
    assert index.num_tables == default_num_tables(64, 10) == 19
    index.add(tied_codes(rng, 990, 64))
    assert index.num_tables == default_num_tables(64, 1000) == 6
    assert len(index._tables) == 6
    assert index.substrings == [(0, 11), (11, 11), (22, 11), (33, 11), (44, 10), (54, 10)]


@pytest.mark.parametrize("num_tables", [None, 4])
@pytest.mark.parametrize("with_labels", [True, False])
def test_save_load_round_trip(tmp_path, num_tables, with_labels):
    query_codes, db_codes = make_codes("clustered", 33, seed=11)
    labels = np.eye(3, dtype=np.float32)[np.arange(NUM_DB) % 3]
    index = MultiIndexHashing(33, num_tables)
    index.add(db_codes, ids=np.arange(NUM_DB) * 7, labels=labels if with_labels else None)
    path = tmp_path / "index.npz"
    index.save(path)
    with np.load(path, allow_pickle=False) as archive:
        assert ("num_tables" in archive.files) == (num_tables is not None)
    loaded = MultiIndexHashing.load(path)
    assert loaded.num_bits == 33 and len(loaded) == NUM_DB
    assert loaded.num_tables == index.num_tables
    np.testing.assert_array_equal(loaded.packed_codes, index.packed_codes)
    np.testing.assert_array_equal(loaded.ids, index.ids)
    if with_labels:
        np.testing.assert_array_equal(loaded.labels, labels)
    else:
        assert loaded.labels is None
    for got, expected in zip(loaded.search(query_codes, 9), index.search(query_codes, 9)):
        np.testing.assert_array_equal(got, expected)
    if num_tables is None:
        # Without a fixed number of tables the file is a HammingIndex file, and the reverse.
        flat = HammingIndex.load(path)
        np.testing.assert_array_equal(
            flat.search(query_codes, 9)[1], index.search(query_codes, 9)[1]
        )
        flat.save(tmp_path / "flat.npz")
        np.testing.assert_array_equal(
            MultiIndexHashing.load(tmp_path / "flat.npz").ids, index.ids
        )


def test_load_refuses_files_with_a_bad_num_tables(tmp_path):
    # The rest of the file's checks are the store's (test_index_store.py).
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"definitely not a zip archive")
    with pytest.raises(ValueError, match="not a readable MultiIndexHashing file"):
        MultiIndexHashing.load(garbage)
    index = MultiIndexHashing(33, 2)
    index.add(np.ones((3, 33)))
    index.save(tmp_path / "index.npz")
    with np.load(tmp_path / "index.npz") as archive:
        arrays = dict(archive)
    wide = {"num_bits": np.asarray(100), "packed_codes": np.zeros((3, 4), np.uint32)}
    corruptions = {
        "num_tables must be an integer scalar": {"num_tables": np.asarray([2])},
        "num_tables must be at most num_bits = 33": {"num_tables": np.asarray(34)},
        "num_tables must be a positive integer": {"num_tables": np.asarray(0)},
        "num_tables must be at least 2 for 100-bit codes": {"num_tables": np.asarray(1), **wide},
    }
    for message, changes in corruptions.items():
        path = tmp_path / "corrupt.npz"
        np.savez(path, **{**arrays, **changes})
        with pytest.raises(ValueError, match="corrupt MultiIndexHashing file: .*" + message):
            MultiIndexHashing.load(path)


def test_bad_input_raises_named_errors():
    rng = np.random.default_rng(12)
    codes = tied_codes(rng, 6, 8)
    with pytest.raises(ValueError, match="num_bits must be a positive integer"):
        MultiIndexHashing(0)
    with pytest.raises(ValueError, match="num_tables must be a positive integer or None"):
        MultiIndexHashing(8, 0)
    with pytest.raises(ValueError, match="num_tables must be a positive integer or None"):
        MultiIndexHashing(8, 2.0)
    with pytest.raises(ValueError, match=r"at most num_bits = 8 \(one bit per substring\), got 9"):
        MultiIndexHashing(8, 9)
    with pytest.raises(ValueError, match="num_tables must be at least 2 for 100-bit codes"):
        MultiIndexHashing(100, 1)
    index = MultiIndexHashing(8)
    with pytest.raises(ValueError, match="the index is empty"):
        index.search(codes, 1)
    with pytest.raises(ValueError, match="codes must hold only -1 and \\+1"):
        index.add(np.zeros((2, 8)))
    with pytest.raises(ValueError, match="codes must hold only -1 and \\+1"):
        index.add((codes > 0).astype(np.float32))
    with pytest.raises(ValueError, match=r"codes have 9 bits but the index holds 8-bit"):
        index.add(tied_codes(rng, 2, 9))
    index.add(codes, labels=np.zeros((6, 3)))
    with pytest.raises(ValueError, match="query_codes must hold only -1 and \\+1"):
        index.search(0.5 * codes, 1)
    with pytest.raises(ValueError, match=r"query_codes is empty \(shape \(0, 8\)\)"):
        index.search(np.zeros((0, 8)), 1)
    with pytest.raises(ValueError, match="query_codes have 9 bits"):
        index.range_search(tied_codes(rng, 2, 9), 1)
    with pytest.raises(ValueError, match="must be a 2-D"):
        index.search(codes[0], 1)
    # k > N raises, as HammingIndex does: a top-k search cannot return more than N items.
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, database size = 6\], "
                                         r"got k = 7"):
        index.search(codes, 7)
    for k in (0, -3, 2.0, True):
        with pytest.raises(ValueError, match="k must be an integer in"):
            index.search(codes, k)
    with pytest.raises(ValueError, match="radius must be a non-negative integer, got -2"):
        index.range_search(codes, -2)
    with pytest.raises(ValueError, match="radius must be a non-negative integer"):
        index.range_search(codes, 1.5)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer, got 0"):
        index.search(codes, 1, chunk_size=0)
    wide = MultiIndexHashing(33)
    wide.add_packed(np.zeros((2, 5), np.uint8))
    with pytest.raises(ValueError, match=r"query_codes must be packed 33-bit codes.*\[n, 5\]"):
        wide.search(np.zeros((1, 4), np.uint8), 1, packed=True)
    with pytest.raises(ValueError, match="query_codes is empty"):
        wide.range_search(np.zeros((0, 2), np.uint32), 1, packed=True)


def test_rings_are_every_value_at_the_radius():
    for length, radius in ((1, 0), (1, 1), (5, 2), (8, 8), (64, 1), (64, 2)):
        ring = multi_index._ring(length, radius)
        assert ring.dtype == np.uint64 and not ring.flags.writeable
        assert ring.size == math.comb(length, radius) == np.unique(ring).size
        assert np.all(np.bitwise_count(ring) == radius)
        if length < 64:
            assert np.all(ring < 2**length)
    assert multi_index._ring(3, 4).size == 0


def test_docstring_examples():
    failures, _ = doctest.testmod(multi_index, extraglobs={"np": np})
    assert failures == 0


def test_retrieval_exports_the_same_class():
    from dlhash_jax import retrieval

    assert retrieval.MultiIndexHashing is MultiIndexHashing
