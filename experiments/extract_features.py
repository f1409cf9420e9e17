"""Frozen features of a pretrained backbone for a protocol's images, as a ``features:`` file.

    python -m experiments.extract_features --backbone=resnet50 \
        --weights=resnet50.safetensors --protocol=imagelist:/data/coco --out=coco_resnet50.npz
    python -m experiments.train \
        --config=experiments/configs/bihalf.py:features:coco_resnet50.npz,bits=32 \
        --workdir=runs/bihalf_coco_resnet50_32

Every image goes through the evaluation transform of ``dlhash_jax.data.image_pipeline`` (shorter
side resized to ``--resize``, the centre ``--crop × --crop``), the backbone's normalisation and
the backbone (``models.load_pretrained``: AlexNet or VGG-16 fc7, ResNet-50's pooled features,
ViT-B/16's class token). Small in-memory images (digits, CIFAR) are upscaled the same way, grey
ones repeated to RGB. The file holds what ``sources.load_features`` reads: ``x`` float32
``[N, D]`` (cross-modal protocols: ``x_image`` and their text as ``x_text``), ``y`` the labels
as float32 multi-hot ``[N, C]``, and the protocol's four splits for ``--seed`` as
``query_indices``, ``train_indices``, ``validation_indices``, ``database_indices``, so
``load_protocol("features:<out>")`` has the same labels and the same splits. Row i of ``x`` is
the i-th item (in source order) that some split holds: every item of the protocol's source for
the built-in protocols, so the indices equal the protocol's. Each item is encoded once, even
when it is in several splits. Then every method trains on the features in seconds, the setting
of many unsupervised hashing papers (frozen ImageNet features, e.g. VGG fc7).
"""

from __future__ import annotations

import ast
import concurrent.futures
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from absl import app
from absl import flags

from dlhash_jax import data as data_lib
from dlhash_jax import models
from dlhash_jax.data import image_pipeline
from dlhash_jax.data import protocols
from dlhash_jax.data import sources

_BACKBONE = flags.DEFINE_enum(
    "backbone", None, list(models.PRETRAINED_BACKBONES), "Pretrained backbone."
)
_WEIGHTS = flags.DEFINE_string(
    "weights", None, "The backbone's .safetensors or .npz weights (docs/pretrained.md)."
)
_PROTOCOL = flags.DEFINE_string(
    "protocol", None, "Protocol whose images are encoded, e.g. cifar10 or imagelist:/data/coco."
)
_OUT = flags.DEFINE_string("out", None, "The .npz features file to write.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Images per forward pass.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the protocol's splits.")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "tfds data directory (\"\": tfds' default).")
_RESIZE = flags.DEFINE_integer(
    "resize", 0, "Shorter side after resizing; 0: crop * 256 / 224 (256 for a 224 crop)."
)
_CROP = flags.DEFINE_integer(
    "crop", 0, "Side of the centre crop; 0: the size the weights were trained at (224)."
)
_OVERRIDES = flags.DEFINE_multi_string(
    "override", [], "A protocol override key=value, e.g. --override=query_size=500 (repeatable)."
)

SPLIT_NAMES = sources.SPLIT_NAMES


def image_sizes(module, backbone: str, *, resize: int = 0, crop: int = 0) -> tuple[int, int]:
    """``(resize, crop)``, filling the 0s: crop the backbone's image size, resize 256/224 of it.

    Raises:
      ValueError: for a negative size, or a ViT crop other than its position embeddings' size.
    """
    if resize < 0 or crop < 0:
        raise ValueError(f"resize and crop must be positive (0: default), got {resize}, {crop}.")
    # A ViT's position embeddings fix its image size; the other backbones pool adaptively.
    native = getattr(module, "image_size", models.PRETRAINED_BACKBONES[backbone].image_size)
    if backbone == "vit_b16" and crop not in (0, native):
        raise ValueError(
            f"these vit_b16 weights have position embeddings for {native}x{native} images, so "
            f"the crop must be {native}, got {crop}."
        )
    crop = crop or native
    resize = resize or round(crop * image_pipeline.RESIZE / image_pipeline.CROP)
    return resize, crop


def _images(inputs, rows: np.ndarray, *, resize: int, crop: int) -> image_pipeline.ImageSource:
    """Rows ``rows`` of a split's images, read through the evaluation transform."""
    if isinstance(inputs, Mapping):
        inputs = inputs[data_lib.IMAGE]
    if isinstance(inputs, image_pipeline.ImageSource):
        return inputs.with_indices(rows)
    return image_pipeline.ImageSource.from_array(inputs[rows], resize=resize, crop=crop)


def encode_images(
    apply_fn, images: image_pipeline.ImageSource, *, batch_size: int
) -> np.ndarray:
    """``apply_fn`` over ``images`` in batches: float32 ``[N, D]``.

    The next batch is decoded in a background thread while the device runs the current one,
    and the last batch is padded to ``batch_size`` so one compiled program serves them all.
    """
    num_items = len(images)
    starts = range(0, num_items, batch_size)
    chunks = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(images.__getitem__, slice(0, batch_size))
        for start in starts:
            batch = pending.result()
            if start + batch_size < num_items:
                pending = reader.submit(
                    images.__getitem__, slice(start + batch_size, start + 2 * batch_size)
                )
            padding = batch_size - len(batch)
            if padding:
                batch = np.concatenate([batch, np.repeat(batch[-1:], padding, axis=0)])
            chunks.append(np.asarray(apply_fn(batch))[: batch_size - padding])
    return np.concatenate(chunks).astype(np.float32)


def extract_features(
    backbone: str,
    weights: str | os.PathLike,
    protocol: str,
    out: str | os.PathLike,
    *,
    seed: int = 0,
    batch_size: int = 64,
    resize: int = 0,
    crop: int = 0,
    data_dir: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Writes the ``features:`` file of ``backbone`` on ``protocol``'s images to ``out``.

    Args:
      backbone: one of ``models.PRETRAINED_BACKBONES``.
      weights: its ``.safetensors`` or ``.npz`` weights.
      protocol: any protocol name of ``data.load_protocol`` whose inputs are images.
      out: the ``.npz`` to write (written whole under a temporary name, then renamed).
      seed: the protocol's split seed.
      batch_size: images per forward pass.
      resize, crop: the evaluation transform's sizes; 0: the backbone's (see
        :func:`image_sizes`). For an ``imagelist:`` protocol they are its ``resize`` and
        ``crop`` overrides.
      data_dir: tfds data directory.
      overrides: the protocol's overrides.

    Returns:
      ``{"out", "items", "features", "sizes", "seconds"}``: the file, its N and D, the split
      sizes and the time taken.

    Raises:
      ValueError: for a bad backbone, weights file, protocol or override, inputs that are not
        images ``[N, H, W, 1 or 3]``, or a non-positive batch size.
    """
    started = time.perf_counter()
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    module, variables = models.load_pretrained(backbone, weights)
    resize, crop = image_sizes(module, backbone, resize=resize, crop=crop)
    overrides = dict(overrides or {})
    if protocol.startswith(protocols.IMAGELIST_PREFIX):
        given = sorted({"resize", "crop"} & set(overrides))
        if given:
            raise ValueError(
                f"set the image sizes with --resize and --crop, not overrides {given}."
            )
        overrides.update(resize=resize, crop=crop)
    retrieval = data_lib.load_protocol(protocol, seed=seed, data_dir=data_dir, **overrides)
    forward = jax.jit(
        lambda variables, x: module.apply(
            variables, models.normalize_images(x, backbone), train=False
        )
    )
    splits = [getattr(retrieval, name) for name in SPLIT_NAMES]
    items = np.unique(np.concatenate([split.indices for split in splits]))
    x = np.zeros((items.size, models.PRETRAINED_BACKBONES[backbone].features), np.float32)
    y = np.zeros((items.size, retrieval.num_classes), np.float32)
    text = None
    if retrieval.cross_modal:
        text = np.zeros((items.size, *retrieval.input_shape[data_lib.TEXT]), np.float32)
    done = np.zeros(items.size, bool)
    # Database and queries first: the other splits lie in the database (cifar10's train aside).
    for name in ("database", "query", "train", "validation"):
        split = getattr(retrieval, name)
        positions = np.searchsorted(items, split.indices)
        rows = np.flatnonzero(~done[positions])
        if not rows.size:
            continue
        images = _images(split.inputs, rows, resize=resize, crop=crop)
        x[positions[rows]] = encode_images(
            lambda batch: forward(variables, batch), images, batch_size=batch_size
        )
        y[positions[rows]] = split.labels[rows]
        if text is not None:
            text[positions[rows]] = split.inputs[data_lib.TEXT][rows]
        done[positions[rows]] = True
    inputs = {"x": x} if text is None else {"x_image": x, "x_text": text}
    indices = {
        f"{split}_indices": np.searchsorted(items, getattr(retrieval, split).indices)
        for split in SPLIT_NAMES
    }
    out = os.fspath(out)
    partial = out + ".partial"
    with open(partial, "wb") as file:
        np.savez(file, y=y, **inputs, **indices)
    os.replace(partial, out)
    return {
        "out": out,
        "items": int(items.size),
        "features": int(x.shape[1]),
        "sizes": retrieval.sizes,
        "seconds": time.perf_counter() - started,
    }


def parse_overrides(assignments: Sequence[str]) -> dict[str, Any]:
    """``["query_size=500", "image_root=/data"]`` -> ``{"query_size": 500, "image_root": ...}``.

    Values are Python literals where they parse as one, strings otherwise.

    Raises:
      ValueError: for an assignment without ``=``.
    """
    overrides = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep or not key:
            raise ValueError(f"--override={assignment!r} is not key=value.")
        try:
            overrides[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            overrides[key] = text
    return overrides


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    # Checked here, not with flags.mark_flags_as_required: that would make every other absl
    # program importing this module (a test session) demand these flags.
    missing = [f"--{flag.name}" for flag in (_BACKBONE, _WEIGHTS, _PROTOCOL, _OUT) if not flag.value]
    if missing:
        raise app.UsageError(f"Missing flag(s) {', '.join(missing)}.")
    try:
        overrides = parse_overrides(_OVERRIDES.value)
        summary = extract_features(
            _BACKBONE.value,
            _WEIGHTS.value,
            _PROTOCOL.value,
            _OUT.value,
            seed=_SEED.value,
            batch_size=_BATCH_SIZE.value,
            resize=_RESIZE.value,
            crop=_CROP.value,
            data_dir=_DATA_DIR.value or None,
            overrides=overrides,
        )
        topk = data_lib.published_topk(_PROTOCOL.value, **overrides)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    sizes = ", ".join(f"{name} {count}" for name, count in summary["sizes"].items())
    print(
        f"{summary['items']} items x {summary['features']} {_BACKBONE.value} features "
        f"({sizes}) -> {summary['out']} in {summary['seconds']:.1f} s"
    )
    # A features file does not know the benchmark it came from, so its runs need the cutoff.
    cutoff = "" if topk is None else f" --config.evaluation.topk='{tuple(topk)}'"
    print(
        f"train on them: python -m experiments.train "
        f"--config=experiments/configs/<method>.py:features:{summary['out']}{cutoff}"
    )
    return 0


if __name__ == "__main__":
    app.run(main)
