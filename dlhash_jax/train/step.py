"""The training step, written once per device, and its pmap / shard_map wrapper."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from jax import lax
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

from dlhash_jax import _checks
from dlhash_jax import data as data_lib
from dlhash_jax import methods
from dlhash_jax.train.config import PARALLEL_MODES
from dlhash_jax.train.state import TrainState

AXIS_NAME = methods.AXIS_NAME


def train_step(
    state: TrainState,
    batch: Mapping[str, jax.Array],
    *,
    loss_fn: methods.LossFn,
    hparams: Mapping[str, Any],
    bank_output: str | None = None,
    beta_fn: Callable[[jax.Array], jax.Array] | None = None,
    alternating: Sequence[str] = (),
    discrete: methods.DiscreteUpdate | None = None,
    discrete_period: int = 1,
    axis_name: str = AXIS_NAME,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimisation step on one device's share of the global batch.

    Runs inside ``pmap`` or ``shard_map`` over ``axis_name`` (one device: one replica). The
    recipe's bank rows of the *global* batch are written into the bank first (``all_gather`` of
    every device's outputs and indices), then the local loss is computed against the updated
    bank, and gradients and metrics are averaged over devices. With ``B`` items spread over
    ``D`` devices and a loss that is a mean over the rows of the batch (every loss against the
    bank is), this is exactly the single-device step on all ``B`` items, since the mean of the
    per-device means is the global mean. Terms computed within the local batch (in-batch
    triplets, batch statistics such as balance) see ``B / D`` items, as in data-parallel
    PyTorch.

    The loss receives a :class:`~dlhash_jax.methods.LossContext` with the parameters being
    differentiated, the updated bank, the step, ``state.prepared`` and the hyper-parameters; for
    an alternating recipe only the branch of the group updated at this step runs
    (:func:`dlhash_jax.methods.active_group`), with that group's name as ``ctx.group``.

    A recipe's discrete variables (``state.discrete``) are replaced first, when ``state.step``
    is a multiple of ``discrete_period``, by ``discrete.update`` of the bank as the previous
    steps left it (``lax.cond``: other steps skip the work). Its inputs are replicated, so
    every device computes the same variables, and the loss reads them as ``ctx.discrete``.

    Args:
      state: the replicated :class:`TrainState`.
      batch: local batch, ``{"inputs": [b, ...], "labels": [b, C], "index": int32 [b]}``.
      loss_fn: the recipe's loss (see :class:`~dlhash_jax.methods.Recipe`).
      hparams: the recipe's hyper-parameters (static).
      bank_output: key of the model output kept in ``state.bank``, or ``None``.
      beta_fn: optional schedule ``step -> β`` passed to the model; ``None`` uses ``β = 1``.
      alternating: the recipe's parameter groups updated in turn (empty: none).
      discrete: the recipe's :class:`~dlhash_jax.methods.DiscreteUpdate`, or ``None``.
      discrete_period: steps between two discrete updates (static).
      axis_name: the mapped device axis.

    Returns:
      ``(new_state, metrics)``: ``metrics`` holds ``"loss"`` and the recipe's terms, averaged over
      devices (identical on every replica).
    """
    step_rng = jax.random.fold_in(
        jax.random.fold_in(state.rng, state.step), lax.axis_index(axis_name)
    )
    beta = 1.0 if beta_fn is None else beta_fn(state.step)
    mutable = list(state.model_state)
    discrete_state = state.discrete
    if discrete is not None:
        update_ctx = methods.LossContext(
            bank=state.bank,
            step=state.step,
            prepared=state.prepared,
            hparams=hparams,
            discrete=state.discrete,
        )
        discrete_state = lax.cond(
            state.step % discrete_period == 0,
            lambda: discrete.update(state.discrete, update_ctx),
            lambda: state.discrete,
        )

    def local_loss(params):
        variables = {"params": params, **state.model_state}
        kwargs = {"train": True, "beta": beta, "rngs": {"dropout": step_rng}}
        if mutable:
            outputs, model_state = state.apply_fn(
                variables, batch["inputs"], mutable=mutable, **kwargs
            )
        else:
            outputs, model_state = state.apply_fn(variables, batch["inputs"], **kwargs), {}
        bank = state.bank
        if bank_output is not None:
            # `to="invarying"` types the gathered rows as replicated, which they are: every
            # device receives the same global batch, so shard_map can return the bank as P().
            rows = lax.all_gather(
                lax.stop_gradient(outputs[bank_output]), axis_name, tiled=True, to="invarying"
            )
            index = lax.all_gather(batch["index"], axis_name, tiled=True, to="invarying")
            bank = bank.replace(outputs=bank.outputs.at[index].set(rows.astype(bank.outputs.dtype)))
        ctx = methods.LossContext(
            params=params,
            bank=bank,
            step=state.step,
            prepared=state.prepared,
            hparams=hparams,
            discrete=discrete_state,
        )
        if alternating:
            loss, terms = methods.active_group(
                alternating,
                state.step,
                lambda group: loss_fn(outputs, batch, dataclasses.replace(ctx, group=group)),
            )
        else:
            loss, terms = loss_fn(outputs, batch, ctx)
        return loss, (terms, model_state, bank)

    # Under shard_map's replication check the gradient of a replicated parameter is already
    # summed over devices; marking the parameters device-varying gives every device its local
    # gradient, as under pmap, so one pmean is right in both.
    params = lax.pcast(state.params, axis_name, to="varying")
    (loss, (terms, model_state, bank)), grads = jax.value_and_grad(local_loss, has_aux=True)(
        params
    )
    grads = lax.pmean(grads, axis_name)
    model_state = lax.pmean(model_state, axis_name)
    step_metrics = lax.pmean({"loss": loss, **terms}, axis_name)
    new_state = state.apply_gradients(
        grads=grads, model_state=model_state, bank=bank, discrete=discrete_state
    )
    return new_state, step_metrics


class ReplicatedStep:
    """Runs a per-device step on several devices with ``pmap`` or ``shard_map``.

    Layouts: under ``pmap`` the state has a leading device axis and the batch is reshaped to
    ``[D, B/D, ...]``; under ``shard_map`` the state is one replicated array per leaf and the batch
    ``[B, ...]`` is split along its first axis over a 1-D mesh. :meth:`put_state`,
    :meth:`put_batch` and :meth:`get` convert between those and plain host pytrees, so the loop
    and the checkpoints never see the layout (a run may resume on another number of devices).

    Several processes (one per host, after ``jax.distributed.initialize``): ``devices`` are every
    process's devices (``jax.devices()``) and every process makes the same calls, with one
    difference: :meth:`put_batch` takes only this process's rows of the global batch, the
    positions :meth:`process_rows` names. The step's collectives then span the processes, and
    :meth:`get` and :meth:`replicas` read the replicas this process holds. Only ``shard_map``
    runs across processes, over a mesh of every process's devices; ``pmap`` (deprecated
    upstream, and not tested across processes) is refused there with a clear error.

    Args:
      step_fn: ``(state, batch) -> (state, metrics)`` using collectives over ``AXIS_NAME``.
      parallel: ``"pmap"`` or ``"shard_map"``.
      devices: the devices, one replica each.

    Raises:
      ValueError: for an unknown ``parallel``, or ``"pmap"`` over devices of several processes.
    """

    def __init__(self, step_fn, *, parallel: str = "pmap", devices: Sequence[jax.Device]):
        _checks.check_choice(parallel, PARALLEL_MODES, "config.parallel")
        self.parallel = parallel
        self.devices = list(devices)
        self.local_devices = [d for d in self.devices if d.process_index == jax.process_index()]
        processes = len({d.process_index for d in self.devices})
        if parallel == "pmap" and processes > 1:
            raise ValueError(
                "config.parallel='pmap' maps over one process's devices, but the run's devices "
                f"belong to {processes} processes; use config.parallel='shard_map' for a "
                "multi-process run."
            )
        self.mesh = Mesh(np.array(self.devices), (AXIS_NAME,))
        self._sharded = NamedSharding(self.mesh, PartitionSpec(AXIS_NAME))
        self._replicated = NamedSharding(self.mesh, PartitionSpec())
        if parallel == "pmap":
            self._step = jax.pmap(
                step_fn, axis_name=AXIS_NAME, devices=self.devices, donate_argnums=(0,)
            )
        else:
            mapped = jax.shard_map(
                step_fn,
                mesh=self.mesh,
                in_specs=(PartitionSpec(), PartitionSpec(AXIS_NAME)),
                out_specs=(PartitionSpec(), PartitionSpec()),
            )
            self._step = jax.jit(mapped, donate_argnums=(0,))

    @property
    def num_devices(self) -> int:
        return len(self.devices)

    def process_rows(self, batch_size: int) -> np.ndarray:
        """Positions in a global batch of ``batch_size`` rows that this process feeds.

        They are the rows its devices hold, in the order :meth:`put_batch` expects them: all
        of ``range(batch_size)`` in a single process, a contiguous share in each of several.

        Raises:
          ValueError: if ``batch_size`` is not a multiple of the number of devices.
        """
        if batch_size % self.num_devices:
            raise ValueError(
                f"batch size {batch_size} is not divisible by the run's {self.num_devices} "
                "devices; pick a global batch size that is a multiple of jax.device_count()."
            )
        per_device = batch_size // self.num_devices
        indices = self._sharded.addressable_devices_indices_map((batch_size,)).values()
        starts = sorted(index[0].start or 0 for index in indices)
        return np.concatenate([np.arange(start, start + per_device) for start in starts])

    def put_state(self, state):
        """Places a host pytree on the devices, one replica each (every process passes it)."""
        if self.parallel == "pmap":
            n = self.num_devices
            return jax.tree.map(
                lambda x: jax.device_put(np.broadcast_to(x, (n, *np.shape(x))), self._sharded),
                state,
            )
        # Every process holds the whole state, so each of its devices takes a full replica.
        host = jax.tree.map(np.asarray, state)
        return jax.make_array_from_process_local_data(self._replicated, host)

    def put_batch(self, batch: Mapping[str, np.ndarray]):
        """Splits this process's rows of the global batch, ``[b, ...]``, over its devices.

        In a single process ``b = B``, the whole global batch; with ``P`` processes ``b = B / P``,
        the rows at :meth:`process_rows`, and the step sees the global ``[B, ...]`` batch.
        """
        if self.parallel == "pmap":
            batch = data_lib.shard_batch(batch, self.num_devices)
        return jax.make_array_from_process_local_data(self._sharded, dict(batch))

    def get(self, tree):
        """Host (NumPy) copy of this process's first replica of a placed pytree."""

        def first(x):
            local = np.asarray(x.addressable_shards[0].data)
            return local[0] if self.parallel == "pmap" else local

        return jax.tree.map(first, tree)

    def replicas(self, tree) -> list:
        """Host copies of every replica this process holds (to check they agree)."""

        def copies(x):
            shards = sorted(x.addressable_shards, key=lambda s: self.devices.index(s.device))
            if self.parallel == "pmap":
                return [np.asarray(s.data)[0] for s in shards]
            return [np.asarray(s.data) for s in shards]

        leaves, treedef = jax.tree.flatten(tree)
        per_leaf = [copies(leaf) for leaf in leaves]
        return [
            treedef.unflatten([c[d] for c in per_leaf]) for d in range(len(self.local_devices))
        ]

    def __call__(self, state, batch):
        new_state, step_metrics = self._step(state, batch)
        if self.parallel == "shard_map":
            # Un-blocked shard_map loops can dead-lock in XLA's CPU collectives; waiting for
            # each step avoids it at a small cost in overlap.
            jax.block_until_ready(step_metrics)
        return new_state, step_metrics


def make_step(
    recipe: methods.Recipe, hparams: Mapping[str, Any], *, steps_per_epoch: int | None = None
):
    """``train_step`` with the recipe's static parts bound.

    Args:
      recipe: the method.
      hparams: its hyper-parameters.
      steps_per_epoch: steps in one pass over the training split; needed by a recipe with
        ``discrete`` (its update period is counted in epochs).

    Raises:
      ValueError: if the recipe has ``discrete`` and ``steps_per_epoch`` is not given.
    """
    beta_fn = None if recipe.beta_schedule is None else recipe.beta_schedule(hparams)
    period = 1
    if recipe.discrete is not None:
        if steps_per_epoch is None:
            raise ValueError(
                f"Method {recipe.name!r} updates discrete variables every few epochs; pass "
                "steps_per_epoch to make_step."
            )
        period = recipe.discrete.period(hparams, steps_per_epoch)
    return functools.partial(
        train_step,
        loss_fn=recipe.loss_fn,
        hparams=dict(hparams),
        bank_output=recipe.bank_output,
        beta_fn=beta_fn,
        alternating=recipe.alternating,
        discrete=recipe.discrete,
        discrete_period=period,
    )


def select_devices(config: ml_collections.ConfigDict) -> list[jax.Device]:
    """The run's devices: the first ``config.num_devices`` local devices (all when 0).

    In a multi-process run (``jax.process_count() > 1``) every process trains on all of its
    devices, and the run on every process's: ``jax.devices()``.

    Raises:
      ValueError: in a multi-process run, if ``config.num_devices`` is neither 0 nor the
        number of local devices.
    """
    local = jax.local_devices()
    if jax.process_count() == 1:
        return local[: config.num_devices] if config.num_devices else local
    if config.num_devices not in (0, len(local)):
        raise ValueError(
            f"config.num_devices={config.num_devices}, but in a multi-process run every process "
            f"trains on all of its {len(local)} devices; set config.num_devices=0."
        )
    return jax.devices()
