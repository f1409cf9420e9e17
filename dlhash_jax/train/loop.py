"""The training loop: :func:`fit` with resume, logging, validation and a non-finite-loss stop."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import tqdm
from jax.experimental import multihost_utils

from dlhash_jax import conventions
from dlhash_jax import data as data_lib
from dlhash_jax import methods
from dlhash_jax import metrics as metrics_lib
from dlhash_jax import models
from dlhash_jax.data import image_pipeline
from dlhash_jax.train import checkpoints as ckpt
from dlhash_jax.train.run import METRICS_FILE
from dlhash_jax.train.run import SPLITS_FILE
from dlhash_jax.train.run import Run
from dlhash_jax.train.run import initial_state
from dlhash_jax.train.run import setup_run
from dlhash_jax.train.run import write_or_check_config
from dlhash_jax.train.state import TrainState
from dlhash_jax.train.step import ReplicatedStep
from dlhash_jax.train.step import make_step
from dlhash_jax.train.step import select_devices


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


class _NonFiniteStep(Exception):
    """Raised inside the loop with the first bad step and its values; becomes the user message."""

    def __init__(self, step: int, values: Mapping[str, float]):
        super().__init__(step, values)
        self.step = step
        self.values = dict(values)


class _MetricLog:
    """Per-step metrics kept on device until a logging point, then checked and averaged.

    Every process fetches and checks them (a non-finite loss stops all of them at the same
    step); only the one that ``writes`` appends to the log file.
    """

    def __init__(self, path: str, runner: ReplicatedStep, *, writes: bool = True):
        self.path = path
        self.runner = runner
        self.writes = writes
        self.pending: list[tuple[int, Any]] = []
        self.last_time = time.perf_counter()
        self.last_step = None

    def add(self, step: int, step_metrics) -> None:
        self.pending.append((step, step_metrics))

    def drain(self) -> dict[str, float] | None:
        """Fetches pending metrics and logs their means; raises _NonFiniteStep at a bad step."""
        if not self.pending:
            return None
        steps = [step for step, _ in self.pending]
        fetched = [self.runner.get(m) for _, m in self.pending]
        self.pending = []
        for step, values in zip(steps, fetched):
            bad = {k: float(v) for k, v in values.items() if not np.isfinite(v)}
            if bad:
                raise _NonFiniteStep(step, bad)
        means = {k: float(np.mean([values[k] for values in fetched])) for k in fetched[0]}
        now = time.perf_counter()
        first = steps[0] - 1 if self.last_step is None else self.last_step
        means["steps_per_sec"] = (steps[-1] - first) / max(now - self.last_time, 1e-9)
        self.last_time, self.last_step = now, steps[-1]
        self.write({"step": steps[-1], **means})
        return means

    def write(self, record: Mapping[str, Any]) -> None:
        if not self.writes:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def validation_map(run: Run, variables, train_codes=None) -> float:
    """mAP of validation-split codes ranked against training-split codes.

    Model selection never sees the queries: the validation items are carved out of the training
    items by the protocol, and the training split plays the database. For cross-modal data the
    value is the mean of the image→text and text→image mAP (validation images against training
    texts and the reverse).

    Args:
      run: the run.
      variables: the model variables; they encode the validation split, and the training split
        unless ``train_codes`` is given.
      train_codes: optional ``[N, L]`` learned codes of the training items (a recipe whose
        ``discrete.train_codes`` gives them, ADSH's ``V``: ``run.train_codes(state.discrete)``),
        ranked instead of the network's codes of the training split, as evaluation does.
    """
    data, evaluation = run.data, run.config.evaluation
    val_codes = models.encode(
        run.model.apply, variables, data.validation.inputs, batch_size=evaluation.batch_size
    )
    if train_codes is None:
        train_codes = models.encode(
            run.model.apply, variables, data.train.inputs, batch_size=evaluation.batch_size
        )
    switches = {name: evaluation[name] for name in conventions.SWITCHES}
    if isinstance(val_codes, Mapping):
        both = metrics_lib.cross_modal_map(
            val_codes, train_codes, data.validation.labels, data.train.labels, **switches
        )
        return float(np.mean(list(both.values())))
    return float(
        metrics_lib.mean_average_precision(
            val_codes, train_codes, data.validation.labels, data.train.labels, **switches
        )
    )


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns: the run, the final host state, and the validation record."""

    run: Run
    state: TrainState
    best_val_map: float | None
    best_step: int | None


def _non_finite_message(error: _NonFiniteStep, workdir: str, last_good: int | None) -> str:
    where = os.path.join(workdir, ckpt.CHECKPOINT_DIR)
    kept = (
        f"the last good checkpoint (step {last_good}) is kept in {where}"
        if last_good is not None
        else "no checkpoint was written before it"
    )
    return (
        f"Training stopped: non-finite loss at step {error.step} ({error.values}); {kept}. Lower "
        "the learning rate, clip gradients (optimizer.grad_clip_norm) or check the inputs, "
        "then resume."
    )


def _epoch_batches(run, epoch: int, offset: int, rows: np.ndarray) -> Iterator[dict]:
    """This process's rows of the batches of ``epoch``, from its ``offset``-th batch on.

    A resumed run starts mid-epoch. ``rows`` are the positions in each global batch that this
    process feeds (``ReplicatedStep.process_rows``: all of them in a single process). With
    several processes, in-memory data without augmentation is read row by row, so each process
    reads only its share. Augmented in-memory images (``config.augment``: the flips and crops
    are drawn batch by batch) and images read through an ``ImageSource`` (grain decodes whole
    batches) are made whole and then cut: the numbers still equal a single process's, but
    every process prepares the whole global batch.
    """
    config, train = run.config, run.data.train
    streamed = isinstance(train.inputs, image_pipeline.ImageSource)
    whole = len(rows) == config.batch_size
    if not (whole or streamed or config.augment):
        return _rows_of_batches(train, config, epoch, offset, rows)
    if streamed:
        batches = image_pipeline.train_batches(
            train.inputs,
            train.labels,
            config.batch_size,
            seed=config.seed,
            epoch=epoch,
            start_batch=offset,
        )
    else:
        batches = itertools.islice(
            data_lib.batches(
                train,
                config.batch_size,
                seed=config.seed,
                epoch=epoch,
                drop_remainder=True,
                augment=config.augment,
            ),
            offset,
            None,
        )
    if whole:
        return batches
    return (jax.tree.map(lambda x: x[rows], batch) for batch in batches)


def _rows_of_batches(train, config, epoch: int, offset: int, rows: np.ndarray) -> Iterator[dict]:
    """The ``rows`` of the global batches of ``epoch`` from the ``offset``-th on.

    They equal the rows of ``data.batches(train, ..., drop_remainder=True)``'s batches, but
    only they are read from the split.
    """
    size = config.batch_size
    order = data_lib.epoch_permutation(len(train), seed=config.seed, epoch=epoch)
    for start in range(offset * size, len(order) - size + 1, size):
        items = order[start + rows]
        yield {
            "inputs": jax.tree.map(lambda x: x[items], train.inputs),
            "labels": train.labels[items],
            "index": items.astype(np.int32),
        }


def _from_process_zero(value: float) -> float:
    """Process 0's ``value`` on every process (``value`` itself in a single process).

    Every process computes the validation mAP from the same replicated variables; taking
    process 0's makes all of them agree on the best checkpoint, which they save together, even
    on hosts that round differently. The float64 travels as two uint32 words, so no bit is lost
    while JAX's 64-bit types are off.
    """
    if jax.process_count() == 1:
        return value
    words = np.array([value], np.float64).view(np.uint32)
    return float(np.asarray(multihost_utils.broadcast_one_to_all(words)).view(np.float64)[0])


def fit(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    recipe: methods.Recipe | None = None,
    data=None,
    hooks: Sequence[Callable[[int], None]] = (),
) -> FitResult:
    """Trains a recipe as the config says, resuming from the workdir's latest checkpoint.

    The data order is a pure function of ``(config.seed, epoch)`` and a checkpoint holds the
    whole state (bank, optimizer, RNG, a recipe's discrete variables), so a run interrupted at
    any point and started again on the same workdir ends with exactly the parameters of an
    uninterrupted run.

    Several processes (one per host): call ``jax.distributed.initialize`` first, then ``fit``
    with the same arguments on every process, the workdir on storage they all see, and
    ``config.parallel="shard_map"``. The run spans every process's devices, each process feeds
    only its rows of each global batch (and reads only those of in-memory data without
    augmentation), and the parameters and metrics are those of one process holding all the
    devices, up to the order of the sums across devices. Every process saves and restores the
    orbax checkpoints (process 0 writes the host arrays) and computes the validation mAP,
    process 0's value deciding for all; process 0 alone writes the workdir's other files.

    Args:
      config: the run config (see :func:`default_config`); checked by :func:`validate_config`
        before anything is written.
      workdir: where the run writes (created if needed).
      recipe: a recipe to use instead of ``config.method``'s (custom methods).
      data: RetrievalData to use instead of loading ``config.protocol``.
      hooks: callables ``hook(step)`` run on the host after every step (``step`` = number of
        completed steps), e.g. to export or to stop a run.

    Returns:
      A :class:`FitResult`.

    Raises:
      ValueError: for a config error, or a workdir holding a run with another config.
      NonFiniteLossError: if the loss becomes NaN or infinite; the message names the step and
        the last good checkpoint, which is kept.
    """
    run = setup_run(config, recipe=recipe, data=data, workdir=workdir)
    config = run.config
    primary = jax.process_index() == 0
    os.makedirs(workdir, exist_ok=True)
    if jax.process_count() > 1:
        # Every process has read the workdir's split indices (setup_run) before process 0
        # writes there.
        multihost_utils.sync_global_devices("dlhash_jax.train.fit: workdir read")
    if primary:
        write_or_check_config(config, workdir)
        splits_path = os.path.join(workdir, SPLITS_FILE)
        if not os.path.exists(splits_path):
            run.data.save_indices(splits_path)

    checkpoints = ckpt.checkpoint_manager(
        os.path.join(workdir, ckpt.CHECKPOINT_DIR), max_to_keep=config.keep_checkpoints
    )
    best = ckpt.checkpoint_manager(os.path.join(workdir, ckpt.BEST_DIR), max_to_keep=1)
    metrics_path = os.path.join(workdir, METRICS_FILE)
    progress = None
    try:
        state, meta, start_step = ckpt.restore_latest(
            workdir, initial_state(run, fill_bank=False), checkpoints
        )
        if state is None:
            state, meta, start_step = initial_state(run, fill_bank=True), {}, 0
        best_val_map, best_step = meta.get("best_val_map"), meta.get("best_step")
        for step in best.all_steps():
            if step > start_step:
                best.delete(step)
        if primary:
            ckpt.truncate_metrics(metrics_path, start_step)

        runner = ReplicatedStep(
            make_step(run.recipe, run.hparams, steps_per_epoch=run.steps_per_epoch),
            parallel=config.parallel,
            devices=select_devices(config),
        )
        rows = runner.process_rows(config.batch_size)
        placed = runner.put_state(state)
        log = _MetricLog(metrics_path, runner, writes=primary)
        progress = tqdm.tqdm(
            total=run.num_steps,
            initial=start_step,
            desc=f"{run.recipe.name} {config.protocol} {config.bits} bits",
            disable=not (config.progress_bar and primary),
            dynamic_ncols=True,
        )
        postfix = {}
        last_good = start_step if start_step else None
        batches = None
        for step in range(start_step + 1, run.num_steps + 1):
            epoch, offset = divmod(step - 1, run.steps_per_epoch)
            if batches is None or offset == 0:
                batches = _epoch_batches(run, epoch, offset, rows)
            placed, step_metrics = runner(placed, runner.put_batch(next(batches)))
            log.add(step, step_metrics)
            progress.update(1)
            is_last = step == run.num_steps
            validate = bool(config.eval_every) and (step % config.eval_every == 0 or is_last)
            save = step % config.checkpoint_every == 0 or is_last
            if step % config.log_every == 0 or is_last or validate or save:
                try:
                    means = log.drain()
                except _NonFiniteStep as error:
                    raise NonFiniteLossError(
                        _non_finite_message(error, workdir, last_good)
                    ) from None
                if means is not None:
                    postfix["loss"] = f"{means['loss']:.4f}"
                    postfix["steps/s"] = f"{means['steps_per_sec']:.0f}"
                    progress.set_postfix(postfix)
            if validate:
                variables = runner.get(ckpt.variables(placed))
                learned = run.train_codes(runner.get(placed.discrete))
                val_map = _from_process_zero(validation_map(run, variables, learned))
                log.write({"step": step, "val_map": val_map})
                if best_val_map is None or val_map > best_val_map:
                    best_val_map, best_step = val_map, step
                    items = ckpt.best_items(variables, learned)
                    best.save(
                        step,
                        args=ocp.args.Composite(
                            **{name: ocp.args.StandardSave(item) for name, item in items.items()}
                        ),
                    )
                postfix["val_map"] = f"{val_map:.4f}"
                progress.set_postfix(postfix)
            if save:
                host_state = ckpt.state_dict(runner.get(placed))
                checkpoints.save(
                    step,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardSave(host_state),
                        meta=ocp.args.JsonSave(
                            {"best_val_map": best_val_map, "best_step": best_step}
                        ),
                    ),
                    force=True,
                )
                last_good = step
            for hook in hooks:
                hook(step)
        return FitResult(
            run=run, state=runner.get(placed), best_val_map=best_val_map, best_step=best_step
        )
    finally:
        if progress is not None:
            progress.close()
        checkpoints.wait_until_finished()
        best.wait_until_finished()
        checkpoints.close()
        best.close()
