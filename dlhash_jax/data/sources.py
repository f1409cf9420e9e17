"""Data sources: a whole dataset as arrays of inputs and multi-hot labels, before any split.

A source is what a retrieval protocol (``protocols.py``) splits into query, train, validation and
database items. Every source yields the same layout:

- ``inputs``: float32 ``[N, *input_shape]``; images are NHWC scaled to [0, 1], feature files are
  passed through unscaled. Cross-modal sources hold a dict ``{IMAGE: [N, ...], TEXT: [N, V]}``
  instead (the two modalities of each item in the same row);
- ``labels``: float32 multi-hot ``[N, C]`` (single-label data is one-hot);
- ``fixed_splits``: index arrays of splits the dataset itself fixes (VOC2007's test split is the
  query set, a ``.npz`` file may carry its own split indices); empty when the protocol samples them.

Sources hold the whole dataset in host memory as NumPy arrays, which every standard hashing
benchmark fits (CIFAR-10: 737 MB as float32). A dataset too large for that would replace the
eager read in ``load_tfds`` with a streaming reader over the same ``tfds.data_source`` (its items
are random-access, so a sampler of source indices is all a streaming pipeline needs).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image
from sklearn import datasets as sklearn_datasets

from dlhash_jax import conventions

SPLIT_NAMES = ("query", "train", "validation", "database")

# Keys of cross-modal inputs, ``{IMAGE: [N, ...], TEXT: [N, V]}``.
IMAGE = conventions.IMAGE
TEXT = conventions.TEXT
MODALITIES = conventions.MODALITIES

# Keys a features file may hold; `x` or the pair `x_image`, `x_text` (cross-modal) holds the
# inputs, and the `*_indices` keys fix splits instead of sampling them.
_MODALITY_FEATURE_KEYS = {IMAGE: "x_image", TEXT: "x_text"}
FEATURE_KEYS = (
    ("x",)
    + tuple(_MODALITY_FEATURE_KEYS.values())
    + ("y", "num_classes")
    + tuple(f"{name}_indices" for name in SPLIT_NAMES)
)

# sklearn's digits are 4-bit intensities 0..16.
_DIGITS_MAX_INTENSITY = 16.0
_DIGIT_SIDE = 8
NUM_DIGIT_CLASSES = 10
_MOSAIC_GRID = 2


DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# The numeral of each class, a second tag it implies: like real users, taggers write "3" as often
# as "three".
DIGIT_NUMERALS = tuple(str(c) for c in range(NUM_DIGIT_CLASSES))
# Stroke shape of each digit class as drawn in sklearn's digits: a closed loop, straight strokes
# only, or open curves. Every class has exactly one shape, so a shape tag is implied by a label
# set whenever one of its classes is present.
TAG_SHAPES = {"loop": (0, 6, 8, 9), "straight": (1, 4, 7), "curve": (2, 3, 5)}
# Words no class implies; they only ever appear as noise, like the off-topic tags of Flickr data.
# Objects and photo terms rather than words true of every mosaic ("grid", "gray"), which a real
# tagger would use as content. 57 of them make V = 80: CCA+ITQ (baselines.fit_cca_itq) yields at
# most min(D_image, D_text) bits, and the results tables need 64.
TAG_DISTRACTORS = (
    # Scanning and photography.
    "scan", "pixel", "blur", "noise", "grain", "crop", "zoom", "focus", "shadow", "photo",
    "camera", "lens", "flash", "film", "scanner", "printer", "copy", "screen",
    # Paper and office.
    "ink", "paper", "pen", "page", "pencil", "eraser", "ruler", "stapler", "clip", "tape", "glue",
    "marker", "chalk", "folder", "file", "envelope", "stamp", "notebook", "book", "mail",
    "receipt", "calendar", "archive", "office",
    # Everyday objects.
    "desk", "lamp", "chair", "table", "window", "shelf", "cup", "coffee", "phone", "keyboard",
    "mouse", "cable", "clock", "bag", "key",
)
TAG_VOCABULARY = DIGIT_WORDS + DIGIT_NUMERALS + tuple(TAG_SHAPES) + TAG_DISTRACTORS
TAG_DROP_RATE = 0.2
# A mosaic (1-4 classes) implies 3-11 tags and leaves 69-77 others, each added at this rate: 0.02
# adds about 1.5 noise tags per mosaic, where 0.05 would add 3.5-3.9, more than the 3 true tags of
# a single digit.
TAG_SPURIOUS_RATE = 0.02


def _implied_tags() -> np.ndarray:
    """``[10, V]`` 0/1: row c marks the tags class c implies (its word, numeral and shape)."""
    implied = np.zeros((NUM_DIGIT_CLASSES, len(TAG_VOCABULARY)), np.float32)
    for c in range(NUM_DIGIT_CLASSES):
        implied[c, TAG_VOCABULARY.index(DIGIT_WORDS[c])] = 1.0
        implied[c, TAG_VOCABULARY.index(DIGIT_NUMERALS[c])] = 1.0
    for shape, classes in TAG_SHAPES.items():
        implied[list(classes), TAG_VOCABULARY.index(shape)] = 1.0
    return implied


def _check_inputs(inputs, num_items: int) -> None:
    """Raises ValueError unless inputs are ``[N, ...]`` or ``{IMAGE: [N, ...], TEXT: [N, V]}``."""
    if isinstance(inputs, Mapping):
        if set(inputs) != set(MODALITIES):
            raise ValueError(
                f"Source: cross-modal inputs must have exactly the keys {list(MODALITIES)}, got "
                f"{sorted(inputs)}."
            )
        if np.ndim(inputs[TEXT]) != 2:
            raise ValueError(
                f"Source: inputs[{TEXT!r}] must be [N, V] (one vector per item), got shape "
                f"{np.shape(inputs[TEXT])}."
            )
        leaves = {f"inputs[{key!r}]": np.shape(inputs[key]) for key in MODALITIES}
    else:
        leaves = {"inputs": np.shape(inputs)}
    for key, shape in leaves.items():
        if not shape or shape[0] != num_items:
            raise ValueError(
                f"Source: {key} has shape {shape}, but the labels have {num_items} items; every "
                "input needs one row per item."
            )


@dataclasses.dataclass(frozen=True)
class Source:
    """A whole dataset in memory.

    Attributes:
      inputs: float32 ``[N, *input_shape]``, or for a cross-modal source a dict
        ``{IMAGE: float32 [N, ...], TEXT: float32 [N, V]}``.
      labels: float32 multi-hot ``[N, C]``.
      fixed_splits: split name -> int64 indices into the N items, for splits the dataset fixes.
      groups: named parts of the N items that a protocol may draw a split from, e.g. the tfds
        splits ``{"train": ..., "test": ...}`` of a pooled tfds source (int64 indices).

    Raises:
      ValueError: if the inputs' rows disagree with the labels', or a dict has other keys.
    """

    inputs: np.ndarray | Mapping[str, np.ndarray]
    labels: np.ndarray
    fixed_splits: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    groups: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        _check_inputs(self.inputs, self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return self.labels.shape[1]

    @property
    def cross_modal(self) -> bool:
        """Whether the inputs are the ``{IMAGE, TEXT}`` dict."""
        return isinstance(self.inputs, Mapping)

    def __len__(self) -> int:
        return self.labels.shape[0]


def one_hot(class_ids: np.ndarray, num_classes: int) -> np.ndarray:
    """Float32 one-hot ``[N, num_classes]`` rows for integer class ids ``[N]``."""
    class_ids = np.asarray(class_ids)
    labels = np.zeros((class_ids.shape[0], num_classes), np.float32)
    labels[np.arange(class_ids.shape[0]), class_ids] = 1.0
    return labels


def load_digits() -> Source:
    """scikit-learn's 1,797 handwritten 8×8 digits (UCI optdigits test set), shipped with sklearn.

    Returns:
      A ``Source`` with inputs float32 ``[1797, 8, 8, 1]`` in [0, 1] (intensities / 16) and
      one-hot labels ``[1797, 10]``; no fixed splits.
    """
    digits = sklearn_datasets.load_digits()
    inputs = (digits.images / _DIGITS_MAX_INTENSITY).astype(np.float32)[..., None]
    return Source(inputs, one_hot(digits.target, NUM_DIGIT_CLASSES))


def digits_mosaic(
    num_items: int, *, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multi-label mosaics: 16×16 images tiling a 2×2 grid of sklearn 8×8 digits or blanks.

    Each mosaic draws how many of its four tiles hold a digit uniformly from {1, 2, 3, 4}, which
    tiles those are uniformly, and for each such tile a class uniformly from 0..9 and then a digit
    image of that class uniformly. Its label is the set of classes present (a class drawn twice
    counts once), so mosaics carry one to four labels and two mosaics are relevant to each other
    when they share a digit class. Blank tiles are zeros.

    Args:
      num_items: number of mosaics N.
      seed: seed of the generator; the same (num_items, seed) gives the same mosaics.

    Returns:
      ``(inputs, labels, tiles)``: inputs float32 ``[N, 16, 16, 1]`` in [0, 1]; labels float32
      multi-hot ``[N, 10]``; tiles int64 ``[N, 4]``, the sklearn digit index shown in each tile in
      row-major order (top-left, top-right, bottom-left, bottom-right), -1 for a blank tile.

    Raises:
      ValueError: if ``num_items`` is not a positive integer.
    """
    if isinstance(num_items, bool) or not isinstance(num_items, (int, np.integer)) or num_items < 1:
        raise ValueError(f"num_items must be a positive integer, got {num_items!r}.")
    digits = sklearn_datasets.load_digits()
    images = (digits.images / _DIGITS_MAX_INTENSITY).astype(np.float32)
    rng = np.random.default_rng(seed)
    num_tiles = _MOSAIC_GRID * _MOSAIC_GRID

    filled_count = rng.integers(1, num_tiles + 1, size=num_items)
    # A uniformly random ranking of the tiles; the `filled_count` best-ranked ones hold digits.
    tile_rank = np.argsort(rng.random((num_items, num_tiles)), axis=1).argsort(axis=1)
    filled = tile_rank < filled_count[:, None]
    classes = rng.integers(0, NUM_DIGIT_CLASSES, size=(num_items, num_tiles))

    by_class = np.argsort(digits.target, kind="stable")
    class_counts = np.bincount(digits.target, minlength=NUM_DIGIT_CLASSES)
    class_starts = np.concatenate([[0], np.cumsum(class_counts)[:-1]])
    offsets = np.floor(rng.random((num_items, num_tiles)) * class_counts[classes]).astype(np.int64)
    tiles = np.where(filled, by_class[class_starts[classes] + offsets], -1)

    tile_images = np.where(filled[..., None, None], images[np.maximum(tiles, 0)], 0.0)
    side = _MOSAIC_GRID * _DIGIT_SIDE
    inputs = (
        tile_images.reshape(num_items, _MOSAIC_GRID, _MOSAIC_GRID, _DIGIT_SIDE, _DIGIT_SIDE)
        .transpose(0, 1, 3, 2, 4)
        .reshape(num_items, side, side, 1)
        .astype(np.float32)
    )
    labels = np.zeros((num_items, NUM_DIGIT_CLASSES), np.float32)
    rows = np.broadcast_to(np.arange(num_items)[:, None], classes.shape)
    labels[rows[filled], classes[filled]] = 1.0
    return inputs, labels, tiles.astype(np.int64)


def _check_rate(name: str, value) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not 0.0 <= value <= 1.0
    ):
        raise ValueError(f"{name} must be a probability, a number in [0, 1], got {value!r}.")


def tags_from_labels(
    labels: np.ndarray,
    *,
    seed: int,
    drop_rate: float = TAG_DROP_RATE,
    spurious_rate: float = TAG_SPURIOUS_RATE,
) -> np.ndarray:
    """Synthetic noisy tags of digit label sets: the text modality of ``digits_mosaic_tags``.

    The text is synthetic: it is generated from the labels, not written by people. It stands in
    for the user tags of MIRFlickr-25K or NUS-WIDE, which describe an image's content
    incompletely and add words unrelated to it. Vocabulary ``TAG_VOCABULARY`` (V = 80, fixed):
    the ten class words ``"zero"`` .. ``"nine"`` (``DIGIT_WORDS``), the ten numerals ``"0"`` ..
    ``"9"`` (``DIGIT_NUMERALS``), the three stroke shapes of ``TAG_SHAPES`` (``"loop"`` for 0, 6,
    8, 9; ``"straight"`` for 1, 4, 7; ``"curve"`` for 2, 3, 5) and 57 distractors
    (``TAG_DISTRACTORS``: scanning, office and everyday words) that no class implies. An item's
    label set implies the word, the numeral and the shape of each of its classes, so a word and
    its numeral always come together before noise, as when people tag with either. Noise, drawn
    independently for every (item, tag) pair: an implied tag is dropped with probability
    ``drop_rate``, a tag not implied is added with probability ``spurious_rate``. Hence an item
    can lose all its true tags (a single digit keeps none of its three with probability
    ``drop_rate³``, 0.8% by default, and also gets no spurious tag, so has no tag at all, with
    probability ``drop_rate³ · (1 − spurious_rate)^77``, 0.17% by default) and sharing a tag
    does not mean sharing a label (a shape is shared by several classes, a distractor by chance).

    Args:
      labels: multi-hot ``[N, 10]`` of 0/1 over the digit classes (any numeric dtype).
      seed: non-negative integer seed of ``np.random.default_rng``; the same (labels, seed)
        gives the same tags, and row i's noise depends on the seed and i only.
      drop_rate: probability in [0, 1] that an implied tag is left out.
      spurious_rate: probability in [0, 1] that a tag not implied is added.

    Returns:
      float32 ``[N, V]`` of 0/1, column j for ``TAG_VOCABULARY[j]``.

    Raises:
      ValueError: if ``labels`` is not ``[N, 10]`` of 0/1, ``seed`` is not a non-negative
        integer, or a rate is not a number in [0, 1].
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] != NUM_DIGIT_CLASSES:
        raise ValueError(
            f"labels must be multi-hot [N, {NUM_DIGIT_CLASSES}] over the digit classes, got "
            f"shape {labels.shape}."
        )
    if not (np.issubdtype(labels.dtype, np.number) or labels.dtype == np.bool_):
        raise ValueError(f"labels must be numeric 0/1, got dtype {labels.dtype}.")
    outside = (labels != 0) & (labels != 1)
    if outside.any():
        raise ValueError(
            f"labels must hold only 0 and 1, found {int(outside.sum())} other entries (e.g. "
            f"{labels[outside].flat[0].item()!r})."
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    _check_rate("drop_rate", drop_rate)
    _check_rate("spurious_rate", spurious_rate)
    implied = (labels.astype(np.float32) @ _implied_tags()) > 0
    # One uniform per (item, tag) decides whichever of the two events applies to that entry, so
    # entries stay independent; u < 1 always, so a rate of 1 (or 0) is exactly always (never).
    uniform = np.random.default_rng(seed).random(implied.shape)
    kept = implied & (uniform >= drop_rate)
    added = ~implied & (uniform < spurious_rate)
    return (kept | added).astype(np.float32)


def _tfds_prepare_hint(tfds_name: str, data_dir_root: str) -> str:
    return (
        "Prepare it once, on a machine with network access (preparing needs TensorFlow, which "
        "tfds uses to encode images, and importlib_resources, which tensorflow-datasets 4.9.10 "
        "imports but declares only for Python < 3.9):\n"
        "    pip install tensorflow importlib_resources\n"
        f"    tfds build {tfds_name} --data_dir={data_dir_root} --file_format=array_record\n"
        "then pass that data_dir (or set TFDS_DATA_DIR). Reading needs neither TensorFlow nor a "
        "network."
    )


def _open_tfds_split(tfds, tfds_name: str, split: str, data_dir: str | None):
    try:
        return tfds.data_source(tfds_name, split=split, data_dir=data_dir, download=False)
    except Exception as error:  # noqa: BLE001 - tfds reports a missing dataset with several types.
        # Imported here for the same reason as tensorflow_datasets itself (see load_tfds).
        from tensorflow_datasets.core import constants  # pylint: disable=g-import-not-at-top

        root = os.fspath(data_dir) if data_dir is not None else constants.get_default_data_dir()
        builder = tfds.builder(tfds_name, data_dir=data_dir)
        hint = _tfds_prepare_hint(tfds_name, root)
        if builder.is_prepared():
            raise RuntimeError(
                f"tfds dataset '{tfds_name}' is prepared at {builder.data_dir} but its split "
                f"'{split}' cannot be read with random access ({type(error).__name__}: {error}). "
                f"tfds.data_source reads the array_record format only. {hint}"
            ) from error
        raise FileNotFoundError(
            f"tfds dataset '{tfds_name}' is not prepared in data_dir '{root}' (looked for "
            f"{builder.data_dir}); this library reads it with download=False. {hint}"
        ) from error


def _num_classes_of(feature) -> int:
    # A Sequence(ClassLabel) (multi-label) wraps the ClassLabel that knows the class count.
    inner = getattr(feature, "feature", feature)
    return int(inner.num_classes)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[0] == size and image.shape[1] == size:
        return image
    channels = image.shape[2]
    pil_image = Image.fromarray(image[..., 0] if channels == 1 else image)
    resized = np.asarray(pil_image.resize((size, size), Image.Resampling.BILINEAR))
    return resized.reshape(size, size, channels)


def load_tfds(
    tfds_name: str,
    *,
    splits: Sequence[str],
    label_key: str,
    data_dir: str | os.PathLike | None = None,
    image_size: int | None = None,
    fixed_splits: Mapping[str, Sequence[str]] | None = None,
) -> Source:
    """Reads tfds splits into one pooled source with ``tfds.data_source(..., download=False)``.

    Items are pooled in the order of ``splits``, so source index ``i`` is item ``i`` of the first
    split, then the second split continues the count, and so on.

    Args:
      tfds_name: tfds dataset name, e.g. ``"mnist"`` or ``"voc/2007"``.
      splits: tfds split names to pool, e.g. ``("train", "test")``.
      label_key: feature holding the label: a ``ClassLabel`` (single-label) or a
        ``Sequence(ClassLabel)`` (multi-label).
      data_dir: tfds data directory; ``None`` uses tfds' default (``TFDS_DATA_DIR`` or
        ``~/tensorflow_datasets``).
      image_size: if given, every image is resized (bilinear, aspect ratio not kept) to
        ``image_size × image_size``; needed when image sizes vary (VOC).
      fixed_splits: protocol split name -> tfds split names whose pooled items form that split,
        e.g. ``{"query": ("test",), "database": ("train", "validation")}``.

    Returns:
      A ``Source`` with inputs float32 ``[N, H, W, C]`` in [0, 1] (uint8 / 255), multi-hot
      labels, and the pooled indices of each tfds split as its ``groups``.

    Raises:
      FileNotFoundError: if the dataset is not prepared in ``data_dir``; the message names the
        dataset, the directory and the command that prepares it.
      ValueError: if the images differ in shape and no ``image_size`` is given.
    """
    # tensorflow_datasets takes ~0.5 s to import and only these protocols need it.
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    images, labels, ranges = [], [], {}
    for split in splits:
        data_source = _open_tfds_split(tfds, tfds_name, split, data_dir)
        num_classes = _num_classes_of(data_source.dataset_info.features[label_key])
        start = sum(len(block) for block in labels)
        split_images, split_labels = [], np.zeros((len(data_source), num_classes), np.float32)
        for row in range(len(data_source)):
            example = data_source[row]
            image = np.asarray(example["image"])
            split_images.append(image if image_size is None else _resize(image, image_size))
            split_labels[row, np.asarray(example[label_key], np.int64)] = 1.0
        shapes = {image.shape for image in split_images}
        if len(shapes) > 1:
            raise ValueError(
                f"tfds dataset '{tfds_name}' split '{split}' has images of {len(shapes)} shapes "
                f"(e.g. {sorted(shapes)[:3]}); pass image_size to resize them."
            )
        images.append(np.stack(split_images))
        labels.append(split_labels)
        ranges[split] = np.arange(start, start + len(data_source), dtype=np.int64)
    image_shapes = {block.shape[1:] for block in images}
    if len(image_shapes) > 1:
        raise ValueError(
            f"tfds dataset '{tfds_name}' splits {tuple(splits)} have images of shapes "
            f"{sorted(image_shapes)}; pass image_size to resize them."
        )
    inputs = np.concatenate(images).astype(np.float32) / np.float32(255.0)
    fixed = {
        name: np.concatenate([ranges[split] for split in members])
        for name, members in (fixed_splits or {}).items()
    }
    return Source(inputs, np.concatenate(labels), fixed, ranges)


def _is_integral(array: np.ndarray) -> bool:
    return np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.bool_)


def _validate_feature_indices(name: str, indices: np.ndarray, num_items: int, path) -> np.ndarray:
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(
            f"{path}: '{name}' must be a 1-D integer array, got dtype {indices.dtype} and shape "
            f"{indices.shape}."
        )
    if indices.size and (indices.min() < 0 or indices.max() >= num_items):
        raise ValueError(
            f"{path}: '{name}' holds indices in [{indices.min()}, {indices.max()}], outside "
            f"[0, {num_items}) for {num_items} items."
        )
    if np.unique(indices).size != indices.size:
        raise ValueError(f"{path}: '{name}' holds repeated indices.")
    return indices.astype(np.int64)


def _feature_inputs(path: str, key: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if x.ndim < 2 or not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise ValueError(
            f"{path}: '{key}' must be a numeric [N, ...] array with N >= 1 items, got dtype "
            f"{x.dtype} and shape {x.shape}."
        )
    if key == _MODALITY_FEATURE_KEYS[TEXT] and x.ndim != 2:
        raise ValueError(
            f"{path}: '{key}' must be [N, V], one text vector per item, got shape {x.shape}."
        )
    if y.ndim == 0 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{path}: '{key}' and 'y' must have the same number of items (first axis), got "
            f"shapes {x.shape} and {y.shape}."
        )
    if x.shape[0] == 0:
        raise ValueError(f"{path}: '{key}' has no items, shape {x.shape}.")
    inputs = x.astype(np.float32)
    if not np.isfinite(inputs).all():
        bad = np.argwhere(~np.isfinite(inputs))[0]
        raise ValueError(
            f"{path}: '{key}' holds {int((~np.isfinite(inputs)).sum())} non-finite values (NaN "
            f"or inf; as float32), the first at index {tuple(int(i) for i in bad)}."
        )
    return inputs


def load_features(path: str | os.PathLike) -> Source:
    """Loads a user-provided ``.npz`` of feature vectors (or any arrays) and labels.

    Keys (``np.load(path, allow_pickle=False)``; object arrays are refused):

    - ``x``: ``[N, ...]`` numeric, finite; cast to float32, not rescaled.
    - or, for cross-modal data (e.g. MIRFlickr-25K or NUS-WIDE image features and tag vectors),
      both ``x_image``: ``[N, ...]`` (images NHWC or feature vectors) and ``x_text``: ``[N, V]``
      (e.g. bag-of-words tags), each numeric and finite, cast to float32, not rescaled; the
      source's inputs are then ``{IMAGE: x_image, TEXT: x_text}``. ``x`` and this pair are
      mutually exclusive.
    - ``y``: integer class ids ``[N]`` in ``[0, num_classes)``, or multi-hot ``[N, C]`` of 0/1.
    - ``num_classes`` (optional, with 1-D ``y``): scalar class count; default ``max(y) + 1``.
    - ``query_indices``, ``train_indices``, ``validation_indices``, ``database_indices``
      (optional): 1-D integer indices into the N items that fix those splits (for example the
      published NUS-WIDE or MIRFlickr splits); ``train_indices`` and ``validation_indices`` need
      ``query_indices``.

    Args:
      path: path to the ``.npz`` file.

    Returns:
      A ``Source`` whose ``fixed_splits`` holds the split indices found in the file.

    Raises:
      ValueError: on a missing or unknown key, ``x`` together with ``x_image``/``x_text`` or one
        of that pair without the other, a pickled object array, non-finite inputs, labels out of
        range, or arrays whose lengths disagree; the message names the file and the key.
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as error:
        raise ValueError(
            f"{path}: cannot be read without unpickling ({error}); features files must hold plain "
            "numeric arrays, not object arrays (they could run arbitrary code when loaded)."
        ) from error
    unknown = sorted(set(arrays) - set(FEATURE_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; allowed keys are {list(FEATURE_KEYS)}.")
    pair = [key for key in _MODALITY_FEATURE_KEYS.values() if key in arrays]
    if "x" in arrays and pair:
        raise ValueError(
            f"{path}: holds 'x' and {pair}; give 'x' (one modality) or 'x_image' and 'x_text' "
            "(cross-modal), not both."
        )
    if len(pair) == 1:
        (other,) = set(_MODALITY_FEATURE_KEYS.values()) - set(pair)
        raise ValueError(
            f"{path}: holds '{pair[0]}' without '{other}'; cross-modal files need both (a file "
            "with one modality holds it as 'x')."
        )
    input_keys = pair or ["x"]
    missing = [key for key in input_keys + ["y"] if key not in arrays]
    if missing:
        raise ValueError(f"{path}: missing required keys {missing}; found keys {sorted(arrays)}.")

    y = arrays["y"]
    if pair:
        inputs = {
            modality: _feature_inputs(path, key, arrays[key], y)
            for modality, key in _MODALITY_FEATURE_KEYS.items()
        }
    else:
        inputs = _feature_inputs(path, "x", arrays["x"], y)
    labels = _feature_labels(path, y, arrays.get("num_classes"))
    num_items = y.shape[0]
    fixed = {
        name: _validate_feature_indices(key, arrays[key], num_items, path)
        for name, key in ((name, f"{name}_indices") for name in SPLIT_NAMES)
        if key in arrays
    }
    if ("train" in fixed or "validation" in fixed) and "query" not in fixed:
        raise ValueError(
            f"{path}: 'train_indices' or 'validation_indices' given without 'query_indices'; fix "
            "the query set too, or none of the splits."
        )
    return Source(inputs, labels, fixed)


def _feature_labels(path: str, y: np.ndarray, num_classes) -> np.ndarray:
    if y.ndim == 1:
        if not _is_integral(y) or y.dtype == np.bool_:
            raise ValueError(
                f"{path}: 1-D 'y' must hold integer class ids, got dtype {y.dtype}; multi-label "
                "data goes in as a multi-hot [N, C] array."
            )
        if y.min() < 0:
            raise ValueError(f"{path}: 'y' holds a negative class id {int(y.min())}.")
        count = int(y.max()) + 1
        if num_classes is not None:
            if num_classes.ndim != 0 or not _is_integral(num_classes) or int(num_classes) < 1:
                raise ValueError(
                    f"{path}: 'num_classes' must be a positive integer scalar, got "
                    f"{num_classes!r}."
                )
            if count > int(num_classes):
                raise ValueError(
                    f"{path}: 'y' holds class id {count - 1}, out of range for num_classes="
                    f"{int(num_classes)} (ids must lie in [0, {int(num_classes)}))."
                )
            count = int(num_classes)
        return one_hot(y, count)
    if num_classes is not None:
        raise ValueError(
            f"{path}: 'num_classes' is only read with 1-D class ids; a multi-hot 'y' of shape "
            f"{y.shape} already fixes it."
        )
    if y.ndim != 2 or y.shape[1] == 0 or not (np.issubdtype(y.dtype, np.number) or _is_integral(y)):
        raise ValueError(
            f"{path}: 'y' must be integer class ids [N] or a numeric multi-hot [N, C] array with "
            f"C >= 1, got dtype {y.dtype} and shape {y.shape}."
        )
    outside = (y != 0) & (y != 1)
    if outside.any():
        raise ValueError(
            f"{path}: multi-hot 'y' must hold only 0 and 1, found {int(outside.sum())} other "
            f"entries (e.g. {y[outside].flat[0].item()!r})."
        )
    return y.astype(np.float32)
