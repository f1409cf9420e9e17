"""Tests for experiments/extract_features.py: frozen backbone features as a ``features:`` file.

AlexNet with seeded random weights on 64x64 crops (its smallest input is 63x63) is the fastest
backbone to draw, save and run; the features are compared with the backbone applied directly to
the same evaluation crops.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from absl import app
from absl import flags
from absl.testing import flagsaver
from PIL import Image

from dlhash_jax import models
from dlhash_jax.data import image_pipeline
from dlhash_jax.data import protocols
from dlhash_jax.models import pretrained
from experiments import extract_features

BACKBONE = "alexnet"
RESIZE, CROP = 72, 64
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "alexnet.safetensors"
    module, variables = pretrained.variables_from_state_dict(
        BACKBONE, pretrained.random_weights(BACKBONE, 0)
    )
    models.save_pretrained(BACKBONE, variables, path)
    return str(path), module, variables


def _direct(module, variables, images):
    """The backbone on images in [0, 1], without the script."""
    return np.asarray(
        module.apply(variables, models.normalize_images(images, BACKBONE), train=False)
    )


def _image_list(folder):
    """12 photos of 20x30 random pixels: queries 0-2, database 3-11, train 3-8; 3 labels."""
    rng = np.random.default_rng(0)
    (folder / "img").mkdir(parents=True)
    labels = np.eye(3, dtype=np.int64)[np.arange(12) % 3]
    paths = [f"img/{i}.png" for i in range(12)]
    for path in paths:
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(folder / path)

    def write(name, rows):
        lines = [f"{paths[i]} " + " ".join(map(str, labels[i])) + "\n" for i in rows]
        (folder / name).write_text("".join(lines))

    write("test.txt", range(3))
    write("database.txt", range(3, 12))
    write("train.txt", range(3, 9))
    return paths


def _same_splits(features, data):
    for split in ("query", "train", "validation", "database"):
        np.testing.assert_array_equal(
            getattr(features, split).indices, getattr(data, split).indices
        )
        np.testing.assert_array_equal(getattr(features, split).labels, getattr(data, split).labels)


def test_image_list_features_equal_the_backbone_on_the_eval_crops(tmp_path, weights):
    path, module, variables = weights
    paths = _image_list(tmp_path / "lists")
    protocol = f"imagelist:{tmp_path / 'lists'}"
    out = tmp_path / "features.npz"
    # The command line, as a user runs it (a batch of 5 leaves a padded last batch).
    completed = subprocess.run(
        [sys.executable, "-m", "experiments.extract_features", f"--backbone={BACKBONE}",
         f"--weights={path}", f"--protocol={protocol}", f"--out={out}", "--batch_size=5",
         f"--resize={RESIZE}", f"--crop={CROP}", "--override=validation_size=2", "--seed=1"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert f"12 items x 4096 {BACKBONE} features" in completed.stdout
    assert f"features:{out}" in completed.stdout

    data = protocols.load_protocol(protocol, seed=1, validation_size=2, resize=RESIZE, crop=CROP)
    features = protocols.load_protocol(f"features:{out}")
    _same_splits(features, data)
    assert features.input_shape == (4096,)
    # Source item i is database.txt's line i (images 3-11), then test.txt's (images 0-2).
    order = [3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 1, 2]
    crops = image_pipeline.ImageSource.from_files(
        tmp_path / "lists", [paths[i] for i in order], resize=RESIZE, crop=CROP
    )[np.arange(12)]
    with np.load(out) as archive:
        np.testing.assert_allclose(
            archive["x"], _direct(module, variables, crops), rtol=1e-4, atol=1e-4
        )


def test_in_memory_grey_images_are_upscaled_and_cross_modal_text_kept(tmp_path, weights):
    path, module, variables = weights
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (20, 10, 10, 1)).astype(np.float32) / 255
    text = rng.integers(0, 2, (20, 6)).astype(np.float32)
    source = tmp_path / "images.npz"
    np.savez(source, x_image=grey, x_text=text, y=np.arange(20) % 4)
    sizes = {"query_size": 4, "train_size": 8, "validation_size": 4}
    out = tmp_path / "features.npz"
    summary = extract_features.extract_features(
        BACKBONE, path, f"features:{source}", out, seed=3, batch_size=8, resize=RESIZE,
        crop=CROP, overrides=sizes,
    )
    assert (summary["items"], summary["features"]) == (20, 4096)
    assert summary["sizes"] == {"query": 4, "train": 8, "validation": 4, "database": 16}
    data = protocols.load_protocol(f"features:{source}", seed=3, **sizes)
    features = protocols.load_protocol(f"features:{out}")
    _same_splits(features, data)
    assert features.cross_modal
    np.testing.assert_array_equal(features.database.inputs["text"], data.database.inputs["text"])
    crops = image_pipeline.ImageSource.from_array(grey, resize=RESIZE, crop=CROP)[np.arange(20)]
    assert crops.shape == (20, CROP, CROP, 3)
    with np.load(out) as archive:
        np.testing.assert_allclose(
            archive["x_image"], _direct(module, variables, crops), rtol=1e-4, atol=1e-4
        )


def test_sizes_and_bad_arguments(tmp_path, weights):
    path, module, _ = weights
    assert extract_features.image_sizes(module, BACKBONE) == (256, 224)
    assert extract_features.image_sizes(module, BACKBONE, crop=64) == (73, 64)
    vit = models.ViTB16(image_size=32)
    with pytest.raises(ValueError, match="position embeddings for 32x32 images"):
        extract_features.image_sizes(vit, "vit_b16", crop=224)
    assert extract_features.image_sizes(vit, "vit_b16") == (37, 32)
    assert extract_features.parse_overrides(["query_size=5", "image_root=/data"]) == {
        "query_size": 5, "image_root": "/data"}
    with pytest.raises(ValueError, match="is not key=value"):
        extract_features.parse_overrides(["query_size"])
    features = tmp_path / "vectors.npz"
    np.savez(features, x=np.ones((10, 5)), y=np.arange(10) % 2)
    with pytest.raises(ValueError, match=r"images must be \[N, H, W, C\]"):
        extract_features.extract_features(
            BACKBONE, path, f"features:{features}", tmp_path / "out.npz",
            overrides={"query_size": 2, "train_size": 4, "validation_size": 2},
        )
    with pytest.raises(ValueError, match="with --resize and --crop, not overrides"):
        extract_features.extract_features(
            BACKBONE, path, "imagelist:/data", tmp_path / "out.npz", overrides={"crop": 64}
        )
    assert not os.path.exists(tmp_path / "out.npz")


def test_missing_flags_are_named_without_binding_other_programs():
    with flagsaver.flagsaver():
        flags.FLAGS(["extract_features.py", "--backbone=resnet50"])
        with pytest.raises(app.UsageError,
                           match=r"Missing flag\(s\) --weights, --protocol, --out\."):
            extract_features.main(["extract_features.py"])
