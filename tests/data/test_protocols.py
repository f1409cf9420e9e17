"""Tests for dlhash_jax/data/protocols.py: split counts, stratification, seeds, saved indices."""

import re

import jax
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
        for leaf in jax.tree.leaves(split.inputs):
            assert leaf.shape[0] == split.labels.shape[0] == len(split)


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
         r"unknown protocol 'imagenet'; known protocols: digits, mnist5k, digits_mosaic, "
         r"digits_mosaic_tags, mnist, "
         r"fashion_mnist, cifar10, cifar10-1, cifar10-2, cifar100, voc2007, "
         r"features:<path.npz>, imagelist:<folder>"),
        ("features:", {}, "names no file"),
        ("digits", {"num_query": 5},
         r"does not accept overrides \['num_query'\]; it accepts \['query_size'"),
        ("digits", {"image_size": 32}, r"does not accept overrides \['image_size'\]"),
        ("voc2007", {"query_size": 10}, r"does not accept overrides \['query_size'\]"),
        ("digits_mosaic", {"tag_drop_rate": 0.1},
         r"does not accept overrides \['tag_drop_rate'\]"),
        ("digits_mosaic_tags", {"tag_drop_rate": 1.5},
         r"tag_drop_rate must be a probability, a number in \[0, 1\], got 1.5"),
        ("digits_mosaic_tags", {"tag_spurious_rate": -0.5}, r"tag_spurious_rate must be .* -0.5"),
        ("digits_mosaic_tags", {"tag_spurious_rate": None}, r"tag_spurious_rate must be .* None"),
        ("voc2007", {"image_size": 0}, "image_size must be an integer >= 1, got 0"),
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


def _mosaic_implied_tags(labels):
    # The documented table, written out: class c implies its word (column c), its numeral
    # (column 10 + c) and its stroke shape (columns 20-22).
    shape_column = {c: 20 + ["loop", "straight", "curve"].index(shape)
                    for shape, classes in sources.TAG_SHAPES.items() for c in classes}
    implied = np.zeros((labels.shape[0], 80), np.float32)
    for row, classes in enumerate(labels):
        for c in np.flatnonzero(classes):
            implied[row, [c, 10 + c, shape_column[c]]] = 1.0
    return implied


def test_digits_mosaic_tags_is_digits_mosaic_plus_text():
    tags = protocols.load_protocol("digits_mosaic_tags", seed=4)
    plain = protocols.load_protocol("digits_mosaic", seed=4)
    assert tags.cross_modal and not plain.cross_modal
    assert tags.input_shape == {protocols.IMAGE: (16, 16, 1), protocols.TEXT: (80,)}
    assert protocols.IMAGE == "image" and protocols.TEXT == "text"
    assert tags.sizes == plain.sizes and tags.num_classes == 10
    _assert_protocol_rules(tags)
    _, labels, _ = sources.digits_mosaic(2000, seed=0)
    text = sources.tags_from_labels(labels, seed=protocols.MOSAIC_TAG_SEED)
    for name in ("query", "train", "validation", "database"):
        split, reference = getattr(tags, name), getattr(plain, name)
        assert set(split.inputs) == {"image", "text"}
        np.testing.assert_array_equal(split.indices, reference.indices)
        np.testing.assert_array_equal(split.labels, reference.labels)
        np.testing.assert_array_equal(split.inputs["image"], reference.inputs)
        np.testing.assert_array_equal(split.inputs["text"], text[split.indices])
        assert split.inputs["text"].dtype == np.float32
        assert split.inputs["text"].shape == (len(split), 80)
    # Noisy but informative: far more tags agree with the labels than not.
    implied = _mosaic_implied_tags(tags.database.labels)
    assert 0.75 < tags.database.inputs["text"][implied == 1].mean() < 0.85
    assert 0.017 < tags.database.inputs["text"][implied == 0].mean() < 0.023
    assert repr(tags.query) == (
        "Split(n=200, inputs={image: float32[200, 16, 16, 1], text: float32[200, 80]}, "
        "labels=float32[200, 10])"
    )


def test_digits_mosaic_tags_default_counts_are_the_documented_ones():
    # README, digits_mosaic_tags: the per-mosaic tag counts over all 2,000 mosaics.
    tags = protocols.load_protocol("digits_mosaic_tags")
    text = np.concatenate([tags.query.inputs["text"], tags.database.inputs["text"]]) == 1
    implied = _mosaic_implied_tags(
        np.concatenate([tags.query.labels, tags.database.labels])) == 1
    assert text.shape == (2000, 80)
    assert implied.sum() == 12947 and text.sum() == 13322  # Means 6.4735 and 6.661.
    assert (text & implied).sum() == 10357 and (text & ~implied).sum() == 2965  # 5.18, 1.48.
    kept_none = (text & implied).sum(axis=1) == 0
    assert kept_none.sum() == 6 and (implied[kept_none].sum(axis=1) == 3).all()
    assert text.any(axis=1).all()  # Each of the 6 got a spurious tag.


def test_digits_mosaic_tags_overrides_change_the_noise():
    clean = protocols.load_protocol(
        "digits_mosaic_tags", seed=1, tag_drop_rate=0, tag_spurious_rate=0.0
    )
    for name in ("query", "train"):
        split = getattr(clean, name)
        np.testing.assert_array_equal(split.inputs["text"], _mosaic_implied_tags(split.labels))
    empty = protocols.load_protocol("digits_mosaic_tags", seed=1, tag_drop_rate=1.0,
                                    tag_spurious_rate=0.0)
    assert not empty.train.inputs["text"].any()
    noisier = protocols.load_protocol("digits_mosaic_tags", seed=1, tag_spurious_rate=0.5)
    default = protocols.load_protocol("digits_mosaic_tags", seed=1)
    np.testing.assert_array_equal(noisier.train.indices, default.train.indices)
    implied = _mosaic_implied_tags(noisier.train.labels) == 1
    assert 0.45 < noisier.train.inputs["text"][~implied].mean() < 0.55
    assert not np.array_equal(noisier.train.inputs["text"], default.train.inputs["text"])
    assert dict(noisier.overrides) == {"tag_spurious_rate": 0.5}


def test_digits_mosaic_tags_saved_indices_round_trip(tmp_path, monkeypatch):
    data = protocols.load_protocol(
        "digits_mosaic_tags", seed=3, validation_size=20, tag_drop_rate=np.float32(0.5)
    )
    assert dict(data.overrides) == {"validation_size": 20, "tag_drop_rate": 0.5}
    path = tmp_path / "splits.npz"
    data.save_indices(path)
    loaded = protocols.load_protocol_from_indices(path)
    assert loaded.cross_modal and loaded.input_shape == data.input_shape
    assert (loaded.name, loaded.seed, dict(loaded.overrides)) == (
        "digits_mosaic_tags", 3, {"validation_size": 20, "tag_drop_rate": 0.5}
    )
    for name in ("query", "train", "validation", "database"):
        split, saved = getattr(loaded, name), getattr(data, name)
        np.testing.assert_array_equal(split.indices, saved.indices)
        np.testing.assert_array_equal(split.labels, saved.labels)
        for key in ("image", "text"):
            np.testing.assert_array_equal(split.inputs[key], saved.inputs[key])
    # The fingerprint covers the text, so a changed tag generator is refused.
    real = sources.tags_from_labels
    monkeypatch.setattr(
        sources, "tags_from_labels", lambda labels, **kwargs: 1.0 - real(labels, **kwargs)
    )
    with pytest.raises(ValueError, match="changed since the indices were saved"):
        protocols.load_protocol_from_indices(path)


def test_features_protocol_with_two_modalities(tmp_path):
    rng = np.random.default_rng(0)
    image, text = rng.random((30, 4, 4, 3)), rng.random((30, 7))
    labels = (rng.random((30, 5)) < 0.4).astype(np.int64)
    path = tmp_path / "pairs.npz"
    np.savez(path, x_image=image, x_text=text, y=labels)
    data = protocols.load_protocol(
        f"features:{path}", seed=2, query_size=5, train_size=15, validation_size=4
    )
    assert data.cross_modal and data.input_shape == {"image": (4, 4, 3), "text": (7,)}
    _assert_protocol_rules(data)
    for split in (data.query, data.train, data.validation, data.database):
        np.testing.assert_allclose(split.inputs["image"], image[split.indices], rtol=1e-6)
        np.testing.assert_allclose(split.inputs["text"], text[split.indices], rtol=1e-6)
        np.testing.assert_array_equal(split.labels, labels[split.indices])
    saved = tmp_path / "splits.npz"
    data.save_indices(saved)
    loaded = protocols.load_protocol_from_indices(saved)
    np.testing.assert_array_equal(loaded.train.inputs["text"], data.train.inputs["text"])
    np.savez(path, x_image=image, x_text=text[:, ::-1], y=labels)
    with pytest.raises(ValueError, match="changed since the indices were saved"):
        protocols.load_protocol_from_indices(saved)
