"""Tests for dlhash_jax.index_store: what every index stores, its checks and its ``.npz`` file."""

import doctest
import os

import numpy as np
import pytest
from code_helpers import tied_codes

from dlhash_jax import hamming
from dlhash_jax import index_store
from dlhash_jax.index_store import CodeStore, check_queries, packed_words
from dlhash_jax.multi_index import MultiIndexHashing
from dlhash_jax.retrieval import HammingIndex

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "index_store")


def make_data(rng, n=50, num_bits=33, num_classes=4):
    codes = tied_codes(rng, n, num_bits)
    labels = (rng.random((n, num_classes)) < 0.4).astype(np.float32)
    ids = rng.permutation(1000)[:n]
    return codes, ids, labels


def packed_forms(codes):
    """The two packed layouts of ±1 codes: uint32 words and faiss's LSB-first bytes."""
    return hamming.pack(codes), np.packbits(codes > 0, axis=1, bitorder="little")


def write_archive(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def valid_arrays():
    store = CodeStore(33)
    store.add(np.ones((3, 33)))
    return {
        "format_version": np.asarray(1),
        "num_bits": np.asarray(33),
        "packed_codes": store.packed_codes.copy(),
        "ids": store.ids.copy(),
    }


# ----------------------------------------------------------------------------------------------
# Adding codes.


def test_adds_in_parts_and_in_both_packed_layouts_store_the_same():
    rng = np.random.default_rng(2)
    codes, ids, labels = make_data(rng)
    whole = CodeStore(33)
    whole.add(codes, ids=ids, labels=labels)
    assert len(whole) == 50 and whole.num_bits == 33
    expected = hamming.pack(codes)
    np.testing.assert_array_equal(whole.packed_codes, expected)
    assert whole.packed_codes.dtype == np.uint32 and whole.packed_codes.shape == (50, 2)
    np.testing.assert_array_equal(whole.codes(), codes)
    assert whole.codes().dtype == np.float32
    words, packed_bytes = packed_forms(codes)
    parts = CodeStore(33)
    for part, packed in zip(np.split(np.arange(50), [7, 20, 20, 49]),
                            (codes, words, packed_bytes, codes, words)):
        add = parts.add if packed is codes else parts.add_packed
        add(packed[part], ids=ids[part], labels=labels[part])
    np.testing.assert_array_equal(parts.packed_codes, expected)
    assert parts.ids.dtype == np.int64
    np.testing.assert_array_equal(parts.ids, ids)
    np.testing.assert_array_equal(parts.labels, labels)


def test_default_ids_are_running_positions():
    rng = np.random.default_rng(3)
    codes = tied_codes(rng, 10, 8)
    store = CodeStore(8)
    store.add(codes[:4])
    store.add_packed(hamming.pack(codes[4:7]))
    store.add(codes[7:], ids=np.array([100, 101, 102]))
    np.testing.assert_array_equal(store.ids, [0, 1, 2, 3, 4, 5, 6, 100, 101, 102])
    assert store.labels is None


def test_add_bad_input_raises_named_errors_and_keeps_the_store():
    rng = np.random.default_rng(6)
    codes = tied_codes(rng, 6, 8)
    with pytest.raises(ValueError, match="num_bits must be a positive integer"):
        CodeStore(0)
    store = CodeStore(8)
    with pytest.raises(ValueError, match="codes must hold only -1 and \\+1"):
        store.add(np.zeros((2, 8)))
    with pytest.raises(ValueError, match=r"codes have 9 bits but the index holds 8-bit"):
        store.add(tied_codes(rng, 2, 9))
    with pytest.raises(ValueError, match=r"ids must be an integer array of shape \(6,\)"):
        store.add(codes, ids=np.arange(5))
    with pytest.raises(ValueError, match=r"ids must be an integer array .* got float64"):
        store.add(codes, ids=np.arange(6.0))
    with pytest.raises(ValueError, match=r"labels must have shape \[n, C\] with n = 6"):
        store.add(codes, labels=np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"labels must be numeric \(multi-hot\), got dtype <U1"):
        store.add(codes, labels=np.full((6, 3), "a"))
    assert len(store) == 0 and store.labels is None
    store.add(codes, labels=np.zeros((6, 3)))
    with pytest.raises(ValueError, match=r"must be given labels of shape \(6, 3\)"):
        store.add(codes)
    with pytest.raises(ValueError, match="labels have 2 classes but the index stores 3"):
        store.add(codes, labels=np.zeros((6, 2)))
    assert len(store) == 6 and store.labels.shape == (6, 3) and len(store.ids) == 6
    unlabelled = CodeStore(8)
    unlabelled.add(codes)
    with pytest.raises(ValueError, match="holds 6 codes added without labels"):
        unlabelled.add(codes, labels=np.zeros((6, 3)))

    wide = CodeStore(60)
    words, packed_bytes = packed_forms(tied_codes(rng, 4, 64))
    with pytest.raises(ValueError, match=r"packed must be packed 60-bit codes: uint32 \[n, 2\] "
                                         r"words .* or uint8 \[n, 8\] bytes"):
        wide.add_packed(packed_bytes[:, :7])
    with pytest.raises(ValueError, match=r"packed must be packed 60-bit codes.*got uint16"):
        wide.add_packed(np.zeros((2, 2), np.uint16))
    with pytest.raises(ValueError, match="packed has bits set beyond bit 60"):
        wide.add_packed(words | np.uint32(1 << 31))
    assert len(wide) == 0
    wide.add_packed(words & np.uint32(2**28 - 1))
    np.testing.assert_array_equal(wide.packed_codes, words & np.uint32(2**28 - 1))


# ----------------------------------------------------------------------------------------------
# Queries.


def test_queries_in_every_form_give_the_same_words():
    rng = np.random.default_rng(4)
    queries = tied_codes(rng, 5, 40)
    expected = hamming.pack(queries)
    np.testing.assert_array_equal(check_queries(queries, 40, 1), expected)
    for packed in packed_forms(queries):
        words = check_queries(packed, 40, 1, packed=True)
        assert words.dtype == np.uint32 and words.flags.c_contiguous
        np.testing.assert_array_equal(words, expected)
    # Words that are a strided view come back contiguous.
    strided = np.concatenate([expected, expected], axis=1)[:, ::2]
    assert packed_words(strided, 64, "x").flags.c_contiguous


def test_bad_queries_raise_named_errors():
    rng = np.random.default_rng(5)
    codes = tied_codes(rng, 3, 8)
    with pytest.raises(ValueError, match="the index is empty; add codes before searching"):
        check_queries(codes, 8, 0)
    with pytest.raises(ValueError, match="query_codes must hold only -1 and \\+1"):
        check_queries(0.5 * codes, 8, 3)
    with pytest.raises(ValueError, match="must be a 2-D"):
        check_queries(codes[0], 8, 3)
    with pytest.raises(ValueError, match=r"query_codes have 9 bits but the index holds 8-bit "
                                         r"codes; got query_codes of shape \(2, 9\)"):
        check_queries(tied_codes(rng, 2, 9), 8, 3)
    with pytest.raises(ValueError, match=r"query_codes is empty \(shape \(0, 8\)\)"):
        check_queries(np.zeros((0, 8)), 8, 3)
    with pytest.raises(ValueError, match=r"query_codes is empty \(shape \(0, 2\)\)"):
        check_queries(np.zeros((0, 2), np.uint32), 33, 3, packed=True)
    with pytest.raises(ValueError, match=r"query_codes must be packed 33-bit codes.*\[n, 5\]"):
        check_queries(np.zeros((1, 4), np.uint8), 33, 3, packed=True)
    with pytest.raises(ValueError, match="query_codes has bits set beyond bit 33"):
        check_queries(np.full((1, 5), 255, np.uint8), 33, 3, packed=True)


# ----------------------------------------------------------------------------------------------
# The file.


@pytest.mark.parametrize("with_labels", [True, False])
def test_save_load_round_trip(tmp_path, with_labels):
    rng = np.random.default_rng(4)
    codes, ids, labels = make_data(rng)
    store = CodeStore(33)
    store.add(codes, ids=ids, labels=labels if with_labels else None)
    path = tmp_path / "store.npz"
    store.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.npz"]
    with np.load(path, allow_pickle=False) as archive:
        assert archive.files == ["format_version", "num_bits", "packed_codes", "ids"] + (
            ["labels"] if with_labels else [])
        assert archive["packed_codes"].dtype == np.uint32 and archive["ids"].dtype == np.int64
        assert int(archive["format_version"]) == 1 and int(archive["num_bits"]) == 33
    loaded = CodeStore.load(path)
    assert type(loaded) is CodeStore and loaded.num_bits == 33 and len(loaded) == 50
    np.testing.assert_array_equal(loaded.packed_codes, store.packed_codes)
    np.testing.assert_array_equal(loaded.ids, ids)
    if with_labels:
        np.testing.assert_array_equal(loaded.labels, labels)
    else:
        assert loaded.labels is None
    # A subclass loads the same file as itself.
    assert type(HammingIndex.load(path)) is HammingIndex


@pytest.mark.parametrize("with_labels", [True, False])
def test_load_mmap_maps_the_arrays_and_equals_a_normal_load(tmp_path, with_labels):
    rng = np.random.default_rng(8)
    codes, ids, labels = make_data(rng, num_bits=64)
    store = CodeStore(64)
    store.add(codes, ids=ids, labels=labels if with_labels else None)
    path = tmp_path / "store.npz"
    store.save(path)
    loaded, mapped = CodeStore.load(path), CodeStore.load(path, mmap=True)
    # Mapped, not read: the arrays are read-only views of the file.
    assert isinstance(mapped.packed_codes, np.memmap) and isinstance(mapped.ids, np.memmap)
    assert not mapped.packed_codes.flags.writeable and not mapped.ids.flags.writeable
    assert not isinstance(loaded.packed_codes, np.memmap)
    assert mapped.num_bits == 64 and len(mapped) == 50
    np.testing.assert_array_equal(mapped.packed_codes, loaded.packed_codes)
    np.testing.assert_array_equal(mapped.ids, loaded.ids)
    np.testing.assert_array_equal(mapped.codes(), codes)
    if with_labels:
        assert isinstance(mapped.labels, np.memmap)
        np.testing.assert_array_equal(mapped.labels, labels)
    else:
        assert mapped.labels is None

    # Saving over the mapped file replaces it whole: the mapped store still reads its codes.
    other = CodeStore(64)
    other.add(-codes[:3], labels=labels[:3] if with_labels else None)
    other.save(path)
    np.testing.assert_array_equal(mapped.packed_codes, loaded.packed_codes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.npz"]
    assert len(CodeStore.load(path, mmap=True)) == 3
    # Adding copies the mapped arrays into memory.
    mapped.add(codes[:2], ids=ids[:2], labels=labels[:2] if with_labels else None)
    assert len(mapped) == 52 and not isinstance(mapped.packed_codes, np.memmap)
    np.testing.assert_array_equal(mapped.packed_codes[50:], loaded.packed_codes[:2])
    np.testing.assert_array_equal(mapped.ids[:50], ids)


def test_load_mmap_reads_files_written_by_np_savez(tmp_path):
    # Files written before mmap existed (plain np.savez, any member order) map as well.
    arrays = valid_arrays()
    path = write_archive(tmp_path / "old.npz", ids=arrays.pop("ids"), **arrays)
    mapped = CodeStore.load(path, mmap=True)
    assert isinstance(mapped.packed_codes, np.memmap)
    np.testing.assert_array_equal(mapped.packed_codes, CodeStore.load(path).packed_codes)
    empty = CodeStore(16)
    empty.save(tmp_path / "empty.npz")
    assert len(CodeStore.load(tmp_path / "empty.npz", mmap=True)) == 0

    compressed = tmp_path / "compressed.npz"
    np.savez_compressed(compressed, **valid_arrays())
    assert len(CodeStore.load(compressed)) == 3
    with pytest.raises(ValueError, match="packed_codes.npy is compressed and cannot be "
                                         "memory-mapped; load with mmap=False"):
        CodeStore.load(compressed, mmap=True)
    pickled = write_archive(tmp_path / "pickled.npz", **dict(
        valid_arrays(), ids=np.array([{"a": 1}] * 3, dtype=object)))
    with pytest.raises(ValueError, match="ids.npy holds Python objects"):
        CodeStore.load(pickled, mmap=True)


def old_codes():
    """What the fixture files, written by the code of commit d0ccb76, hold."""
    codes = np.where((np.arange(6 * 33).reshape(6, 33) * 7) % 5 < 2, -1.0, 1.0)
    ids = np.array([70, 11, 5, 42, 8, 23])
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]]
    return codes, ids, labels


@pytest.mark.parametrize("mmap", [False, True])
def test_files_written_before_the_shared_store_still_load(tmp_path, mmap):
    codes, ids, labels = old_codes()
    flat_path = os.path.join(FIXTURES, "hamming_index_d0ccb76.npz")
    flat = HammingIndex.load(flat_path, mmap=mmap)
    assert flat.num_bits == 33 and isinstance(flat.packed_codes, np.memmap) == mmap
    np.testing.assert_array_equal(flat.codes(), codes)
    np.testing.assert_array_equal(flat.ids, ids)
    np.testing.assert_array_equal(flat.labels, labels)
    assert flat.search(codes[1:2], 1)[1].tolist() == [[11]]

    mih_path = os.path.join(FIXTURES, "multi_index_d0ccb76.npz")
    mih = MultiIndexHashing.load(mih_path, mmap=mmap)
    assert mih.num_tables == 3 and len(mih._tables) == 3 and mih.labels is None
    np.testing.assert_array_equal(mih.codes(), codes)
    np.testing.assert_array_equal(mih.ids, ids)
    # Rows 0 and 5 are the same code: both at distance 0, in insertion order.
    dist, found = mih.search(codes[:1], 2)
    assert dist.tolist() == [[0, 0]] and found.tolist() == [[70, 23]]
    # num_tables is not a HammingIndex key, as before.
    with pytest.raises(ValueError, match=r"not a HammingIndex file: .* found \[.*'num_tables'"):
        HammingIndex.load(mih_path)

    # Saved again, the files have the old keys, dtypes and values.
    for index, old_path in ((flat, flat_path), (mih, mih_path)):
        index.save(tmp_path / "again.npz")
        with np.load(old_path) as old, np.load(tmp_path / "again.npz") as new:
            assert new.files == old.files
            for key in old.files:
                assert new[key].dtype == old[key].dtype, key
                np.testing.assert_array_equal(new[key], old[key])


def test_load_refuses_foreign_and_corrupt_files(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"definitely not a zip archive")
    with pytest.raises(ValueError, match="garbage.npz is not a readable CodeStore file"):
        CodeStore.load(garbage)
    # The messages name the class the file was loaded as.
    with pytest.raises(ValueError, match="not a readable HammingIndex file"):
        HammingIndex.load(garbage)

    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ValueError, match="single .npy array"):
        CodeStore.load(single)

    pickled = write_archive(tmp_path / "pickled.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a readable CodeStore file"):
        CodeStore.load(pickled)
    with pytest.raises(ValueError, match="not a readable CodeStore file"):
        CodeStore.load(pickled, mmap=True)

    foreign = write_archive(tmp_path / "foreign.npz", weights=np.zeros(3))
    with pytest.raises(ValueError, match=r"not a CodeStore file: expected keys \['format_version'"
                                         r", 'ids', 'num_bits', 'packed_codes'\] \(and "
                                         r"optionally 'labels'\), found \['weights'\]"):
        CodeStore.load(foreign)
    with pytest.raises(ValueError, match=r"optionally 'labels', 'num_tables'\)"):
        MultiIndexHashing.load(foreign)

    corruptions = {
        "format_version 2 is not supported": ("format_version", np.asarray(2)),
        "format_version must be an integer scalar": ("format_version", np.asarray([1])),
        "num_bits must be an integer": ("num_bits", np.asarray(33.0)),
        "num_bits must be positive, got 0": ("num_bits", np.asarray(0)),
        "packed_codes must be uint32": ("packed_codes", np.zeros((3, 1), np.uint32)),
        "bits set beyond bit 33": ("packed_codes", np.full((3, 2), 2**31, np.uint32)),
        r"ids must be integer of shape \(3,\)": ("ids", np.arange(4)),
        r"ids must be integer .* got float64": ("ids", np.zeros(3)),
        "labels must be numeric": ("labels", np.zeros((2, 4))),
    }
    for message, (key, value) in corruptions.items():
        arrays = valid_arrays()
        arrays[key] = value
        path = write_archive(tmp_path / "corrupt.npz", **arrays)
        with pytest.raises(ValueError, match="corrupt.npz is a corrupt CodeStore file: .*"
                                             + message):
            CodeStore.load(path)


def test_docstring_examples():
    failures, _ = doctest.testmod(index_store, extraglobs={"np": np})
    assert failures == 0
