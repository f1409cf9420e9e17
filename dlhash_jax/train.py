"""Training: a TrainState with a memory bank, one pure per-device step, pmap/shard_map, the loop.

The pieces, from the inside out:

- :class:`TrainState`: parameters, optimizer state, step, RNG, the model's mutable collections
  (BatchNorm statistics) and the :class:`~dlhash_jax.methods.MemoryBank` that DPSH/DSH-style
  recipes pair each batch against.
- :func:`train_step`: the per-device step, written once. Gradients and metrics are averaged with
  ``lax.pmean`` over the axis ``"batch"``; the bank rows of the global batch are gathered with
  ``lax.all_gather``, so the bank stays identical on every replica.
- :class:`ReplicatedStep`: runs that step on one or more devices with ``jax.pmap`` (default) or
  ``jax.shard_map`` over a 1-D mesh; one device is the same code with one replica.
- :func:`fit`: the loop (optax optimizer and schedule from the config, orbax checkpoints with
  automatic resume, a non-finite-loss stop, tqdm progress, ``metrics.jsonl``, validation mAP and
  best-checkpoint tracking); :func:`train_and_evaluate` adds the final evaluation
  (``dlhash_jax.evaluate``).

Everything a run produces lives in its workdir::

    config.json            the resolved config (hyper-parameters filled in)
    split_indices.npz      the protocol's splits (RetrievalData.save_indices)
    metrics.jsonl          one JSON line per logging step and per validation
    checkpoints/<step>/    the latest K full train states (resume from the newest)
    best/<step>/           the variables with the best validation mAP
    eval/                  metrics.json, report.md, pr_curve.png, precision_at_k.png

The wrapper maps over this process's local devices. Multi-host training (TPU pods, several GPU
hosts) is not wired in yet: it needs ``jax.distributed.initialize()``, a mesh over
``jax.devices()`` and each host feeding its own shard of the global batch; the step is unchanged.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import itertools
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import tqdm
from flax.training import train_state
from jax import lax
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

from dlhash_jax import data as data_lib
from dlhash_jax.data import protocols as data_protocols
from dlhash_jax import methods
from dlhash_jax import metrics as metrics_lib
from dlhash_jax import models

AXIS_NAME = methods.AXIS_NAME
PARALLEL_MODES = ("pmap", "shard_map")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine")
EVAL_CHECKPOINTS = ("best", "last")
# The switches of dlhash_jax.metrics (DESIGN.md, evaluation protocol), checked before training.
EVAL_TIES = ("index", "random", "average")
EVAL_NORMALIZE = ("retrieved", "total")
EVAL_ZERO_RELEVANT = ("zero", "skip")

CONFIG_FILE = "config.json"
SPLITS_FILE = "split_indices.npz"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "best"

# Fields that change how a run is executed or reported, not what it computes: a run may resume
# with different values.
_RESUMABLE_FIELDS = frozenset(
    {
        "progress_bar",
        "parallel",
        "num_devices",
        "log_every",
        "checkpoint_every",
        "keep_checkpoints",
        "evaluation",
    }
)
# Blocks whose keys are not fixed by the schema: checked against the recipe, or by the data module.
_OPEN_BLOCKS = frozenset({"hparams", "protocol_overrides"})


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


class _NonFiniteStep(Exception):
    """Raised inside the loop with the first bad step and its values; becomes the user message."""

    def __init__(self, step: int, values: Mapping[str, float]):
        super().__init__(step, values)
        self.step = step
        self.values = dict(values)


def default_config() -> ml_collections.ConfigDict:
    """Every field a run config has, with library defaults.

    ``experiments/configs/base.py`` builds on this; :func:`validate_config` refuses fields that are
    not here (a typo is an error, not a silently ignored setting).

    Returns:
      A ConfigDict with the fields:

      - ``method``: a key of ``dlhash_jax.methods.RECIPES``; ``hparams``: that recipe's
        hyper-parameters (missing ones take the recipe's defaults).
      - ``protocol``: a name for ``dlhash_jax.data.load_protocol``; ``protocol_overrides``:
        keyword overrides for it; ``data_dir``: where tfds data lives ("" for the default).
      - ``seed``: seeds the splits, the initialisation and the data order.
      - ``bits``: code length ``L``.
      - ``model``: ``backbone`` (``"mlp"``, ``"convnet"``, ``"resnet"``) and each backbone's
        fields (see ``dlhash_jax.methods.build_backbone``); ``text_features``: hidden widths of
        the text network of cross-modal methods (``dlhash_jax.models.TextEncoder``).
      - ``batch_size`` (global, split evenly over devices), ``num_epochs``, ``augment``.
      - ``optimizer``: ``name`` (``OPTIMIZERS``), ``learning_rate``, ``schedule``
        (``SCHEDULES``, decayed over the whole run), ``warmup_steps``, ``weight_decay``
        (decoupled for ``adamw``, L2 added to the gradient otherwise), ``momentum`` (``sgd``),
        ``grad_clip_norm`` (0: off).
      - ``parallel``: ``"pmap"`` or ``"shard_map"``; ``num_devices``: 0 for all local devices.
      - ``log_every``, ``eval_every`` (validation mAP every this many steps and at the end; 0:
        never), ``checkpoint_every``, ``keep_checkpoints``, ``progress_bar``.
      - ``evaluation``: ``checkpoint`` (``"best"`` validation checkpoint, or ``"last"``), and the
        switches of ``dlhash_jax.metrics.evaluate_codes``: ``topk``, ``ndcg_k``, ``radius``,
        ``ties``, ``normalize``, ``zero_relevant``; ``batch_size`` for encoding.
    """
    config = ml_collections.ConfigDict()
    config.method = "dpsh"
    config.hparams = ml_collections.ConfigDict()
    config.protocol = "digits"
    config.protocol_overrides = ml_collections.ConfigDict()
    config.data_dir = ""
    config.seed = 0
    config.bits = 32
    config.model = ml_collections.ConfigDict(
        {
            "backbone": "mlp",
            "features": (256, 256),
            "conv_features": (32, 64),
            "dense_features": 256,
            "depth": 20,
            "widths": (16, 32, 64),
            "text_features": (256,),
            "dropout_rate": 0.0,
        }
    )
    config.batch_size = 64
    config.num_epochs = 50
    config.augment = False
    config.optimizer = ml_collections.ConfigDict(
        {
            "name": "adam",
            "learning_rate": 1e-3,
            "schedule": "cosine",
            "warmup_steps": 0,
            "weight_decay": 0.0,
            "momentum": 0.9,
            "grad_clip_norm": 0.0,
        }
    )
    config.parallel = "pmap"
    config.num_devices = 0
    config.log_every = 50
    config.eval_every = 0
    config.checkpoint_every = 500
    config.keep_checkpoints = 2
    config.progress_bar = True
    config.evaluation = ml_collections.ConfigDict(
        {
            "checkpoint": "best",
            "topk": (1000,),
            "ndcg_k": 100,
            "radius": 2,
            "ties": "index",
            "normalize": "retrieved",
            "zero_relevant": "zero",
            "batch_size": 1024,
        }
    )
    return config


def _unknown_fields(config: Mapping, schema: Mapping, prefix: str = "") -> list[str]:
    messages = []
    for key in config:
        path = f"{prefix}{key}"
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema), n=1)
            hint = f" (did you mean {prefix + close[0]!r}?)" if close else ""
            messages.append(f"{path!r}{hint}")
        elif isinstance(schema[key], Mapping) and path not in _OPEN_BLOCKS:
            if not isinstance(config[key], Mapping):
                messages.append(f"{path!r} must be a block of fields")
            else:
                messages.extend(_unknown_fields(config[key], schema[key], f"{path}."))
    return messages


def _check_positive_int(value, name: str, *, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        kind = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"config.{name} must be {kind} integer, got {value!r}.")


def _check_choice(value, choices: Sequence[str], name: str) -> None:
    if value not in choices:
        raise ValueError(f"config.{name} must be one of {tuple(choices)}, got {value!r}.")


def _check_protocol(name) -> None:
    prefix = data_protocols.FEATURES_PREFIX
    if not isinstance(name, str) or not (name in data_lib.PROTOCOLS or name.startswith(prefix)):
        close = difflib.get_close_matches(str(name), list(data_lib.PROTOCOLS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown protocol {name!r}; known protocols: {', '.join(data_lib.PROTOCOL_NAMES)}."
            f"{hint}"
        )


def validate_config(
    config: ml_collections.ConfigDict, *, recipe: methods.Recipe | None = None
) -> methods.Recipe:
    """Checks a run config before anything is trained or written, and returns its recipe.

    Args:
      config: a run config (see :func:`default_config`).
      recipe: use this recipe instead of looking ``config.method`` up in the table (a custom
        method that is not registered).

    Returns:
      The recipe the config names.

    Raises:
      ValueError: for a field not in the schema (with the closest known name), an unknown
        method, hyper-parameter, protocol, backbone, optimizer, schedule or parallel mode, a
        non-positive size, or a batch that does not split evenly over the devices.
    """
    unknown = _unknown_fields(config.to_dict(), default_config().to_dict())
    if unknown:
        raise ValueError(f"Unknown config field(s): {', '.join(unknown)}.")
    if recipe is None:
        recipe = methods.get_recipe(config.method)
    unknown_hparams = [key for key in config.hparams if key not in recipe.default_hparams]
    if unknown_hparams:
        raise ValueError(
            f"Unknown hyper-parameter(s) {unknown_hparams} for method {recipe.name!r}; its "
            f"hyper-parameters are {sorted(recipe.default_hparams)}."
        )
    _check_protocol(config.protocol)
    _check_choice(config.model.backbone, methods.BACKBONES, "model.backbone")
    _check_choice(config.optimizer.name, OPTIMIZERS, "optimizer.name")
    _check_choice(config.optimizer.schedule, SCHEDULES, "optimizer.schedule")
    _check_choice(config.parallel, PARALLEL_MODES, "parallel")
    _check_choice(config.evaluation.checkpoint, EVAL_CHECKPOINTS, "evaluation.checkpoint")
    _check_choice(config.evaluation.ties, EVAL_TIES, "evaluation.ties")
    _check_choice(config.evaluation.normalize, EVAL_NORMALIZE, "evaluation.normalize")
    _check_choice(config.evaluation.zero_relevant, EVAL_ZERO_RELEVANT, "evaluation.zero_relevant")
    for name in ("bits", "batch_size", "num_epochs", "log_every", "checkpoint_every"):
        _check_positive_int(config[name], name)
    _check_positive_int(config.keep_checkpoints, "keep_checkpoints")
    for name in ("num_devices", "eval_every"):
        _check_positive_int(config[name], name, allow_zero=True)
    _check_positive_int(config.optimizer.warmup_steps, "optimizer.warmup_steps", allow_zero=True)
    learning_rate = config.optimizer.learning_rate
    if not learning_rate > 0:
        raise ValueError(
            f"config.optimizer.learning_rate must be positive, got {learning_rate!r}."
        )
    num_devices = config.num_devices or jax.local_device_count()
    if num_devices > jax.local_device_count():
        raise ValueError(
            f"config.num_devices={config.num_devices} but only {jax.local_device_count()} local "
            "devices exist."
        )
    if config.batch_size % num_devices:
        raise ValueError(
            f"config.batch_size={config.batch_size} must be divisible by the number of devices "
            f"({num_devices})."
        )
    return recipe


def resolve_hparams(config: ml_collections.ConfigDict, recipe: methods.Recipe) -> dict[str, Any]:
    """The recipe's default hyper-parameters updated with those the config sets."""
    return {**recipe.default_hparams, **config.hparams.to_dict()}


def make_schedule(optimizer_config: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
    """Learning rate per step: optional linear warm-up, then constant or cosine decay to 0."""
    learning_rate = optimizer_config.learning_rate
    warmup = optimizer_config.warmup_steps
    if optimizer_config.schedule == "constant":
        main = optax.constant_schedule(learning_rate)
    else:
        main = optax.cosine_decay_schedule(learning_rate, decay_steps=max(num_steps - warmup, 1))
    if not warmup:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, learning_rate, warmup), main], [warmup])


def make_optimizer(
    optimizer_config: ml_collections.ConfigDict,
    num_steps: int,
    *,
    alternating: Sequence[str] = (),
) -> optax.GradientTransformation:
    """The optax optimizer of a config block (see :func:`default_config`, field ``optimizer``).

    Args:
      optimizer_config: the ``optimizer`` block.
      num_steps: the run's number of steps (the schedule decays over them).
      alternating: names of top-level parameter groups (submodules) updated in turn, one group
        per step, as in alternating optimisation (DCMH updates the image network with the text
        network fixed, then the reverse). Each group has its own optimizer state, which only
        moves on that group's steps, and its own schedule over its ``num_steps / len(groups)``
        steps. Empty: every parameter is updated at every step.
    """
    if alternating:
        groups = tuple(alternating)
        group_steps = max(num_steps // len(groups), 1)

        def turn(index):
            return lambda count: count % len(groups) == index

        transforms = {
            name: optax.conditionally_mask(
                make_optimizer(optimizer_config, group_steps), turn(index)
            )
            for index, name in enumerate(groups)
        }

        def labels(params):
            missing = [name for name in groups if name not in params]
            if missing or len(params) != len(groups):
                raise ValueError(
                    f"alternating groups {groups} must be exactly the top-level parameter "
                    f"groups, which are {sorted(params)}."
                )
            return {name: jax.tree.map(lambda _, n=name: n, params[name]) for name in params}

        return optax.multi_transform(transforms, labels)
    schedule = make_schedule(optimizer_config, num_steps)
    name = optimizer_config.name
    _check_choice(name, OPTIMIZERS, "optimizer.name")
    chain = []
    if optimizer_config.grad_clip_norm > 0:
        chain.append(optax.clip_by_global_norm(optimizer_config.grad_clip_norm))
    if optimizer_config.weight_decay > 0 and name != "adamw":
        chain.append(optax.add_decayed_weights(optimizer_config.weight_decay))
    if name == "adam":
        chain.append(optax.adam(schedule))
    elif name == "adamw":
        chain.append(optax.adamw(schedule, weight_decay=optimizer_config.weight_decay))
    elif name == "sgd":
        chain.append(optax.sgd(schedule, momentum=optimizer_config.momentum or None))
    else:
        chain.append(optax.rmsprop(schedule))
    return optax.chain(*chain)


class TrainState(train_state.TrainState):
    """flax TrainState plus what hashing recipes carry across steps.

    Attributes:
      model_state: the model's mutable collections other than ``params`` (``{"batch_stats":
        ...}`` for ResNet), ``{}`` when it has none.
      bank: the :class:`~dlhash_jax.methods.MemoryBank` of the training split, or ``None``.
      rng: ``uint32[2]`` key; step ``t`` on device ``d`` uses ``fold_in(fold_in(rng, t), d)``.
    """

    model_state: Any
    bank: methods.MemoryBank | None
    rng: jax.Array


@functools.partial(jax.jit, static_argnums=(0, 1))
def _forward_output(apply_fn, output, variables, inputs):
    return apply_fn(variables, inputs, train=False)[output]


def forward(apply_fn, variables, inputs, *, output: str, batch_size: int = 1024) -> np.ndarray:
    """One model output (e.g. ``"relaxed"``) for every row of ``inputs``, in evaluation mode.

    ``inputs`` is ``[N, ...]`` or a dict of such arrays (cross-modal). Batches are padded to one
    size, so a single compiled function serves them all.

    Returns:
      ``[N, ...]`` float32 NumPy array.
    """
    result = models.map_in_batches(
        lambda batch: _forward_output(apply_fn, output, variables, batch),
        inputs,
        batch_size=batch_size,
    )
    return result.astype(np.float32)


def _first_rows(inputs, count: int):
    return jax.tree.map(lambda leaf: leaf[:count], inputs)


def _bank_probe(model, params, variables, sample_inputs, output: str):
    """Shape and dtype of one row of the model output kept in the bank."""
    return jax.eval_shape(
        lambda: model.apply(
            {"params": params, **variables}, _first_rows(sample_inputs, 1), train=False
        )[output]
    )


def create_train_state(
    model,
    tx: optax.GradientTransformation,
    *,
    seed: int,
    sample_inputs: np.ndarray,
    recipe: methods.Recipe,
    train_split=None,
    fill_bank: bool = True,
    batch_size: int = 1024,
) -> TrainState:
    """Initialises parameters, optimizer state, RNG and (for bank recipes) the memory bank.

    The bank starts from the untrained network's outputs on the whole training split (evaluation
    mode), so the first epoch pairs each batch with real outputs rather than with zeros, which
    would pull every similar pair of DSH's contrastive term towards the origin; recipes with
    ``bank_init="normal"`` (DCMH's authors) start it from standard normal values instead.

    Args:
      model: the flax module (``recipe.make_model(config, num_classes)``).
      tx: the optax optimizer.
      seed: initialisation seed; the training RNG derives from it too.
      sample_inputs: ``[B, ...]`` inputs with the training shape (a dict of them for
        cross-modal data), for ``model.init``.
      recipe: the method; ``recipe.bank_output`` decides whether a bank exists.
      train_split: the training split (``inputs``, ``labels``); needed when the recipe has a bank.
      fill_bank: compute the bank's initial outputs; ``False`` leaves zeros (a restore template).
      batch_size: rows per forward pass when filling the bank.

    Returns:
      A :class:`TrainState` with ``step`` 0.
    """
    init_key, rng = jax.random.split(jax.random.PRNGKey(seed))
    sample_inputs = jax.tree.map(jnp.asarray, sample_inputs)
    variables = model.init({"params": init_key, "dropout": init_key}, sample_inputs, train=False)
    variables = dict(variables)
    params = variables.pop("params")
    bank = None
    if recipe.bank_output is not None:
        if train_split is None:
            raise ValueError(f"Method {recipe.name!r} keeps a memory bank and needs train_split.")
        num_items = models.num_rows(train_split.inputs)
        if fill_bank and recipe.bank_init == "normal":
            probe = _bank_probe(model, params, variables, sample_inputs, recipe.bank_output)
            bank_key = jax.random.fold_in(init_key, 1)
            outputs = jax.random.normal(bank_key, (num_items, *probe.shape[1:]), jnp.float32)
        elif fill_bank:
            outputs = forward(
                model.apply,
                {"params": params, **variables},
                train_split.inputs,
                output=recipe.bank_output,
                batch_size=batch_size,
            )
        else:
            probe = _bank_probe(model, params, variables, sample_inputs, recipe.bank_output)
            outputs = np.zeros((num_items, *probe.shape[1:]), np.float32)
        bank = methods.MemoryBank(
            outputs=jnp.asarray(outputs), labels=jnp.asarray(train_split.labels, jnp.float32)
        )
    state = TrainState.create(
        apply_fn=model.apply, params=params, tx=tx, model_state=variables, bank=bank, rng=rng
    )
    return state.replace(step=jnp.zeros((), jnp.int32))


def train_step(
    state: TrainState,
    batch: Mapping[str, jax.Array],
    *,
    loss_fn: methods.LossFn,
    hparams: Mapping[str, Any],
    bank_output: str | None = None,
    beta_fn: Callable[[jax.Array], jax.Array] | None = None,
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

    Args:
      state: the replicated :class:`TrainState`.
      batch: local batch, ``{"inputs": [b, ...], "labels": [b, C], "index": int32 [b]}``.
      loss_fn: the recipe's loss (see :class:`~dlhash_jax.methods.Recipe`).
      hparams: the recipe's hyper-parameters (static).
      bank_output: key of the model output kept in ``state.bank``, or ``None``.
      beta_fn: optional schedule ``step -> β`` passed to the model; ``None`` uses ``β = 1``.
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
        loss, terms = loss_fn(outputs, batch, bank=bank, step=state.step, hparams=hparams)
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
    new_state = state.apply_gradients(grads=grads, model_state=model_state, bank=bank)
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
        _check_choice(parallel, PARALLEL_MODES, "parallel")
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


def make_step(recipe: methods.Recipe, hparams: Mapping[str, Any]):
    """``train_step`` with the recipe's static parts bound."""
    beta_fn = None if recipe.beta_schedule is None else recipe.beta_schedule(hparams)
    return functools.partial(
        train_step,
        loss_fn=recipe.loss_fn,
        hparams=dict(hparams),
        bank_output=recipe.bank_output,
        beta_fn=beta_fn,
    )


def select_devices(config: ml_collections.ConfigDict) -> list[jax.Device]:
    """The first ``config.num_devices`` local devices (all when 0)."""
    devices = jax.local_devices()
    return devices[: config.num_devices] if config.num_devices else devices


def load_data(config: ml_collections.ConfigDict, workdir: str | None = None):
    """The run's RetrievalData: from the workdir's saved split indices when present."""
    data_dir = config.data_dir or None
    if workdir is not None and os.path.exists(os.path.join(workdir, SPLITS_FILE)):
        return data_lib.load_protocol_from_indices(
            os.path.join(workdir, SPLITS_FILE), data_dir=data_dir
        )
    return data_lib.load_protocol(
        config.protocol, seed=config.seed, data_dir=data_dir, **config.protocol_overrides.to_dict()
    )


def load_config(workdir: str) -> ml_collections.ConfigDict:
    """The resolved config a run saved in its workdir."""
    with open(os.path.join(workdir, CONFIG_FILE)) as f:
        return ml_collections.ConfigDict(json.load(f))


def _normalise(tree):
    """JSON round trip, so a saved config and a live one compare equal (tuples become lists)."""
    return json.loads(json.dumps(tree))


def _write_or_check_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    path = os.path.join(workdir, CONFIG_FILE)
    current = _normalise(config.to_dict())
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        differing = sorted(
            key
            for key in set(saved) | set(current)
            if key not in _RESUMABLE_FIELDS and saved.get(key) != current.get(key)
        )
        if differing:
            raise ValueError(
                f"{workdir} holds a run with a different config (fields {differing} differ); "
                "resume it with its own config, or train into a new workdir."
            )
    with open(path, "w") as f:
        json.dump(current, f, indent=2, sort_keys=True)


def resolved_config(
    config: ml_collections.ConfigDict, recipe: methods.Recipe
) -> ml_collections.ConfigDict:
    """A copy of ``config`` with the recipe's defaults filled into ``hparams``."""
    resolved = ml_collections.ConfigDict(config.to_dict())
    resolved.hparams = ml_collections.ConfigDict(resolve_hparams(config, recipe))
    return resolved


def _check_modalities(recipe: methods.Recipe, data, protocol: str) -> None:
    if recipe.cross_modal and not data.cross_modal:
        raise ValueError(
            f"Method {recipe.name!r} is cross-modal and needs image and text inputs, but protocol "
            f"{protocol!r} has one modality; use 'digits_mosaic_tags' or a features file with "
            "'x_image' and 'x_text'."
        )
    if data.cross_modal and not recipe.cross_modal:
        raise ValueError(
            f"Protocol {protocol!r} is cross-modal (image and text inputs) but method "
            f"{recipe.name!r} takes one input; use a cross-modal method "
            f"({', '.join(methods.CROSS_MODAL)}) or a single-modality protocol."
        )


@dataclasses.dataclass
class Run:
    """Everything fixed for a run: recipe, model, optimizer, data, step counts."""

    config: ml_collections.ConfigDict
    recipe: methods.Recipe
    hparams: dict[str, Any]
    data: Any
    model: Any
    tx: optax.GradientTransformation
    steps_per_epoch: int
    num_steps: int


def setup_run(
    config: ml_collections.ConfigDict,
    *,
    recipe: methods.Recipe | None = None,
    data=None,
    workdir: str | None = None,
) -> Run:
    """Validates the config and builds the recipe, data, model and optimizer of a run."""
    recipe = validate_config(config, recipe=recipe)
    if data is None:
        data = load_data(config, workdir)
    _check_modalities(recipe, data, config.protocol)
    steps_per_epoch = len(data.train) // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"config.batch_size={config.batch_size} is larger than the training split "
            f"({len(data.train)} items)."
        )
    num_steps = steps_per_epoch * config.num_epochs
    return Run(
        config=resolved_config(config, recipe),
        recipe=recipe,
        hparams=resolve_hparams(config, recipe),
        data=data,
        model=recipe.make_model(config, data.num_classes),
        tx=make_optimizer(config.optimizer, num_steps, alternating=recipe.alternating),
        steps_per_epoch=steps_per_epoch,
        num_steps=num_steps,
    )


def _initial_state(run: Run, *, fill_bank: bool) -> TrainState:
    return create_train_state(
        run.model,
        run.tx,
        seed=run.config.seed,
        sample_inputs=_first_rows(run.data.train.inputs, run.config.batch_size),
        recipe=run.recipe,
        train_split=run.data.train,
        fill_bank=fill_bank,
        batch_size=run.config.evaluation.batch_size,
    )


def _abstract(tree):
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def _checkpoint_manager(directory: str, *, max_to_keep: int) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True
    )
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def _variables(state: TrainState) -> dict:
    return {"params": state.params, **state.model_state}


def restore_variables(workdir: str, run: Run, *, which: str = "best") -> tuple[dict, int, str]:
    """Model variables from a run's checkpoint.

    Args:
      workdir: the run's workdir.
      run: the run's :class:`Run` (from :func:`setup_run` on its saved config).
      which: ``"best"`` (best validation mAP; falls back to the last checkpoint when the run did
        no validation) or ``"last"``.

    Returns:
      ``(variables, step, restored)`` with host arrays; ``restored`` is ``"best"`` or ``"last"``,
      the checkpoint actually read.

    Raises:
      FileNotFoundError: if the workdir has no checkpoint.
    """
    _check_choice(which, EVAL_CHECKPOINTS, "evaluation.checkpoint")
    template = _initial_state(run, fill_bank=False)
    best_dir = os.path.join(workdir, BEST_DIR)
    if which == "best" and os.path.isdir(best_dir):
        manager = _checkpoint_manager(best_dir, max_to_keep=1)
        try:
            step = manager.latest_step()
            if step is not None:
                target = jax.device_get(_variables(template))
                restored = manager.restore(
                    step,
                    args=ocp.args.Composite(
                        variables=ocp.args.StandardRestore(_abstract(target))
                    ),
                )
                return restored.variables, step, "best"
        finally:
            manager.close()
    state, _, step = _restore_latest(workdir, template)
    if state is None:
        raise FileNotFoundError(f"No checkpoint in {os.path.join(workdir, CHECKPOINT_DIR)}.")
    return jax.device_get(_variables(state)), step, "last"


def _restore_latest(workdir: str, template: TrainState, manager=None):
    own = manager is None
    if own:
        manager = _checkpoint_manager(os.path.join(workdir, CHECKPOINT_DIR), max_to_keep=1)
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


def _truncate_metrics(path: str, last_step: int) -> None:
    """Drops log lines a killed run wrote after its last checkpoint, which the resume redoes."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = [line for line in f if line.strip() and json.loads(line)["step"] <= last_step]
    with open(path, "w") as f:
        f.writelines(lines)


class _MetricLog:
    """Per-step metrics kept on device until a logging point, then checked and averaged."""

    def __init__(self, path: str, runner: ReplicatedStep):
        self.path = path
        self.runner = runner
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
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def validation_map(run: Run, variables) -> float:
    """mAP of validation-split codes ranked against training-split codes.

    Model selection never sees the queries: the validation items are carved out of the training
    items by the protocol, and the training split plays the database. For cross-modal data the
    value is the mean of the image→text and text→image mAP (validation images against training
    texts and the reverse).
    """
    data, evaluation = run.data, run.config.evaluation
    val_codes = models.encode(
        run.model.apply, variables, data.validation.inputs, batch_size=evaluation.batch_size
    )
    train_codes = models.encode(
        run.model.apply, variables, data.train.inputs, batch_size=evaluation.batch_size
    )
    switches = {
        "normalize": evaluation.normalize,
        "ties": evaluation.ties,
        "zero_relevant": evaluation.zero_relevant,
    }
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
    where = os.path.join(workdir, CHECKPOINT_DIR)
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
    whole state (bank, optimizer, RNG), so a run interrupted at any point and started again on
    the same workdir ends with exactly the parameters of an uninterrupted run.

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
    os.makedirs(workdir, exist_ok=True)
    _write_or_check_config(config, workdir)
    splits_path = os.path.join(workdir, SPLITS_FILE)
    if not os.path.exists(splits_path):
        run.data.save_indices(splits_path)

    checkpoints = _checkpoint_manager(
        os.path.join(workdir, CHECKPOINT_DIR), max_to_keep=config.keep_checkpoints
    )
    best = _checkpoint_manager(os.path.join(workdir, BEST_DIR), max_to_keep=1)
    metrics_path = os.path.join(workdir, METRICS_FILE)
    progress = None
    try:
        state, meta, start_step = _restore_latest(
            workdir, _initial_state(run, fill_bank=False), checkpoints
        )
        if state is None:
            state, meta, start_step = _initial_state(run, fill_bank=True), {}, 0
        best_val_map, best_step = meta.get("best_val_map"), meta.get("best_step")
        for step in best.all_steps():
            if step > start_step:
                best.delete(step)
        _truncate_metrics(metrics_path, start_step)

        runner = ReplicatedStep(
            make_step(run.recipe, run.hparams),
            parallel=config.parallel,
            devices=select_devices(config),
        )
        placed = runner.put_state(state)
        log = _MetricLog(metrics_path, runner)
        progress = tqdm.tqdm(
            total=run.num_steps,
            initial=start_step,
            desc=f"{run.recipe.name} {config.protocol} {config.bits} bits",
            disable=not config.progress_bar,
            dynamic_ncols=True,
        )
        postfix = {}
        last_good = start_step if start_step else None
        batches = None
        for step in range(start_step + 1, run.num_steps + 1):
            epoch, offset = divmod(step - 1, run.steps_per_epoch)
            if batches is None or offset == 0:
                batches = data_lib.batches(
                    run.data.train,
                    config.batch_size,
                    seed=config.seed,
                    epoch=epoch,
                    drop_remainder=True,
                    augment=config.augment,
                )
                batches = itertools.islice(batches, offset, None)
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
                variables = runner.get(_variables(placed))
                val_map = validation_map(run, variables)
                log.write({"step": step, "val_map": val_map})
                if best_val_map is None or val_map > best_val_map:
                    best_val_map, best_step = val_map, step
                    best.save(
                        step,
                        args=ocp.args.Composite(variables=ocp.args.StandardSave(variables)),
                    )
                postfix["val_map"] = f"{val_map:.4f}"
                progress.set_postfix(postfix)
            if save:
                host_state = flax.serialization.to_state_dict(runner.get(placed))
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


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, *, recipe: methods.Recipe | None = None
) -> dict[str, Any]:
    """Trains (or resumes) a run, then evaluates it on the query and database splits.

    Returns:
      The evaluation metrics (``dlhash_jax.evaluate.evaluate_run``), also written to
      ``workdir/eval/metrics.json`` with ``report.md`` and the plots.
    """
    from dlhash_jax import evaluate  # evaluate builds on this module's checkpoints.

    result = fit(config, workdir, recipe=recipe)
    return evaluate.evaluate_run(workdir, run=result.run)

