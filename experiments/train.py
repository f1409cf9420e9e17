"""Trains and evaluates one run: ``python experiments/train.py --config=... --workdir=...``.

With no flags it trains DPSH with 32 bits on ``digits`` into ``runs/dpsh_digits_32`` (what
``make train`` runs). A workdir that already holds checkpoints is resumed. All logic lives in
``dlhash_jax.train.train_and_evaluate``; this file only parses flags.
"""

import os
import re
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from dlhash_jax import evaluate
from dlhash_jax import train

_CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    os.path.join(_CONFIGS, "dpsh.py") + ":digits,bits=32",
    "Config file and argument, e.g. experiments/configs/dsh.py:digits,bits=64.",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run directory; default runs/<method>_<protocol>_<bits>."
)


def default_workdir(config) -> str:
    protocol = re.sub(r"[^A-Za-z0-9_]+", "_", config.protocol).strip("_")
    return os.path.join("runs", f"{config.method}_{protocol}_{config.bits}")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    # Orbax logs every checkpoint operation at INFO; keep the console to the progress bar.
    logging.set_verbosity(logging.WARNING)
    config = _CONFIG.value
    workdir = _WORKDIR.value or default_workdir(config)
    try:
        results = train.train_and_evaluate(config, workdir)
    except (ValueError, train.NonFiniteLossError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"{config.method} {config.bits} bits on {config.protocol}: "
        f"{evaluate.map_summary(results)} "
        f"(whole database, {results['checkpoint']} checkpoint, step {results['step']})"
    )
    print(f"report: {results['report']}")
    return 0


if __name__ == "__main__":
    app.run(main)
