"""Orbax checkpoints of a run: the latest full train states, and the best validation variables."""

from __future__ import annotations

import json
import os

import flax.serialization
import jax
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


def checkpoint_manager(directory: str, *, max_to_keep: int) -> ocp.CheckpointManager:
    """An orbax manager over ``directory`` keeping the newest ``max_to_keep`` steps."""
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True
    )
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def variables(state: TrainState) -> dict:
    """The model variables of a state: ``{"params": ..., **model_state}``."""
    return {"params": state.params, **state.model_state}


def restore_variables(workdir: str, run: Run, *, which: str = "best") -> tuple[dict, int, str]:
    """Model variables from a run's checkpoint.

    Args:
      workdir: the run's workdir.
      run: the run's :class:`~dlhash_jax.train.Run` (``setup_run`` on its saved config).
      which: ``"best"`` (best validation mAP; falls back to the last checkpoint when the run did
        no validation) or ``"last"``.

    Returns:
      ``(variables, step, restored)`` with host arrays; ``restored`` is ``"best"`` or ``"last"``,
      the checkpoint actually read.

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
                target = jax.device_get(variables(template))
                restored = manager.restore(
                    step,
                    args=ocp.args.Composite(
                        variables=ocp.args.StandardRestore(_abstract(target))
                    ),
                )
                return restored.variables, step, "best"
        finally:
            manager.close()
    state, _, step = restore_latest(workdir, template)
    if state is None:
        raise FileNotFoundError(f"No checkpoint in {os.path.join(workdir, CHECKPOINT_DIR)}.")
    return jax.device_get(variables(state)), step, "last"


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
        target = jax.device_get(flax.serialization.to_state_dict(template))
        restored = manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(_abstract(target)), meta=ocp.args.JsonRestore()
            ),
        )
        state = flax.serialization.from_state_dict(template, restored.state)
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
