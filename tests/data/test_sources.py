"""Tests for dlhash_jax/data/sources.py: embedded digits, mosaics, tfds (mocked) and .npz files."""

import re

import numpy as np
import pytest
import tensorflow_datasets as tfds
from sklearn import datasets as sklearn_datasets

from dlhash_jax.data import protocols
from dlhash_jax.data import sources

DIGITS = sklearn_datasets.load_digits()


def _mock(num_examples):
    return tfds.testing.mock_data(
        num_examples=num_examples, policy=tfds.testing.MockPolicy.USE_CODE
    )


def test_load_digits_matches_sklearn():
    source = sources.load_digits()
    assert source.inputs.dtype == np.float32 and source.inputs.shape == (1797, 8, 8, 1)
    np.testing.assert_array_equal(source.inputs[..., 0], (DIGITS.images / 16).astype(np.float32))
    assert source.inputs.min() == 0.0 and source.inputs.max() == 1.0
    np.testing.assert_array_equal(source.labels, np.eye(10, dtype=np.float32)[DIGITS.target])
    assert source.fixed_splits == {}


def test_digits_mosaic_tiles_labels_and_determinism():
    inputs, labels, tiles = sources.digits_mosaic(40, seed=3)
    assert inputs.shape == (40, 16, 16, 1) and inputs.dtype == np.float32
    assert labels.shape == (40, 10) and labels.dtype == np.float32
    filled_counts = set()
    for i in range(40):
        expected_labels = set()
        for t in range(4):
            row, col = divmod(t, 2)
            tile = inputs[i, 8 * row : 8 * row + 8, 8 * col : 8 * col + 8, 0]
            if tiles[i, t] < 0:
                np.testing.assert_array_equal(tile, np.zeros((8, 8)))
            else:
                np.testing.assert_allclose(tile, DIGITS.images[tiles[i, t]] / 16, rtol=1e-6)
                expected_labels.add(int(DIGITS.target[tiles[i, t]]))
        filled_counts.add(int((tiles[i] >= 0).sum()))
        assert set(np.flatnonzero(labels[i])) == expected_labels
    assert filled_counts == {1, 2, 3, 4}
    again = sources.digits_mosaic(40, seed=3)
    np.testing.assert_array_equal(again[2], tiles)
    assert not np.array_equal(sources.digits_mosaic(40, seed=4)[2], tiles)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_digits_mosaic_refuses_bad_size(bad):
    message = re.escape(f"num_items must be a positive integer, got {bad!r}")
    with pytest.raises(ValueError, match=message):
        sources.digits_mosaic(bad, seed=0)


def test_mnist_protocol_under_mock_data(tmp_path):
    with _mock(100):
        data = protocols.load_protocol(
            "mnist", data_dir=tmp_path, query_size=20, train_size=30, validation_size=10
        )
        train_items = tfds.data_source("mnist", split="train", data_dir=tmp_path, download=False)
        test_items = tfds.data_source("mnist", split="test", data_dir=tmp_path, download=False)
        # Pooled order: tfds train items 0..99, then test items as 100..199.
        pooled = [train_items[i] for i in range(100)] + [test_items[i] for i in range(100)]
    assert data.sizes == {"query": 20, "train": 30, "validation": 10, "database": 180}
    assert data.input_shape == (28, 28, 1) and data.num_classes == 10
    for split in (data.query, data.database):
        assert split.inputs.dtype == np.float32 and split.labels.dtype == np.float32
    for row, source_index in enumerate(data.query.indices):
        example = pooled[source_index]
        np.testing.assert_allclose(data.query.inputs[row], example["image"] / 255.0, rtol=1e-6)
        expected = np.zeros(10, np.float32)
        expected[int(example["label"])] = 1.0
        np.testing.assert_array_equal(data.query.labels[row], expected)
    np.testing.assert_array_equal(data.query.labels.sum(axis=0), np.full(10, 2.0))
    np.testing.assert_array_equal(data.train.labels.sum(axis=0), np.full(10, 3.0))


def test_voc2007_protocol_under_mock_data(tmp_path):
    with _mock(12):
        data = protocols.load_protocol(
            "voc2007", data_dir=tmp_path, image_size=8, validation_size=4
        )
        test_items = tfds.data_source("voc/2007", split="test", data_dir=tmp_path, download=False)
        test_examples = [test_items[i] for i in range(12)]
    # Pooled order train (0..11), validation (12..23), test (24..35); query = test.
    np.testing.assert_array_equal(data.query.indices, np.arange(24, 36))
    np.testing.assert_array_equal(data.database.indices, np.arange(24))
    assert data.sizes == {"query": 12, "train": 20, "validation": 4, "database": 24}
    assert data.input_shape == (8, 8, 3) and data.num_classes == 20
    assert data.query.inputs.dtype == np.float32
    assert 0.0 <= data.query.inputs.min() and data.query.inputs.max() <= 1.0
    for row, example in enumerate(test_examples):
        assert set(np.flatnonzero(data.query.labels[row])) == set(example["labels"].tolist())


@pytest.mark.parametrize(
    "name, input_shape, num_classes",
    [
        ("fashion_mnist", (28, 28, 1), 10),
        ("cifar10", (32, 32, 3), 10),
        ("cifar100", (32, 32, 3), 100),
    ],
)
def test_other_tfds_sources_under_mock_data(tmp_path, name, input_shape, num_classes):
    with _mock(3):
        source = protocols.PROTOCOLS[name].load(tmp_path)
    assert source.inputs.shape == (6, *input_shape) and source.inputs.dtype == np.float32
    assert source.labels.shape == (6, num_classes)
    np.testing.assert_array_equal(source.labels.sum(axis=1), np.ones(6))


def _cifar10_variants(tmp_path, **sizes):
    # 200 mock images per tfds split: pooled train items 0..199, then test items 200..399.
    with _mock(200):
        return {
            name: protocols.load_protocol(name, data_dir=tmp_path, seed=3, **sizes)
            for name in ("cifar10", "cifar10-1")
        }


def test_cifar10_and_cifar10_1_draw_queries_from_the_test_images(tmp_path):
    data = _cifar10_variants(tmp_path, query_size=20, train_size=50, validation_size=10)
    standard, variant_1 = data["cifar10"], data["cifar10-1"]
    every = np.arange(400)
    for split in ("query", "train", "validation"):
        np.testing.assert_array_equal(getattr(standard, split).indices,
                                      getattr(variant_1, split).indices)
    query, train = standard.query.indices, standard.train.indices
    assert query.min() >= 200  # Test images only.
    # Stratified: 2 queries, 5 training and 1 validation item per class.
    np.testing.assert_array_equal(standard.query.labels.sum(axis=0), np.full(10, 2.0))
    np.testing.assert_array_equal(standard.train.labels.sum(axis=0), np.full(10, 5.0))
    np.testing.assert_array_equal(standard.validation.labels.sum(axis=0), np.full(10, 1.0))
    # cifar10: the database is every image neither query nor train; cifar10-1 keeps train in it.
    np.testing.assert_array_equal(standard.database.indices,
                                  np.setdiff1d(every, np.union1d(query, train)))
    np.testing.assert_array_equal(variant_1.database.indices, np.setdiff1d(every, query))
    assert standard.sizes == {"query": 20, "train": 50, "validation": 10, "database": 330}
    assert variant_1.sizes["database"] == 380
    assert np.isin(standard.validation.indices, standard.database.indices).all()
    assert not np.isin(standard.validation.indices, query).any()


def test_cifar10_2_is_the_tfds_test_and_train_splits(tmp_path):
    with _mock(200):
        data = protocols.load_protocol("cifar10-2", data_dir=tmp_path, seed=1, validation_size=10)
        published = protocols.load_protocol("cifar10-2", data_dir=tmp_path, validation_size=0)
    np.testing.assert_array_equal(data.query.indices, np.arange(200, 400))
    np.testing.assert_array_equal(data.database.indices, np.arange(200))
    np.testing.assert_array_equal(data.validation.labels.sum(axis=0), np.full(10, 1.0))
    np.testing.assert_array_equal(np.union1d(data.train.indices, data.validation.indices),
                                  np.arange(200))
    assert data.sizes == {"query": 200, "train": 190, "validation": 10, "database": 200}
    np.testing.assert_array_equal(published.train.indices, np.arange(200))
    with pytest.raises(ValueError, match=r"'cifar10-2' does not accept overrides \['query_size'\]"):
        protocols.load_protocol("cifar10-2", data_dir=tmp_path, query_size=10)


def test_cifar10_indices_round_trip_and_train_in_its_database_is_refused(tmp_path):
    standard = _cifar10_variants(tmp_path, query_size=20, train_size=50, validation_size=10)[
        "cifar10"]
    path = tmp_path / "splits.npz"
    standard.save_indices(path)
    with _mock(200):
        again = protocols.load_protocol_from_indices(path, data_dir=tmp_path)
    for split in ("query", "train", "validation", "database"):
        np.testing.assert_array_equal(getattr(again, split).inputs,
                                      getattr(standard, split).inputs)
    with np.load(path) as archive:
        arrays = dict(archive)
    arrays["database_indices"] = np.union1d(arrays["database_indices"], arrays["train_indices"])
    np.savez(path, **arrays)
    with _mock(200), pytest.raises(ValueError, match="train must lie outside the database; 50 of"):
        protocols.load_protocol_from_indices(path, data_dir=tmp_path)


def test_unprepared_tfds_dataset_says_how_to_prepare(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        protocols.load_protocol("cifar10", data_dir=tmp_path)
    message = str(info.value)
    assert "'cifar10' is not prepared" in message
    assert str(tmp_path) in message
    assert f"tfds build cifar10 --data_dir={tmp_path} --file_format=array_record" in message
    assert "pip install tensorflow importlib_resources" in message


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_load_features_single_and_multi_label(tmp_path):
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    source = sources.load_features(
        _write(tmp_path / "a.npz", x=x, y=np.array([2, 0, 2, 1]), num_classes=np.int64(4))
    )
    assert source.inputs.dtype == np.float32
    np.testing.assert_array_equal(source.inputs, x)
    np.testing.assert_array_equal(
        source.labels, [[0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0]]
    )
    multi = np.array([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]], np.uint8)
    source = sources.load_features(
        _write(tmp_path / "b.npz", x=x, y=multi, query_indices=np.array([3, 1]))
    )
    np.testing.assert_array_equal(source.labels, multi)
    np.testing.assert_array_equal(source.fixed_splits["query"], [3, 1])


_X = np.ones((3, 2))
_Y = np.zeros(3, int)


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": _X}, r"missing required keys \['y'\]"),
        ({"x": _X, "y": _Y, "labels": np.ones(3)}, r"unknown keys \['labels'\]"),
        (
            {"x": np.array([[0.0, np.nan], [1.0, 1.0]]), "y": np.zeros(2, int)},
            r"1 non-finite values .* index \(0, 1\)",
        ),
        ({"x": _X, "y": np.array([0, 1, -1])}, "negative class id -1"),
        (
            {"x": _X, "y": np.array([0, 1, 5]), "num_classes": np.int64(3)},
            r"class id 5, out of range for num_classes=3",
        ),
        ({"x": _X, "y": np.array([[0, 2], [1, 0], [0, 1]])}, "only 0 and 1"),
        ({"x": _X, "y": np.array([0.0, 1.0, 1.0])}, "integer class ids"),
        ({"x": _X, "y": np.zeros(4, int)}, r"same number of items .* \(3, 2\) and \(4,\)"),
        ({"x": np.ones(3), "y": _Y}, r"numeric \[N, \.\.\.\] array .* shape \(3,\)"),
        ({"x": _X, "y": _Y, "query_indices": np.array([0, 3])}, r"outside \[0, 3\)"),
        ({"x": _X, "y": _Y, "train_indices": np.array([0])}, "without 'query_indices'"),
    ],
)
def test_load_features_refuses_bad_files(tmp_path, arrays, message):
    path = _write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        sources.load_features(path)


def test_load_features_refuses_pickled_object_arrays(tmp_path):
    objects = np.array([{"a": 1}, None], dtype=object)
    path = _write(tmp_path / "pickled.npz", x=np.ones((2, 2)), y=objects)
    with pytest.raises(ValueError, match="not object arrays"):
        sources.load_features(path)


def test_load_features_cross_modal_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.random((6, 2, 2, 1))
    text = rng.integers(0, 2, (6, 4)).astype(np.uint8)
    y = np.array([0, 2, 1, 2, 0, 1])
    source = sources.load_features(
        _write(tmp_path / "pairs.npz", x_image=image, x_text=text, y=y,
               query_indices=np.array([5, 0]))
    )
    assert source.cross_modal and set(source.inputs) == {sources.IMAGE, sources.TEXT}
    assert len(source) == 6
    assert source.inputs["image"].dtype == source.inputs["text"].dtype == np.float32
    np.testing.assert_allclose(source.inputs["image"], image, rtol=1e-6)
    np.testing.assert_array_equal(source.inputs["text"], text)
    np.testing.assert_array_equal(source.labels, np.eye(3)[y])
    np.testing.assert_array_equal(source.fixed_splits["query"], [5, 0])
    assert not sources.load_features(_write(tmp_path / "one.npz", x=image, y=y)).cross_modal


_IMAGE = np.ones((3, 2, 2, 1))
_TEXT = np.ones((3, 4))


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": _X, "x_image": _IMAGE, "x_text": _TEXT, "y": _Y},
         r"holds 'x' and \['x_image', 'x_text'\]; give 'x' .* not both"),
        ({"x": _X, "x_text": _TEXT, "y": _Y}, r"holds 'x' and \['x_text'\]"),
        ({"x_image": _IMAGE, "y": _Y}, "holds 'x_image' without 'x_text'"),
        ({"x_text": _TEXT, "y": _Y}, "holds 'x_text' without 'x_image'"),
        ({"x_image": _IMAGE, "x_text": _TEXT}, r"missing required keys \['y'\]"),
        ({"y": _Y}, r"missing required keys \['x'\]"),
        ({"x_image": _IMAGE, "x_text": np.ones((4, 4)), "y": _Y},
         r"'x_text' and 'y' must have the same number of items .* \(4, 4\) and \(3,\)"),
        ({"x_image": np.ones((2, 2, 2, 1)), "x_text": _TEXT, "y": _Y},
         r"'x_image' and 'y' must have the same number of items"),
        ({"x_image": _IMAGE, "x_text": np.array([[0.0, 1, 1, 1], [1, 1, np.inf, 1], [1] * 4]),
          "y": _Y},
         r"'x_text' holds 1 non-finite values .* index \(1, 2\)"),
        ({"x_image": np.full((3, 2, 2, 1), np.nan), "x_text": _TEXT, "y": _Y},
         r"'x_image' holds 12 non-finite values"),
        ({"x_image": _IMAGE, "x_text": np.ones((3, 2, 2)), "y": _Y},
         r"'x_text' must be \[N, V\], one text vector per item, got shape \(3, 2, 2\)"),
        ({"x_image": _IMAGE, "x_text": np.array(["a", "b", "c"])[:, None], "y": _Y},
         r"'x_text' must be a numeric \[N, \.\.\.\] array .* dtype <U1"),
    ],
)
def test_load_features_refuses_bad_cross_modal_files(tmp_path, arrays, message):
    path = _write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message) as info:
        sources.load_features(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "inputs, message",
    [
        ({"image": _IMAGE, "words": _TEXT}, r"exactly the keys \['image', 'text'\], got "
                                            r"\['image', 'words'\]"),
        ({"image": _IMAGE, "text": np.ones((3, 2, 2))}, r"inputs\['text'\] must be \[N, V\]"),
        ({"image": np.ones((4, 2)), "text": _TEXT}, r"inputs\['image'\] has shape \(4, 2\), but the "
                                                   r"labels have 3 items"),
        (np.ones((2, 5)), r"inputs has shape \(2, 5\), but the labels have 3 items"),
    ],
)
def test_source_refuses_misaligned_inputs(inputs, message):
    with pytest.raises(ValueError, match=message):
        sources.Source(inputs, np.ones((3, 1), np.float32))
