"""Streaming image pipeline: images decoded, resized and cropped in parallel, batch by batch.

Image datasets such as NUS-WIDE, MS-COCO and ImageNet-100 (listed by ``imagelist.py``) do not
fit in memory at 224×224, so :class:`ImageSource` reads them from their files on demand, and
:func:`train_batches` streams the batches of an epoch while the accelerator trains on the
previous ones. The same source wraps an in-memory array (32×32 CIFAR images that AlexNet-style
configs upscale to 224×224), so every model sees one kind of input.

Transforms are the standard ImageNet ones, with torchvision's arithmetic so that numbers match
the PyTorch deep-hashing toolboxes: the shorter side is resized to ``resize`` (256) with PIL's
bilinear filter, the longer one to ``int(resize * long / short)``; evaluation then crops the
centre ``crop × crop`` (224) at ``round((size - crop) / 2)``, training a uniformly random
``crop × crop`` window and flips it left-right with probability 1/2. Pixels are returned as
float32 in [0, 1] (``uint8 / 255``); a model normalises them as it needs.

Why grain: decoding a JPEG and resizing it costs milliseconds of CPU per image, so a training
step waits on the input unless many images are decoded at once, ahead of time. grain (Google's
input library for JAX) does that with a thread pool and a bounded prefetch buffer, keeps the
output in order whatever the number of threads, and has no TensorFlow dependency (tf.data would
need TensorFlow, which this project does not install). PIL releases the GIL while it decodes and
resamples, so threads scale with the cores. ``train_batches`` makes whole batches the unit of
work (``MapDataset.batch`` before ``to_iter_dataset``): each thread decodes, stacks and converts
one batch, so the consumer only pops finished float32 batches.

Determinism and resume: an epoch visits ``batching.epoch_permutation(N, seed=seed,
epoch=epoch)``, the order ``batching.batches`` uses over in-memory splits, dropping the last
``N % B`` items. The random crop and flip of the item at position ``p`` of that order are drawn
from ``np.random.default_rng([seed, epoch, 2, p])`` (streams 0 and 1 are ``batching``'s order
and augmentation), so every item is a pure function of ``(seed, epoch, p)``: the batches do not
depend on the number of threads, and ``start_batch=k`` (the grain dataset sliced at position
``k * B``) yields exactly batches ``k, k + 1, ...`` of the uninterrupted epoch, which is how a run
restored from a mid-epoch checkpoint resumes.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence

import grain
import numpy as np
from PIL import Image

from dlhash_jax import _checks
from dlhash_jax.data.batching import epoch_permutation

RESIZE = 256
CROP = 224
# Decoding from local disk is CPU-bound, so one thread per core; more only wait on each other.
DEFAULT_THREADS = min(16, os.cpu_count() or 1)
# Finished batches train_batches keeps ready beyond the ones its threads are decoding.
DEFAULT_PREFETCH = 2
# Stream id of our train draws, after batching's epoch order (0) and augmentation (1).
_TRAIN_STREAM = 2
# What PIL raises on a missing, unreadable, truncated or corrupt file.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def _check_sizes(resize, crop) -> tuple[int, int]:
    resize = _checks.check_int(resize, "resize")
    crop = _checks.check_int(crop, "crop")
    if crop > resize:
        raise ValueError(
            f"crop ({crop}) must not exceed resize ({resize}): the crop is taken from an image "
            "whose shorter side is `resize` pixels."
        )
    return resize, crop


def _check_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(
            f"expected a uint8 RGB image [H, W, 3], got dtype {image.dtype} and shape "
            f"{image.shape}; ImageSource.raw(i) returns one."
        )
    return image


def _resize_shorter(image: Image.Image, size: int) -> np.ndarray:
    """uint8 ``[H', W', 3]`` with the shorter side ``size``, as torchvision's ``Resize(size)``."""
    width, height = image.size
    if width <= height:
        new_width, new_height = size, int(size * height / width)
    else:
        new_width, new_height = int(size * width / height), size
    if (new_width, new_height) != (width, height):
        image = image.resize((new_width, new_height), Image.BILINEAR)
    return np.asarray(image)


def _to_float(images: np.ndarray) -> np.ndarray:
    """uint8 intensities to float32 in [0, 1]; the one conversion, so every path agrees bitwise."""
    return images.astype(np.float32) / 255


def _centre_crop(image: Image.Image, resize: int, crop: int) -> np.ndarray:
    resized = _resize_shorter(image, resize)
    height, width, _ = resized.shape
    # torchvision's CenterCrop offsets (Python's round: halves go to the even number).
    top, left = int(round((height - crop) / 2.0)), int(round((width - crop) / 2.0))
    return resized[top : top + crop, left : left + crop]


def _random_crop(image: Image.Image, rng: np.random.Generator, resize: int, crop: int):
    resized = _resize_shorter(image, resize)
    height, width, _ = resized.shape
    top = rng.integers(0, height - crop + 1)
    left = rng.integers(0, width - crop + 1)
    window = resized[top : top + crop, left : left + crop]
    return window[:, ::-1] if rng.random() < 0.5 else window


def eval_transform(image, *, resize: int = RESIZE, crop: int = CROP) -> np.ndarray:
    """Resizes the shorter side to ``resize`` (bilinear) and crops the centre ``crop × crop``.

    Torchvision's ``Resize(resize)`` then ``CenterCrop(crop)`` on a PIL image, as float32.

    Args:
      image: uint8 ``[H, W, 3]`` (``ImageSource.raw``).
      resize: length of the shorter side after resizing.
      crop: side of the square crop, at most ``resize``.

    Returns:
      float32 ``[crop, crop, 3]`` in [0, 1].

    Raises:
      ValueError: on an image that is not uint8 ``[H, W, 3]``, or bad sizes.
    """
    resize, crop = _check_sizes(resize, crop)
    image = Image.fromarray(_check_image(image))
    return _to_float(_centre_crop(image, resize, crop))


def train_transform(
    image, rng: np.random.Generator, *, resize: int = RESIZE, crop: int = CROP
) -> np.ndarray:
    """Resizes the shorter side to ``resize``, crops a random ``crop × crop``, flips with p=1/2.

    Torchvision's ``Resize(resize)``, ``RandomCrop(crop)``, ``RandomHorizontalFlip()``. Draws, in
    this order: the top offset (uniform in ``[0, H' - crop]``), the left offset (uniform in
    ``[0, W' - crop]``), then ``rng.random() < 0.5`` for the flip.

    Args:
      image: uint8 ``[H, W, 3]`` (``ImageSource.raw``).
      rng: the generator the offsets and the flip are drawn from.
      resize: length of the shorter side after resizing.
      crop: side of the square crop, at most ``resize``.

    Returns:
      float32 ``[crop, crop, 3]`` in [0, 1].

    Raises:
      ValueError: on an image that is not uint8 ``[H, W, 3]``, or bad sizes.
    """
    resize, crop = _check_sizes(resize, crop)
    image = Image.fromarray(_check_image(image))
    return _to_float(_random_crop(image, rng, resize, crop))


@dataclasses.dataclass(frozen=True)
class _Files:
    """Images stored as files: ``root`` joined with each of ``paths``."""

    root: str
    paths: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, row: int) -> Image.Image:
        path = os.path.join(self.root, self.paths[row])
        try:
            with Image.open(path) as image:
                # convert() forces the full decode here, so a truncated file fails with its path.
                return image.convert("RGB")
        except FileNotFoundError:
            raise ValueError(f"Image file {path!r} does not exist.") from None
        except _DECODE_ERRORS as err:
            raise ValueError(
                f"Cannot decode image file {path!r} (unreadable or corrupt): "
                f"{type(err).__name__}: {err}"
            ) from err


@dataclasses.dataclass(frozen=True)
class _Array:
    """Images stored in memory: uint8 ``[M, H, W, 1 or 3]``."""

    images: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def image(self, row: int) -> Image.Image:
        pixels = self.images[row]
        if pixels.shape[-1] == 1:
            pixels = np.repeat(pixels, 3, axis=-1)
        return Image.fromarray(pixels)


class ImageSource:
    """Random-access images, from files or an in-memory array, read as an array of eval crops.

    Array-like over rows without holding the decoded images: ``len(src)`` is N, ``src.shape``
    ``(N, crop, crop, 3)``, ``src.ndim`` 4, ``src.dtype`` float32; ``src[i]``, ``src[a:b]``,
    ``src[rows]`` (integer or boolean arrays, NumPy's semantics) decode those rows in parallel
    through grain and return the eval transform (:func:`eval_transform`), float32
    ``[..., crop, crop, 3]`` in [0, 1]. ``np.asarray(src)`` raises instead of decoding the whole
    dataset; ``src.raw(i)`` is the decoded image before any transform.

    Build one with :meth:`from_files` or :meth:`from_array`; :meth:`with_indices` selects rows
    (a split) without copying the storage.

    Attributes:
      resize: length of the shorter side after resizing.
      crop: side of the square crop.
      num_threads: grain threads decoding the rows of one indexing.
    """

    def __init__(self, storage, rows: np.ndarray, *, resize: int, crop: int, num_threads: int):
        self._storage = storage
        self._rows = rows
        self.resize, self.crop = _check_sizes(resize, crop)
        self.num_threads = _checks.check_int(num_threads, "num_threads", minimum=0)

    @classmethod
    def from_files(
        cls,
        root: str | os.PathLike,
        paths: Sequence[str | os.PathLike],
        *,
        resize: int = RESIZE,
        crop: int = CROP,
        num_threads: int = DEFAULT_THREADS,
    ) -> ImageSource:
        """Images stored as files (JPEG, PNG, anything PIL reads), e.g. an ``ImageList``'s.

        Files are opened only when read, so a missing or corrupt one raises ``ValueError``
        naming its path at that moment.

        Args:
          root: the folder the paths are relative to.
          paths: ``[N]`` image paths relative to ``root``; row i of the source is ``paths[i]``.
          resize: length of the shorter side after resizing.
          crop: side of the square crop, at most ``resize``.
          num_threads: grain threads decoding the rows of one indexing (0: the calling thread).

        Raises:
          ValueError: on no paths, or bad sizes or thread count.
        """
        paths = np.asarray([os.fspath(path) for path in paths], dtype=str)
        if paths.size == 0:
            raise ValueError("ImageSource.from_files needs at least one image path, got none.")
        rows = np.arange(len(paths))
        return cls(_Files(os.fspath(root), paths), rows, resize=resize, crop=crop,
                   num_threads=num_threads)

    @classmethod
    def from_array(
        cls,
        images,
        *,
        resize: int = RESIZE,
        crop: int = CROP,
        num_threads: int = DEFAULT_THREADS,
    ) -> ImageSource:
        """Images held in memory, e.g. 32×32 CIFAR images to be upscaled to ``crop × crop``.

        Float images are quantised to 8 bits (``rint(x * 255)``), exact for images that were
        ``uint8 / 255`` as every protocol's are, so both dtypes take one resize path.

        Args:
          images: ``[N, H, W, C]``, C = 1 (grey, repeated to RGB) or 3, uint8 or float in [0, 1].
          resize: length of the shorter side after resizing.
          crop: side of the square crop, at most ``resize``.
          num_threads: grain threads decoding the rows of one indexing (0: the calling thread).

        Raises:
          ValueError: on a shape other than ``[N, H, W, 1 or 3]`` with N > 0, a dtype other than
            uint8 or float, float values outside [0, 1], or bad sizes or thread count.
        """
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] not in (1, 3) or len(images) == 0:
            raise ValueError(
                f"images must be [N, H, W, C] with N > 0 and C = 1 or 3, got shape "
                f"{images.shape}."
            )
        if np.issubdtype(images.dtype, np.floating):
            if not (images.min() >= 0.0 and images.max() <= 1.0):
                raise ValueError(
                    f"float images must lie in [0, 1], got values in [{images.min()}, "
                    f"{images.max()}]; pass uint8 images or divide by 255."
                )
            images = np.rint(images * 255).astype(np.uint8)
        elif images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 or float in [0, 1], got dtype {images.dtype}.")
        rows = np.arange(len(images))
        return cls(_Array(images), rows, resize=resize, crop=crop, num_threads=num_threads)

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), self.crop, self.crop, 3)

    @property
    def ndim(self) -> int:
        return 4

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    def __repr__(self) -> str:
        kind = "files" if isinstance(self._storage, _Files) else "array"
        return (f"ImageSource({kind}, {len(self)} images, resize={self.resize}, "
                f"crop={self.crop})")

    def _storage_rows(self, key) -> np.ndarray:
        """The storage rows that ``key`` selects among this source's rows (NumPy semantics)."""
        try:
            return self._rows[key]
        except IndexError as err:
            raise IndexError(
                f"Bad row index for an ImageSource of {len(self)} images: {err}. Index rows "
                "with an integer, a slice, or an integer or boolean array."
            ) from None

    def raw(self, i: int) -> np.ndarray:
        """Image ``i`` as decoded, before any transform: uint8 ``[H, W, 3]``.

        Grey, RGBA, CMYK and palette files are converted to RGB.

        Raises:
          ValueError: if the file is missing, unreadable or corrupt (naming its path).
        """
        if not _checks.is_int(i):
            raise IndexError(f"raw() takes one integer row, got {i!r}.")
        return np.asarray(self._image(self._storage_rows(i)))

    def _image(self, storage_row) -> Image.Image:
        return self._storage.image(int(storage_row))

    def _eval_crop(self, storage_row) -> np.ndarray:
        return _centre_crop(self._image(storage_row), self.resize, self.crop)

    def __getitem__(self, key) -> np.ndarray:
        rows = self._storage_rows(key)
        if rows.ndim == 0:
            return _to_float(self._eval_crop(rows))
        if rows.size == 0:
            return np.zeros((*rows.shape, self.crop, self.crop, 3), np.float32)
        # One image per grain element, so the threads share the rows of even a single batch.
        options = grain.ReadOptions(num_threads=self.num_threads,
                                    prefetch_buffer_size=2 * self.num_threads)
        crops = grain.MapDataset.source(rows.reshape(-1)).map(self._eval_crop)
        stacked = np.stack(list(crops.to_iter_dataset(options)))
        return _to_float(stacked).reshape(*rows.shape, self.crop, self.crop, 3)

    def __array__(self, dtype=None, copy=None):
        gigabytes = len(self) * self.crop * self.crop * 3 * 4 / 2**30
        raise TypeError(
            f"Refusing to decode all {len(self)} images of an ImageSource into one array "
            f"({gigabytes:.1f} GiB of float32); index rows instead (source[rows], "
            "source[a:b]) or stream them with train_batches."
        )

    def with_indices(self, rows) -> ImageSource:
        """The sub-source of ``rows`` (a split): same storage, row j is this source's ``rows[j]``.

        Args:
          rows: ``[M]`` integer rows of this source (or a boolean mask, or a slice).

        Raises:
          ValueError: if ``rows`` selects nothing or is not one-dimensional.
          IndexError: on rows out of range.
        """
        selected = self._storage_rows(rows)
        if selected.ndim != 1 or selected.size == 0:
            raise ValueError(
                f"with_indices needs a non-empty 1-D selection of rows, got shape "
                f"{selected.shape}."
            )
        return ImageSource(self._storage, selected, resize=self.resize, crop=self.crop,
                           num_threads=self.num_threads)

    def with_sizes(self, *, resize: int, crop: int, num_threads: int | None = None) -> ImageSource:
        """The same images read at other sizes (a run's ``config.images``); storage shared.

        Args:
          resize: length of the shorter side after resizing.
          crop: side of the square crop, at most ``resize``.
          num_threads: grain threads per indexing (default: this source's).

        Raises:
          ValueError: on bad sizes or thread count.
        """
        threads = self.num_threads if num_threads is None else num_threads
        return ImageSource(self._storage, self._rows, resize=resize, crop=crop,
                           num_threads=threads)


def train_batches(
    source: ImageSource,
    labels,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    start_batch: int = 0,
    num_threads: int = DEFAULT_THREADS,
    prefetch: int = DEFAULT_PREFETCH,
) -> Iterator[dict[str, np.ndarray]]:
    """Streams the training batches of one epoch, decoded and augmented in parallel by grain.

    The order is ``batching.epoch_permutation(len(source), seed=seed, epoch=epoch)``, cut into
    ``len(source) // batch_size`` full batches (the remainder is dropped), as
    ``batching.batches(..., drop_remainder=True)`` orders an in-memory split; each item gets
    :func:`train_transform` with a generator seeded by ``(seed, epoch, position in the
    epoch)``. The output is therefore the same for any ``num_threads`` and ``prefetch``, and
    ``start_batch=k`` yields exactly batches ``k, k + 1, ...`` of the uninterrupted epoch.
    Arguments are checked when this is called, files when they are read.

    Args:
      source: the training images.
      labels: ``[N, ...]`` labels of the source's rows (``[N, C]`` multi-hot).
      batch_size: B.
      seed: non-negative integer.
      epoch: non-negative integer; each epoch has its own order and draws.
      start_batch: the first batch to yield, in ``[0, N // B)`` (resuming mid-epoch).
      num_threads: grain threads, each decoding one whole batch at a time (0: decode in the
        consuming thread).
      prefetch: finished batches kept ready beyond the ``num_threads`` being decoded; memory
        holds up to ``num_threads + prefetch`` batches (``B × crop² × 12`` bytes each).

    Yields:
      Dicts with ``"inputs"`` float32 ``[B, crop, crop, 3]`` in [0, 1], ``"labels"``
      ``labels[rows]`` as float32 and ``"index"`` int32 ``[B]``, the rows of the source.

    Raises:
      ValueError: on labels whose length differs from the source's, a bad batch size (or one
        larger than the source), seed, epoch, thread count or prefetch, or ``start_batch``
        outside ``[0, N // B)``; while iterating, on a missing or corrupt file (naming it).
    """
    if not isinstance(source, ImageSource):
        raise ValueError(f"source must be an ImageSource, got {type(source).__name__}.")
    labels = np.asarray(labels, np.float32)
    num_items = len(source)
    if labels.ndim == 0 or len(labels) != num_items:
        raise ValueError(
            f"labels must have one row per image: the source has {num_items} images, labels "
            f"have shape {labels.shape}."
        )
    batch_size = _checks.check_int(batch_size, "batch_size")
    seed = _checks.check_int(seed, "seed", minimum=0)
    epoch = _checks.check_int(epoch, "epoch", minimum=0)
    num_threads = _checks.check_int(num_threads, "num_threads", minimum=0)
    prefetch = _checks.check_int(prefetch, "prefetch", minimum=0)
    count = num_items // batch_size
    if count == 0:
        raise ValueError(
            f"batch_size {batch_size} exceeds the source's {num_items} images, so an epoch has "
            "no full batch; use a smaller batch."
        )
    if not _checks.is_int(start_batch) or not 0 <= start_batch < count:
        raise ValueError(
            f"start_batch must be an integer in [0, {count}) ({num_items} images in batches "
            f"of {batch_size}), got {start_batch!r}."
        )
    order = epoch_permutation(num_items, seed=seed, epoch=epoch)

    def item(position):
        rng = np.random.default_rng([seed, epoch, _TRAIN_STREAM, position])
        row = order[position]
        image = source._image(source._storage_rows(row))
        return _random_crop(image, rng, source.resize, source.crop), row

    def stack(items):
        crops, rows = zip(*items)
        rows = np.asarray(rows, np.int32)
        return {"inputs": _to_float(np.stack(crops)), "labels": labels[rows], "index": rows}

    positions = grain.MapDataset.range(count * batch_size)[start_batch * batch_size :]
    dataset = positions.map(item).batch(batch_size, drop_remainder=True, batch_fn=stack)
    options = grain.ReadOptions(num_threads=num_threads,
                                prefetch_buffer_size=num_threads + prefetch)
    return _stream(dataset.to_iter_dataset(options))


def _stream(dataset: grain.IterDataset) -> Iterator[dict[str, np.ndarray]]:
    """Yields a grain dataset's elements; stops its threads when the epoch is left early."""
    iterator = iter(dataset)
    try:
        yield from iterator
    finally:
        iterator.close()
