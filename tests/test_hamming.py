"""Tests of dlhash_jax.hamming against NumPy brute force: packing, plans, both backends.

The host engine in small tiles and several threads is tested in test_hamming_host.py.
"""

import functools

import code_helpers
import jax
import numpy as np
import pytest
from code_helpers import brute_distances
from code_helpers import brute_topk

from dlhash_jax import codes
from dlhash_jax import hamming
from dlhash_jax import hamming_host

CODE_LENGTHS = (1, 7, 32, 33, 64, 100)


def tied_codes(rng, n, num_bits):
    """int8 codes (the engine takes any integer dtype), more ties than the retrieval tests'."""
    return code_helpers.tied_codes(rng, n, num_bits, num_bases=4, flip=0.1, dtype=np.int8)


# ----------------------------------------------------------------------------------------------
# Packing.


@pytest.mark.parametrize("num_bits", CODE_LENGTHS)
def test_pack_round_trips_and_matches_pack_codes(num_bits, monkeypatch):
    rng = np.random.default_rng(num_bits)
    b = tied_codes(rng, 11, num_bits)
    whole = hamming.pack(b)
    assert isinstance(whole, np.ndarray) and whole.dtype == np.uint32
    assert whole.shape == (11, codes.num_words(num_bits))
    np.testing.assert_array_equal(whole, codes.pack_codes(b))
    np.testing.assert_array_equal(codes.unpack_codes(whole, num_bits, dtype=np.int8), b)
    np.testing.assert_array_equal(hamming.pack(b.astype(np.float32)), whole)
    # 0/1 bits (labels) pack like the ±1 codes they stand for.
    np.testing.assert_array_equal(hamming.pack((b > 0).astype(np.int8)), whole)
    # Blocks of 4 rows: several compiled calls and a padded last block give the same words.
    monkeypatch.setattr(hamming, "PACK_BLOCK", 4)
    np.testing.assert_array_equal(hamming.pack(b), whole)


def test_pack_empty_and_bad_input():
    assert hamming.pack(np.ones((0, 40))).shape == (0, 2)
    with pytest.raises(ValueError, match=r"matrix must be a 2-D \[N, L\] matrix, got shape \(4,\)"):
        hamming.pack(np.ones(4))


@pytest.mark.parametrize("num_bits", CODE_LENGTHS)
def test_bytes_are_packbits_little_and_round_trip(num_bits):
    rng = np.random.default_rng(num_bits)
    bits = tied_codes(rng, 9, num_bits) > 0
    words = hamming.pack(bits)
    packed_bytes = np.packbits(bits, axis=1, bitorder="little")
    np.testing.assert_array_equal(hamming.bytes_from_words(words, num_bits), packed_bytes)
    converted = hamming.words_from_bytes(packed_bytes)
    assert converted.dtype == np.uint32 and converted.shape == words.shape
    np.testing.assert_array_equal(converted, words)
    with pytest.raises(ValueError, match=r"packed_bytes must be a 2-D uint8 matrix, got uint32"):
        hamming.words_from_bytes(words)


# ----------------------------------------------------------------------------------------------
# Plans, blocks and the pipeline.


@pytest.mark.parametrize("num_rows, size", [(1, 1), (10, 3), (10, 10), (10, 64), (97, 13)])
def test_chunk_slices_and_blocks_cover_every_row_exactly_once(num_rows, size):
    slices = hamming.chunk_slices(num_rows, size)
    covered = np.concatenate([np.arange(num_rows)[s] for s in slices])
    np.testing.assert_array_equal(covered, np.arange(num_rows))
    assert all(0 < s.stop - s.start <= size for s in slices)
    rows = np.arange(num_rows * 2, dtype=np.int32).reshape(num_rows, 2) + 1
    blocked = np.asarray(hamming.blocks(rows, size))
    assert blocked.shape == (len(slices), size, 2) and blocked.dtype == np.int32
    for i, s in enumerate(slices):
        np.testing.assert_array_equal(blocked[i, : s.stop - s.start], rows[s])
        assert not blocked[i, s.stop - s.start:].any()  # zero padding
    # 1-D rows (class ids) block the same way.
    assert hamming.blocks(rows[:, 0], size).shape == (len(slices), size)


def test_plan_caps_sizes_and_fills_the_pair_budget():
    assert hamming.plan(100, 1000, 7, 64) == (7, 64)
    assert hamming.plan(5, 30, 7, 64) == (5, 30)
    assert hamming.plan(10**6, 1000) == (hamming.PAIRS_PER_CHUNK // 1000, 1000)
    assert hamming.plan(3, 1000) == (3, 1000)
    assert hamming.plan(10**6, 10**6, None, 1000) == (hamming.PAIRS_PER_CHUNK // 1000, 1000)
    # A database larger than the budget still gets one query per chunk.
    assert hamming.plan(10, 2 * hamming.PAIRS_PER_CHUNK) == (1, 2 * hamming.PAIRS_PER_CHUNK)


def test_prefetched_launches_the_next_key_before_yielding():
    events = []

    def launch(key):
        events.append(("launch", key))
        return key * 10

    for key, value in hamming.prefetched(launch, range(3)):
        events.append(("yield", key, value))
    assert events == [("launch", 0), ("launch", 1), ("yield", 0, 0), ("launch", 2),
                      ("yield", 1, 10), ("yield", 2, 20)]
    assert list(hamming.prefetched(launch, [])) == []


def test_device_radius_ignores_block_padding_and_sizes_its_gathers():
    rng = np.random.default_rng(1)
    db = tied_codes(rng, 23, 300)
    db[5] = db[17] = -1  # packed to all-zero words, like the blocks' padding rows
    q = np.concatenate([-np.ones((1, 300), np.int8), db[:9]])
    for radius in (0, 150, 300):  # a few hits, about half the pairs, every pair
        found = hamming.within_radius(hamming.pack(q), hamming.pack(db), 300, radius,
                                      chunk_size=4, db_chunk_size=7, backend="device")
        for hits, (d, idx) in zip(brute_radius(q, db, radius), found):
            assert d.tolist() == [v for v, _ in hits] and idx.tolist() == [j for _, j in hits]
    assert sorted(found[0][1].tolist()) == list(range(23)) and found[0][1][:2].tolist() == [5, 17]


def test_resolve_backend_and_bad_input():
    expected = "host" if jax.default_backend() == "cpu" else "device"
    assert hamming.default_backend() == hamming.resolve_backend(None) == expected
    assert hamming.resolve_backend("device") == "device"
    with pytest.raises(ValueError, match=r"_path must be one of \('host', 'device'\), got 'gpu'"):
        hamming.resolve_backend("gpu", "_path")
    with pytest.raises(ValueError, match=r"size must be a positive integer, got 0"):
        hamming.chunk_slices(10, 0)
    with pytest.raises(ValueError, match=r"chunk_size must be a positive integer, got 0"):
        hamming.plan(10, 10, 0)
    with pytest.raises(ValueError, match=r"db_chunk_size must be a positive integer, got 2.5"):
        hamming.plan(10, 10, 3, 2.5)


# ----------------------------------------------------------------------------------------------
# Top-k and radius: both backends against brute force.


@pytest.mark.parametrize("num_bits", [5, 33, 70])
def test_topk_host_and_device_identical_to_stable_argsort(num_bits):
    rng = np.random.default_rng(num_bits)
    q, db = tied_codes(rng, 13, num_bits), tied_codes(rng, 57, num_bits)
    qp, dp = hamming.pack(q), hamming.pack(db)
    for k in (1, 17, 57):
        ref_dist, ref_idx = brute_topk(q, db, k)
        for chunks in ((None, None), (4, 10), (13, 1), (1, 57)):
            results = [
                hamming.topk(qp, dp, num_bits, k, chunk_size=chunks[0], db_chunk_size=chunks[1],
                             backend=backend)
                for backend in hamming.BACKENDS
            ]
            for dist, idx in results:
                assert dist.dtype == np.int32 and idx.dtype == np.int64
                np.testing.assert_array_equal(dist, ref_dist, err_msg=f"{k} {chunks}")
                np.testing.assert_array_equal(idx, ref_idx, err_msg=f"{k} {chunks}")


def brute_radius(q, db, radius):
    return [sorted((int(v), j) for j, v in enumerate(row) if v <= radius)
            for row in brute_distances(q, db)]


@pytest.mark.parametrize("backend", hamming.BACKENDS)
def test_within_radius_equals_brute_force(backend):
    rng = np.random.default_rng(2)
    q, db = tied_codes(rng, 9, 33), tied_codes(rng, 40, 33)
    for radius, chunks in ((0, (9, 40)), (4, (2, 7)), (100, (4, 16))):
        found = hamming.within_radius(hamming.pack(q), hamming.pack(db), 33, radius,
                                      chunk_size=chunks[0], db_chunk_size=chunks[1],
                                      backend=backend)
        assert len(found) == 9
        for hits, (d, idx) in zip(brute_radius(q, db, radius), found):
            assert d.dtype == np.int32 and idx.dtype == np.int64
            assert d.tolist() == [v for v, _ in hits] and idx.tolist() == [j for _, j in hits]
    # The complements of stored codes find nothing: empty results keep their dtypes.
    empty = hamming.within_radius(hamming.pack(-db[:2]), hamming.pack(db[:1]), 33, 0,
                                  backend=backend)
    assert [(d.shape, i.shape, d.dtype, i.dtype) for d, i in empty] == [
        ((0,), (0,), np.int32, np.int64)] * 2


# ----------------------------------------------------------------------------------------------
# Payloads in rank order: every mode against a stable argsort.


@functools.partial(jax.jit, static_argnames=("mode", "length", "payload_bits"))
def _rank(q_packed, d_packed, payload, *, mode, length, payload_bits):
    dist = codes.packed_hamming_distance(q_packed, d_packed)
    return hamming.rank_payload(dist, payload, mode=mode, length=length,
                                payload_bits=payload_bits)


@pytest.mark.parametrize("sample_columns", [4096, 7])
@pytest.mark.parametrize("num_bits", [6, 45])
def test_payload_ranking_modes_agree_with_stable_argsort(num_bits, sample_columns, monkeypatch):
    # A sample of 7 of the 120 columns guesses the k-th distance badly: the counts correct it.
    monkeypatch.setattr(hamming_host, "_SAMPLE_COLUMNS", sample_columns)
    rng = np.random.default_rng(3)
    q, db = tied_codes(rng, 8, num_bits), tied_codes(rng, 120, num_bits)
    payload = rng.integers(0, 6, size=(8, 120)).astype(np.uint8)
    order = np.argsort(brute_distances(q, db), axis=1, kind="stable")
    qp, dp = hamming.pack(q), hamming.pack(db)
    for length in (1, 30, 120):
        want = np.take_along_axis(payload, order, axis=1)[:, :length]
        for mode in ("keys", "dist", "device"):
            buffer = None
            for valid in (8, 5):  # a full chunk, then a padded one reusing the buffer
                out = _rank(qp, dp, payload, mode=mode,
                            length=length if mode == "device" else None, payload_bits=3)
                ranked, buffer = hamming.ranked_payload(
                    out, valid, mode=mode, length=length, num_bits=num_bits, payload_bits=3,
                    buffer=buffer,
                )
                np.testing.assert_array_equal(ranked, want[:valid], err_msg=f"{mode} {length}")


def test_ranking_mode_rule():
    assert hamming.ranking_mode("device", 64, 10**9, 8) == "device"
    assert hamming.ranking_mode("host", 64, 54_000, 1) == "keys"
    # (L + 1) N 2^bits must stay within int32 for keys; beyond, a stable argsort of distances.
    assert hamming.ranking_mode("host", 64, 2**31 // 65 // 2, 1) == "keys"
    assert hamming.ranking_mode("host", 64, 2**31 // 65 // 2 + 1, 1) == "dist"
