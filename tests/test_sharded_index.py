"""Tests for dlhash_jax/sharded_index.py: exactly HammingIndex's results over 4 fake devices."""

import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
import sharded_index_worker
from jax.sharding import Mesh

from dlhash_jax import sharded_index
from dlhash_jax.multi_index import MultiIndexHashing
from dlhash_jax.retrieval import HammingIndex
from dlhash_jax.sharded_index import ShardedHammingIndex


def _codes(rng, n, bits, distinct=None):
    """±1 codes; with ``distinct``, only that many different codes (heavy ties)."""
    if distinct is None:
        return np.where(rng.random((n, bits)) < 0.5, -1.0, 1.0).astype(np.float32)
    pool = np.where(rng.random((distinct, bits)) < 0.5, -1.0, 1.0).astype(np.float32)
    return pool[rng.integers(0, distinct, n)]


def _pair(codes, ids=None, mesh=None):
    flat, sharded = HammingIndex(codes.shape[1]), ShardedHammingIndex(codes.shape[1], mesh=mesh)
    flat.add(codes, ids=ids)
    sharded.add(codes, ids=ids)
    return flat, sharded


def test_the_default_mesh_spans_every_device():
    index = ShardedHammingIndex(8)
    assert index.num_shards == jax.device_count()
    # conftest.py's 4 fake devices on CPU; an accelerator run sees the real ones.
    assert jax.default_backend() != "cpu" or index.num_shards == 4
    assert index.mesh.axis_names == ("shards",)


@pytest.mark.parametrize(
    "n, bits, distinct",
    [(3, 8, None), (50, 16, None), (203, 64, None), (203, 64, 5), (130, 40, 2), (64, 100, None)],
)
def test_search_equals_the_flat_index_on_ties_and_odd_sizes(n, bits, distinct):
    rng = np.random.default_rng(n + bits)
    codes = _codes(rng, n, bits, distinct)
    queries = np.concatenate([_codes(rng, 7, bits), codes[:2]])
    flat, sharded = _pair(codes, ids=rng.permutation(n) * 10)
    for k in sorted({1, min(5, n), n}):
        expected, got = flat.search(queries, k), sharded.search(queries, k)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
        assert got[0].dtype == np.int32 and got[1].dtype == np.int64


@pytest.mark.parametrize("radius", [0, 3, 6, 64])
def test_range_search_equals_the_flat_index_including_empty_results(radius):
    rng = np.random.default_rng(radius)
    codes = _codes(rng, 157, 32, distinct=40)
    queries = np.concatenate([codes[:3], _codes(rng, 5, 32)])
    flat, sharded = _pair(codes)
    expected, got = flat.range_search(queries, radius), sharded.range_search(queries, radius)
    assert len(got) == len(expected) == 8
    for (dist, ids), (want_dist, want_ids) in zip(got, expected):
        np.testing.assert_array_equal(dist, want_dist)
        np.testing.assert_array_equal(ids, want_ids)
    if radius == 0:
        assert all(len(ids) >= 1 for _, ids in got[:3])
        assert any(len(ids) == 0 for _, ids in got[3:])


def test_results_spread_over_every_shard_are_all_kept():
    # Every code within the radius, spread evenly over the 4 shards: each shard holds 10 of the
    # 40, so a merge that kept only one shard's count would lose three quarters.
    codes = np.ones((40, 16), np.float32)
    codes[::2, 0] = -1
    flat, sharded = _pair(codes)
    (dist, ids), = sharded.range_search(codes[:1], 1)
    (want_dist, want_ids), = flat.range_search(codes[:1], 1)
    assert len(ids) == 40
    np.testing.assert_array_equal(dist, want_dist)
    np.testing.assert_array_equal(ids, want_ids)


def test_a_mesh_of_some_devices_and_adds_after_searches():
    mesh = Mesh(np.array(jax.devices()[:2]), ("shards",))
    rng = np.random.default_rng(7)
    first, second = _codes(rng, 30, 24), _codes(rng, 21, 24)
    flat, sharded = _pair(first, mesh=mesh)
    queries = _codes(rng, 4, 24)
    np.testing.assert_array_equal(sharded.search(queries, 6)[1], flat.search(queries, 6)[1])
    flat.add(second)
    sharded.add(second)
    assert len(sharded) == 51
    np.testing.assert_array_equal(sharded.search(queries, 51)[1], flat.search(queries, 51)[1])


def test_save_load_and_from_index_keep_codes_ids_and_labels(tmp_path):
    rng = np.random.default_rng(3)
    codes = _codes(rng, 25, 12)
    labels = np.eye(5)[np.arange(25) % 5]
    flat = HammingIndex(12)
    flat.add(codes, ids=np.arange(25) + 100, labels=labels)
    sharded = ShardedHammingIndex.from_index(flat)
    path = str(tmp_path / "index.npz")
    sharded.save(path)
    loaded = ShardedHammingIndex.load(path)
    np.testing.assert_array_equal(loaded.codes(), codes)
    np.testing.assert_array_equal(loaded.ids, flat.ids)
    np.testing.assert_array_equal(loaded.labels, labels)
    np.testing.assert_array_equal(loaded.search(codes[:3], 4)[1], flat.search(codes[:3], 4)[1])
    # The file is a HammingIndex file.
    np.testing.assert_array_equal(HammingIndex.load(path).ids, flat.ids)


def test_from_index_shares_the_store_of_a_multi_index():
    # Any code store shards: a MultiIndexHashing's codes, ids and labels, searched on the mesh.
    rng = np.random.default_rng(5)
    codes = _codes(rng, 40, 16, distinct=12)
    mih = MultiIndexHashing(16)
    mih.add(codes, ids=np.arange(40) * 2, labels=np.eye(4)[np.arange(40) % 4])
    sharded = ShardedHammingIndex.from_index(mih)
    assert sharded.num_bits == 16 and len(sharded) == 40
    np.testing.assert_array_equal(sharded.labels, mih.labels)
    for got, want in zip(sharded.search(codes[:5], 7), mih.search(codes[:5], 7)):
        np.testing.assert_array_equal(got, want)


def test_retrieval_exports_the_same_class():
    from dlhash_jax import retrieval

    assert retrieval.ShardedHammingIndex is ShardedHammingIndex


def test_bad_input_is_refused_with_what_was_wrong():
    index = ShardedHammingIndex(8)
    with pytest.raises(ValueError, match="the index is empty"):
        index.search(np.ones((1, 8)), 1)
    index.add(np.ones((5, 8)))
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, database size = 5\]"):
        index.search(np.ones((1, 8)), 6)
    with pytest.raises(ValueError, match="query_codes have 9 bits but the index holds 8-bit"):
        index.search(np.ones((1, 9)), 1)
    with pytest.raises(ValueError, match=r"\{-1, \+1\}|-1|±1"):
        index.search(np.zeros((1, 8)), 1)
    with pytest.raises(ValueError, match="radius"):
        index.range_search(np.ones((1, 8)), -1)
    with pytest.raises(ValueError, match="1-D jax.sharding.Mesh with axis name 'shards'"):
        ShardedHammingIndex(8, mesh=Mesh(np.array(jax.devices()), ("batch",)))
    with pytest.raises(ValueError, match="from_index needs a HammingIndex"):
        ShardedHammingIndex.from_index(index)


@pytest.mark.parametrize("n, k", [(3, 3), (64, 7), (203, 203)])
def test_the_accelerator_kernels_give_the_same_results(monkeypatch, n, k):
    # On CPU the shards are searched by the host engine; force the shard_map kernels that run on
    # GPUs and TPUs (here on the 4 CPU devices).
    monkeypatch.setattr(ShardedHammingIndex, "_on_cpu", lambda self: False)
    rng = np.random.default_rng(n)
    codes = _codes(rng, n, 24, distinct=max(n // 4, 1))
    queries = np.concatenate([codes[:2], _codes(rng, 3, 24)])
    flat, sharded = _pair(codes)
    for got, want in zip(sharded.search(queries, k), flat.search(queries, k)):
        np.testing.assert_array_equal(got, want)
    for (dist, ids), (want_dist, want_ids) in zip(sharded.range_search(queries, 5),
                                                  flat.range_search(queries, 5)):
        np.testing.assert_array_equal(dist, want_dist)
        np.testing.assert_array_equal(ids, want_ids)


def test_large_shards_are_scanned_in_blocks(monkeypatch):
    # Blocks of 16 codes: several scan steps per shard and padding inside the last block.
    monkeypatch.setattr(sharded_index, "BLOCK", 16)
    monkeypatch.setattr(ShardedHammingIndex, "_on_cpu", lambda self: False)
    rng = np.random.default_rng(11)
    codes = _codes(rng, 301, 20, distinct=60)
    flat, sharded = _pair(codes)
    queries = _codes(rng, 5, 20)
    np.testing.assert_array_equal(sharded.search(queries, 40)[0], flat.search(queries, 40)[0])
    np.testing.assert_array_equal(sharded.search(queries, 40)[1], flat.search(queries, 40)[1])
    got, expected = sharded.range_search(queries, 7), flat.range_search(queries, 7)
    for (_, ids), (_, want) in zip(got, expected):
        np.testing.assert_array_equal(ids, want)


def test_two_processes_of_two_devices_give_the_flat_results(tmp_path):
    """2 processes on 127.0.0.1 (gloo), each holding the shards of its 2 CPU devices."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        coordinator = f"127.0.0.1:{s.getsockname()[1]}"
    out = tmp_path / "found.npz"
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    worker = os.path.join(os.path.dirname(__file__), "sharded_index_worker.py")
    processes = [
        subprocess.Popen([sys.executable, worker, coordinator, "2", str(i), str(out)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)
    ]
    try:
        logs = [proc.communicate(timeout=120)[0] for proc in processes]
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert [proc.returncode for proc in processes] == [0, 0], "\n".join(logs)[-4000:]

    database, queries = sharded_index_worker.codes()
    flat = HammingIndex(database.shape[1])
    flat.add(database, ids=np.arange(len(database)) * 3)
    found = np.load(out)
    assert int(found["num_shards"]) == 4
    dist, ids = flat.search(queries, sharded_index_worker.K)
    np.testing.assert_array_equal(found["dist"], dist)
    np.testing.assert_array_equal(found["ids"], ids)
    expected = flat.range_search(queries, sharded_index_worker.RADIUS)
    np.testing.assert_array_equal(found["range_sizes"], [len(i) for _, i in expected])
    np.testing.assert_array_equal(found["range_ids"], np.concatenate([i for _, i in expected]))
    np.testing.assert_array_equal(found["range_dist"], np.concatenate([d for d, _ in expected]))
