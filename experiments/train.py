"""Trains and evaluates one run: ``python -m experiments.train --config=... --workdir=...``.

With no flags it trains DPSH with 32 bits on ``digits`` into ``runs/dpsh_digits_32`` (what
``make train`` runs). A workdir that already holds checkpoints is resumed. All logic lives in
``dlhash_jax.experiment.train_and_evaluate``; this file parses flags and turns the two usual
mistakes, a config file that does not exist and a mistyped ``--config.<field>``, into one-line
errors instead of tracebacks.
"""

import difflib
import importlib.util
import os
import re
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from dlhash_jax import _checks
from dlhash_jax import evaluate
from dlhash_jax import experiment
from dlhash_jax import train
from experiments import configs

DEFAULT_CONFIG = os.path.join(configs.CONFIGS_DIR, "dpsh.py") + ":digits,bits=32"

# No default here: ml_collections would load it, and apply the --config.<field> overrides, while
# this module is imported, where a mistyped field escapes as a traceback. parse_flags supplies it.
_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Config file and argument, e.g. experiments/configs/dsh.py:digits,bits=64 (relative to the "
    "working directory, else the installed experiments/configs/).",
    lock_config=True,
)
flags.FLAGS["config"].default_as_str = repr(DEFAULT_CONFIG)  # what --help shows as the default
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run directory; default runs/<method>_<protocol>_<bits>."
)

# How ml_collections finds the config flag and its overrides in argv (config_flags._ConfigFlag).
_CONFIG_FLAG = re.compile(r"^--?config(=|$)")
_OVERRIDE_FLAG = re.compile(r"^--?(?:no)?config\.([^=]+)")


def default_workdir(config) -> str:
    protocol = re.sub(r"[^A-Za-z0-9_]+", "_", config.protocol).strip("_")
    return os.path.join("runs", f"{config.method}_{protocol}_{config.bits}")


def config_spec(argv: list[str]) -> str | None:
    """The value of the last ``--config`` in ``argv`` (``"path.py:argument"``), or ``None``."""
    spec = None
    for i, arg in enumerate(argv):
        match = _CONFIG_FLAG.match(arg)
        if match and match.group(1) == "=":
            spec = arg.split("=", 1)[1]
        elif match and i + 1 < len(argv):
            spec = argv[i + 1]
    return spec


def resolve_config_path(path: str) -> str:
    """``path``, or the installed config file of that name when ``path`` is not a file here.

    ``--config=experiments/configs/dsh.py:...`` (as the README writes it) and
    ``--config=dsh.py:...`` then work from any directory.
    """
    if os.path.isfile(path):
        return path
    installed = os.path.join(configs.CONFIGS_DIR, os.path.basename(path))
    relative_dir = os.path.dirname(os.path.normpath(path))
    from_configs = relative_dir in ("", "configs", os.path.join("experiments", "configs"))
    if not os.path.isabs(path) and from_configs and os.path.isfile(installed):
        return installed
    return path


def _without_config_flag(args: list[str]) -> list[str]:
    kept, skip = [], False
    for arg in args:
        match = _CONFIG_FLAG.match(arg)
        if skip:
            skip = False
        elif match:
            skip = match.group(1) != "="
        else:
            kept.append(arg)
    return kept


def missing_config_message(path: str) -> str | None:
    """The error for a config file that does not exist, listing the installed ones; or ``None``."""
    if os.path.isfile(path):
        return None
    available = [f"{name}.py" for name in configs.names()]
    where = "" if os.path.isabs(path) else f" (relative to {os.getcwd()})"
    # Match on the names without ".py", which every file shares and would make any name close.
    stem = os.path.splitext(os.path.basename(path))[0]
    close = difflib.get_close_matches(stem, configs.names(), n=1)
    hint = f" (did you mean '{close[0]}.py'?)" if close else ""
    return (
        f"config file {path!r} does not exist{where}{hint}; the config files in "
        f"{configs.CONFIGS_DIR}: {', '.join(available)}."
    )


def _load_config_file(spec: str):
    """``get_config`` of a ``"path.py:argument"`` spec, as ml_collections calls it."""
    path, sep, argument = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("_config_file", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(argument) if sep else module.get_config()


def _field_paths(block: dict, prefix: str = "") -> list[str]:
    """Every dotted path of a nested dict: blocks and fields, e.g. ``optimizer.learning_rate``."""
    paths = []
    for key, value in block.items():
        paths.append(prefix + str(key))
        if isinstance(value, dict):
            paths += _field_paths(value, f"{prefix}{key}.")
    return paths


def unknown_field_messages(config, overrides: list[str]) -> list[str]:
    """One error per override that names no field of ``config``, with the closest full path.

    Args:
      config: the config the overrides apply to (a ConfigDict).
      overrides: dotted field paths, as in ``--config.<path>=value``.
    """
    paths = _field_paths(config.to_dict())
    return [
        f"--config.{path}: unknown config field {path!r}{_checks.close_match_hint(path, paths)}."
        for path in overrides
        if path not in paths
    ]


def _fail(message: str):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def parse_flags(argv: list[str]) -> list[str]:
    """``app.run``'s flags parser: adds the default ``--config`` and reports config mistakes.

    A ``--config`` file that does not exist, and an override naming no field of the config,
    exit with status 1 and a one-line error each (ml_collections raises them as an ``IOError``
    on first use of the config and a bare ``AttributeError``); other flag errors are absl's.

    Returns:
      The arguments left after the flags, program name first (what ``main`` receives).
    """
    spec = config_spec(argv[1:]) or DEFAULT_CONFIG
    path, sep, argument = spec.partition(":")
    spec = resolve_config_path(path) + sep + argument
    argv = [argv[0], f"--config={spec}", *_without_config_flag(argv[1:])]
    message = missing_config_message(spec.split(":", 1)[0])
    if message:
        _fail(message)
    try:
        return app.parse_flags_with_usage(argv)
    except (AttributeError, KeyError):
        overrides = [m.group(1) for m in map(_OVERRIDE_FLAG.match, argv[1:]) if m]
        messages = unknown_field_messages(_load_config_file(spec), overrides)
        if not messages:
            raise
        _fail("\nerror: ".join(messages))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    # Orbax logs every checkpoint operation at INFO; keep the console to the progress bar.
    logging.set_verbosity(logging.WARNING)
    config = _CONFIG.value
    workdir = _WORKDIR.value or default_workdir(config)
    try:
        results = experiment.train_and_evaluate(config, workdir)
    except (ValueError, train.NonFiniteLossError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"{config.method} {config.bits} bits on {config.protocol}: "
        f"{evaluate.map_summary(results)} "
        f"(whole database, {results['checkpoint']} checkpoint, step {results['step']})"
    )
    if "database_codes" in results:
        print(f"database codes: {results['database_codes']}")
    print(f"report: {results['report']}")
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
