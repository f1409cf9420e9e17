"""Training: config, optimizer, a TrainState with a memory bank, one per-device step, the loop.

The modules, from the bottom up (each imports only those above it in this list):

- :mod:`~dlhash_jax.train.config`: the run config's schema (:func:`default_config`), its checks
  (:func:`validate_config`) and the recipe's resolved hyper-parameters.
- :mod:`~dlhash_jax.train.optimizer`: optax optimizers and schedules (:func:`make_optimizer`,
  with the alternating parameter groups of cross-modal recipes).
- :mod:`~dlhash_jax.train.state`: :class:`TrainState` (parameters, optimizer state, step, RNG,
  BatchNorm statistics, the :class:`~dlhash_jax.methods.MemoryBank`, the recipe's prepared
  data and discrete variables) and :func:`create_train_state`.
- :mod:`~dlhash_jax.train.step`: :func:`train_step`, the per-device step written once (gradients
  and metrics averaged with ``lax.pmean`` over the axis ``"batch"``; the bank rows of the global
  batch gathered with ``lax.all_gather``), and :class:`ReplicatedStep`, which runs it with
  ``jax.pmap`` (default) or ``jax.shard_map`` over a 1-D mesh.
- :mod:`~dlhash_jax.train.run`: :class:`Run` (everything fixed for a run) from
  :func:`setup_run`, and the workdir's config and split files.
- :mod:`~dlhash_jax.train.checkpoints`: orbax checkpoints, :func:`restore_variables` and
  :func:`restore_for_evaluation` (with a recipe's learned training codes).
- :mod:`~dlhash_jax.train.loop`: :func:`fit`, the loop (automatic resume, a non-finite-loss stop,
  tqdm progress, ``metrics.jsonl``, validation mAP and best-checkpoint tracking).

Evaluation (``dlhash_jax.evaluate``) builds on the run and checkpoint helpers here, and
``dlhash_jax.experiment.train_and_evaluate`` on both; nothing here imports them.

One process maps over its local devices. Several processes (TPU pods, several GPU hosts, or
processes on one machine) call ``jax.distributed.initialize()`` first and run the same ``fit``
with ``config.parallel="shard_map"``: the mesh spans every process's devices and each process
feeds its own rows of every global batch (README, "Several devices and hosts";
``tests/test_multiprocess.py``); the step is unchanged.
"""

from dlhash_jax.train.checkpoints import BEST_DIR
from dlhash_jax.train.checkpoints import CHECKPOINT_DIR
from dlhash_jax.train.checkpoints import Restored
from dlhash_jax.train.checkpoints import restore_for_evaluation
from dlhash_jax.train.checkpoints import restore_variables
from dlhash_jax.train.config import EVAL_CHECKPOINTS
from dlhash_jax.train.config import OPTIMIZERS
from dlhash_jax.train.config import PARALLEL_MODES
from dlhash_jax.train.config import SCHEDULES
from dlhash_jax.train.config import default_config
from dlhash_jax.train.config import resolve_hparams
from dlhash_jax.train.config import resolved_config
from dlhash_jax.train.config import validate_config
from dlhash_jax.train.loop import FitResult
from dlhash_jax.train.loop import NonFiniteLossError
from dlhash_jax.train.loop import fit
from dlhash_jax.train.loop import validation_map
from dlhash_jax.train.optimizer import make_optimizer
from dlhash_jax.train.optimizer import make_schedule
from dlhash_jax.train.run import CONFIG_FILE
from dlhash_jax.train.run import METRICS_FILE
from dlhash_jax.train.run import SPLITS_FILE
from dlhash_jax.train.run import Run
from dlhash_jax.train.run import load_config
from dlhash_jax.train.run import load_data
from dlhash_jax.train.run import setup_run
from dlhash_jax.train.state import TrainState
from dlhash_jax.train.state import create_train_state
from dlhash_jax.train.state import forward
from dlhash_jax.train.step import AXIS_NAME
from dlhash_jax.train.step import ReplicatedStep
from dlhash_jax.train.step import make_step
from dlhash_jax.train.step import select_devices
from dlhash_jax.train.step import train_step

__all__ = [
    "AXIS_NAME",
    "BEST_DIR",
    "CHECKPOINT_DIR",
    "CONFIG_FILE",
    "EVAL_CHECKPOINTS",
    "FitResult",
    "METRICS_FILE",
    "NonFiniteLossError",
    "OPTIMIZERS",
    "PARALLEL_MODES",
    "ReplicatedStep",
    "Restored",
    "Run",
    "SCHEDULES",
    "SPLITS_FILE",
    "TrainState",
    "create_train_state",
    "default_config",
    "fit",
    "forward",
    "load_config",
    "load_data",
    "make_optimizer",
    "make_schedule",
    "make_step",
    "resolve_hparams",
    "resolved_config",
    "restore_for_evaluation",
    "restore_variables",
    "select_devices",
    "setup_run",
    "train_step",
    "validate_config",
    "validation_map",
]
