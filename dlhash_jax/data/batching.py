"""Deterministic batching over an in-memory split, optional image augmentation, device sharding.

The order of an epoch is a pure function of ``(seed, epoch)``: a run resumed from a checkpoint at
epoch e sees exactly the batches an uninterrupted run sees. Everything is plain NumPy on the host,
which suffices because every standard hashing benchmark fits in memory; a dataset that does not
would swap ``batches`` for a streaming loader (e.g. grain over ``tfds.data_source``) fed with the
same per-epoch permutation of source indices, keeping the batch dictionaries below unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import jax
import numpy as np

from dlhash_jax.conventions import IMAGE

# Stream ids mixed into the (seed, epoch) entropy so order and augmentation draw independently.
_ORDER_STREAM = 0
_AUGMENT_STREAM = 1


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_non_negative(name: str, value) -> None:
    if not _is_int(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}.")


def _check_positive(name: str, value) -> None:
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _take_rows(inputs, rows: np.ndarray):
    return jax.tree.map(lambda array: array[rows], inputs)


def num_batches(num_items: int, batch_size: int, *, drop_remainder: bool = True) -> int:
    """Number of batches ``batches`` yields per epoch for a split of ``num_items`` items."""
    _check_non_negative("num_items", num_items)
    _check_positive("batch_size", batch_size)
    return num_items // batch_size if drop_remainder else -(-num_items // batch_size)


def epoch_permutation(num_items: int, *, seed: int, epoch: int) -> np.ndarray:
    """The order of an epoch: a permutation of ``range(num_items)``, a pure function of its args."""
    _check_non_negative("seed", seed)
    _check_non_negative("epoch", epoch)
    rng = np.random.default_rng([seed, epoch, _ORDER_STREAM])
    return rng.permutation(num_items)


def augment_images(
    images: np.ndarray, rng: np.random.Generator, *, flip: bool = True, pad: int | None = None
) -> np.ndarray:
    """Random horizontal flip and random crop (after zero padding) of a batch of NHWC images.

    Each image is flipped left-right with probability 1/2, then zero-padded by ``pad`` pixels on
    every side and cropped back to its size at a uniformly random offset (a shift of at most
    ``pad`` pixels in each direction), as in the standard CIFAR recipe.

    Args:
      images: ``[B, H, W, C]``.
      rng: NumPy generator the flips and offsets are drawn from.
      flip: whether to flip.
      pad: padding in pixels; default ``max(1, H // 8)`` (4 for 32x32, 1 for 8x8).

    Returns:
      Augmented images, same shape and dtype.

    Raises:
      ValueError: if ``images`` is not rank 4 or ``pad`` is negative.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(
            f"augment_images needs NHWC images [B, H, W, C], got shape {images.shape}; "
            "augmentation applies to image inputs only."
        )
    batch, height, width, _ = images.shape
    pad = max(1, height // 8) if pad is None else pad
    _check_non_negative("pad", pad)
    if flip:
        flipped = rng.random(batch) < 0.5
        images = np.where(flipped[:, None, None, None], images[:, :, ::-1], images)
    if pad == 0:
        return images
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    top = rng.integers(0, 2 * pad + 1, size=batch)
    left = rng.integers(0, 2 * pad + 1, size=batch)
    rows = top[:, None] + np.arange(height)
    cols = left[:, None] + np.arange(width)
    return padded[np.arange(batch)[:, None, None], rows[:, :, None], cols[:, None, :]]


def batches(
    split,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    drop_remainder: bool = True,
    augment: bool = False,
) -> Iterator[dict[str, np.ndarray]]:
    """Yields the batches of one epoch over a split, in an order fixed by ``(seed, epoch)``.

    Args:
      split: a ``Split`` (anything with ``inputs [N, ...]``, or cross-modal inputs
        ``{IMAGE: [N, ...], TEXT: [N, V]}``, and ``labels [N, C]``).
      batch_size: global batch size B.
      seed: non-negative integer.
      epoch: non-negative integer; each epoch has its own order.
      drop_remainder: ``True`` drops the last ``N % B`` items of the epoch's order (they come
        back in other epochs' orders), so every batch is full; ``False`` pads the last batch to
        B items by repeating the epoch's first items and adds a ``"mask"`` entry (bool ``[B]``,
        ``False`` on padding) to every batch, so shapes never change (one jit compilation).
      augment: apply ``augment_images`` (random flip and crop) to image inputs ``[N, H, W, C]``;
        with cross-modal inputs to ``inputs[IMAGE]`` only (the text is left as it is), drawing
        the same flips and crops as for a single-modality split of the same images.

    Yields:
      Dicts with ``"inputs"`` ``[B, ...]`` float32 (cross-modal: ``{IMAGE: [B, ...], TEXT:
      [B, V]}``, the same rows of both), ``"labels"`` ``[B, C]`` float32 and
      ``"index"`` int32 ``[B]``, each item's row in the split (to update a memory bank of the
      whole split), plus ``"mask"`` when ``drop_remainder`` is ``False``.

    Raises:
      ValueError: on a bad batch size, seed or epoch, a batch size larger than the split with
        ``drop_remainder=True`` (no batch at all), or ``augment`` on non-image inputs.
    """
    num_items = int(np.shape(split.labels)[0])
    count = num_batches(num_items, batch_size, drop_remainder=drop_remainder)
    if count == 0:
        raise ValueError(
            f"batch_size {batch_size} exceeds the split's {num_items} items, so an epoch with "
            "drop_remainder=True has no batch; use a smaller batch or drop_remainder=False."
        )
    cross_modal = isinstance(split.inputs, Mapping)
    images = split.inputs[IMAGE] if cross_modal else split.inputs
    if augment and np.ndim(images) != 4:
        where = f"inputs[{IMAGE!r}]" if cross_modal else "inputs"
        raise ValueError(
            f"augment=True needs image inputs [N, H, W, C] in {where}, got shape "
            f"{np.shape(images)}."
        )
    order = epoch_permutation(num_items, seed=seed, epoch=epoch)
    if not drop_remainder:
        order = np.concatenate([order, np.resize(order, count * batch_size - num_items)])
    augment_rng = np.random.default_rng([seed, epoch, _AUGMENT_STREAM])
    for step in range(count):
        rows = order[step * batch_size : (step + 1) * batch_size]
        inputs = _take_rows(split.inputs, rows)
        if augment and cross_modal:
            inputs = {**inputs, IMAGE: augment_images(inputs[IMAGE], augment_rng)}
        elif augment:
            inputs = augment_images(inputs, augment_rng)
        batch = {
            "inputs": inputs,
            "labels": split.labels[rows],
            "index": rows.astype(np.int32),
        }
        if not drop_remainder:
            batch["mask"] = np.arange(step * batch_size, (step + 1) * batch_size) < num_items
        yield batch


def shard_batch(batch: Mapping, num_devices: int) -> dict:
    """Reshapes every leaf ``[B, ...]`` of a batch to ``[num_devices, B / num_devices, ...]``.

    Device d gets rows ``d * B/D`` to ``(d + 1) * B/D - 1``, the layout ``jax.pmap`` and a
    leading-axis ``shard_map`` expect; ``x.reshape(B, ...)`` undoes it.

    Args:
      batch: a (nested) dict of arrays sharing the leading batch size B.
      num_devices: D, which must divide B.

    Returns:
      The same structure with reshaped NumPy arrays (no copies).

    Raises:
      ValueError: if the leaves disagree on B, or D does not divide B.
    """
    _check_positive("num_devices", num_devices)
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in jax.tree.leaves(batch)}
    if len(sizes) != 1 or None in sizes:
        shapes = jax.tree.map(np.shape, batch)
        raise ValueError(f"every leaf needs the same leading batch size, got shapes {shapes}.")
    (size,) = sizes
    if size % num_devices:
        raise ValueError(
            f"batch size {size} is not divisible by {num_devices} devices; pick a global batch "
            "size that is a multiple of jax.device_count()."
        )
    per_device = size // num_devices
    return jax.tree.map(
        lambda leaf: np.asarray(leaf).reshape(num_devices, per_device, *np.shape(leaf)[1:]), batch
    )
