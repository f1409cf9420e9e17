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

    Args:
      step_fn: ``(state, batch) -> (state, metrics)`` using collectives over ``AXIS_NAME``.
      parallel: ``"pmap"`` or ``"shard_map"``.
      devices: the devices, one replica each.
    """

    def __init__(self, step_fn, *, parallel: str = "pmap", devices: Sequence[jax.Device]):
        _checks.check_choice(parallel, PARALLEL_MODES, "config.parallel")
        self.parallel = parallel
        self.devices = list(devices)
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

    def put_state(self, state):
        """Places a host pytree on the devices, one replica each."""
        if self.parallel == "pmap":
            n = self.num_devices
            return jax.tree.map(
                lambda x: jax.device_put(np.broadcast_to(x, (n, *np.shape(x))), self._sharded),
                state,
            )
        return jax.device_put(state, self._replicated)

    def put_batch(self, batch: Mapping[str, np.ndarray]):
        """Splits a global host batch ``[B, ...]`` over the devices."""
        if self.parallel == "pmap":
            batch = data_lib.shard_batch(batch, self.num_devices)
        return jax.device_put(dict(batch), self._sharded)

    def get(self, tree):
        """Host (NumPy) copy of replica 0 of a placed pytree."""

        def first(x):
            local = np.asarray(x.addressable_shards[0].data)
            return local[0] if self.parallel == "pmap" else local

        return jax.tree.map(first, tree)

    def replicas(self, tree) -> list:
        """Host copies of every replica of a placed pytree (to check they agree)."""

        def copies(x):
            shards = sorted(x.addressable_shards, key=lambda s: self.devices.index(s.device))
            if self.parallel == "pmap":
                return [np.asarray(s.data)[0] for s in shards]
            return [np.asarray(s.data) for s in shards]

        leaves, treedef = jax.tree.flatten(tree)
        per_leaf = [copies(leaf) for leaf in leaves]
        return [treedef.unflatten([c[d] for c in per_leaf]) for d in range(self.num_devices)]

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
    """The first ``config.num_devices`` local devices (all when 0)."""
    devices = jax.local_devices()
    return devices[: config.num_devices] if config.num_devices else devices
