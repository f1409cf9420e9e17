"""dlhash_jax/data/augment.py: NumPy references, invariants, determinism, jit/vmap, bad input."""

import doctest
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlhash_jax.data import augment

_STRENGTHS = {"max_shift": 1, "min_area": 0.5, "noise_std": 0.1}


def _images(batch=4, height=8, width=8, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(batch, height, width, channels)).astype(np.float32)


def _shift_reference(image, dy, dx):
    """np.roll by (dy, dx), then zero the rows and columns that wrapped around."""
    out = np.roll(image, (dy, dx), axis=(0, 1))
    if dy > 0:
        out[:dy] = 0
    elif dy < 0:
        out[dy:] = 0
    if dx > 0:
        out[:, :dx] = 0
    elif dx < 0:
        out[:, dx:] = 0
    return out


def _bilinear_reference(image, box):
    """Pixel-centre bilinear sampling of the box, coordinates clamped to the outer centres."""
    height, width, channels = image.shape
    top, left, box_height, box_width = box
    out = np.zeros_like(image, dtype=np.float64)
    for i in range(height):
        y = min(max(top + (i + 0.5) * box_height / height - 0.5, 0.0), height - 1.0)
        for j in range(width):
            x = min(max(left + (j + 0.5) * box_width / width - 0.5, 0.0), width - 1.0)
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            y1, x1 = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
            wy, wx = y - y0, x - x0
            for c in range(channels):
                out[i, j, c] = (
                    (1 - wy) * (1 - wx) * image[y0, x0, c] + (1 - wy) * wx * image[y0, x1, c]
                    + wy * (1 - wx) * image[y1, x0, c] + wy * wx * image[y1, x1, c]
                )
    return out


def test_translate_by_one_row_is_a_roll_with_the_wrapped_row_zeroed():
    x = _images(batch=1)
    shifted = np.asarray(augment.translate(x, np.array([[1, 0]])))
    expected = np.roll(x, 1, axis=1)
    expected[:, 0] = 0
    np.testing.assert_array_equal(shifted, expected)


def test_translate_matches_the_reference_per_image():
    x = _images(batch=5, height=6, width=7, channels=2)
    offsets = np.array([[0, 0], [1, 0], [0, -2], [-1, 3], [5, -6]])
    shifted = np.asarray(jax.jit(augment.translate)(x, offsets))
    for image, out, (dy, dx) in zip(x, shifted, offsets):
        np.testing.assert_array_equal(out, _shift_reference(image, dy, dx))


def test_random_shift_is_a_translation_within_the_bound():
    x = _images(batch=16)
    shifted = np.asarray(augment.random_shift(jax.random.key(0), x, max_shift=2))
    seen = set()
    for image, out in zip(x, shifted):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(out, _shift_reference(image, dy, dx))]
        assert matches, "not a translation by at most 2 pixels"
        seen.add(matches[0])
    assert len(seen) > 3  # Each image draws its own offset.


def test_crop_and_resize_matches_the_numpy_reference_and_jax_image():
    x = _images(batch=3, height=8, width=6, channels=2)
    boxes = np.array([[0.0, 0.0, 8.0, 6.0], [1.3, 0.7, 5.0, 4.0], [2.0, 1.0, 4.5, 3.2]],
                     np.float32)
    out = np.asarray(jax.jit(augment.crop_and_resize)(x, boxes))
    for image, box, result in zip(x, boxes, out):
        np.testing.assert_allclose(result, _bilinear_reference(image, box), atol=1e-6)
    np.testing.assert_array_equal(out[0], x[0])  # The whole image is the identity.
    # jax.image's linear resampling (edge weights renormalised) agrees inside the image.
    top, left, box_height, box_width = boxes[1]
    scale = jnp.array([8 / box_height, 6 / box_width])
    reference = jax.image.scale_and_translate(
        x[1], (8, 6, 2), (0, 1), scale, -jnp.array([top, left]) * scale, method="linear",
        antialias=False)
    np.testing.assert_allclose(out[1], reference, atol=1e-6)


def test_random_resized_crop_stays_in_the_input_range_and_draws_per_image():
    x = _images(batch=8)
    out = np.asarray(jax.jit(augment.random_resized_crop, static_argnames="min_area")(
        jax.random.key(1), x, min_area=0.3))
    # Bilinear interpolation is a convex combination of each image's own pixels.
    assert (out >= x.min(axis=(1, 2, 3), keepdims=True) - 1e-6).all()
    assert (out <= x.max(axis=(1, 2, 3), keepdims=True) + 1e-6).all()
    assert not np.allclose(out, x)
    # A constant image stays constant whatever the box.
    flat = np.full((3, 8, 8, 1), 0.25, np.float32)
    crop = jax.jit(augment.random_resized_crop, static_argnames="min_area")
    np.testing.assert_allclose(crop(jax.random.key(2), flat, min_area=0.2), flat, atol=1e-7)


def test_gaussian_noise_is_clipped_to_the_range_with_the_given_spread():
    x = np.full((64, 8, 8, 1), 0.5, np.float32)
    out = np.asarray(augment.gaussian_noise(jax.random.key(3), x, std=0.05))
    assert np.std(out - x) == pytest.approx(0.05, rel=0.05)
    assert abs(float(np.mean(out - x))) < 0.005
    loud = np.asarray(augment.gaussian_noise(jax.random.key(3), _images(), std=2.0))
    assert loud.min() == 0.0 and loud.max() == 1.0  # Clipped to the default [0, 1].
    ranged = np.asarray(augment.gaussian_noise(jax.random.key(3), _images(), std=2.0,
                                               value_range=(-1.0, 2.0)))
    assert ranged.min() == -1.0 and ranged.max() == 2.0


@pytest.mark.parametrize("name, kwargs", [
    ("random_shift", {"max_shift": 0}),
    ("random_resized_crop", {"min_area": 1.0}),
    ("gaussian_noise", {"std": 0.0}),
    ("augment_view", {"max_shift": 0, "min_area": 1.0, "noise_std": 0.0}),
])
def test_zero_strength_is_the_identity(name, kwargs):
    x = _images()
    np.testing.assert_array_equal(getattr(augment, name)(jax.random.key(4), x, **kwargs), x)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_shape_dtype_and_range_are_kept(dtype):
    x = jnp.asarray(_images(batch=3, height=8, width=10, channels=3), dtype)
    cases = [(augment.random_shift, {"max_shift": 2}),
             (augment.random_resized_crop, {"min_area": 0.5}),
             (augment.gaussian_noise, {"std": 0.3}),
             (augment.augment_view, _STRENGTHS)]
    # One compiled program for the four functions: op by op, each operation compiled on its own.
    outs = jax.jit(lambda key, x: [fn(key, x, **kwargs) for fn, kwargs in cases])(
        jax.random.key(5), x)
    for (fn, _), out in zip(cases, outs):
        assert out.shape == x.shape and out.dtype == x.dtype, fn.__name__
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0, fn.__name__


def test_deterministic_for_a_key_and_different_across_keys():
    x = _images()
    first = augment.augment_view(jax.random.key(6), x, **_STRENGTHS)
    np.testing.assert_array_equal(first, augment.augment_view(jax.random.key(6), x, **_STRENGTHS))
    assert not np.array_equal(first, augment.augment_view(jax.random.key(7), x, **_STRENGTHS))
    view1, view2 = augment.two_views(jax.random.key(6), x, **_STRENGTHS)
    assert not np.array_equal(view1, view2)
    key1, key2 = jax.random.split(jax.random.key(6))
    np.testing.assert_array_equal(view2, augment.augment_view(key2, x, **_STRENGTHS))


def test_jit_and_vmap_agree_with_eager_calls():
    x = _images()
    jitted = jax.jit(augment.augment_view, static_argnames=tuple(_STRENGTHS))
    eager = augment.augment_view(jax.random.key(8), x, **_STRENGTHS)
    np.testing.assert_allclose(jitted(jax.random.key(8), x, **_STRENGTHS), eager, atol=1e-6)
    keys = jax.random.split(jax.random.key(9), 3)
    batches = np.stack([_images(seed=s) for s in range(3)])
    mapped = jax.jit(jax.vmap(lambda k, b: augment.augment_view(k, b, **_STRENGTHS)))(keys,
                                                                                      batches)
    for key, batch, out in zip(keys, batches, mapped):
        np.testing.assert_allclose(out, augment.augment_view(key, batch, **_STRENGTHS),
                                   atol=1e-6)


def test_bad_input_raises_clear_errors():
    key, x = jax.random.key(0), _images()
    with pytest.raises(ValueError, match=r"NHWC images \[B, H, W, C\], got shape \(4, 64\)"):
        augment.random_shift(key, x.reshape(4, 64), max_shift=1)
    with pytest.raises(ValueError, match=r"floating dtype .* got int32"):
        augment.gaussian_noise(key, x.astype(np.int32), std=0.1)
    with pytest.raises(ValueError, match=r"floating dtype .* got uint8"):
        augment.augment_view(key, (x * 255).astype(np.uint8), **_STRENGTHS)
    for bad in (-1, 1.5, True, None):
        with pytest.raises(ValueError, match="max_shift must be a non-negative integer"):
            augment.random_shift(key, x, max_shift=bad)
    with pytest.raises(ValueError, match=r"max_shift must be smaller than .* got 8"):
        augment.random_shift(key, x, max_shift=8)
    for bad in (0.0, -0.5, 1.5, float("nan"), "0.5"):
        with pytest.raises(ValueError, match=r"min_area must be a real number in \(0, 1\]"):
            augment.random_resized_crop(key, x, min_area=bad)
    for bad in (-0.1, float("inf"), None):
        with pytest.raises(ValueError, match=r"std must be a real number in \[0, inf\]"):
            augment.gaussian_noise(key, x, std=bad)
    for bad, message in [((1.0, 0.0), "low < high"), ((0.0,), "a pair"),
                         ((0.0, float("nan")), "two finite numbers")]:
        with pytest.raises(ValueError, match=message):
            augment.gaussian_noise(key, x, std=0.1, value_range=bad)
    with pytest.raises(ValueError, match=r"offsets must be integers of shape \[B, 2\]"):
        augment.translate(x, np.zeros((4, 3), np.int32))
    with pytest.raises(ValueError, match=r"offsets must be integers"):
        augment.translate(x, np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match=r"boxes must have shape \[B, 4\] = \(4, 4\)"):
        augment.crop_and_resize(x, np.zeros((3, 4), np.float32))


def test_docstring_examples():
    failures, tried = doctest.testmod(augment, extraglobs={"jnp": jnp})
    assert tried > 0 and failures == 0
