"""experiments.configs: every config file loads, validates and builds its model; the argument."""

import functools
import importlib

import jax
import pytest

from dlhash_jax import data as data_lib
from dlhash_jax import methods
from dlhash_jax import models
from dlhash_jax import train
from experiments import configs
from experiments.configs import base
from experiments.configs import dpsh
from experiments.configs import dsh

# Every method config file; base.py is the shared part, not a method.
CONFIG_NAMES = configs.names()


@functools.lru_cache(maxsize=None)
def _protocol(name):
    return data_lib.load_protocol(name, seed=0)


@pytest.mark.parametrize("name", CONFIG_NAMES)
@pytest.mark.parametrize("with_argument", [False, True])
def test_config_loads_validates_and_builds(name, with_argument):
    module = importlib.import_module(f"experiments.configs.{name}")
    # Cross-modal methods need a cross-modal protocol; the others run on digits.
    protocol = "digits_mosaic_tags" if name in methods.CROSS_MODAL else "digits"
    argument = f"{protocol},bits=16"
    config = module.get_config(argument) if with_argument else module.get_config()
    # experiments.configs.load finds a recipe's config file by the recipe's name.
    assert config.method == name
    # num_devices=0 means every local device: 4 fake ones in this test session (conftest.py),
    # whatever the machine has elsewhere. Check the config as a one-device run sees it.
    if config.num_devices == 0:
        config.num_devices = 1
    recipe = train.validate_config(config)
    assert recipe is methods.get_recipe(name)
    if with_argument:
        assert (config.protocol, config.bits) == (protocol, 16)
    data = _protocol(config.protocol)
    assert data.cross_modal == recipe.cross_modal
    model = recipe.make_model(config, data.num_classes)
    sample = jax.tree.map(lambda x: x[: config.batch_size], data.train.inputs)

    def build(sample):
        variables = model.init(jax.random.key(0), sample, train=False)
        return model.apply(variables, sample, train=False)

    # Traced, not run: the shapes are what is checked, and running flax's initialisers op by op
    # compiled each of them (9 s for TBH's).
    out = jax.eval_shape(build, sample)
    rows = models.num_rows(sample)
    for key in ("pre", "relaxed"):
        for leaf in jax.tree.leaves(out[key]):
            assert leaf.shape == (rows, config.bits)


def test_argument_sets_protocol_and_fields():
    config = dsh.get_config("mnist,bits=64,seed=3,parallel=shard_map")
    assert (config.protocol, config.bits, config.seed, config.parallel) == (
        "mnist", 64, 3, "shard_map")
    assert config.model.backbone == "convnet"
    assert base.parse_argument("digits") == ("digits", {})
    assert base.parse_argument(None) == ("digits", {})


@pytest.mark.parametrize(
    "argument, message",
    [
        ("digits,bits", r"part 'bits' is not key=value"),
        ("digits,lr=0.1", r"field 'lr' is not one of .*set other fields with --config.lr=\.\.\."),
        (",bits=8", r"names no protocol"),
    ],
)
def test_bad_argument_is_refused(argument, message):
    with pytest.raises(ValueError, match=message):
        dpsh.get_config(argument)


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_config_docstring_holds_command_and_expectations(name):
    doc = importlib.import_module(f"experiments.configs.{name}").__doc__
    protocol = "digits_mosaic_tags" if name in methods.CROSS_MODAL else "digits"
    assert f"--config=experiments/configs/{name}.py:{protocol},bits=32" in doc
    assert f"--workdir=runs/{name}_{protocol}_32" in doc
    assert ".venv/bin/python -m experiments.train " in doc
    assert "mAP" in doc and " s " in doc


def test_names_are_the_method_files():
    assert "base" not in CONFIG_NAMES and "__init__" not in CONFIG_NAMES
    # Adding a method is a module, its RECIPES line and one config file: every recipe has one.
    assert set(CONFIG_NAMES) == set(methods.RECIPES) and "dpsh" in CONFIG_NAMES


def test_load_reads_the_method_file_or_falls_back_to_base(monkeypatch):
    argument = "digits,bits=16,seed=2"
    assert configs.load("dsh", argument).to_dict() == dsh.get_config(argument).to_dict()
    assert configs.load("dpsh").to_dict() == dpsh.get_config().to_dict()
    monkeypatch.setattr(configs, "names", lambda: [])
    assert configs.load("dpsh", argument).to_dict() == (
        base.get_config(argument, method="dpsh").to_dict())
    with pytest.raises(ValueError, match="Unknown method 'no_such_method'"):
        configs.load("no_such_method", "digits")
