"""Tests for dlhash_jax.retrieval against brute force computed with NumPy from ±1 dot products."""

import doctest

import numpy as np
import pytest
from code_helpers import brute_distances
from code_helpers import brute_topk
from code_helpers import tied_codes

from dlhash_jax import hamming
from dlhash_jax import retrieval
from dlhash_jax.retrieval import HammingIndex, hamming_topk, radius_search, to_faiss

PATHS = ("host", "device")


def brute_radius(query_codes, db_codes, radius):
    """Naive loops: every (query, item) pair within the radius, sorted by (distance, index)."""
    dist = brute_distances(query_codes, db_codes)
    result = []
    for row in dist:
        hits = sorted((int(d), j) for j, d in enumerate(row) if d <= radius)
        result.append(([d for d, _ in hits], [j for _, j in hits]))
    return result


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return {bits: (tied_codes(rng, 23, bits), tied_codes(rng, 97, bits)) for bits in (8, 33, 64)}


@pytest.mark.parametrize("num_bits", [8, 33, 64])
@pytest.mark.parametrize("path", PATHS)
def test_topk_equals_stable_argsort(data, num_bits, path):
    query_codes, db_codes = data[num_bits]
    for k in (1, 10, 97):
        dist, idx = hamming_topk(query_codes, db_codes, k, _path=path)
        ref_dist, ref_idx = brute_topk(query_codes, db_codes, k)
        assert dist.shape == idx.shape == (23, k)
        assert dist.dtype == np.int32 and idx.dtype == np.int64
        np.testing.assert_array_equal(idx, ref_idx)
        np.testing.assert_array_equal(dist, ref_dist)


def test_ties_break_by_database_index():
    db = np.array([[1, 1, 1, 1], [-1, 1, 1, 1], [1, 1, 1, -1], [1, 1, 1, 1], [1, -1, 1, 1]])
    query = np.array([[1, 1, 1, 1]])
    for path in PATHS:
        dist, idx = hamming_topk(query, db, 4, _path=path)
        assert dist.tolist() == [[0, 0, 1, 1]]
        assert idx.tolist() == [[0, 3, 1, 2]]


@pytest.mark.parametrize("path", PATHS)
def test_chunk_sizes_do_not_change_results(data, path):
    query_codes, db_codes = data[33]
    ref_dist, ref_idx = brute_topk(query_codes, db_codes, 40)
    # Sizes that do not divide Q = 23 or N = 97, chunks smaller than k, and one item per chunk.
    for chunk_size, db_chunk_size in ((5, 13), (23, 1), (1, 97), (7, 64)):
        dist, idx = hamming_topk(
            query_codes, db_codes, 40, chunk_size=chunk_size, db_chunk_size=db_chunk_size,
            _path=path,
        )
        np.testing.assert_array_equal(idx, ref_idx, err_msg=f"{chunk_size}, {db_chunk_size}")
        np.testing.assert_array_equal(dist, ref_dist)


def test_host_and_device_paths_identical_on_wide_codes():
    # 300 bits: distances no longer fit uint8, which switches the host path to int16 keys.
    rng = np.random.default_rng(1)
    query_codes, db_codes = tied_codes(rng, 9, 300), tied_codes(rng, 61, 300)
    results = [
        hamming_topk(query_codes, db_codes, 25, chunk_size=4, db_chunk_size=20, _path=path)
        for path in PATHS
    ]
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    np.testing.assert_array_equal(results[0][1], brute_topk(query_codes, db_codes, 25)[1])


@pytest.mark.parametrize("path", PATHS)
def test_radius_search_equals_brute_force(data, path):
    query_codes, db_codes = data[33]
    for radius, chunks in ((0, (23, 97)), (3, (5, 13)), (8, (7, 64)), (40, (23, 30))):
        found = radius_search(
            query_codes, db_codes, radius, chunk_size=chunks[0], db_chunk_size=chunks[1],
            _path=path,
        )
        expected = brute_radius(query_codes, db_codes, radius)
        assert len(found) == 23
        for (dist, idx), (ref_dist, ref_idx) in zip(found, expected):
            assert dist.dtype == np.int32 and idx.dtype == np.int64
            assert dist.tolist() == ref_dist and idx.tolist() == ref_idx
    # Radius 0 finds exact copies only: duplicated rows are found, the other queries find nothing.
    queries = np.concatenate([db_codes[[5, 60]], -db_codes[:1]])
    found = radius_search(queries, db_codes, 0, _path=path)
    expected = brute_radius(queries, db_codes, 0)
    assert [idx.tolist() for _, idx in found] == [idx for _, idx in expected]
    assert 5 in found[0][1] and 60 in found[1][1] and len(found[2][1]) == 0


def packed_forms(codes):
    """The two packed layouts of ±1 codes: uint32 words and faiss's LSB-first bytes."""
    return hamming.pack(codes), np.packbits(codes > 0, axis=1, bitorder="little")


@pytest.mark.parametrize("num_bits", [8, 64])
def test_packed_inputs_give_the_unpacked_results(data, num_bits):
    query_codes, db_codes = data[num_bits]
    ref = hamming_topk(query_codes, db_codes, 15)
    ref_radius = radius_search(query_codes, db_codes, num_bits // 4)
    for query, database in zip(packed_forms(query_codes), packed_forms(db_codes)):
        dist, idx = hamming_topk(query, database, 15, packed=True)
        np.testing.assert_array_equal(dist, ref[0])
        np.testing.assert_array_equal(idx, ref[1])
        found = radius_search(query, database, num_bits // 4, packed=True)
        for (d, i), (ref_d, ref_i) in zip(found, ref_radius):
            assert d.tolist() == ref_d.tolist() and i.tolist() == ref_i.tolist()


def test_packed_inputs_bad_input_raises_named_errors(data):
    query_codes, db_codes = data[64]
    words, packed_bytes = packed_forms(db_codes)
    with pytest.raises(ValueError, match="same dtype and width"):
        hamming_topk(hamming.pack(query_codes), packed_bytes, 3, packed=True)
    with pytest.raises(ValueError, match="query_codes must be a 2-D uint32 or uint8 matrix"):
        hamming_topk(query_codes, words, 3, packed=True)
    with pytest.raises(ValueError, match="db_codes is empty"):
        radius_search(words[:2], words[:0], 1, packed=True)

    index = HammingIndex(60)
    index.add_packed(words & np.uint32(2**28 - 1))
    with pytest.raises(ValueError, match="query_codes has bits set beyond bit 60"):
        index.search(packed_bytes, 2, packed=True)
    with pytest.raises(ValueError, match=r"query_codes is empty"):
        index.range_search(words[:0] & 0, 2, packed=True)


def test_index_add_packed_and_packed_queries_equal_unpacked():
    rng = np.random.default_rng(7)
    codes, ids, labels = make_index_data(rng, num_bits=40)
    queries = tied_codes(rng, 6, 40)
    whole = HammingIndex(40)
    whole.add(codes, ids=ids, labels=labels)
    words, packed_bytes = packed_forms(codes)
    from_words, from_bytes = HammingIndex(40), HammingIndex(40)
    from_words.add_packed(words[:20], ids=ids[:20], labels=labels[:20])
    from_words.add_packed(packed_bytes[20:], ids=ids[20:], labels=labels[20:])
    from_bytes.add_packed(packed_bytes)
    np.testing.assert_array_equal(from_words.packed_codes, whole.packed_codes)
    np.testing.assert_array_equal(from_bytes.packed_codes, whole.packed_codes)
    np.testing.assert_array_equal(from_words.ids, ids)
    np.testing.assert_array_equal(from_bytes.ids, np.arange(50))
    np.testing.assert_array_equal(from_words.labels, labels)

    ref_dist, ref_ids = whole.search(queries, 9)
    ref_radius = whole.range_search(queries, 6)
    for packed_queries in packed_forms(queries):
        dist, found = from_words.search(packed_queries, 9, packed=True)
        np.testing.assert_array_equal(dist, ref_dist)
        np.testing.assert_array_equal(found, ref_ids)
        for (d, i), (ref_d, ref_i) in zip(from_words.range_search(packed_queries, 6, packed=True),
                                          ref_radius):
            assert d.tolist() == ref_d.tolist() and i.tolist() == ref_i.tolist()


def make_index_data(rng, n=50, num_bits=33, num_classes=4):
    codes = tied_codes(rng, n, num_bits)
    labels = (rng.random((n, num_classes)) < 0.4).astype(np.float32)
    ids = rng.permutation(1000)[:n]
    return codes, ids, labels


def test_index_add_in_parts_equals_one_call_and_matches_functions():
    rng = np.random.default_rng(2)
    codes, ids, labels = make_index_data(rng)
    queries = tied_codes(rng, 6, 33)
    whole = HammingIndex(33)
    whole.add(codes, ids=ids, labels=labels)
    parts = HammingIndex(33)
    for part in np.split(np.arange(50), [7, 20, 20, 49]):
        parts.add(codes[part], ids=ids[part], labels=labels[part])
    assert len(whole) == len(parts) == 50
    np.testing.assert_array_equal(parts.packed_codes, whole.packed_codes)
    np.testing.assert_array_equal(parts.ids, ids)
    np.testing.assert_array_equal(parts.labels, labels)
    np.testing.assert_array_equal(parts.codes(), codes)

    dist, found_ids = parts.search(queries, 12, chunk_size=4, db_chunk_size=16)
    ref_dist, ref_idx = brute_topk(queries, codes, 12)
    np.testing.assert_array_equal(dist, ref_dist)
    np.testing.assert_array_equal(found_ids, ids[ref_idx])

    for (dist, found), (ref_dist, ref_idx) in zip(
        parts.range_search(queries, 5), brute_radius(queries, codes, 5)
    ):
        assert dist.tolist() == ref_dist
        assert found.tolist() == ids[ref_idx].tolist()


@pytest.mark.parametrize("mmap", [False, True])
def test_index_loaded_searches_as_the_saved_one(tmp_path, mmap):
    # The file itself is tested in test_index_store.py; mapped codes are scanned in place.
    rng = np.random.default_rng(8)
    codes, ids, labels = make_index_data(rng, num_bits=64)
    index = HammingIndex(64)
    index.add(codes, ids=ids, labels=labels)
    path = tmp_path / "index.npz"
    index.save(path)
    loaded = HammingIndex.load(path, mmap=mmap)
    assert isinstance(loaded, HammingIndex) and isinstance(loaded.packed_codes, np.memmap) == mmap
    queries = codes[:6]
    for result, ref in zip(loaded.search(queries, 11), index.search(queries, 11)):
        np.testing.assert_array_equal(result, ref)
    for (d, i), (ref_d, ref_i) in zip(loaded.range_search(queries, 9),
                                      index.range_search(queries, 9)):
        assert d.tolist() == ref_d.tolist() and i.tolist() == ref_i.tolist()


def faiss_binary(faiss, codes):
    """faiss's own binarisation of ±1 codes (x > 0 is a set bit), one code at a time."""
    floats = np.ascontiguousarray(codes, np.float32)
    out = np.zeros((codes.shape[0], codes.shape[1] // 8), np.uint8)
    for row, code in zip(out, floats):
        faiss.real_to_binary(codes.shape[1], faiss.swig_ptr(code), faiss.swig_ptr(row))
    return out


@pytest.mark.parametrize("num_bits", [8, 64])
def test_to_faiss_same_topk_and_distances_as_faiss(data, num_bits):
    faiss = pytest.importorskip("faiss")
    query_codes, db_codes = data[num_bits]
    index = HammingIndex(num_bits)
    index.add(db_codes)
    flat = to_faiss(index)
    assert isinstance(flat, faiss.IndexBinaryFlat) and flat.ntotal == 97 and flat.d == num_bits
    # The bit order is faiss's: its own binarisation of the codes gives the same bytes.
    np.testing.assert_array_equal(flat.reconstruct_n(0, 97), faiss_binary(faiss, db_codes))
    queries = faiss_binary(faiss, query_codes)
    for k in (1, 10, 97):
        faiss_dist, faiss_idx = flat.search(queries, k)
        dist, idx = index.search(query_codes, k)
        np.testing.assert_array_equal(dist, faiss_dist)  # ties by index in both
        np.testing.assert_array_equal(idx, faiss_idx)
        np.testing.assert_array_equal(idx, brute_topk(query_codes, db_codes, k)[1])
    # faiss's radius is strict: distance < r + 1 is distance <= r.
    lims, faiss_dist, faiss_idx = flat.range_search(queries, num_bits // 4 + 1)
    for q, (dist, idx) in enumerate(index.range_search(query_codes, num_bits // 4)):
        got = sorted(zip(faiss_dist[lims[q]:lims[q + 1]], faiss_idx[lims[q]:lims[q + 1]]))
        assert [(int(d), int(i)) for d, i in got] == list(zip(dist.tolist(), idx.tolist()))


def test_faiss_round_trip_keeps_codes_and_ids():
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(9)
    codes, ids, _ = make_index_data(rng, num_bits=48)
    queries = tied_codes(rng, 5, 48)
    index = HammingIndex(48)
    index.add(codes, ids=ids)
    mapped = to_faiss(index)
    assert isinstance(mapped, faiss.IndexBinaryIDMap)
    faiss_dist, faiss_ids = mapped.search(faiss_binary(faiss, queries), 12)
    dist, found = index.search(queries, 12)
    np.testing.assert_array_equal(dist, faiss_dist)
    np.testing.assert_array_equal(found, faiss_ids)

    back = HammingIndex.from_faiss(mapped)
    assert back.num_bits == 48 and back.labels is None
    np.testing.assert_array_equal(back.packed_codes, index.packed_codes)
    np.testing.assert_array_equal(back.ids, ids)
    np.testing.assert_array_equal(back.codes(), codes)
    # An index faiss built from its own binarisation reads back as the ±1 codes.
    flat = faiss.IndexBinaryFlat(48)
    flat.add(faiss_binary(faiss, codes))
    from_flat = HammingIndex.from_faiss(flat)
    np.testing.assert_array_equal(from_flat.codes(), codes)
    np.testing.assert_array_equal(from_flat.ids, np.arange(50))


def test_faiss_interop_bad_input():
    faiss = pytest.importorskip("faiss")
    index = HammingIndex(33)
    index.add(np.ones((2, 33)))
    with pytest.raises(ValueError, match="33-bit codes, not a multiple of 8"):
        to_faiss(index)
    with pytest.raises(ValueError, match="to_faiss needs a HammingIndex, got ndarray"):
        to_faiss(np.ones((2, 8)))
    with pytest.raises(ValueError, match="needs a faiss.IndexBinaryFlat .* got IndexFlat"):
        HammingIndex.from_faiss(faiss.IndexFlatL2(8))


def test_bad_input_raises_named_errors():
    rng = np.random.default_rng(5)
    query_codes, db_codes = tied_codes(rng, 3, 8), tied_codes(rng, 10, 8)
    with pytest.raises(ValueError, match="db_codes must hold only -1 and \\+1"):
        hamming_topk(query_codes, (db_codes > 0).astype(np.float32), 2)
    with pytest.raises(ValueError, match="query_codes must hold only -1 and \\+1"):
        radius_search(0.5 * query_codes, db_codes, 1)
    with pytest.raises(ValueError, match=r"same number of bits.*\(3, 8\) and \(10, 9\)"):
        hamming_topk(query_codes, tied_codes(rng, 10, 9), 2)
    with pytest.raises(ValueError, match="same number of bits"):
        radius_search(query_codes, tied_codes(rng, 10, 9), 1)
    with pytest.raises(ValueError, match=r"k must be in \[1, database size = 10\], got k = 11"):
        hamming_topk(query_codes, db_codes, 11)
    for k in (0, -3):
        with pytest.raises(ValueError, match="k must be in"):
            hamming_topk(query_codes, db_codes, k)
    with pytest.raises(ValueError, match="k must be an integer"):
        hamming_topk(query_codes, db_codes, 2.0)
    with pytest.raises(ValueError, match=r"query_codes is empty \(shape \(0, 8\)\)"):
        hamming_topk(np.zeros((0, 8)), db_codes, 2)
    with pytest.raises(ValueError, match="db_codes is empty"):
        radius_search(query_codes, np.zeros((0, 8)), 2)
    with pytest.raises(ValueError, match="radius must be a non-negative integer, got -1"):
        radius_search(query_codes, db_codes, -1)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer, got 0"):
        hamming_topk(query_codes, db_codes, 2, chunk_size=0)
    with pytest.raises(ValueError, match="must be a 2-D"):
        hamming_topk(query_codes[0], db_codes, 2)


def test_index_bad_input_raises_named_errors():
    rng = np.random.default_rng(6)
    codes = tied_codes(rng, 6, 8)
    index = HammingIndex(8)
    with pytest.raises(ValueError, match="the index is empty"):
        index.search(codes, 1)
    index.add(codes, labels=np.zeros((6, 3)))
    with pytest.raises(ValueError, match=r"k must be in \[1, database size = 6\]"):
        index.search(codes, 7)
    with pytest.raises(ValueError, match="query_codes have 9 bits"):
        index.range_search(tied_codes(rng, 2, 9), 1)
    with pytest.raises(ValueError, match="radius must be a non-negative integer"):
        index.range_search(codes, -2)


def test_docstring_examples():
    failures, _ = doctest.testmod(retrieval, extraglobs={"np": np})
    assert failures == 0
