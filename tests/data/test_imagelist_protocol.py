"""Tests for the ``imagelist:<folder>`` protocol (dlhash_jax/data/imagelist_protocol.py, loaded
through dlhash_jax/data/protocols.py).

Each test writes a folder of tiny PNGs and the toolboxes' three list files; the default layout
has 60 images: the 10 queries of ``test.txt``, the 50 database items of ``database.txt``, of
which the first 30 are ``train.txt``.
"""

import os
import re

import numpy as np
import pytest
from PIL import Image

from dlhash_jax import train
from dlhash_jax.data import image_pipeline
from dlhash_jax.data import imagelist_protocol
from dlhash_jax.data import protocols
from experiments.configs import base

NUM_IMAGES = 60
QUERIES = range(0, 10)
DATABASE = range(10, 60)
TRAIN = range(10, 40)


def _labels(num_classes, *, single_label=False, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.zeros((NUM_IMAGES, num_classes), np.int64)
    if not single_label:
        labels = (rng.random((NUM_IMAGES, num_classes)) < 0.2).astype(np.int64)
    labels[np.arange(NUM_IMAGES), np.arange(NUM_IMAGES) % num_classes] = 1
    return labels


def _line(i, labels):
    return f"img/{i:02d}.png " + " ".join(str(v) for v in labels[i])


def _write_lists(folder, labels, lists=None):
    lists = lists or {
        "test.txt": [_line(i, labels) for i in QUERIES],
        "database.txt": [_line(i, labels) for i in DATABASE],
        "train.txt": [_line(i, labels) for i in TRAIN],
    }
    for name, lines in lists.items():
        (folder / name).write_text("".join(line + "\n" for line in lines))
    return lists


def _make_folder(path, num_classes=21, *, single_label=False, images=True):
    """Writes 60 8x8 RGB PNGs (image i has the colour (i, 2i, 3i)) and the default lists."""
    path.mkdir(exist_ok=True)
    labels = _labels(num_classes, single_label=single_label)
    if images:
        (path / "img").mkdir(exist_ok=True)
        for i in range(NUM_IMAGES):
            pixels = np.full((8, 8, 3), (i, 2 * i, 3 * i), np.uint8)
            Image.fromarray(pixels).save(path / "img" / f"{i:02d}.png")
    _write_lists(path, labels)
    return path, labels


def _name(folder):
    return f"{protocols.IMAGELIST_PREFIX}{folder}"


def test_splits_follow_the_lists_in_one_documented_ordering(tmp_path):
    folder, labels = _make_folder(tmp_path / "lists")
    data = protocols.load_protocol(_name(folder), validation_size=5)
    assert data.sizes == {"query": 10, "train": 30, "validation": 5, "database": 50}
    assert data.num_classes == 21 and data.input_shape == (224, 224, 3)
    assert data.num_source_items == 60
    # Source item i: database.txt's line i for i < 50, then test.txt's line i - 50.
    np.testing.assert_array_equal(data.database.indices, np.arange(50))
    np.testing.assert_array_equal(data.query.indices, np.arange(50, 60))
    np.testing.assert_array_equal(data.train.indices, np.arange(30))
    np.testing.assert_array_equal(data.query.labels, labels[list(QUERIES)])
    np.testing.assert_array_equal(data.database.labels, labels[list(DATABASE)])
    np.testing.assert_array_equal(data.train.labels, labels[list(TRAIN)])
    assert data.train.labels.dtype == np.float32
    for split in (data.query, data.train, data.validation, data.database):
        assert isinstance(split.inputs, image_pipeline.ImageSource)
        assert len(split.inputs) == len(split) and split.inputs.shape[1:] == (224, 224, 3)
    # Rows of each split's source are that split's images; the eval transform of an 8x8
    # uniform image is that colour everywhere.
    assert data.query.inputs.raw(3)[0, 0].tolist() == [3, 6, 9]
    validation_image = int(data.validation.indices[0]) + 10
    assert data.validation.inputs.raw(0)[0, 0].tolist() == [validation_image * k for k in (1, 2, 3)]
    decoded = data.train.inputs[np.array([1])]
    assert decoded.shape == (1, 224, 224, 3) and decoded.dtype == np.float32
    np.testing.assert_allclose(decoded[0, 100, 100], np.array([11, 22, 33]) / 255, rtol=1e-6)


def test_validation_is_drawn_from_the_database_outside_train_never_a_query(tmp_path):
    folder, _ = _make_folder(tmp_path / "lists")
    for size in (0, 7, 20):
        data = protocols.load_protocol(_name(folder), validation_size=size)
        query, train_set, validation, database = (
            set(getattr(data, split).indices.tolist())
            for split in ("query", "train", "validation", "database")
        )
        assert len(validation) == size
        assert validation <= database - train_set and train_set <= database
        assert query.isdisjoint(database | train_set | validation)
    too_many = r"validation 21 = 21 items from the database but it has 20"
    with pytest.raises(ValueError, match=too_many):
        protocols.load_protocol(_name(folder), validation_size=21)


def test_default_validation_is_capped_by_what_the_database_holds(tmp_path):
    # 20 database items are outside train, fewer than the default 1,000: validation takes them
    # all, whatever the seed.
    folder, _ = _make_folder(tmp_path / "lists")
    for seed in (0, 3):
        data = protocols.load_protocol(_name(folder), seed=seed)
        np.testing.assert_array_equal(data.validation.indices, np.arange(30, 50))
    assert imagelist_protocol.VALIDATION_SIZE == 1000


def test_the_seed_draws_the_validation_only(tmp_path):
    folder, _ = _make_folder(tmp_path / "lists")
    first, again, other = (
        protocols.load_protocol(_name(folder), seed=seed, validation_size=6) for seed in (0, 0, 1)
    )
    np.testing.assert_array_equal(first.validation.indices, again.validation.indices)
    assert not np.array_equal(first.validation.indices, other.validation.indices)
    for split in ("query", "train", "database"):
        np.testing.assert_array_equal(
            getattr(first, split).indices, getattr(other, split).indices
        )


def test_single_label_lists_draw_a_stratified_validation(tmp_path):
    folder, _ = _make_folder(tmp_path / "lists", num_classes=4, single_label=True)
    data = protocols.load_protocol(_name(folder), validation_size=8)
    np.testing.assert_array_equal(data.validation.labels.sum(axis=0), [2, 2, 2, 2])


def test_saved_indices_reload_and_renamed_images_are_refused(tmp_path):
    folder, labels = _make_folder(tmp_path / "lists")
    data = protocols.load_protocol(_name(folder), seed=2, validation_size=4, crop=200)
    data.save_indices(tmp_path / "splits.npz")
    again = protocols.load_protocol_from_indices(tmp_path / "splits.npz")
    assert again.overrides == {"validation_size": 4, "crop": 200}
    assert again.input_shape == (200, 200, 3)
    for split in ("query", "train", "validation", "database"):
        np.testing.assert_array_equal(getattr(again, split).indices, getattr(data, split).indices)
    # Same labels, another file name: the paths are part of the source's fingerprint.
    os.rename(folder / "img" / "45.png", folder / "img" / "x45.png")
    lists = _write_lists(folder, labels)
    lists["database.txt"][35] = lists["database.txt"][35].replace("img/45.png", "img/x45.png")
    _write_lists(folder, labels, lists)
    with pytest.raises(ValueError, match="changed since the indices were saved"):
        protocols.load_protocol_from_indices(tmp_path / "splits.npz")


def test_images_may_live_under_another_root(tmp_path):
    images, labels = _make_folder(tmp_path / "data")
    lists = tmp_path / "lists"
    lists.mkdir()
    _write_lists(lists, labels)
    with pytest.raises(ValueError, match=r"train.txt:1: image file .*lists/img/10.png. not found"):
        protocols.load_protocol(_name(lists))
    data = protocols.load_protocol(_name(lists), image_root=str(images), validation_size=2)
    assert data.query.inputs.raw(0)[0, 0].tolist() == [0, 0, 0]


@pytest.mark.parametrize(
    "num_classes, dataset, topk",
    [(21, "nuswide21", 5000), (80, "coco", 5000), (100, "imagenet100", 1000), (7, None, None)],
)
def test_published_topk_from_the_dataset_or_its_label_count(tmp_path, num_classes, dataset, topk):
    # Only test.txt is read to infer the dataset, so no image is needed.
    folder, _ = _make_folder(tmp_path / "lists", num_classes, images=False)
    expected = () if topk is None else (topk,)
    assert imagelist_protocol.imagelist_dataset(folder) == dataset
    assert protocols.published_topk(_name(folder)) == expected
    assert protocols.published_topk(_name(folder), topk=123) == (123,)
    if dataset is not None:
        assert protocols.published_topk(_name(folder), dataset=dataset) == expected
        assert imagelist_protocol.IMAGELIST_DATASETS[dataset].num_classes == num_classes
    # The experiment configs report that cutoff unless a layer of theirs sets one.
    config = base.get_config(_name(folder), method="dpsh")
    assert tuple(config.evaluation.topk) == expected
    train.validate_config(config)
    config = base.get_config(
        _name(folder), method="dpsh", settings={"*": {"evaluation.topk": (10,)}}
    )
    assert tuple(config.evaluation.topk) == (10,)


def test_published_topk_of_the_named_protocols():
    for name in ("cifar10", "cifar10-1", "cifar10-2"):
        assert protocols.published_topk(name) == ()
        assert tuple(base.get_config(name, method="dpsh").evaluation.topk) == ()
    assert protocols.published_topk("digits") is None
    assert protocols.published_topk("features:/any.npz") is None
    assert tuple(base.get_config("digits", method="dpsh").evaluation.topk) == (1000,)


def test_a_dataset_whose_label_count_differs_is_refused(tmp_path):
    folder, _ = _make_folder(tmp_path / "lists", 21)
    message = r"dataset='coco' \(MS-COCO\) has 80 labels, but the lines of .*test.txt' have 21"
    with pytest.raises(ValueError, match=message):
        protocols.load_protocol(_name(folder), dataset="coco")
    with pytest.raises(ValueError, match=message):
        protocols.published_topk(_name(folder), dataset="coco")
    with pytest.raises(ValueError, match=r"dataset must be one of .* got 'cifar'"):
        protocols.load_protocol(_name(folder), dataset="cifar")


def _refused(folder, lists_by_file, *expected):
    """Writes the lists and checks that loading them fails naming each of ``expected``."""
    _write_lists(folder, None, lists_by_file)
    with pytest.raises(ValueError) as info:
        protocols.load_protocol(_name(folder))
    message = str(info.value)
    for text in expected:
        assert text in message, message


def test_bad_lines_are_refused_with_file_and_line(tmp_path):
    folder, labels = _make_folder(tmp_path / "lists")
    test, database, train_list = (str(folder / name) for name in
                                  ("test.txt", "database.txt", "train.txt"))
    good = _write_lists(folder, labels)

    def lists_with(name, index, line):
        changed = {key: list(lines) for key, lines in good.items()}
        changed[name][index] = line
        return changed

    missing = str(folder / "img" / "99.png")
    _refused(folder, lists_with("database.txt", 4, "img/99.png " + "0 " * 20 + "1"),
             f"{database}:5: image file {missing!r} not found")
    _refused(folder, lists_with("test.txt", 2, "img/02.png 0 1"),
             f"{test}:3: 2 labels, expected 21 (the first line's count)")
    _refused(folder, lists_with("train.txt", 6, "img/16.png " + "0 " * 20 + "2"),
             f"{train_list}:7: labels must be 0 or 1, got '2'")
    _refused(folder, lists_with("database.txt", 9, good["database.txt"][3]),
             f"{database}:10: 'img/13.png' already listed on line 4")


def test_lists_that_break_the_protocol_rules_are_refused_with_file_and_line(tmp_path):
    folder, labels = _make_folder(tmp_path / "lists")
    test, database, train_list = (str(folder / name) for name in
                                  ("test.txt", "database.txt", "train.txt"))
    good = _write_lists(folder, labels)
    queries_in_database = {**good, "database.txt": good["database.txt"] + [_line(4, labels)]}
    _refused(folder, queries_in_database,
             f"{test}:5: query 'img/04.png' is also in the database ({database}:51)")
    queries_in_train = {**good, "train.txt": good["train.txt"] + [_line(0, labels)]}
    _refused(folder, queries_in_train,
             f"{test}:1: query 'img/00.png' is also a training item ({train_list}:31)",
             f"{train_list}:31: training item 'img/00.png' is not in {database}")
    outside = {**good, "database.txt": good["database.txt"][1:]}
    _refused(folder, outside,
             f"{train_list}:1: training item 'img/10.png' is not in {database}; every training "
             "item must be a database item")
    relabelled = {key: list(lines) for key, lines in good.items()}
    flipped = labels[12].copy()
    flipped[0] = 1 - flipped[0]
    relabelled["train.txt"][2] = "img/12.png " + " ".join(str(v) for v in flipped)
    _refused(folder, relabelled,
             f"{train_list}:3: the labels of 'img/12.png' differ from those on {database}:3")


def test_missing_lists_and_bad_options_are_refused(tmp_path):
    folder, _ = _make_folder(tmp_path / "lists")
    with pytest.raises(ValueError, match="names no folder; write it as 'imagelist:<folder>'"):
        protocols.load_protocol("imagelist:")
    with pytest.raises(FileNotFoundError, match="folder .*nowhere' does not exist"):
        protocols.load_protocol(_name(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="folder .*nowhere' does not exist"):
        protocols.published_topk(_name(tmp_path / "nowhere"))
    # A config may be built where the lists are not; it keeps the library's cutoff.
    config = base.get_config(_name(tmp_path / "nowhere"), method="dpsh")
    assert tuple(config.evaluation.topk) == tuple(train.default_config().evaluation.topk)
    os.remove(folder / "train.txt")
    with pytest.raises(FileNotFoundError, match=re.escape("lacks ['train.txt']")):
        protocols.load_protocol(_name(folder))
    for overrides, message in [
        ({"query_size": 5}, r"does not accept overrides \['query_size'\]; it accepts "
                            r"\['validation_size', 'image_root', 'dataset', 'topk', 'resize', "
                            r"'crop'\]"),
        ({"topk": 0}, "topk must be an integer >= 1 or None, got 0"),
        ({"crop": 0}, "crop must be an integer >= 1, got 0"),
        ({"image_root": ""}, "image_root must be a non-empty string or None, got ''"),
        ({"validation_size": -1}, "validation_size must be an integer >= 0, got -1"),
    ]:
        with pytest.raises(ValueError, match=message):
            protocols.load_protocol(_name(folder), **overrides)


def test_run_configs_accept_image_list_protocols():
    config = train.default_config()
    config.protocol = "imagelist:/data/coco"
    train.validate_config(config)
    config.protocol = "imagelists:/data/coco"
    with pytest.raises(ValueError, match=r"known protocols: .*features:<path.npz>, "
                                         r"imagelist:<folder>"):
        train.validate_config(config)
