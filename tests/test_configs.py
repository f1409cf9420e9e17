"""Tests of experiments/configs and the experiments/ entry points (run as subprocesses)."""

import functools
import glob
import importlib
import os
import subprocess
import sys

import jax
import pytest

from dlhash_jax import data as data_lib
from dlhash_jax import methods
from dlhash_jax import models
from dlhash_jax import train

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = os.path.join(REPO_ROOT, "experiments")
sys.path.insert(0, EXPERIMENTS)

from configs import base  # noqa: E402  (experiments/ is not a package)
from configs import dpsh  # noqa: E402
from configs import dsh  # noqa: E402

# Every method config file; base.py is the shared part, not a method.
CONFIG_NAMES = sorted(
    os.path.splitext(os.path.basename(path))[0]
    for path in glob.glob(os.path.join(EXPERIMENTS, "configs", "*.py"))
    if os.path.basename(path) not in ("base.py", "__init__.py")
)


@functools.lru_cache(maxsize=None)
def _protocol(name):
    return data_lib.load_protocol(name, seed=0)


@pytest.mark.parametrize("name", CONFIG_NAMES)
@pytest.mark.parametrize("with_argument", [False, True])
def test_config_loads_validates_and_builds(name, with_argument):
    module = importlib.import_module(f"configs.{name}")
    # Cross-modal methods need a cross-modal protocol; the others run on digits.
    protocol = "digits_mosaic_tags" if name in methods.CROSS_MODAL else "digits"
    argument = f"{protocol},bits=16"
    config = module.get_config(argument) if with_argument else module.get_config()
    # experiments/reproduce.py finds a recipe's config file by the recipe's name.
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
    variables = model.init(jax.random.key(0), sample, train=False)
    out = model.apply(variables, sample, train=False)
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
    doc = importlib.import_module(f"configs.{name}").__doc__
    protocol = "digits_mosaic_tags" if name in methods.CROSS_MODAL else "digits"
    assert f"--config=experiments/configs/{name}.py:{protocol},bits=32" in doc
    assert f"--workdir=runs/{name}_{protocol}_32" in doc
    assert "mAP" in doc and " s " in doc


def _run(script, *args):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([REPO_ROOT, env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, os.path.join(EXPERIMENTS, script), *args],
        capture_output=True, text=True, timeout=300, env=env, cwd=REPO_ROOT, check=False,
    )


def test_cli_config_errors_fail_before_training(tmp_path):
    workdir = tmp_path / "run"
    unknown_protocol = _run(
        "train.py", "--config=experiments/configs/dsh.py:digitz", f"--workdir={workdir}")
    assert unknown_protocol.returncode == 1
    assert "Unknown protocol 'digitz'" in unknown_protocol.stderr
    assert "Did you mean 'digits'?" in unknown_protocol.stderr
    typo = _run("train.py", "--config.optimizer.learning_rte=0.1", f"--workdir={workdir}")
    assert typo.returncode != 0
    assert 'Did you mean "learning_rate" instead of "learning_rte"?' in typo.stderr
    assert not workdir.exists()


def test_cli_trains_then_evaluates(tmp_path):
    workdir = tmp_path / "run"
    trained = _run(
        "train.py", f"--workdir={workdir}", "--config.num_epochs=2", "--config.eval_every=0",
        "--config.progress_bar=False", "--config.num_devices=1",
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    lines = trained.stdout.strip().splitlines()
    assert lines[-2].startswith("dpsh 32 bits on digits: mAP 0.")
    assert "(whole database, last checkpoint, step 20)" in lines[-2]
    assert lines[-1] == f"report: {workdir / 'eval' / 'report.md'}"
    evaluated = _run("evaluate.py", f"--workdir={workdir}", "--checkpoint=last")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert evaluated.stdout.splitlines()[0] == lines[-2].split(": ", 1)[1].replace(
        "whole database, ", "")
