"""Tests of dlhash_jax.hamming_host, the CPU engine, in small tiles and threads against brute force.

Tiles of 8 codes by 2 queries and three threads put every tile, share and merge boundary inside
databases of a few dozen codes.
"""

import code_helpers
import numpy as np
import pytest
from code_helpers import brute_distances
from code_helpers import brute_topk

from dlhash_jax import hamming
from dlhash_jax import hamming_host


def tied_codes(rng, n, num_bits):
    """int8 codes (the engine takes any integer dtype), more ties than the retrieval tests'."""
    return code_helpers.tied_codes(rng, n, num_bits, num_bases=4, flip=0.1, dtype=np.int8)


@pytest.fixture
def small_tiles(monkeypatch):
    """Tiles of 8 codes by 2 queries and three threads: every merge path on small data."""
    monkeypatch.setattr(hamming_host, "TILE_DB", 8)
    monkeypatch.setattr(hamming_host, "TILE_PAIRS", 16)
    monkeypatch.setattr(hamming_host, "host_threads", lambda: 3)


def test_shares_are_whole_tiles_in_order_one_thread_each(small_tiles):
    # 100 codes are 13 tiles of 8; three threads take 5, 5 and the last 3 (20 codes).
    shares = hamming_host.in_shares(lambda share: (share.start, share.stop), 100, 8)
    assert shares == [(0, 40), (40, 80), (80, 100)]
    # Fewer tiles than threads: one share per tile.
    assert hamming_host.in_shares(lambda share: (share.start, share.stop), 10, 8) == [
        (0, 8), (8, 10)]


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("num_bits", [1, 8, 64, 70, 128, 300])
def test_topk_in_small_tiles_and_threads_equals_stable_argsort(num_bits, dense, small_tiles,
                                                               monkeypatch):
    if dense:
        # Whole rows in blocks of 16 codes, for every k; the sample of 4 columns guesses badly.
        monkeypatch.setattr(hamming_host, "DENSE_MIN_K", 1)
        monkeypatch.setattr(hamming_host, "_DENSE_BLOCK", 16)
        monkeypatch.setattr(hamming_host, "_SAMPLE_COLUMNS", 4)
    # 300 bits: distances beyond uint8; 70: an odd number of words (32-bit host words).
    rng = np.random.default_rng(num_bits)
    q, db = tied_codes(rng, 7, num_bits), tied_codes(rng, 61, num_bits)
    qp, dp = hamming.pack(q), hamming.pack(db)
    # k below a tile, above a tile, above a thread's share (21 codes), and the whole database.
    for k in (1, 3, 12, 30, 61):
        ref_dist, ref_idx = brute_topk(q, db, k)
        for chunks in ((None, None), (3, 5), (1, 61)):
            dist, idx = hamming_host.topk(qp, dp, num_bits, k, chunk_size=chunks[0],
                                          db_chunk_size=chunks[1])
            assert dist.dtype == np.int32 and idx.dtype == np.int64
            np.testing.assert_array_equal(dist, ref_dist, err_msg=f"{k} {chunks}")
            np.testing.assert_array_equal(idx, ref_idx, err_msg=f"{k} {chunks}")


@pytest.mark.parametrize("dense_min_k", [hamming_host.DENSE_MIN_K, 1])
def test_topk_all_codes_equal_keeps_index_order(small_tiles, monkeypatch, dense_min_k):
    # Every distance ties: the answer is the first k indices, at every tile and share boundary.
    monkeypatch.setattr(hamming_host, "DENSE_MIN_K", dense_min_k)
    monkeypatch.setattr(hamming_host, "_DENSE_BLOCK", 16)
    db = np.ones((50, 16), np.int8)
    dist, idx = hamming_host.topk(hamming.pack(db[:2]), hamming.pack(db), 16, 23)
    np.testing.assert_array_equal(dist, np.zeros((2, 23)))
    np.testing.assert_array_equal(idx, np.tile(np.arange(23), (2, 1)))


@pytest.mark.parametrize("num_bits", [8, 64, 300])
def test_radius_hits_in_small_tiles_and_threads_are_every_pair_once(num_bits, small_tiles):
    rng = np.random.default_rng(num_bits)
    q, db = tied_codes(rng, 7, num_bits), tied_codes(rng, 61, num_bits)
    # Queries far from every code find nothing: empty results between non-empty ones.
    q[::3] = -db[0]
    dist = brute_distances(q, db)
    for radius in (0, 2, num_bits // 8, num_bits):
        hits = hamming_host.radius_hits(hamming.pack(q), hamming.pack(db), num_bits, radius)
        found = sorted((int(r), int(c), int(d)) for piece in hits for r, c, d in zip(*piece))
        rows, cols = np.nonzero(dist <= radius)
        assert found == [(r, c, int(dist[r, c])) for r, c in zip(rows, cols)]
    assert hamming_host.radius_hits(hamming.pack(-db[:2]), hamming.pack(db[:1]), num_bits,
                                    0) == []


# 1,600 queries x 21 distances no longer fit the 16-bit sort groups: the int32 fallback.
@pytest.mark.parametrize("num_queries", [6, 1600])
@pytest.mark.parametrize("sample_columns", [4096, 3])
@pytest.mark.parametrize("payload_bits", [0, 3])
def test_first_keys_are_each_rows_smallest_keys_sorted(sample_columns, payload_bits,
                                                        num_queries, monkeypatch):
    # A sample of 3 of the 90 columns guesses the length-th distance badly: the counts correct it.
    monkeypatch.setattr(hamming_host, "_SAMPLE_COLUMNS", sample_columns)
    rng = np.random.default_rng(payload_bits)
    num_bits, n = 20, 90
    q, db = tied_codes(rng, num_queries, num_bits), tied_codes(rng, n, num_bits)
    payload = rng.integers(0, 2**payload_bits, size=(num_queries, n))
    keys = ((brute_distances(q, db) * n + np.arange(n)) << payload_bits) | payload
    keys = keys.astype(np.int32)
    mask = np.empty(keys.shape, bool)
    for length in (1, 17, n - 1):
        got = hamming_host.first_keys(keys, length, num_bits, payload_bits, mask)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, np.sort(keys, axis=1)[:, :length])
