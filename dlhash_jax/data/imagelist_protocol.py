"""The ``imagelist:<folder>`` protocol: the benchmarks distributed as image lists.

NUS-WIDE-21, MS-COCO and ImageNet-100 reach deep-hashing users as a folder of images and the
PyTorch toolboxes' three lists (:mod:`dlhash_jax.data.imagelist` parses and cross-checks them).
This module knows the benchmarks (:data:`IMAGELIST_DATASETS`: label count and the published
mAP@K), recognises a folder's benchmark from its label count or checks a named one
(:func:`imagelist_dataset`), and loads the folder as a protocol source
(:func:`load_source`, registered by :mod:`dlhash_jax.data.protocols`): query = ``test.txt``,
database = ``database.txt``, train = ``train.txt``, validation ``VALIDATION_SIZE`` items from
the database outside train, images decoded by
:class:`dlhash_jax.data.image_pipeline.ImageSource` only when read.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

import numpy as np

from dlhash_jax import _checks
from dlhash_jax.data import image_pipeline
from dlhash_jax.data import imagelist
from dlhash_jax.data import sources


@dataclasses.dataclass(frozen=True)
class ImageListDataset:
    """A benchmark distributed as image lists, and the mAP@K its tables report.

    Attributes:
      title: the name papers use.
      num_classes: C, the length of every label vector of its lists.
      topk: K of the mAP@K the deep-hashing literature reports on it.
    """

    title: str
    num_classes: int
    topk: int


# The three benchmarks of the PyTorch toolboxes' lists (HashNet, DeepHash-pytorch), with the K
# HashNet (Cao et al., ICCV 2017) set and later tables kept: mAP@5,000 for NUS-WIDE and COCO,
# mAP@1,000 for ImageNet-100.
IMAGELIST_DATASETS: Mapping[str, ImageListDataset] = {
    "nuswide21": ImageListDataset("NUS-WIDE-21", 21, 5000),
    "coco": ImageListDataset("MS-COCO", 80, 5000),
    "imagenet100": ImageListDataset("ImageNet-100", 100, 1000),
}
# Validation items drawn from the database outside train.txt.
VALIDATION_SIZE = 1000


def imagelist_dataset(folder: str | os.PathLike, dataset: str | None = None) -> str | None:
    """The key in ``IMAGELIST_DATASETS`` of the lists in ``folder``, or ``None`` if unknown.

    With ``dataset`` given, it is checked against the label count of ``folder/test.txt``;
    without, the label count decides: 21 is NUS-WIDE-21, 80 MS-COCO, 100 ImageNet-100.

    Raises:
      FileNotFoundError: if ``folder`` or ``folder/test.txt`` does not exist.
      ValueError: for bad lines of ``test.txt``, an unknown ``dataset``, or one whose label
        count differs from the lists'.
    """
    if dataset is not None:
        _checks.check_choice(dataset, IMAGELIST_DATASETS, "imagelist dataset")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Image-list folder {os.fspath(folder)!r} does not exist.")
    # The queries' list is the shortest of the three (2,100 to 5,000 lines); images unchecked.
    queries = imagelist.read_image_list(
        os.path.join(os.fspath(folder), imagelist.LIST_FILES["query"]), check_files=False
    )
    return dataset_of(queries, dataset)


def dataset_of(queries: imagelist.ImageList, dataset: str | None) -> str | None:
    """:func:`imagelist_dataset` for lists already read (``queries``: the parsed ``test.txt``)."""
    if dataset is None:
        by_count = {info.num_classes: key for key, info in IMAGELIST_DATASETS.items()}
        return by_count.get(queries.num_classes)
    expected = IMAGELIST_DATASETS[dataset].num_classes
    if queries.num_classes != expected:
        raise ValueError(
            f"dataset={dataset!r} ({IMAGELIST_DATASETS[dataset].title}) has {expected} labels, "
            f"but the lines of {queries.source!r} have {queries.num_classes}."
        )
    return dataset


@dataclasses.dataclass(frozen=True)
class ImageListSource(sources.Source):
    """A source read from image lists, with the relative path of each row.

    The paths enter the fingerprint, so saved indices are refused once the lists are reordered
    or renamed, even where the labels stay the same.
    """

    paths: np.ndarray | None = None


def load_source(
    data_dir, *, folder: str, image_root: str | None, dataset: str | None, topk: int | None,
    resize: int, crop: int,
) -> ImageListSource:
    """The protocol's source: every image of the three lists, indexed, decoded on demand.

    Args:
      data_dir: unused (the lists name their images); the loaders' common argument.
      folder: the folder of ``train.txt``, ``test.txt`` and ``database.txt``.
      image_root: the folder the listed paths are relative to; None: ``folder``.
      dataset: a key of ``IMAGELIST_DATASETS`` checked against the label count, or None.
      topk: the evaluation cutoff override; unused here.
      resize, crop: the evaluation transform of
        :class:`dlhash_jax.data.image_pipeline.ImageSource`.

    Raises:
      FileNotFoundError, ValueError: from :func:`dlhash_jax.data.imagelist.read_image_lists`
        (every bad line by file and line) and :func:`dataset_of`.
    """
    del data_dir, topk  # The lists name their images; topk sets the evaluation cutoff only.
    root = folder if image_root is None else image_root
    lists = imagelist.read_image_lists(folder, root=root)
    dataset_of(lists["query"], dataset)
    paths, labels, fixed = imagelist.index_image_lists(lists)
    images = image_pipeline.ImageSource.from_files(root, paths, resize=resize, crop=crop)
    return ImageListSource(images, labels, fixed, paths=paths)


def check_optional_text(key: str, value) -> None:
    """Option check: ``value`` is None or a non-empty string."""
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{key} must be a non-empty string or None, got {value!r}.")


def check_dataset_option(key: str, value) -> None:
    """Option check: ``value`` is None or a key of ``IMAGELIST_DATASETS``."""
    if value is not None:
        _checks.check_choice(value, IMAGELIST_DATASETS, key)
