"""The run config: its schema with library defaults, validation, and the resolved hyper-parameters.

:func:`default_config` lists every field a run config has; :func:`validate_config` refuses a
field that is not there (with the closest known name), an unknown method, protocol or choice,
and sizes that cannot work, before anything is trained or written.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections

from dlhash_jax import _checks
from dlhash_jax import conventions
from dlhash_jax import data as data_lib
from dlhash_jax import methods
from dlhash_jax import models
from dlhash_jax.data import protocols as data_protocols

PARALLEL_MODES = ("pmap", "shard_map")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "step", "cosine")
EVAL_CHECKPOINTS = ("best", "last")


# Fields that change how a run is executed or reported, not what it computes: a run may resume
# with different values.
RESUMABLE_FIELDS = frozenset(
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
      - ``model``: ``backbone`` (``"mlp"``, ``"convnet"``, ``"resnet"``, or a pretrained one:
        ``"alexnet"``, ``"vgg16"``, ``"resnet50"``, ``"vit_b16"``) and each backbone's fields
        (see ``dlhash_jax.methods.build_backbone``); ``pretrained_path``: the ``.safetensors`` /
        ``.npz`` weights of a pretrained backbone (required with one; docs/pretrained.md);
        ``vit_image_size``: the image side of ``vit_b16``'s position embeddings (0: 224);
        ``text_features``: hidden widths of the text network of cross-modal methods
        (``dlhash_jax.models.TextEncoder``).
      - ``batch_size`` (global, split evenly over devices), ``num_epochs``, ``augment``.
      - ``images``: ``resize`` and ``crop`` (0 and 0: images as the protocol gives them), the
        standard transforms of ImageNet-pretrained backbones: each split's images read through
        ``dlhash_jax.data.image_pipeline.ImageSource`` (shorter side resized to ``resize``, a
        random ``crop`` x ``crop`` crop and a random flip in training, the centre crop in
        evaluation), decoded in ``num_threads`` grain threads (0: the calling thread).
      - ``optimizer``: ``name`` (``OPTIMIZERS``), ``learning_rate``, ``schedule``
        (``SCHEDULES``: cosine decays over the whole run; step multiplies the rate by
        ``decay_rate`` every ``decay_every`` steps), ``warmup_steps``, ``weight_decay``
        (decoupled for ``adamw``, L2 added to the gradient otherwise), ``momentum`` (``sgd``),
        ``grad_clip_norm`` (0: off), ``backbone_lr_multiplier`` (the learning rate of every
        parameter under a ``backbone`` submodule is this times the others', as the papers that
        fine-tune a pretrained backbone set it; 1: one rate for all).
      - ``parallel``: ``"pmap"`` or ``"shard_map"``; ``num_devices``: 0 for all local devices.
      - ``log_every``, ``eval_every`` (validation mAP every this many steps and at the end; 0:
        never), ``checkpoint_every``, ``keep_checkpoints``, ``progress_bar``.
      - ``evaluation``: ``checkpoint`` (``"best"`` validation checkpoint, or ``"last"``), and the
        switches of ``dlhash_jax.metrics.evaluate_codes``: ``topk``, ``ndcg_k``, ``radius``,
        ``ties``, ``normalize``, ``zero_relevant``; ``batch_size`` for encoding. The configs of
        ``experiments/configs`` set ``topk`` to the protocol's published cutoff
        (``dlhash_jax.data.published_topk``, e.g. 5,000 for an MS-COCO image list).
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
            "pretrained_path": "",
            "vit_image_size": 0,
        }
    )
    config.batch_size = 64
    config.num_epochs = 50
    config.augment = False
    config.images = ml_collections.ConfigDict({"resize": 0, "crop": 0, "num_threads": 4})
    config.optimizer = ml_collections.ConfigDict(
        {
            "name": "adam",
            "learning_rate": 1e-3,
            "schedule": "cosine",
            "warmup_steps": 0,
            "weight_decay": 0.0,
            "momentum": 0.9,
            "grad_clip_norm": 0.0,
            "backbone_lr_multiplier": 1.0,
            "decay_every": 1,
            "decay_rate": 0.1,
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


def _check_protocol(name) -> None:
    prefixes = data_protocols.PROTOCOL_PREFIXES
    if not isinstance(name, str) or not (name in data_lib.PROTOCOLS or name.startswith(prefixes)):
        close = difflib.get_close_matches(str(name), list(data_lib.PROTOCOLS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown protocol {name!r}; known protocols: {', '.join(data_lib.PROTOCOL_NAMES)}."
            f"{hint}"
        )


def _check_images(images_config, augment) -> None:
    """Both sizes or neither; a crop inside the resized image; one kind of augmentation."""
    for name in ("resize", "crop", "num_threads"):
        _checks.check_int(images_config[name], f"config.images.{name}", minimum=0)
    resize, crop = images_config.resize, images_config.crop
    if (resize == 0) != (crop == 0):
        raise ValueError(
            f"config.images.resize and config.images.crop are both 0 (images as the protocol "
            f"gives them) or both positive, got resize={resize}, crop={crop}."
        )
    if crop > resize:
        raise ValueError(
            f"config.images.crop={crop} exceeds config.images.resize={resize}: the crop is "
            "taken inside the resized image."
        )
    if crop and augment:
        raise ValueError(
            "config.augment=True (flip and pad-crop of in-memory images) cannot be combined with "
            "config.images (whose training transform already crops and flips); set one."
        )


def _check_pretrained(model_config) -> None:
    """A pretrained backbone needs its weights file; only a pretrained backbone reads one."""
    path = model_config.get("pretrained_path", "")
    backbone = model_config.backbone
    if backbone in models.PRETRAINED_BACKBONES:
        if not path:
            raise ValueError(
                f"config.model.backbone={backbone!r} is an ImageNet-pretrained network: set "
                "config.model.pretrained_path to its weights (.safetensors or .npz; "
                "docs/pretrained.md says where to get them and how to convert a .pth file)."
            )
        if not os.path.isfile(path):
            raise ValueError(f"config.model.pretrained_path={path!r}: no such file.")
    elif path:
        raise ValueError(
            f"config.model.pretrained_path is set but config.model.backbone={backbone!r} is "
            f"trained from scratch; pretrained backbones: {', '.join(models.PRETRAINED_BACKBONES)}."
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
    _checks.check_choice(config.model.backbone, methods.BACKBONES, "config.model.backbone")
    _check_pretrained(config.model)
    _checks.check_choice(config.optimizer.name, OPTIMIZERS, "config.optimizer.name")
    _checks.check_choice(config.optimizer.schedule, SCHEDULES, "config.optimizer.schedule")
    _checks.check_choice(config.parallel, PARALLEL_MODES, "config.parallel")
    _checks.check_choice(
        config.evaluation.checkpoint, EVAL_CHECKPOINTS, "config.evaluation.checkpoint"
    )
    for name, choices in (
        ("ties", conventions.TIES),
        ("normalize", conventions.NORMALIZE),
        ("zero_relevant", conventions.ZERO_RELEVANT),
    ):
        _checks.check_choice(config.evaluation[name], choices, f"config.evaluation.{name}")
    for name in ("bits", "batch_size", "num_epochs", "log_every", "checkpoint_every"):
        _checks.check_int(config[name], f"config.{name}")
    _checks.check_int(config.keep_checkpoints, "config.keep_checkpoints")
    for name in ("num_devices", "eval_every"):
        _checks.check_int(config[name], f"config.{name}", minimum=0)
    _checks.check_int(config.optimizer.warmup_steps, "config.optimizer.warmup_steps", minimum=0)
    _checks.check_int(config.optimizer.decay_every, "config.optimizer.decay_every")
    rate = config.optimizer.decay_rate
    if isinstance(rate, bool) or not (isinstance(rate, (int, float)) and 0 < rate <= 1):
        raise ValueError(f"config.optimizer.decay_rate must be in (0, 1], got {rate!r}.")
    _check_images(config.images, config.augment)
    for name in ("learning_rate", "backbone_lr_multiplier"):
        value = config.optimizer[name]
        if isinstance(value, bool) or not (isinstance(value, (int, float)) and 0 < value < math.inf):
            raise ValueError(f"config.optimizer.{name} must be positive, got {value!r}.")
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


def resolved_config(
    config: ml_collections.ConfigDict, recipe: methods.Recipe
) -> ml_collections.ConfigDict:
    """A copy of ``config`` with the recipe's defaults filled into ``hparams``."""
    resolved = ml_collections.ConfigDict(config.to_dict())
    resolved.hparams = ml_collections.ConfigDict(resolve_hparams(config, recipe))
    return resolved
