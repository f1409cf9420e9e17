"""Seeded image augmentations in pure JAX, for the two views of contrastive hashing (CIBHash).

Each function takes a PRNG key and a float batch of NHWC images ``[B, H, W, C]`` and returns a
batch of the same shape and dtype; the result is a pure function of the key and the images, so
the same key gives the same views, and every function works under ``jit`` (strengths are static
Python numbers) and ``vmap``. Strength zero returns the images unchanged.

They are meant for small grey-level images such as the 8×8 ``digits`` and 28×28 ``mnist5k``,
where the natural-image recipe of contrastive learning (flips, colour jitter, grey-scaling,
blur) would change a digit's class or do nothing:

- :func:`random_shift`: translate every image by its own integer offset of at most
  ``max_shift`` pixels in each direction, filling with zeros (:func:`translate` with given
  offsets);
- :func:`random_resized_crop`: crop a random square-shaped box covering a fraction of the area
  drawn from ``[min_area, 1]`` (the box keeps the image's aspect ratio) and resize it back to
  ``H × W`` with bilinear interpolation (:func:`crop_and_resize` with given boxes);
- :func:`gaussian_noise`: add ``N(0, std²)`` noise per pixel and clip to the input range;
- :func:`augment_view`: the three in that order (crop, shift, noise), each from its own key;
  :func:`two_views`, two independent views of one batch.

Unlike :func:`dlhash_jax.data.augment_images` (host-side NumPy, drawn per ``(seed, epoch)``, one
view per batch), these run on the device inside the training step: a model draws their key from
the step's RNG (``self.make_rng("dropout")``, which the step folds from the state's key, the
step number and the device), so a resumed run draws exactly the views an uninterrupted run draws.
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from dlhash_jax import _checks

# The inputs of every embedded protocol are intensities in [0, 1] (data/sources.py, mnist5k.py).
DEFAULT_VALUE_RANGE = (0.0, 1.0)


def _check_images(images, name: str = "images") -> jax.Array:
    """``images`` as an array, if it is a floating NHWC batch; ValueError otherwise."""
    if np.ndim(images) != 4:
        raise ValueError(
            f"{name} must be a batch of NHWC images [B, H, W, C], got shape {np.shape(images)}."
        )
    images = jnp.asarray(images)
    if not jnp.issubdtype(images.dtype, jnp.floating):
        raise ValueError(
            f"{name} must have a floating dtype (e.g. float32 intensities in [0, 1]), got "
            f"{images.dtype}; convert with images.astype(jnp.float32)."
        )
    return images


def _check_real(value, name: str, *, low: float, high: float, low_open: bool = False) -> float:
    """``float(value)`` if it is a finite real number in the interval; ValueError otherwise."""
    ok = (
        isinstance(value, numbers.Real)
        and not isinstance(value, (bool, np.bool_))
        and math.isfinite(value)
        and (value > low if low_open else value >= low)
        and value <= high
    )
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ValueError(f"{name} must be a real number in {interval}, got {value!r}.")
    return float(value)


def _check_value_range(value_range) -> tuple[float, float]:
    try:
        low, high = value_range
    except (TypeError, ValueError):
        raise ValueError(f"value_range must be a pair (low, high), got {value_range!r}.") from None
    for bound in (low, high):
        if (
            not isinstance(bound, numbers.Real)
            or isinstance(bound, (bool, np.bool_))
            or not math.isfinite(bound)
        ):
            raise ValueError(f"value_range must hold two finite numbers, got {value_range!r}.")
    if not low < high:
        raise ValueError(f"value_range must have low < high, got {value_range!r}.")
    return float(low), float(high)


def translate(images: jax.typing.ArrayLike, offsets: jax.typing.ArrayLike) -> jax.Array:
    """Shifts each image by an integer offset, filling the uncovered pixels with zeros.

    ``out[b, i, j] = images[b, i − dy_b, j − dx_b]`` where that pixel exists, else 0: a positive
    ``dy`` moves the content down, a positive ``dx`` to the right. The offsets may be traced.

    Args:
      images: ``[B, H, W, C]`` floating.
      offsets: integer ``[B, 2]``, ``(dy, dx)`` per image.

    Returns:
      ``[B, H, W, C]``, the dtype of ``images``.

    Raises:
      ValueError: if ``images`` is not a floating NHWC batch or ``offsets`` is not ``[B, 2]``
        integers.

    Examples:
      >>> x = jnp.arange(1.0, 5.0).reshape(1, 2, 2, 1)
      >>> translate(x, jnp.array([[1, 0]]))[0, :, :, 0]
      Array([[0., 0.],
             [1., 2.]], dtype=float32)
    """
    images = _check_images(images)
    batch, height, width, _ = images.shape
    if np.shape(offsets) != (batch, 2) or not jnp.issubdtype(jnp.asarray(offsets).dtype,
                                                             jnp.integer):
        raise ValueError(
            f"offsets must be integers of shape [B, 2] = {(batch, 2)} for images of shape "
            f"{images.shape}, got {np.shape(offsets)} {jnp.asarray(offsets).dtype}."
        )
    offsets = jnp.asarray(offsets)

    def one(image, offset):
        rows = jnp.arange(height) - offset[0]
        cols = jnp.arange(width) - offset[1]
        valid = ((rows >= 0) & (rows < height))[:, None] & ((cols >= 0) & (cols < width))[None]
        # Clipped indices keep the gather in bounds; the mask zeroes what they stand in for.
        moved = image[jnp.clip(rows, 0, height - 1)][:, jnp.clip(cols, 0, width - 1)]
        return jnp.where(valid[:, :, None], moved, jnp.zeros((), image.dtype))

    return jax.vmap(one)(images, offsets)


def random_shift(key: jax.Array, images: jax.typing.ArrayLike, *, max_shift: int) -> jax.Array:
    """Translates each image by ``(dy, dx)`` drawn uniformly from ``{−s, …, s}²``, zero fill.

    Args:
      key: PRNG key.
      images: ``[B, H, W, C]`` floating.
      max_shift: ``s``, a non-negative integer smaller than ``H`` and ``W``; 0 returns the
        images unchanged.

    Returns:
      ``[B, H, W, C]``, the dtype of ``images`` (see :func:`translate`).

    Raises:
      ValueError: for images that are not a floating NHWC batch, or a bad ``max_shift``.
    """
    images = _check_images(images)
    batch, height, width, _ = images.shape
    max_shift = _checks.check_int(max_shift, "max_shift", minimum=0)
    if max_shift >= min(height, width):
        raise ValueError(
            f"max_shift must be smaller than the image height and width, got {max_shift} for "
            f"images of shape {images.shape}."
        )
    if max_shift == 0:
        return images
    offsets = jax.random.randint(key, (batch, 2), -max_shift, max_shift + 1)
    return translate(images, offsets)


def crop_and_resize(images: jax.typing.ArrayLike, boxes: jax.typing.ArrayLike) -> jax.Array:
    """Resizes a box of each image to the whole ``H × W`` grid with bilinear interpolation.

    Box ``(top, left, h, w)`` (pixels, real-valued, may be traced) covers rows ``top … top + h``
    and columns ``left … left + w`` of the image, pixel ``i`` spanning ``[i, i + 1)``. Output
    pixel ``(i, j)`` samples the image at the centre of its cell in the box,
    ``y = top + (i + ½) h / H − ½`` and ``x = left + (j + ½) w / W − ½`` (pixel-centre
    coordinates), interpolating bilinearly between the four nearest pixels; a coordinate past
    the outermost pixel centre takes the edge pixel. The box ``(0, 0, H, W)`` is the identity.

    Args:
      images: ``[B, H, W, C]`` floating.
      boxes: ``[B, 4]`` real ``(top, left, height, width)`` per image.

    Returns:
      ``[B, H, W, C]``, the dtype of ``images``.

    Raises:
      ValueError: if ``images`` is not a floating NHWC batch or ``boxes`` is not ``[B, 4]``.
    """
    images = _check_images(images)
    batch, height, width, _ = images.shape
    if np.shape(boxes) != (batch, 4):
        raise ValueError(
            f"boxes must have shape [B, 4] = {(batch, 4)} for images of shape {images.shape}, "
            f"got {np.shape(boxes)}."
        )
    boxes = jnp.asarray(boxes, images.dtype)

    def axis_weights(start, extent, size):
        """Indices of the two neighbours and the weight of the upper one, per output pixel."""
        coords = start + (jnp.arange(size, dtype=images.dtype) + 0.5) * extent / size - 0.5
        coords = jnp.clip(coords, 0, size - 1)
        lower = jnp.floor(coords).astype(jnp.int32)
        upper = jnp.minimum(lower + 1, size - 1)
        return lower, upper, coords - lower

    def one(image, box):
        top, left, box_height, box_width = box
        r0, r1, wr = axis_weights(top, box_height, height)
        c0, c1, wc = axis_weights(left, box_width, width)
        rows = image[r0] * (1 - wr)[:, None, None] + image[r1] * wr[:, None, None]
        return rows[:, c0] * (1 - wc)[None, :, None] + rows[:, c1] * wc[None, :, None]

    return jax.vmap(one)(images, boxes).astype(images.dtype)


def random_resized_crop(
    key: jax.Array, images: jax.typing.ArrayLike, *, min_area: float
) -> jax.Array:
    """Crops a random box of each image and resizes it back to ``H × W`` (bilinear).

    The box covers a fraction ``a ~ U(min_area, 1)`` of the image's area with the image's
    aspect ratio (sides ``√a H`` and ``√a W``), at a position drawn uniformly among those inside
    the image; :func:`crop_and_resize` resizes it. Torchvision's ``RandomResizedCrop`` (which
    CIBHash's authors use with ``scale=(0.5, 1)``) also varies the aspect ratio; a digit keeps
    its proportions here.

    Args:
      key: PRNG key.
      images: ``[B, H, W, C]`` floating.
      min_area: smallest area fraction, a real number in ``(0, 1]``; 1 returns the images
        unchanged.

    Returns:
      ``[B, H, W, C]``, the dtype of ``images``.

    Raises:
      ValueError: for images that are not a floating NHWC batch, or a bad ``min_area``.
    """
    images = _check_images(images)
    batch, height, width, _ = images.shape
    min_area = _check_real(min_area, "min_area", low=0.0, high=1.0, low_open=True)
    if min_area == 1.0:
        return images
    area_key, position_key = jax.random.split(key)
    dtype = images.dtype
    side = jnp.sqrt(jax.random.uniform(area_key, (batch,), dtype, min_area, 1.0))
    box_height, box_width = side * height, side * width
    position = jax.random.uniform(position_key, (batch, 2), dtype)
    top = position[:, 0] * (height - box_height)
    left = position[:, 1] * (width - box_width)
    return crop_and_resize(images, jnp.stack([top, left, box_height, box_width], axis=1))


def gaussian_noise(
    key: jax.Array,
    images: jax.typing.ArrayLike,
    *,
    std: float,
    value_range: tuple[float, float] = DEFAULT_VALUE_RANGE,
) -> jax.Array:
    """Adds ``N(0, std²)`` noise to every pixel and clips the result to ``value_range``.

    Args:
      key: PRNG key.
      images: ``[B, H, W, C]`` floating.
      std: standard deviation, a real number ``≥ 0``; 0 returns the images unchanged (not
        clipped).
      value_range: ``(low, high)``, the range of the inputs (``[0, 1]`` for every embedded
        protocol), which noisy pixels are clipped to.

    Returns:
      ``[B, H, W, C]``, the dtype of ``images``.

    Raises:
      ValueError: for images that are not a floating NHWC batch, a negative or non-finite
        ``std``, or a bad ``value_range``.
    """
    images = _check_images(images)
    std = _check_real(std, "std", low=0.0, high=math.inf)
    low, high = _check_value_range(value_range)
    if std == 0.0:
        return images
    noise = jax.random.normal(key, images.shape, images.dtype)
    return jnp.clip(images + std * noise, low, high).astype(images.dtype)


def augment_view(
    key: jax.Array,
    images: jax.typing.ArrayLike,
    *,
    max_shift: int,
    min_area: float,
    noise_std: float,
    value_range: tuple[float, float] = DEFAULT_VALUE_RANGE,
) -> jax.Array:
    """One random view: :func:`random_resized_crop`, :func:`random_shift`, :func:`gaussian_noise`.

    Each step draws from its own key split from ``key``; strengths ``max_shift=0``,
    ``min_area=1`` and ``noise_std=0`` switch steps off (all three: the identity).

    Args:
      key: PRNG key.
      images: ``[B, H, W, C]`` floating.
      max_shift, min_area, noise_std, value_range: as in the three functions.

    Returns:
      ``[B, H, W, C]``, the dtype of ``images``.

    Raises:
      ValueError: as the three functions do.

    Examples:
      >>> x = jnp.zeros((2, 8, 8, 1))
      >>> view = augment_view(jax.random.key(0), x, max_shift=1, min_area=0.6, noise_std=0.1)
      >>> view.shape, view.dtype, bool((view >= 0).all() & (view <= 1).all())
      ((2, 8, 8, 1), dtype('float32'), True)
    """
    crop_key, shift_key, noise_key = jax.random.split(key, 3)
    view = random_resized_crop(crop_key, images, min_area=min_area)
    view = random_shift(shift_key, view, max_shift=max_shift)
    return gaussian_noise(noise_key, view, std=noise_std, value_range=value_range)


def two_views(
    key: jax.Array, images: jax.typing.ArrayLike, **strengths
) -> tuple[jax.Array, jax.Array]:
    """Two independent :func:`augment_view` s of one batch, from the two halves of ``key``.

    Args:
      key: PRNG key.
      images: ``[B, H, W, C]`` floating.
      **strengths: ``max_shift``, ``min_area``, ``noise_std`` and optionally ``value_range``.

    Returns:
      ``(view1, view2)``, each ``[B, H, W, C]``.
    """
    key1, key2 = jax.random.split(key)
    return augment_view(key1, images, **strengths), augment_view(key2, images, **strengths)
