"""experiments/configs/published: the settings of each published table, and each config run end to
end on generated images with random weights (AlexNet on mocked CIFAR-10, ResNet-50 on a generated
image-list folder)."""

import math

import numpy as np
import pytest
import safetensors.numpy
import tensorflow_datasets as tfds
from PIL import Image

from dlhash_jax import experiment
from dlhash_jax import models
from dlhash_jax import train
from experiments.configs.published import cifar10_1_alexnet
from experiments.configs.published import imagenet100_resnet50

# The smallest images AlexNet takes (its 6x6 adaptive pooling needs at least 63 pixels).
TINY_IMAGES = {"images.resize": 72, "images.crop": 64, "images.num_threads": 2}


def _shrink(config, **changes):
    """Two training steps of a tiny split, no validation: what a CPU test can afford."""
    fields = {
        **TINY_IMAGES,
        "batch_size": 4,
        "num_epochs": 1,
        "eval_every": 0,
        "checkpoint_every": 2,
        "log_every": 1,
        "num_devices": 1,
        "progress_bar": False,
        "evaluation.checkpoint": "last",
        "evaluation.batch_size": 16,
        **changes,
    }
    for dotted, value in fields.items():
        *blocks, field = dotted.split(".")
        target = config
        for block in blocks:
            target = target[block]
        target[field] = value
    return config


def _weights(tmp_path, name):
    path = str(tmp_path / f"{name}.safetensors")
    safetensors.numpy.save_file(models.pretrained.random_weights(name, 0), path)
    return path


@pytest.mark.parametrize("method", cifar10_1_alexnet.METHODS)
def test_cifar10_1_alexnet_settings_are_the_toolboxs(method):
    config = cifar10_1_alexnet.get_config(f"{method},bits=32,seed=2")
    assert (config.method, config.protocol, config.bits, config.seed) == (
        method, "cifar10-1", 32, 2)
    assert config.model.backbone == "alexnet" and not config.augment
    assert (config.images.resize, config.images.crop) == (256, 224)
    expected = {"dpsh": ("rmsprop", 1e-5, 128, 150), "hashnet": ("rmsprop", 1e-5, 64, 150),
                "dsh": ("rmsprop", 1e-5, 64, 250), "csq": ("rmsprop", 1e-5, 64, 150),
                "greedyhash": ("sgd", 1e-3, 64, 200)}[method]
    optimizer = config.optimizer
    assert (optimizer.name, optimizer.learning_rate, config.batch_size, config.num_epochs) == (
        expected)
    assert config.eval_every == 10 * (5000 // config.batch_size)
    if method == "greedyhash":
        # x0.1 every 30 epochs of 78 steps.
        assert (optimizer.schedule, optimizer.decay_every, optimizer.decay_rate) == (
            "step", 2340, 0.1)
        assert (optimizer.momentum, optimizer.weight_decay) == (0.9, 5e-4)
    else:
        assert (optimizer.schedule, optimizer.weight_decay) == ("constant", 1e-5)
    if method == "csq":
        assert config.hparams.lambda_q == 1e-4
    config.model.pretrained_path = "weights.safetensors"
    with pytest.raises(ValueError, match="no such file"):
        train.validate_config(config)


def test_cifar10_1_alexnet_refuses_a_method_outside_its_table():
    with pytest.raises(ValueError, match=r"has the methods .*'dpsh'.* got 'dtsh'"):
        cifar10_1_alexnet.get_config("dtsh,bits=32")


@pytest.fixture(scope="module")
def alexnet_weights(tmp_path_factory):
    return _weights(tmp_path_factory.mktemp("weights"), "alexnet")


# The five methods share everything a run of this table does outside their recipes (mocked
# CIFAR-10, the cifar10-1 split, the pretrained AlexNet, run_recipe), and each method's settings
# are checked above, so two runs cover its two optimizer paths: dpsh (RMSprop with a constant
# rate, like csq, dsh and hashnet; the memory bank, which dsh reads too) and greedyhash (SGD with
# momentum and the step schedule). The others train elsewhere: csq end to end in the ResNet-50
# run below, csq and hashnet in their tiny runs (tests/methods), dsh in
# colab/compare_methods.ipynb (tests/test_notebooks.py).
# One test per method, so the suite's workers share them out.
@pytest.mark.slow
@pytest.mark.parametrize("method", ["dpsh", "greedyhash"])
def test_cifar10_1_alexnet_runs_end_to_end_on_mocked_images(tmp_path, alexnet_weights, method):
    sizes = {"query_size": 10, "train_size": 8, "validation_size": 10}
    with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
        config = _shrink(cifar10_1_alexnet.get_config(f"{method},bits=16"), **{
            "model.pretrained_path": alexnet_weights, "protocol_overrides": sizes,
            "data_dir": str(tmp_path / "tfds")})
        # run_recipe: training and evaluation without the report's plots.
        outcome = experiment.run_recipe(config, str(tmp_path / method))
        result = outcome["results"]
        assert (outcome["step"], outcome["checkpoint"]) == (2, "last")
        # 40 + 40 mock images, 10 queries: the other 70 are the database (cifar10-1).
        assert "precision_at_70" in result
        assert 0.0 <= result["map"] <= 1.0 and math.isfinite(result["map"])


def _imagenet100_folder(path, *, queries=10, database=30, train_items=12):
    """A generated ImageNet-100 layout: JPEGs of odd sizes and the toolboxes' three lists,
    one-hot over 100 classes, train.txt a subset of database.txt."""
    rng = np.random.default_rng(0)
    (path / "image").mkdir(parents=True)
    lines = []
    for i in range(queries + database):
        size = (40 + i % 7, 33 + i % 5)
        pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path / "image" / f"n{i:03d}.JPEG", format="JPEG")
        labels = np.zeros(100, np.int64)
        labels[i % 100] = 1
        lines.append(f"image/n{i:03d}.JPEG " + " ".join(map(str, labels)))
    (path / "test.txt").write_text("\n".join(lines[:queries]) + "\n")
    (path / "database.txt").write_text("\n".join(lines[queries:]) + "\n")
    (path / "train.txt").write_text("\n".join(lines[queries:queries + train_items]) + "\n")
    return path


def test_imagenet100_resnet50_settings_are_the_authors():
    config = imagenet100_resnet50.get_config("/data/imagenet100,bits=16,seed=1")
    assert (config.method, config.protocol, config.bits, config.seed) == (
        "csq", "imagelist:/data/imagenet100", 16, 1)
    assert config.protocol_overrides.dataset == "imagenet100"
    assert tuple(config.evaluation.topk) == (1000,)
    assert config.model.backbone == "resnet50" and config.hparams.lambda_q == 0.05
    optimizer = config.optimizer
    assert (optimizer.name, optimizer.learning_rate, optimizer.backbone_lr_multiplier) == (
        "adam", 1e-3, 0.01)
    # x0.7 every 10 epochs of 13,000 / 64 = 203 steps; 90 epochs of batch 64.
    assert (optimizer.schedule, optimizer.decay_rate, optimizer.decay_every) == ("step", 0.7, 2030)
    assert (config.batch_size, config.num_epochs) == (64, 90)


@pytest.mark.slow
def test_imagenet100_resnet50_runs_end_to_end_on_a_generated_image_list(tmp_path):
    folder = _imagenet100_folder(tmp_path / "imagenet100")
    config = _shrink(imagenet100_resnet50.get_config(f"{folder},bits=16"), **{
        "model.pretrained_path": _weights(tmp_path, "resnet50"),
        "images.resize": 36, "images.crop": 32})
    outcome = experiment.run_recipe(config, str(tmp_path / "run"))
    result = outcome["results"]
    assert outcome["step"] == 3
    # mAP@1,000 over a database of 30: every item is retrieved.
    assert "precision_at_30" in result
    assert 0.0 <= result["map"] <= 1.0 and math.isfinite(result["map"])
