"""The train state (parameters, optimizer, bank, prepared data, discrete variables, RNG) and
batched forward passes."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from dlhash_jax import methods
from dlhash_jax import models


class TrainState(train_state.TrainState):
    """flax TrainState plus what hashing recipes carry across steps.

    Attributes:
      model_state: the model's mutable collections other than ``params`` (``{"batch_stats":
        ...}`` for ResNet), ``{}`` when it has none.
      bank: the :class:`~dlhash_jax.methods.MemoryBank` of the training split, or ``None``.
      prepared: what the recipe's ``prepare`` computed over the training split (a pytree of
        arrays, read by the loss as ``ctx.prepared``), or ``None``. It never changes during
        training; it is checkpointed with the state so that a resumed run uses the same values.
      discrete: the variables of the recipe's :class:`~dlhash_jax.methods.DiscreteUpdate` (a
        pytree of arrays, e.g. DSDH's ``B`` and ``W``), or ``None``; replaced by the step at the
        start of every update period, identical on every device, checkpointed.
      rng: ``uint32[2]`` key; step ``t`` on device ``d`` uses ``fold_in(fold_in(rng, t), d)``.
    """

    model_state: Any
    bank: methods.MemoryBank | None
    prepared: Any
    discrete: Any
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


def first_rows(inputs, count: int):
    """The first ``count`` rows of an input array or of each array of a dict of them."""
    return jax.tree.map(lambda leaf: leaf[:count], inputs)


def _bank_probe(model, params, variables, sample_inputs, output: str):
    """Shape and dtype of one row of the model output kept in the bank."""
    return jax.eval_shape(
        lambda: model.apply(
            {"params": params, **variables}, first_rows(sample_inputs, 1), train=False
        )[output]
    )


# One compiled program instead of flax's op-by-op initialisation, which compiled (or read from
# JAX's persistent cache) each operation anew after jax.clear_caches: for the mnist5k ConvNet
# 0.4-0.7 s -> 0.19 s per call. The parameters are the same, except that a compiled normal
# initialiser may round the last bit differently (OrthoHash's N(0, 0.01^2) code layer: 4e-9 in a
# quarter of its weights; the truncated-normal default kernels are identical). The model is a
# static argument (flax modules hash by their fields), so every call for the same architecture
# reuses one compilation.
@functools.partial(jax.jit, static_argnums=0)
def _init(model, rngs, sample_inputs):
    return model.init(rngs, sample_inputs, train=False)


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
    prepared: Any = None,
    hparams: Mapping[str, Any] | None = None,
    pretrained: Mapping[str, Any] | None = None,
) -> TrainState:
    """Initialises parameters, optimizer state, RNG, the bank, prepared data, discrete variables.

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
      prepared: ``recipe.prepare(train_split, config)`` for a recipe that has one (the caller
        computes it once: ``dlhash_jax.train.Run.prepared``), else ``None``.
      hparams: the recipe's hyper-parameters, for a recipe with ``discrete`` (its ``init``
        reads them); ``None``: the recipe's defaults.
      pretrained: a pretrained backbone's variables (``models.load_pretrained``), which replace
        that backbone's initialisation (``models.graft_pretrained``) before the bank is filled.

    Returns:
      A :class:`TrainState` with ``step`` 0.
    """
    init_key, rng = jax.random.split(jax.random.PRNGKey(seed))
    sample_inputs = jax.tree.map(jnp.asarray, sample_inputs)
    variables = _init(model, {"params": init_key, "dropout": init_key}, sample_inputs)
    variables = dict(variables)
    if pretrained is not None:
        variables = models.graft_pretrained(variables, pretrained)
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
    if recipe.prepare is not None and prepared is None:
        raise ValueError(
            f"Method {recipe.name!r} prepares data over the training split before training; pass "
            "prepared=recipe.prepare(train_split, config)."
        )
    prepared = jax.tree.map(jnp.asarray, prepared)
    discrete = None
    if recipe.discrete is not None:
        context = methods.LossContext(
            bank=bank,
            prepared=prepared,
            hparams=dict(recipe.default_hparams if hparams is None else hparams),
        )
        discrete = jax.tree.map(jnp.asarray, recipe.discrete.init(context))
    state = TrainState.create(
        apply_fn=model.apply,
        params=params,
        tx=tx,
        model_state=variables,
        bank=bank,
        prepared=prepared,
        discrete=discrete,
        rng=rng,
    )
    return state.replace(step=jnp.zeros((), jnp.int32))
