"""Tests for dlhash_jax/data/protocols.py: split counts, stratification, seeds, saved indices."""

import re

import numpy as np
import pytest
from sklearn import datasets as sklearn_datasets

from dlhash_jax.data import protocols
from dlhash_jax.data import sources

DIGITS = sklearn_datasets.load_digits()


@pytest.fixture(scope="module")
def digits():
    return protocols.load_protocol("digits")


def _assert_protocol_rules(data):
    query, train, validation, database = (
        set(data.query.indices), set(data.train.indices), set(data.validation.indices),
        set(data.database.indices),
    )
    assert query.isdisjoint(database)
    assert query | database == set(range(data.num_source_items))
    assert train <= database and validation <= database
    assert train.isdisjoint(validation)
    for split in (data.query, data.train, data.validation, data.database):
        assert np.all(np.diff(split.indices) > 0)
        assert split.indices.dtype == np.int64
        assert split.inputs.shape[0] == split.labels.shape[0] == len(split)


def test_digits_default_counts_stratification_and_content(digits):
    assert digits.name == "digits" and digits.seed == 0
    assert digits.sizes == {"query": 100, "train": 500, "validation": 100, "database": 1697}
    assert digits.num_classes == 10 and digits.input_shape == (8, 8, 1)
    _assert_protocol_rules(digits)
    for split, per_class in ((digits.query, 10), (digits.train, 50), (digits.validation, 10)):
        np.testing.assert_array_equal(
            np.bincount(DIGITS.target[split.indices], minlength=10), np.full(10, per_class)
        )
    np.testing.assert_array_equal(
        digits.database.inputs[..., 0], DIGITS.images[digits.database.indices] / 16
    )
    np.testing.assert_array_equal(
        digits.train.labels, np.eye(10, dtype=np.float32)[DIGITS.target[digits.train.indices]]
    )


def test_same_seed_same_indices_other_seed_different(digits):
    again = protocols.load_protocol("digits", seed=0)
    other = protocols.load_protocol("digits", seed=1)
    for name in ("query", "train", "validation", "database"):
        np.testing.assert_array_equal(getattr(again, name).indices, getattr(digits, name).indices)
    for name in ("query", "train", "validation"):
        assert not np.array_equal(getattr(other, name).indices, getattr(digits, name).indices)


def test_size_overrides_remainder_and_rest():
    data = protocols.load_protocol(
        "digits", seed=5, query_size=15, train_size=None, validation_size=0
    )
    # 15 over 10 classes: one each plus one more for classes 0-4.
    np.testing.assert_array_equal(
        np.bincount(DIGITS.target[data.query.indices], minlength=10), [2] * 5 + [1] * 5
    )
    assert data.sizes == {"query": 15, "train": 1782, "validation": 0, "database": 1782}
    np.testing.assert_array_equal(data.train.indices, data.database.indices)
    assert data.validation.inputs.shape == (0, 8, 8, 1)
    _assert_protocol_rules(data)


def test_digits_mosaic_protocol():
    data = protocols.load_protocol("digits_mosaic", seed=2)
    assert data.sizes == {"query": 200, "train": 1000, "validation": 200, "database": 1800}
    assert data.num_classes == 10 and data.input_shape == (16, 16, 1)
    _assert_protocol_rules(data)
    inputs, labels, _ = sources.digits_mosaic(2000, seed=0)
    np.testing.assert_array_equal(data.query.inputs, inputs[data.query.indices])
    np.testing.assert_array_equal(data.train.labels, labels[data.train.indices])
    assert (data.database.labels.sum(axis=1) >= 2).any()
    for split in (data.query, data.train, data.validation):
        assert (split.labels.sum(axis=0) > 0).all()


def test_saved_indices_reload_to_identical_arrays(tmp_path):
    data = protocols.load_protocol("digits_mosaic", seed=7, validation_size=50)
    path = tmp_path / "splits.npz"
    data.save_indices(path)
    with np.load(path, allow_pickle=False) as archive:
        np.testing.assert_array_equal(archive["query_indices"], data.query.indices)
    loaded = protocols.load_protocol_from_indices(path)
    assert (loaded.name, loaded.seed) == ("digits_mosaic", 7)
    assert dict(loaded.overrides) == {"validation_size": 50}
    for name in ("query", "train", "validation", "database"):
        for field in ("inputs", "labels", "indices"):
            np.testing.assert_array_equal(
                getattr(getattr(loaded, name), field), getattr(getattr(data, name), field)
            )


def test_saved_indices_that_break_the_rules_or_a_changed_source_are_refused(tmp_path, digits):
    path = tmp_path / "splits.npz"
    digits.save_indices(path)
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["train_indices"] = np.concatenate(
        [arrays["train_indices"][1:], arrays["query_indices"][:1]]
    )
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"train must lie inside the database; 1 of its 500"):
        protocols.load_protocol_from_indices(path)

    features = tmp_path / "f.npz"
    np.savez(features, x=np.ones((40, 2)), y=np.arange(40) % 4)
    data = protocols.load_protocol(
        f"features:{features}", query_size=4, train_size=8, validation_size=4
    )
    data.save_indices(path)
    np.savez(features, x=np.ones((40, 2)), y=np.arange(40) % 5)
    with pytest.raises(ValueError, match="changed since the indices were saved"):
        protocols.load_protocol_from_indices(path)
    np.savez(path, query_indices=np.arange(3))
    with pytest.raises(ValueError, match=r"missing keys \['format_version'"):
        protocols.load_protocol_from_indices(path)


def test_features_protocol_samples_or_uses_fixed_splits(tmp_path):
    path = tmp_path / "f.npz"
    y = np.arange(60) % 3
    np.savez(path, x=np.random.default_rng(0).normal(size=(60, 5)), y=y)
    data = protocols.load_protocol(
        f"features:{path}", seed=1, query_size=6, train_size=30, validation_size=9
    )
    assert data.sizes == {"query": 6, "train": 30, "validation": 9, "database": 54}
    np.testing.assert_array_equal(np.bincount(y[data.train.indices]), [10, 10, 10])
    _assert_protocol_rules(data)

    multi_hot = np.maximum(np.eye(3)[np.arange(10) % 3], np.eye(3)[np.arange(10) % 2])
    np.savez(
        path, x=np.ones((10, 2)), y=multi_hot,
        query_indices=np.array([0, 1]), train_indices=np.array([2, 3, 4]),
    )
    data = protocols.load_protocol(f"features:{path}", validation_size=2)
    np.testing.assert_array_equal(data.query.indices, [0, 1])
    np.testing.assert_array_equal(data.train.indices, [2, 3, 4])
    assert len(data.validation) == 2 and set(data.validation.indices) <= set(range(5, 10))
    fixed_message = r"fixes the splits \['query', 'train'\] itself, so \['query_size'\]"
    with pytest.raises(ValueError, match=fixed_message):
        protocols.load_protocol(f"features:{path}", query_size=2)

    np.savez(path, x=np.ones((10, 2)), y=np.arange(10) % 2,
             query_indices=np.array([0, 1]), train_indices=np.array([1, 2]))
    with pytest.raises(ValueError, match="train must lie inside the database"):
        protocols.load_protocol(f"features:{path}", validation_size=0)


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("imagenet", {},
         r"unknown protocol 'imagenet'; known protocols: digits, digits_mosaic, mnist, "
         r"fashion_mnist, cifar10, cifar100, voc2007, features:<path.npz>"),
        ("features:", {}, "names no file"),
        ("digits", {"num_query": 5},
         r"does not accept overrides \['num_query'\]; it accepts \['query_size'"),
        ("digits", {"image_size": 32}, r"does not accept overrides \['image_size'\]"),
        ("voc2007", {"query_size": 10}, r"does not accept overrides \['query_size'\]"),
        ("digits", {"seed": -1}, "seed must be an integer >= 0, got -1"),
        ("digits", {"seed": 1.5}, "seed must be an integer >= 0, got 1.5"),
        ("digits", {"query_size": 0}, "query_size must be an integer >= 1, got 0"),
        ("digits", {"validation_size": -2}, "validation_size must be an integer >= 0, got -2"),
        ("digits", {"query_size": 1800},
         r"needs query 1800 = 1800 items from the source but it has 1797"),
        ("digits", {"train_size": 1600, "validation_size": 100},
         r"needs validation 100 \+ train 1600 = 1700 items from the database but it has 1697"),
        ("digits", {"train_size": 1500, "validation_size": 150},
         r"class \d needs validation 15 \+ train 150 = 165 items but the database has "
         r"1[67]\d of that class"),
    ],
)
def test_bad_arguments_are_refused_with_numbers(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        protocols.load_protocol(name, **kwargs)


def test_split_repr_is_short(digits):
    expected = "Split(n=100, inputs=float32[100, 8, 8, 1], labels=float32[100, 10])"
    assert repr(digits.query) == expected
    assert re.search(r"query=Split\(n=100,", repr(digits))
