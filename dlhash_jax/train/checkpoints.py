"""Orbax checkpoints of a run: the latest full train states, and the best validation variables
(with the learned codes of the training items, for a recipe that has them)."""

from __future__ import annotations

import json
import os
from typing import NamedTuple

import flax.serialization
import jax
import numpy as np
import orbax.checkpoint as ocp

from dlhash_jax import _checks
from dlhash_jax.train.config import EVAL_CHECKPOINTS
from dlhash_jax.train.run import Run
from dlhash_jax.train.run import initial_state
from dlhash_jax.train.state import TrainState

CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "best"


def _abstract(tree):
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def state_dict(state: TrainState) -> dict:
    """The checkpointed form of a host train state (flax's state dict).

    A recipe without discrete variables leaves ``discrete`` out, so its checkpoints have the
    layout they had before ``TrainState.discrete`` existed and older runs still resume.
    """
    tree = flax.serialization.to_state_dict(state)
    if state.discrete is None:
        tree.pop("discrete")
    return tree


def checkpoint_manager(directory: str, *, max_to_keep: int) -> ocp.CheckpointManager:
    """An orbax manager over ``directory`` keeping the newest ``max_to_keep`` steps.

    In a multi-process run every process opens it and makes the same calls; process 0 writes
    the host arrays and the others wait at orbax's barriers. The barriers are named after the
    directory, so the run's two managers (``checkpoints/`` and ``best/``), which may both save
    a step and finish in background threads at once, never wait at the same one.
    """
    directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep,
        create=True,
        cleanup_tmp_directories=True,
        multiprocessing_options=ocp.options.MultiprocessingOptions(
            barrier_sync_key_prefix=os.path.basename(directory)
        ),
    )
    return ocp.CheckpointManager(directory, options=options)


def variables(state: TrainState) -> dict:
    """The model variables of a state: ``{"params": ..., **model_state}``."""
    return {"params": state.params, **state.model_state}


def best_items(variables_tree, train_codes=None) -> dict:
    """The items of a best checkpoint: the variables, and the learned training codes if any."""
    items = {"variables": variables_tree}
    if train_codes is not None:
        items["train_codes"] = train_codes
    return items


class Restored(NamedTuple):
    """What evaluation needs from a checkpoint (:func:`restore_for_evaluation`).

    Attributes:
      variables: the model variables (host arrays).
      train_codes: ``[N, L]`` learned codes of the training items for a recipe whose
        ``discrete.train_codes`` gives them (ADSH's ``V``), saved with the same checkpoint;
        ``None`` otherwise.
      step: the checkpoint's step.
      which: ``"best"`` or ``"last"``, the checkpoint actually read.
    """

    variables: dict
    train_codes: np.ndarray | None
    step: int
    which: str


def restore_for_evaluation(workdir: str, run: Run, *, which: str = "best") -> Restored:
    """Model variables, and the learned training codes if the recipe has them, from a checkpoint.

    Args:
      workdir: the run's workdir.
      run: the run's :class:`~dlhash_jax.train.Run` (``setup_run`` on its saved config).
      which: ``"best"`` (best validation mAP; falls back to the last checkpoint when the run did
        no validation) or ``"last"``.

    Returns:
      A :class:`Restored` with host arrays.

    Raises:
      FileNotFoundError: if the workdir has no checkpoint.
    """
    _checks.check_choice(which, EVAL_CHECKPOINTS, "config.evaluation.checkpoint")
    template = initial_state(run, fill_bank=False)
    best_dir = os.path.join(workdir, BEST_DIR)
    if which == "best" and os.path.isdir(best_dir):
        manager = checkpoint_manager(best_dir, max_to_keep=1)
        try:
            step = manager.latest_step()
            if step is not None:
                target = jax.device_get(
                    best_items(variables(template), run.train_codes(template.discrete))
                )
                restored = manager.restore(
                    step,
                    args=ocp.args.Composite(
                        **{
                            name: ocp.args.StandardRestore(_abstract(item))
                            for name, item in target.items()
                        }
                    ),
                )
                codes = restored.train_codes if "train_codes" in target else None
                return Restored(restored.variables, codes, step, "best")
        finally:
            manager.close()
    state, _, step = restore_latest(workdir, template)
    if state is None:
        raise FileNotFoundError(f"No checkpoint in {os.path.join(workdir, CHECKPOINT_DIR)}.")
    codes = run.train_codes(jax.device_get(state.discrete))
    return Restored(jax.device_get(variables(state)), codes, step, "last")


def restore_variables(workdir: str, run: Run, *, which: str = "best") -> tuple[dict, int, str]:
    """Model variables from a run's checkpoint.

    Args:
      workdir: the run's workdir.
      run: the run's :class:`~dlhash_jax.train.Run` (``setup_run`` on its saved config).
      which: ``"best"`` (best validation mAP; falls back to the last checkpoint when the run did
        no validation) or ``"last"``.

    Returns:
      ``(variables, step, restored)`` with host arrays; ``restored`` is ``"best"`` or ``"last"``,
      the checkpoint actually read. (:func:`restore_for_evaluation` also returns the learned
      training codes of a recipe that has them.)

    Raises:
      FileNotFoundError: if the workdir has no checkpoint.
    """
    restored = restore_for_evaluation(workdir, run, which=which)
    return restored.variables, restored.step, restored.which


def restore_latest(workdir: str, template: TrainState, manager=None):
    """The newest full state in ``workdir/checkpoints``: ``(state, meta, step)``, or ``None``s.

    Args:
      workdir: the run's workdir.
      template: a state of the run's structure (``initial_state(run, fill_bank=False)``).
      manager: an open manager over the checkpoint directory (one is opened and closed if
        ``None``).
    """
    own = manager is None
    if own:
        manager = checkpoint_manager(os.path.join(workdir, CHECKPOINT_DIR), max_to_keep=1)
    try:
        step = manager.latest_step()
        if step is None:
            return None, None, None
        target = jax.device_get(state_dict(template))
        restored = manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(_abstract(target)), meta=ocp.args.JsonRestore()
            ),
        )
        tree = dict(restored.state)
        if template.discrete is None:
            tree["discrete"] = None
        state = flax.serialization.from_state_dict(template, tree)
        return state, dict(restored.meta), step
    finally:
        if own:
            manager.close()


def truncate_metrics(path: str, last_step: int) -> None:
    """Drops log lines a killed run wrote after its last checkpoint, which the resume redoes."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = [line for line in f if line.strip() and json.loads(line)["step"] <= last_step]
    with open(path, "w") as f:
        f.writelines(lines)
