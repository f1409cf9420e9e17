"""Tests of dlhash_jax.hamming against NumPy brute force: packing, plans, both backends."""

import functools

import code_helpers
import jax
import numpy as np
import pytest
from code_helpers import brute_distances
from code_helpers import brute_topk

from dlhash_jax import codes
from dlhash_jax import hamming

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


def test_distance_blocks_tile_the_distance_matrix():
    rng = np.random.default_rng(1)
    q, db = tied_codes(rng, 10, 300), tied_codes(rng, 23, 300)
    full = np.full((10, 23), -1, np.int64)
    for i, j, dist in hamming.distance_blocks(hamming.pack(q), hamming.pack(db), 300, 4, 7):
        assert dist.dtype == np.int16  # 300 bits do not fit uint8
        assert (full[i * 4 : i * 4 + 4, j * 7 : j * 7 + 7] == -1).all()
        full[i * 4 : i * 4 + dist.shape[0], j * 7 : j * 7 + dist.shape[1]] = dist
    np.testing.assert_array_equal(full, brute_distances(q, db))


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


def test_within_radius_equals_brute_force():
    rng = np.random.default_rng(2)
    q, db = tied_codes(rng, 9, 33), tied_codes(rng, 40, 33)
    dist = brute_distances(q, db)
    for radius, chunks in ((0, (9, 40)), (4, (2, 7)), (100, (4, 16))):
        found = hamming.within_radius(hamming.pack(q), hamming.pack(db), 33, radius,
                                      chunk_size=chunks[0], db_chunk_size=chunks[1])
        assert len(found) == 9
        for row, (d, idx) in zip(dist, found):
            hits = sorted((int(v), j) for j, v in enumerate(row) if v <= radius)
            assert d.dtype == np.int32 and idx.dtype == np.int64
            assert d.tolist() == [v for v, _ in hits] and idx.tolist() == [j for _, j in hits]


# ----------------------------------------------------------------------------------------------
# Payloads in rank order: every mode against a stable argsort.


@functools.partial(jax.jit, static_argnames=("mode", "length", "payload_bits"))
def _rank(q_packed, d_packed, payload, *, mode, length, payload_bits):
    dist = codes.packed_hamming_distance(q_packed, d_packed)
    return hamming.rank_payload(dist, payload, mode=mode, length=length,
                                payload_bits=payload_bits)


@pytest.mark.parametrize("num_bits", [6, 45])
def test_payload_ranking_modes_agree_with_stable_argsort(num_bits):
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
