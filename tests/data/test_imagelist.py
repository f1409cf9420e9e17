"""Tests for dlhash_jax/data/imagelist.py: the toolboxes' train/test/database list files."""

import re

import numpy as np
import pytest

from dlhash_jax.data import imagelist


def _folder(tmp_path, lines_by_file, images=()):
    for name in images:
        image = tmp_path / name
        image.parent.mkdir(parents=True, exist_ok=True)
        image.write_bytes(b"not decoded here")
    for name, lines in lines_by_file.items():
        (tmp_path / name).write_text("".join(line + "\n" for line in lines))
    return tmp_path


def test_a_list_parses_to_paths_and_multi_hot_rows(tmp_path):
    _folder(tmp_path, {"train.txt": ["a/1.jpg 0 1 1", "", "a/2.jpg 1 0 0"]},
            images=["a/1.jpg", "a/2.jpg"])
    parsed = imagelist.read_image_list(tmp_path / "train.txt")
    assert parsed.paths.tolist() == ["a/1.jpg", "a/2.jpg"]
    np.testing.assert_array_equal(parsed.labels, [[0, 1, 1], [1, 0, 0]])
    assert parsed.labels.dtype == np.float32 and parsed.num_classes == 3 and len(parsed) == 2
    np.testing.assert_array_equal(parsed.lines, [1, 3])
    assert parsed.full_paths() == [str(tmp_path / "a/1.jpg"), str(tmp_path / "a/2.jpg")]


def test_every_bad_line_is_reported_with_file_and_line(tmp_path):
    lines = [
        "ok.jpg 0 1",           # line 1: sets the label count
        "nolabels.jpg",         # 2
        "three.jpg 0 1 1",      # 3
        "two.jpg 0 2",          # 4
        "ok.jpg 1 0",           # 5: duplicate of line 1
        "gone.jpg 1 0",         # 6: no such file
    ]
    _folder(tmp_path, {"list.txt": lines},
            images=["ok.jpg", "nolabels.jpg", "three.jpg", "two.jpg"])
    path = str(tmp_path / "list.txt")
    with pytest.raises(ValueError) as info:
        imagelist.read_image_list(path)
    message = str(info.value)
    assert message.startswith(f"5 bad line(s) in image list {path!r}:")
    assert f"{path}:2: 'nolabels.jpg' has no labels" in message
    assert f"{path}:3: 3 labels, expected 2 (the first line's count)" in message
    assert f"{path}:4: labels must be 0 or 1, got '2'" in message
    assert f"{path}:5: 'ok.jpg' already listed on line 1" in message
    assert f"{path}:6: image file {str(tmp_path / 'gone.jpg')!r} not found" in message
    # Without the file check the missing image passes; the others do not.
    with pytest.raises(ValueError, match=r"^4 bad line\(s\)"):
        imagelist.read_image_list(path, check_files=False)
    with pytest.raises(ValueError, match=re.escape(f"{path}:1: 2 labels, expected 3\n")):
        imagelist.read_image_list(path, num_classes=3, check_files=False)


def test_long_reports_are_cut_with_a_count(tmp_path):
    lines = ["x.jpg 0 1"] + [f"y{i}.jpg 0 1 1" for i in range(30)]
    _folder(tmp_path, {"list.txt": lines})
    with pytest.raises(ValueError) as info:
        imagelist.read_image_list(tmp_path / "list.txt", check_files=False)
    message = str(info.value)
    assert message.startswith("30 bad line(s)")
    assert message.count("labels, expected 2") == imagelist.MAX_REPORTED_LINES
    assert message.endswith("... and 10 more")


def test_empty_or_missing_lists_are_refused(tmp_path):
    _folder(tmp_path, {"empty.txt": ["", "  "]})
    with pytest.raises(ValueError, match="holds no image line"):
        imagelist.read_image_list(tmp_path / "empty.txt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        imagelist.read_image_list(tmp_path / "absent.txt")


def test_a_folder_gives_the_three_splits(tmp_path):
    _folder(tmp_path, {"train.txt": ["t.jpg 1 0"], "test.txt": ["q.jpg 0 1"],
                       "database.txt": ["t.jpg 1 0", "d.jpg 1 1"]},
            images=["t.jpg", "q.jpg", "d.jpg"])
    lists = imagelist.read_image_lists(tmp_path)
    assert {split: lists[split].paths.tolist() for split in lists} == {
        "train": ["t.jpg"], "query": ["q.jpg"], "database": ["t.jpg", "d.jpg"]}
    assert all(parsed.root == str(tmp_path) for parsed in lists.values())


def test_a_folder_missing_lists_or_disagreeing_on_labels_is_refused(tmp_path):
    _folder(tmp_path, {"train.txt": ["t.jpg 1 0"]}, images=["t.jpg", "q.jpg"])
    with pytest.raises(FileNotFoundError, match=r"lacks \['test.txt', 'database.txt'\]"):
        imagelist.read_image_lists(tmp_path)
    _folder(tmp_path, {"test.txt": ["q.jpg 0 1 0"], "database.txt": ["t.jpg 1 0"]})
    with pytest.raises(ValueError, match="disagree on the number of labels"):
        imagelist.read_image_lists(tmp_path)
    with pytest.raises(FileNotFoundError, match="folder .* does not exist"):
        imagelist.read_image_lists(tmp_path / "nowhere")


def test_the_lists_are_indexed_database_first_then_queries(tmp_path):
    _folder(tmp_path, {"train.txt": ["d2.jpg 0 1", "d0.jpg 1 0"],
                       "test.txt": ["q0.jpg 1 1", "q1.jpg 0 1"],
                       "database.txt": ["d0.jpg 1 0", "d1.jpg 1 1", "d2.jpg 0 1"]},
            images=["d0.jpg", "d1.jpg", "d2.jpg", "q0.jpg", "q1.jpg"])
    paths, labels, splits = imagelist.index_image_lists(imagelist.read_image_lists(tmp_path))
    assert paths.tolist() == ["d0.jpg", "d1.jpg", "d2.jpg", "q0.jpg", "q1.jpg"]
    np.testing.assert_array_equal(labels, [[1, 0], [1, 1], [0, 1], [1, 1], [0, 1]])
    assert {split: rows.tolist() for split, rows in splits.items()} == {
        "query": [3, 4], "database": [0, 1, 2], "train": [0, 2]}


def test_conflicts_between_the_lists_name_both_lines(tmp_path):
    _folder(tmp_path, {"train.txt": ["d0.jpg 0 1", "x.jpg 1 0", "q0.jpg 1 1"],
                       "test.txt": ["q0.jpg 1 1"],
                       "database.txt": ["d0.jpg 1 0", "q0.jpg 1 1"]},
            images=["d0.jpg", "x.jpg", "q0.jpg"])
    train, test, database = (str(tmp_path / name) for name in
                             ("train.txt", "test.txt", "database.txt"))
    with pytest.raises(ValueError) as info:
        imagelist.index_image_lists(imagelist.read_image_lists(tmp_path))
    assert str(info.value).split("\n") == [
        "4 conflict(s) between the image lists:",
        f"  {test}:1: query 'q0.jpg' is also in the database ({database}:2); a query must not "
        "be searched for itself",
        f"  {test}:1: query 'q0.jpg' is also a training item ({train}:3)",
        f"  {train}:1: the labels of 'd0.jpg' differ from those on {database}:1",
        f"  {train}:2: training item 'x.jpg' is not in {database}; every training item must be "
        "a database item",
    ]
