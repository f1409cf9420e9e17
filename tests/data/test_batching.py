"""Tests for dlhash_jax/data/batching.py: epoch order, remainder, augmentation, device sharding."""

import itertools

import numpy as np
import pytest

from dlhash_jax.data import batching
from dlhash_jax.data.protocols import Split


def _split(num_items=23, image=(4, 4, 1)):
    rng = np.random.default_rng(0)
    inputs = rng.random((num_items, *image)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[np.arange(num_items) % 3]
    return Split(inputs, labels, np.arange(100, 100 + num_items, dtype=np.int64))


def _epoch(split, batch_size, **kwargs):
    return list(batching.batches(split, batch_size, **kwargs))


def test_order_is_a_pure_function_of_seed_and_epoch():
    split = _split()
    first = _epoch(split, 5, seed=3, epoch=2)
    again = _epoch(split, 5, seed=3, epoch=2)
    assert len(first) == 4
    for a, b in zip(first, again):
        for key in ("inputs", "labels", "index"):
            np.testing.assert_array_equal(a[key], b[key])
    rows = np.concatenate([batch["index"] for batch in first])
    assert len(set(rows.tolist())) == 20 and set(rows.tolist()) <= set(range(23))
    for seed, epoch in ((3, 3), (4, 2)):
        other = np.concatenate([b["index"] for b in _epoch(split, 5, seed=seed, epoch=epoch)])
        assert not np.array_equal(rows, other)
    np.testing.assert_array_equal(rows, batching.epoch_permutation(23, seed=3, epoch=2)[:20])
    for batch in first:
        assert batch["index"].dtype == np.int32 and set(batch) == {"inputs", "labels", "index"}
        np.testing.assert_array_equal(batch["inputs"], split.inputs[batch["index"]])
        np.testing.assert_array_equal(batch["labels"], split.labels[batch["index"]])


def test_pad_remainder_keeps_shapes_and_masks_padding():
    split = _split()
    epoch = _epoch(split, 5, seed=1, epoch=0, drop_remainder=False)
    assert len(epoch) == 5 == batching.num_batches(23, 5, drop_remainder=False)
    assert all(batch["inputs"].shape == (5, 4, 4, 1) for batch in epoch)
    masks = np.concatenate([batch["mask"] for batch in epoch])
    np.testing.assert_array_equal(masks, np.arange(25) < 23)
    rows = np.concatenate([batch["index"] for batch in epoch])
    assert sorted(rows[masks].tolist()) == list(range(23))
    assert set(rows[~masks].tolist()) <= set(range(23))


def test_num_batches():
    assert batching.num_batches(23, 5) == 4
    assert batching.num_batches(23, 5, drop_remainder=False) == 5
    assert batching.num_batches(20, 5, drop_remainder=False) == 4


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0, "seed": 0, "epoch": 0}, "batch_size must be a positive integer, got 0"),
        ({"batch_size": 30, "seed": 0, "epoch": 0}, "batch_size 30 exceeds the split's 23 items"),
        ({"batch_size": 5, "seed": -1, "epoch": 0}, "seed must be a non-negative integer, got -1"),
        ({"batch_size": 5, "seed": 0, "epoch": 1.0}, "epoch must be a non-negative integer"),
    ],
)
def test_bad_batching_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        next(batching.batches(_split(), **kwargs))


def test_augmentation_is_a_flip_and_shift_of_each_image():
    split = _split(num_items=12, image=(6, 6, 2))
    plain = _epoch(split, 4, seed=0, epoch=0)
    augmented = _epoch(split, 4, seed=0, epoch=0, augment=True)
    assert augmented[0]["inputs"].shape == (4, 6, 6, 2)
    again = _epoch(split, 4, seed=0, epoch=0, augment=True)
    np.testing.assert_array_equal(augmented[1]["inputs"], again[1]["inputs"])
    changed = 0
    for plain_batch, batch in zip(plain, augmented):
        np.testing.assert_array_equal(plain_batch["inputs"], split.inputs[plain_batch["index"]])
        for original, output in zip(plain_batch["inputs"], batch["inputs"]):
            candidates = []
            for flipped, top, left in itertools.product((False, True), range(3), range(3)):
                image = original[:, ::-1] if flipped else original
                padded = np.zeros((8, 8, 2), np.float32)
                padded[1:7, 1:7] = image
                candidates.append(padded[top : top + 6, left : left + 6])
            assert any(np.array_equal(output, c) for c in candidates)
            changed += not np.array_equal(output, original)
    assert changed > 0


def test_augment_images_switches_and_errors():
    images = np.random.default_rng(1).random((3, 5, 5, 1))
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(batching.augment_images(images, rng, flip=False, pad=0), images)
    flipped = batching.augment_images(images, rng, pad=0)
    for original, output in zip(images, flipped):
        assert np.array_equal(output, original) or np.array_equal(output, original[:, ::-1])
    with pytest.raises(ValueError, match=r"NHWC images \[B, H, W, C\], got shape \(3, 25\)"):
        batching.augment_images(images.reshape(3, 25), rng)
    flat = Split(np.ones((8, 3), np.float32), np.ones((8, 1), np.float32), np.arange(8))
    with pytest.raises(ValueError, match=r"augment=True needs image inputs .* \(8, 3\)"):
        next(batching.batches(flat, 4, seed=0, epoch=0, augment=True))


def test_sharded_batches_reassemble_to_the_global_batch():
    batch = next(batching.batches(_split(), 8, seed=0, epoch=0, drop_remainder=False))
    batch["extra"] = {"weights": np.arange(8.0)}
    sharded = batching.shard_batch(batch, 4)
    assert sharded["inputs"].shape == (4, 2, 4, 4, 1) and sharded["mask"].shape == (4, 2)
    for key in ("inputs", "labels", "index", "mask"):
        np.testing.assert_array_equal(sharded[key].reshape(batch[key].shape), batch[key])
        for device in range(4):
            rows = slice(2 * device, 2 * device + 2)
            np.testing.assert_array_equal(sharded[key][device], batch[key][rows])
    np.testing.assert_array_equal(sharded["extra"]["weights"], [[0, 1], [2, 3], [4, 5], [6, 7]])


def test_shard_batch_errors():
    batch = {"inputs": np.ones((6, 2)), "labels": np.ones((6, 3))}
    with pytest.raises(ValueError, match="batch size 6 is not divisible by 4 devices"):
        batching.shard_batch(batch, 4)
    with pytest.raises(ValueError, match="same leading batch size"):
        batching.shard_batch({"inputs": np.ones((6, 2)), "labels": np.ones((4, 3))}, 2)
    with pytest.raises(ValueError, match="num_devices must be a positive integer, got 0"):
        batching.shard_batch(batch, 0)


def _pairs(num_items=23):
    plain = _split(num_items)
    # Row i of the text is i, 2i, 3i: every text row names its item, so misalignment shows.
    text = np.arange(num_items, dtype=np.float32)[:, None] * np.arange(1, 4, dtype=np.float32)
    inputs = {"image": plain.inputs, "text": text}
    return Split(inputs, plain.labels, plain.indices), plain


@pytest.mark.parametrize("drop_remainder", [True, False])
def test_cross_modal_batches_keep_rows_aligned(drop_remainder):
    split, plain = _pairs()
    epoch = _epoch(split, 5, seed=2, epoch=1, drop_remainder=drop_remainder)
    reference = _epoch(plain, 5, seed=2, epoch=1, drop_remainder=drop_remainder)
    assert len(epoch) == len(reference) == (4 if drop_remainder else 5)
    for batch, plain_batch in zip(epoch, reference):
        assert set(batch["inputs"]) == {"image", "text"}
        rows = batch["index"]
        np.testing.assert_array_equal(rows, plain_batch["index"])
        np.testing.assert_array_equal(batch["inputs"]["image"], split.inputs["image"][rows])
        np.testing.assert_array_equal(batch["inputs"]["text"][:, 0], rows)
        np.testing.assert_array_equal(batch["inputs"]["text"], split.inputs["text"][rows])
        np.testing.assert_array_equal(batch["labels"], split.labels[rows])
        assert batch["inputs"]["text"].shape == (5, 3)


def test_cross_modal_augment_touches_only_the_image():
    split, plain = _pairs(num_items=16)
    epoch = _epoch(split, 8, seed=0, epoch=3, augment=True)
    reference = _epoch(plain, 8, seed=0, epoch=3, augment=True)
    changed = 0
    for batch, plain_batch in zip(epoch, reference):
        rows = batch["index"]
        # The same flips and crops as a single-modality split of the same images...
        np.testing.assert_array_equal(batch["inputs"]["image"], plain_batch["inputs"])
        changed += int((batch["inputs"]["image"] != split.inputs["image"][rows]).any())
        # ...and the text rows as they are.
        np.testing.assert_array_equal(batch["inputs"]["text"], split.inputs["text"][rows])
        np.testing.assert_array_equal(batch["labels"], split.labels[rows])
    assert changed > 0
    flat = Split({"image": np.ones((8, 3), np.float32), "text": np.ones((8, 2), np.float32)},
                 np.ones((8, 1), np.float32), np.arange(8))
    with pytest.raises(ValueError, match=r"image inputs \[N, H, W, C\] in inputs\['image'\], got "
                                         r"shape \(8, 3\)"):
        next(batching.batches(flat, 4, seed=0, epoch=0, augment=True))


def test_cross_modal_batches_shard_per_device():
    split, _ = _pairs()
    batch = next(batching.batches(split, 8, seed=0, epoch=0, drop_remainder=False))
    sharded = batching.shard_batch(batch, 2)
    assert sharded["inputs"]["image"].shape == (2, 4, 4, 4, 1)
    assert sharded["inputs"]["text"].shape == (2, 4, 3) and sharded["index"].shape == (2, 4)
    for device in range(2):
        rows = sharded["index"][device]
        np.testing.assert_array_equal(sharded["inputs"]["text"][device][:, 0], rows)
        np.testing.assert_array_equal(sharded["inputs"]["image"][device],
                                      split.inputs["image"][rows])
    broken = {**batch, "inputs": {"image": batch["inputs"]["image"], "text": np.ones((6, 3))}}
    with pytest.raises(ValueError, match="same leading batch size"):
        batching.shard_batch(broken, 2)
