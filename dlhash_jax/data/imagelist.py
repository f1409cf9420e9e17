"""List files of image datasets in the layout of the PyTorch deep-hashing toolboxes.

NUS-WIDE-21, MS-COCO and ImageNet-100 are distributed to deep-hashing users as a folder of images
plus three list files, ``train.txt``, ``test.txt`` and ``database.txt``. Each line names one
image by its path relative to the folder, followed by its label vector as 0/1 integers separated
by spaces, e.g. ``images/0001.jpg 0 1 0 0 1`` (a multi-hot row; a single-label dataset has one 1).
``test.txt`` holds the queries, ``database.txt`` the items searched, ``train.txt`` the training
items (in the toolboxes' lists a subset of the database).

:func:`read_image_list` parses one file and reports every bad line with the file name and line
number: a line without labels, a label count that differs from the file's first line, a label
that is not 0 or 1, a path listed twice, an image file that does not exist.
:func:`index_image_lists` puts the three lists in one ordering and enforces the rules between
them, again by file and line: no query in the database or in train, every training item in the
database with the same labels. Nothing is decoded here; the paths and labels are what the image
pipeline reads.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

import numpy as np

# The list files of a folder, by the protocol split each one defines.
LIST_FILES = {"train": "train.txt", "query": "test.txt", "database": "database.txt"}
# Bad lines named in one error; the message gives the total count too.
MAX_REPORTED_LINES = 20


@dataclasses.dataclass(frozen=True)
class ImageList:
    """The parsed lines of one list file.

    Attributes:
      root: the folder the paths are relative to.
      paths: ``[N]`` relative image paths, in the file's order.
      labels: float32 ``[N, C]`` 0/1 label rows.
      source: the list file they came from (for messages).
      lines: int64 ``[N]``, the line of ``source`` each path is on (1-based, for messages).
    """

    root: str
    paths: np.ndarray
    labels: np.ndarray
    source: str
    lines: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return self.labels.shape[1]

    def full_paths(self) -> list[str]:
        """The image paths joined to ``root``."""
        return [os.path.join(self.root, path) for path in self.paths]


def _parse_line(text: str) -> tuple[str, list[str]]:
    fields = text.split()
    return fields[0], fields[1:]


def read_image_list(
    path: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    num_classes: int | None = None,
    check_files: bool = True,
) -> ImageList:
    """Parses a list file: one ``<relative image path> <0/1> <0/1> ...`` line per image.

    Blank lines are skipped. Paths may not contain spaces (the toolboxes' lists have none).

    Args:
      path: the list file.
      root: the folder the image paths are relative to; default the list file's folder.
      num_classes: the expected label count; default that of the first line.
      check_files: whether every image file must exist under ``root``.

    Returns:
      An :class:`ImageList`.

    Raises:
      FileNotFoundError: if the list file does not exist.
      ValueError: if the file has no image line, or for bad lines, listed as
        ``<file>:<line>: <what is wrong>`` (the first ``MAX_REPORTED_LINES`` of them and the
        total count): no labels, a label count other than the expected one, a label not 0 or 1,
        a path already listed on an earlier line, a missing image file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Image list {path!r} does not exist.")
    root = os.path.dirname(os.path.abspath(path)) if root is None else os.fspath(root)
    paths, rows, line_numbers, problems, first_line = [], [], [], [], {}
    expected = num_classes
    origin = "" if num_classes is not None else " (the first line's count)"
    with open(path, encoding="utf-8") as file:
        for number, text in enumerate(file, start=1):
            if not text.strip():
                continue
            image, fields = _parse_line(text)
            where = f"{path}:{number}"
            if not fields:
                problems.append(f"{where}: {image!r} has no labels")
                continue
            if expected is None:
                expected = len(fields)
            if len(fields) != expected:
                problems.append(f"{where}: {len(fields)} labels, expected {expected}{origin}")
                continue
            bad = [value for value in fields if value not in ("0", "1")]
            if bad:
                problems.append(f"{where}: labels must be 0 or 1, got {bad[0]!r}")
                continue
            if image in first_line:
                problems.append(f"{where}: {image!r} already listed on line {first_line[image]}")
                continue
            first_line[image] = number
            if check_files and not os.path.isfile(os.path.join(root, image)):
                problems.append(f"{where}: image file {os.path.join(root, image)!r} not found")
                continue
            paths.append(image)
            rows.append([int(value) for value in fields])
            line_numbers.append(number)
    _raise_problems(problems, f"bad line(s) in image list {path!r}")
    if not paths:
        raise ValueError(f"Image list {path!r} holds no image line.")
    labels = np.asarray(rows, np.float32)
    return ImageList(root, np.asarray(paths), labels, path, np.asarray(line_numbers, np.int64))


def _raise_problems(problems: list[str], what: str) -> None:
    """One ValueError listing the first ``MAX_REPORTED_LINES`` problems and their count."""
    if not problems:
        return
    shown = "\n  ".join(problems[:MAX_REPORTED_LINES])
    more = len(problems) - MAX_REPORTED_LINES
    tail = f"\n  ... and {more} more" if more > 0 else ""
    raise ValueError(f"{len(problems)} {what}:\n  {shown}{tail}")


def read_image_lists(
    folder: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    check_files: bool = True,
) -> Mapping[str, ImageList]:
    """The three list files of ``folder``: ``{"train": ..., "query": ..., "database": ...}``.

    Args:
      folder: the folder holding ``train.txt``, ``test.txt`` and ``database.txt``.
      root: the folder the image paths are relative to; default ``folder`` (the toolboxes
        write their lists relative to a data root, which may be elsewhere).
      check_files: whether every image file must exist under ``root``.

    Raises:
      FileNotFoundError: if the folder or one of ``train.txt``, ``test.txt``,
        ``database.txt`` is missing (all missing ones are named).
      ValueError: for bad lines (see :func:`read_image_list`), or files whose label counts
        differ.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Image-list folder {folder!r} does not exist.")
    missing = [name for name in LIST_FILES.values()
               if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise FileNotFoundError(
            f"Image-list folder {folder!r} lacks {missing}; it needs {list(LIST_FILES.values())} "
            "(each line: <image path relative to the folder> <0/1 label> ...)."
        )
    root = folder if root is None else os.fspath(root)
    lists = {
        split: read_image_list(os.path.join(folder, name), root=root, check_files=check_files)
        for split, name in LIST_FILES.items()
    }
    counts = {lists[split].source: lists[split].num_classes for split in LIST_FILES}
    if len(set(counts.values())) > 1:
        raise ValueError(f"Image lists of {folder!r} disagree on the number of labels: {counts}.")
    return lists


def index_image_lists(
    lists: Mapping[str, ImageList],
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The items of a folder's three lists in one ordering, and the splits as indices into it.

    Item ``i`` is line ``i`` of ``database.txt`` for ``i < D`` (its image lines in file order)
    and line ``i - D`` of ``test.txt`` after; ``train.txt`` adds no item, since every training
    item must be a database item. Paths are compared as written.

    Args:
      lists: ``{"train", "query", "database"}`` -> :class:`ImageList`, as
        :func:`read_image_lists` returns them.

    Returns:
      ``(paths, labels, splits)``: ``[D + Q]`` relative paths, float32 ``[D + Q, C]`` labels,
      and ``{"query", "database", "train"}`` -> sorted int64 indices into them.

    Raises:
      ValueError: listing, as ``<file>:<line>: <what is wrong>``, every query also in
        ``database.txt`` or ``train.txt``, every training item missing from ``database.txt``,
        and every training item whose labels differ from its ``database.txt`` line.
    """
    database, query, train = lists["database"], lists["query"], lists["train"]
    database_rows = {path: row for row, path in enumerate(database.paths.tolist())}
    train_rows = {path: row for row, path in enumerate(train.paths.tolist())}
    problems = []
    for row, path in enumerate(query.paths.tolist()):
        where = f"{query.source}:{query.lines[row]}"
        if path in database_rows:
            line = database.lines[database_rows[path]]
            problems.append(
                f"{where}: query {path!r} is also in the database ({database.source}:{line}); "
                "a query must not be searched for itself"
            )
        if path in train_rows:
            line = train.lines[train_rows[path]]
            problems.append(
                f"{where}: query {path!r} is also a training item ({train.source}:{line})"
            )
    in_database = []
    for row, path in enumerate(train.paths.tolist()):
        where = f"{train.source}:{train.lines[row]}"
        if path not in database_rows:
            problems.append(
                f"{where}: training item {path!r} is not in {database.source}; every training "
                "item must be a database item"
            )
            continue
        database_row = database_rows[path]
        if not np.array_equal(train.labels[row], database.labels[database_row]):
            problems.append(
                f"{where}: the labels of {path!r} differ from those on "
                f"{database.source}:{database.lines[database_row]}"
            )
        in_database.append(database_row)
    _raise_problems(problems, "conflict(s) between the image lists")
    num_database = len(database)
    paths = np.concatenate([database.paths, query.paths])
    labels = np.concatenate([database.labels, query.labels])
    splits = {
        "query": np.arange(num_database, num_database + len(query), dtype=np.int64),
        "database": np.arange(num_database, dtype=np.int64),
        "train": np.sort(np.asarray(in_database, np.int64)),
    }
    return paths, labels, splits
