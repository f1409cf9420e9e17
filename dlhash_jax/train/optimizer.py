"""Optimizers and learning-rate schedules from the ``optimizer`` block of a run config."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import ml_collections
import optax

from dlhash_jax import _checks
from dlhash_jax import methods
from dlhash_jax.train.config import OPTIMIZERS


def make_schedule(optimizer_config: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
    """Learning rate per step: optional linear warm-up, then constant, step or cosine decay.

    ``"step"`` multiplies the rate by ``decay_rate`` every ``decay_every`` steps after the
    warm-up (the staircase of torch's ``StepLR``); ``"cosine"`` decays it to 0 over the run.
    """
    learning_rate = optimizer_config.learning_rate
    warmup = optimizer_config.warmup_steps
    if optimizer_config.schedule == "constant":
        main = optax.constant_schedule(learning_rate)
    elif optimizer_config.schedule == "step":
        main = optax.exponential_decay(
            learning_rate,
            transition_steps=optimizer_config.decay_every,
            decay_rate=optimizer_config.decay_rate,
            staircase=True,
        )
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
    """The optax optimizer of a config block (``dlhash_jax.train.default_config``, ``optimizer``).

    Args:
      optimizer_config: the ``optimizer`` block.
      num_steps: the run's number of steps (the schedule decays over them).
      alternating: names of top-level parameter groups (submodules) updated in turn, one group
        per step, as in alternating optimisation (DCMH updates the image network with the text
        network fixed, then the reverse): a recipe's ``alternating``. Step ``t`` updates group
        :func:`dlhash_jax.methods.active_group_index` ``(t, len(groups))``, the rule the training
        step also uses to tell the loss which group it updates. Each group has its own optimizer
        state, which only moves on that group's steps, and its own schedule over its
        ``num_steps / len(groups)`` steps. Empty: every parameter is updated at every step.
    """
    if alternating:
        groups = tuple(alternating)
        group_steps = max(num_steps // len(groups), 1)

        def turn(index):
            # optax counts the updates it was called for, which is the training step.
            return lambda count: methods.active_group_index(count, len(groups)) == index

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
    _checks.check_choice(optimizer_config.name, OPTIMIZERS, "config.optimizer.name")
    chain = []
    if optimizer_config.grad_clip_norm > 0:
        chain.append(optax.clip_by_global_norm(optimizer_config.grad_clip_norm))
    multiplier = optimizer_config.get("backbone_lr_multiplier", 1.0)
    if multiplier == 1.0:
        chain.append(_update_rule(optimizer_config, schedule))
    else:

        def backbone_schedule(count):
            return multiplier * schedule(count)

        chain.append(
            optax.multi_transform(
                {
                    BACKBONE: _update_rule(optimizer_config, backbone_schedule),
                    _OTHER: _update_rule(optimizer_config, schedule),
                },
                _backbone_labels,
            )
        )
    return optax.chain(*chain)


# Parameters under a submodule of this name get ``optimizer.backbone_lr_multiplier`` times the
# learning rate (HashNetwork's ``backbone``, wherever the recipe's model nests it).
BACKBONE = "backbone"
_OTHER = "other"


def _update_rule(optimizer_config, schedule) -> optax.GradientTransformation:
    """Weight decay (L2 for all but adamw) and the named update rule, at ``schedule``."""
    name = optimizer_config.name
    chain = []
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


def _backbone_labels(params):
    """``BACKBONE`` for every leaf below a ``backbone`` key of the tree, ``_OTHER`` elsewhere.

    Raises:
      ValueError: if no leaf is below a ``backbone`` key (the multiplier would change nothing).
    """

    def label(path, _):
        keys = [getattr(entry, "key", None) for entry in path]
        return BACKBONE if BACKBONE in keys else _OTHER

    labels = jax.tree_util.tree_map_with_path(label, params)
    if BACKBONE not in jax.tree.leaves(labels):
        raise ValueError(
            "config.optimizer.backbone_lr_multiplier is set but the model has no parameters "
            f"under a '{BACKBONE}' submodule (its top-level parameter groups: "
            f"{sorted(params)}); leave the multiplier at 1."
        )
    return labels
