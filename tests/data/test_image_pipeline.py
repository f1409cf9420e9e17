"""Tests for dlhash_jax/data/image_pipeline.py: transforms, ImageSource, streamed train batches."""

import numpy as np
import pytest
from PIL import Image

from dlhash_jax.data import batching
from dlhash_jax.data import image_pipeline
from dlhash_jax.data.image_pipeline import ImageSource

RESIZE, CROP = 32, 24
SMALL = {"resize": RESIZE, "crop": CROP}
# (file name, width, height, PIL mode): landscape, portrait, square, grey, RGBA PNG, CMYK JPEG.
FILES = [
    ("a.jpg", 300, 200, "RGB"),
    ("b.jpg", 200, 300, "RGB"),
    ("c.png", 320, 200, "RGB"),
    ("d.jpg", 40, 40, "RGB"),
    ("sub/e.jpg", 120, 90, "L"),
    ("f.png", 64, 48, "RGBA"),
    ("g.jpg", 90, 100, "CMYK"),
    ("h.png", 50, 60, "L"),
]


def _pixels(rng, height, width, channels):
    # Smooth content plus noise: every crop window differs, so a crop is found by its values.
    base = rng.integers(0, 256, (4, 4, channels), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(base.squeeze(-1) if channels == 1 else base)
                        .resize((width, height), Image.BICUBIC)).reshape(height, width, channels)
    noise = rng.integers(-20, 21, smooth.shape)
    return np.clip(smooth.astype(int) + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name, width, height, mode in FILES:
        channels = {"RGB": 3, "L": 1, "RGBA": 4, "CMYK": 4}[mode]
        pixels = _pixels(rng, height, width, channels)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(root / name)
    return root


@pytest.fixture(scope="module")
def source(folder):
    return ImageSource.from_files(folder, [name for name, *_ in FILES], num_threads=3, **SMALL)


def _reference_resize(image, size):
    """PIL bilinear resize: the shorter side to ``size``, the longer to int(size * long / short)."""
    height, width = image.shape[:2]
    if width <= height:
        shape = (size, int(size * height / width))
    else:
        shape = (int(size * width / height), size)
    return np.asarray(Image.fromarray(image).resize(shape, Image.BILINEAR))


def _reference_eval(image, resize=RESIZE, crop=CROP):
    resized = _reference_resize(image, resize)
    top = int(round((resized.shape[0] - crop) / 2))
    left = int(round((resized.shape[1] - crop) / 2))
    return resized[top : top + crop, left : left + crop].astype(np.float32) / 255


def _epoch(source, labels, batch_size, **kwargs):
    return list(image_pipeline.train_batches(source, labels, batch_size, **kwargs))


def _assert_same_batches(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second):
        assert set(a) == set(b) == {"inputs", "labels", "index"}
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


# --- transforms -----------------------------------------------------------------------------


def test_resize_keeps_the_aspect_ratio_with_torchvision_sizes():
    image = _pixels(np.random.default_rng(1), 200, 320, 3)
    # 320x200 -> shorter side 32, longer int(32 * 320 / 200) = int(51.2) = 51, both orientations.
    assert image_pipeline._resize_shorter(Image.fromarray(image), 32).shape == (32, 51, 3)
    turned = np.ascontiguousarray(image.transpose(1, 0, 2))
    assert image_pipeline._resize_shorter(Image.fromarray(turned), 32).shape == (51, 32, 3)
    np.testing.assert_array_equal(image_pipeline._resize_shorter(Image.fromarray(image), 32),
                                  _reference_resize(image, 32))


def test_eval_transform_is_resize_then_torchvision_centre_crop():
    image = _pixels(np.random.default_rng(2), 200, 320, 3)
    out = image_pipeline.eval_transform(image, **SMALL)
    assert out.shape == (CROP, CROP, 3) and out.dtype == np.float32
    resized = _reference_resize(image, RESIZE)
    # (51 - 24) / 2 = 13.5 rounds to 14 as in torchvision (Python's round), not 13 (floor).
    np.testing.assert_array_equal(out, resized[4:28, 14:38].astype(np.float32) / 255)
    assert not np.array_equal(out, resized[4:28, 13:37].astype(np.float32) / 255)
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_eval_transform_at_the_real_sizes():
    for width, height in ((500, 375), (375, 500)):
        image = _pixels(np.random.default_rng(width), height, width, 3)
        out = image_pipeline.eval_transform(image)
        assert out.shape == (224, 224, 3)
        # 500x375 -> 341x256 (int(341.33)); the crop starts at round(117 / 2) = 58 on the long side.
        resized = _reference_resize(image, 256)
        assert resized.shape[:2] == ((256, 341) if width > height else (341, 256))
        start = (slice(16, 240), slice(58, 282)) if width > height else (slice(58, 282),
                                                                          slice(16, 240))
        np.testing.assert_array_equal(out, resized[start].astype(np.float32) / 255)


def test_train_transform_is_a_random_window_of_the_resized_image_flipped_half_the_time():
    image = _pixels(np.random.default_rng(3), 200, 320, 3)
    resized = _reference_resize(image, RESIZE).astype(np.float32) / 255  # [32, 51, 3]
    windows = np.lib.stride_tricks.sliding_window_view(resized, (CROP, CROP), axis=(0, 1))
    windows = windows.transpose(0, 1, 3, 4, 2)  # [9, 28, 24, 24, 3]: every crop offset
    tops, lefts, flips = [], [], []
    for seed in range(200):
        out = image_pipeline.train_transform(image, np.random.default_rng(seed), **SMALL)
        assert out.shape == (CROP, CROP, 3) and out.dtype == np.float32
        plain = np.argwhere(np.all(windows == out, axis=(2, 3, 4)))
        mirrored = np.argwhere(np.all(windows == out[:, ::-1], axis=(2, 3, 4)))
        (top, left), = np.concatenate([plain, mirrored])  # exactly one window matches
        flipped = len(mirrored) == 1
        # The documented draws, in order: top, left, then the flip.
        rng = np.random.default_rng(seed)
        assert (top, left, flipped) == (rng.integers(0, 9), rng.integers(0, 28), rng.random() < 0.5)
        tops.append(top), lefts.append(left), flips.append(flipped)
    assert set(tops) == set(range(9)) and min(lefts) == 0 and max(lefts) == 27
    assert 0.38 < np.mean(flips) < 0.62


def test_transforms_check_their_arguments():
    image = np.zeros((40, 50, 3), np.uint8)
    with pytest.raises(ValueError, match=r"crop \(40\) must not exceed resize \(32\)"):
        image_pipeline.eval_transform(image, resize=32, crop=40)
    with pytest.raises(ValueError, match="uint8 RGB image .* float32 and shape"):
        image_pipeline.eval_transform(image.astype(np.float32))
    with pytest.raises(ValueError, match=r"shape \(40, 50\)"):
        image_pipeline.train_transform(image[..., 0], np.random.default_rng(0))
    with pytest.raises(ValueError, match="resize must be a positive integer, got 0"):
        image_pipeline.eval_transform(image, resize=0, crop=0)


# --- ImageSource ----------------------------------------------------------------------------


def test_raw_decodes_every_mode_to_rgb(source, folder):
    for i, (name, width, height, mode) in enumerate(FILES):
        raw = source.raw(i)
        assert raw.shape == (height, width, 3) and raw.dtype == np.uint8, name
    grey = np.asarray(Image.open(folder / "h.png"))  # lossless: RGB repeats the grey level
    np.testing.assert_array_equal(source.raw(7), np.repeat(grey[..., None], 3, axis=-1))
    rgba = np.asarray(Image.open(folder / "f.png"))
    np.testing.assert_array_equal(source.raw(5), rgba[..., :3])
    np.testing.assert_array_equal(source.raw(-1), source.raw(7))


def test_source_is_array_like_over_rows(source):
    n = len(FILES)
    assert len(source) == n and source.shape == (n, CROP, CROP, 3)
    assert source.ndim == 4 and source.dtype == np.float32
    assert np.shape(source) == source.shape and np.ndim(source) == 4
    expected = np.stack([_reference_eval(source.raw(i)) for i in range(n)])
    np.testing.assert_array_equal(source[2], expected[2])
    np.testing.assert_array_equal(source[-1], expected[-1])
    np.testing.assert_array_equal(source[1:6:2], expected[1:6:2])
    np.testing.assert_array_equal(source[[7, 0, 7]], expected[[7, 0, 7]])
    np.testing.assert_array_equal(source[np.arange(n) % 3 == 0], expected[::3])
    assert source[np.array([[0, 1], [2, 3]])].shape == (2, 2, CROP, CROP, 3)
    assert source[5:5].shape == (0, CROP, CROP, 3)
    with pytest.raises(IndexError, match="ImageSource of 8 images"):
        source[8]
    with pytest.raises(TypeError, match="index rows instead"):
        np.asarray(source)


def test_thread_count_does_not_change_the_crops(folder):
    names = [name for name, *_ in FILES]
    one = ImageSource.from_files(folder, names, num_threads=1, **SMALL)
    none = ImageSource.from_files(folder, names, num_threads=0, **SMALL)
    np.testing.assert_array_equal(one[::-1], none[::-1])


def test_with_indices_selects_rows_of_the_same_storage(source):
    sub = source.with_indices([6, 1, 3])
    assert len(sub) == 3 and sub.shape == (3, CROP, CROP, 3)
    np.testing.assert_array_equal(sub.raw(0), source.raw(6))
    np.testing.assert_array_equal(sub[:], source[[6, 1, 3]])
    subsub = sub.with_indices(np.array([False, True, True]))
    np.testing.assert_array_equal(subsub[:], source[[1, 3]])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        source.with_indices(2)
    with pytest.raises(IndexError, match="ImageSource of 3 images"):
        sub.with_indices([3])


def test_with_sizes_reads_the_same_rows_at_other_sizes(source):
    sub = source.with_indices([4, 0])
    bigger = sub.with_sizes(resize=40, crop=36)
    assert bigger.shape == (2, 36, 36, 3) and bigger.num_threads == source.num_threads
    for row, image in zip((4, 0), bigger[:]):
        np.testing.assert_array_equal(
            image, image_pipeline.eval_transform(source.raw(row), resize=40, crop=36))
    with pytest.raises(ValueError, match="crop"):
        sub.with_sizes(resize=20, crop=36)


def test_from_array_uint8_float_and_grey():
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    as_uint8 = ImageSource.from_array(images, resize=40, crop=36, num_threads=2)
    assert as_uint8.shape == (5, 36, 36, 3)
    np.testing.assert_array_equal(as_uint8.raw(3), images[3])
    expected = np.stack([_reference_eval(image, 40, 36) for image in images])
    np.testing.assert_array_equal(as_uint8[:], expected)
    as_float = ImageSource.from_array(images.astype(np.float32) / 255, resize=40, crop=36)
    np.testing.assert_array_equal(as_float[[4, 0]], expected[[4, 0]])
    grey = ImageSource.from_array(images[..., :1], resize=40, crop=36)
    np.testing.assert_array_equal(grey.raw(1), np.repeat(images[1, ..., :1], 3, axis=-1))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        ImageSource.from_array(images.astype(np.float32))
    with pytest.raises(ValueError, match=r"\[N, H, W, C\] .* got shape \(5, 32, 32, 2\)"):
        ImageSource.from_array(images[..., :2])
    with pytest.raises(ValueError, match="uint8 or float .* int64"):
        ImageSource.from_array(images.astype(np.int64))


# --- train_batches --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def labels():
    return np.eye(3, dtype=np.float32)[np.arange(len(FILES)) % 3]


def test_batches_follow_epoch_permutation_with_per_position_draws(source, labels):
    epoch = _epoch(source, labels, 3, seed=5, epoch=2, num_threads=2)
    assert len(epoch) == 2  # 8 // 3; the remaining 2 items are dropped
    rows = np.concatenate([batch["index"] for batch in epoch])
    np.testing.assert_array_equal(rows, batching.epoch_permutation(8, seed=5, epoch=2)[:6])
    for step, batch in enumerate(epoch):
        assert batch["inputs"].shape == (3, CROP, CROP, 3) and batch["inputs"].dtype == np.float32
        assert batch["index"].dtype == np.int32 and batch["labels"].dtype == np.float32
        np.testing.assert_array_equal(batch["labels"], labels[batch["index"]])
        for j, row in enumerate(batch["index"]):
            position = step * 3 + j
            rng = np.random.default_rng([5, 2, image_pipeline._TRAIN_STREAM, position])
            expected = image_pipeline.train_transform(source.raw(int(row)), rng, **SMALL)
            np.testing.assert_array_equal(batch["inputs"][j], expected)


def test_same_seed_and_epoch_give_the_same_batches_for_any_thread_count(source, labels):
    reference = _epoch(source, labels, 2, seed=1, epoch=0, num_threads=1)
    _assert_same_batches(reference, _epoch(source, labels, 2, seed=1, epoch=0, num_threads=1))
    _assert_same_batches(reference, _epoch(source, labels, 2, seed=1, epoch=0, num_threads=4,
                                           prefetch=0))
    _assert_same_batches(reference, _epoch(source, labels, 2, seed=1, epoch=0, num_threads=0))
    rows = np.concatenate([batch["index"] for batch in reference])
    for seed, epoch in ((1, 1), (2, 0)):
        other = _epoch(source, labels, 2, seed=seed, epoch=epoch)
        assert not np.array_equal(rows, np.concatenate([batch["index"] for batch in other]))


def test_resuming_mid_epoch_yields_the_tail_of_the_epoch_exactly(source, labels):
    full = _epoch(source, labels, 2, seed=3, epoch=4, num_threads=2)
    assert len(full) == 4
    for start in (1, 3):
        tail = _epoch(source, labels, 2, seed=3, epoch=4, start_batch=start, num_threads=3)
        _assert_same_batches(full[start:], tail)


def test_leaving_an_epoch_early_is_clean(source, labels):
    batches = image_pipeline.train_batches(source, labels, 2, seed=0, epoch=0, num_threads=2)
    first = next(batches)
    batches.close()
    assert first["inputs"].shape == (2, CROP, CROP, 3)


def test_real_sizes_end_to_end(folder):
    source = ImageSource.from_files(folder, ["a.jpg", "b.jpg", "c.png"])
    assert source.shape == (3, 224, 224, 3)
    np.testing.assert_array_equal(source[[1]][0], _reference_eval(source.raw(1), 256, 224))
    (batch,) = _epoch(source, np.ones((3, 2)), 3, seed=0, epoch=0)
    assert batch["inputs"].shape == (3, 224, 224, 3)


def test_train_batches_check_their_arguments(source, labels):
    def call(**overrides):
        kwargs = {"labels": labels, "batch_size": 3, "seed": 0, "epoch": 0, **overrides}
        return image_pipeline.train_batches(source, **kwargs)

    with pytest.raises(ValueError, match=r"start_batch must be an integer in \[0, 2\) .* got 2"):
        call(start_batch=2)
    with pytest.raises(ValueError, match=r"start_batch .* got -1"):
        call(start_batch=-1)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        call(batch_size=0)
    with pytest.raises(ValueError, match="batch_size 9 exceeds the source's 8 images"):
        call(batch_size=9)
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got -1"):
        call(seed=-1)
    with pytest.raises(ValueError, match="epoch must be a non-negative integer, got 1.5"):
        call(epoch=1.5)
    with pytest.raises(ValueError, match=r"source has 8 images, labels have shape \(7, 3\)"):
        call(labels=labels[:7])
    with pytest.raises(ValueError, match="num_threads must be a non-negative integer"):
        call(num_threads=-2)
    with pytest.raises(ValueError, match="source must be an ImageSource, got ndarray"):
        image_pipeline.train_batches(np.zeros((8, 4, 4, 3)), labels, 2, seed=0, epoch=0)


def test_missing_and_corrupt_files_are_named_when_decoded(folder, tmp_path):
    good = (folder / "a.jpg").read_bytes()
    (tmp_path / "x.jpg").write_bytes(b"\xff\xd8 certainly not a jpeg" * 8)
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "ok.jpg").write_bytes(good)
    source = ImageSource.from_files(tmp_path, ["ok.jpg", "x.jpg", "cut.jpg", "gone.jpg"], **SMALL)
    assert source[0].shape == (CROP, CROP, 3)
    with pytest.raises(ValueError, match=r"Cannot decode image file '.*x\.jpg'"):
        source[[0, 1]]
    with pytest.raises(ValueError, match=r"Cannot decode image file '.*cut\.jpg'.*truncated"):
        source.raw(2)
    with pytest.raises(ValueError, match=r"Image file '.*gone\.jpg' does not exist"):
        source[3]
    with pytest.raises(ValueError, match=r"Image file '.*gone\.jpg' does not exist"):
        list(image_pipeline.train_batches(source.with_indices([3, 0]), np.zeros(2), 1, seed=0,
                                          epoch=0, num_threads=2))
    with pytest.raises(ValueError, match="at least one image path"):
        ImageSource.from_files(tmp_path, [])
    with pytest.raises(ValueError, match=r"crop \(30\) must not exceed resize \(20\)"):
        ImageSource.from_files(tmp_path, ["ok.jpg"], resize=20, crop=30)
