"""Experiment configs: one file per method (``<method>.py``) over the shared ``base.py``.

Each method file has ``get_config(argument)``, ``argument`` being ``"protocol,key=value,..."``
(:func:`experiments.configs.base.parse_argument`); a recipe without a file of its own runs with
``base.py``'s defaults. Files are named after the recipes (``dlhash_jax.methods.RECIPES``), which
is how :func:`load` finds them.
"""

import importlib
import os

import ml_collections

from experiments.configs import base

CONFIGS_DIR = os.path.dirname(os.path.abspath(__file__))


def names() -> list[str]:
    """The methods with a config file of their own, sorted (``base.py`` is not a method)."""
    return sorted(
        name[: -len(".py")]
        for name in os.listdir(CONFIGS_DIR)
        if name.endswith(".py") and name not in ("base.py", "__init__.py")
    )


def load(name: str, argument: str | None = None) -> ml_collections.ConfigDict:
    """Method ``name``'s config: its file's ``get_config``, or ``base.py``'s defaults without one.

    Args:
      name: a key of ``dlhash_jax.methods.RECIPES``.
      argument: ``"protocol,key=value,..."``, e.g. ``"digits_mosaic,bits=16,seed=1"``; ``None``:
        the file's own default argument (``"digits"`` for a method without a file).

    Returns:
      The config, unlocked (``--config`` of ``experiments.train`` locks it).

    Raises:
      ValueError: for an unknown method (no file and no recipe) or a bad ``argument``.
    """
    if name in names():
        module = importlib.import_module(f"experiments.configs.{name}")
        return module.get_config() if argument is None else module.get_config(argument)
    return base.get_config(argument, method=name)
