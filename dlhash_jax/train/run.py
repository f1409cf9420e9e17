"""A run: its config, recipe, data, model, optimizer and step counts, and its workdir files.

Everything a run produces lives in its workdir::

    config.json            the resolved config (hyper-parameters filled in)
    split_indices.npz      the protocol's splits (RetrievalData.save_indices)
    metrics.jsonl          one JSON line per logging step and per validation
    checkpoints/<step>/    the latest K full train states (resume from the newest)
    best/<step>/           the variables with the best validation mAP (and the learned codes of
                           the training items, for a recipe that learns them: ADSH)
    eval/                  metrics.json, report.md, pr_curve.png, precision_at_k.png
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any

import ml_collections
import numpy as np
import optax

from dlhash_jax import data as data_lib
from dlhash_jax import methods
from dlhash_jax import models
from dlhash_jax.data.image_pipeline import ImageSource
from dlhash_jax.data.sources import SPLIT_NAMES
from dlhash_jax.train import config as config_lib
from dlhash_jax.train.optimizer import make_optimizer
from dlhash_jax.train.state import TrainState
from dlhash_jax.train.state import create_train_state
from dlhash_jax.train.state import first_rows

CONFIG_FILE = "config.json"
SPLITS_FILE = "split_indices.npz"
METRICS_FILE = "metrics.jsonl"


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


def image_inputs(data, images_config: ml_collections.ConfigDict, *, augment: bool = False):
    """``data`` with every split's images read through an ``ImageSource`` as the run asks.

    With ``config.images`` sizes set, in-memory images ``[N, H, W, C]`` are wrapped with
    ``ImageSource.from_array`` and an image-file protocol's sources take those sizes; with
    sizes 0 the data is returned as loaded (an image-file protocol keeps its own sizes).

    Raises:
      ValueError: for sizes on inputs that are not images, cross-modal data, or
        ``config.augment`` on images an ``ImageSource`` reads (its training transform already
        crops and flips).
    """
    resize, crop = images_config.resize, images_config.crop
    if crop:
        if data.cross_modal:
            raise ValueError(
                f"config.images resizes single-modality images; protocol {data.name!r} is "
                "cross-modal."
            )

        def convert(inputs):
            if isinstance(inputs, ImageSource):
                return inputs.with_sizes(resize=resize, crop=crop)
            if np.ndim(inputs) == 4 and np.shape(inputs)[0] == 0:
                # An empty split (validation_size=0) has no image to read.
                return np.zeros((0, crop, crop, 3), np.float32)
            if np.ndim(inputs) != 4:
                raise ValueError(
                    f"config.images needs image inputs [N, H, W, C], but protocol {data.name!r} "
                    f"gives inputs of shape {np.shape(inputs)}; set config.images.resize and "
                    "crop to 0."
                )
            return ImageSource.from_array(
                inputs, resize=resize, crop=crop, num_threads=images_config.num_threads
            )

        splits = {
            name: dataclasses.replace(split, inputs=convert(split.inputs))
            for name, split in ((name, getattr(data, name)) for name in SPLIT_NAMES)
        }
        data = dataclasses.replace(data, **splits, input_shape=(crop, crop, 3))
    if augment and isinstance(data.train.inputs, ImageSource):
        raise ValueError(
            f"config.augment=True flips and pad-crops in-memory images; protocol {data.name!r} "
            "reads its images through an ImageSource whose training transform already crops and "
            "flips: set config.augment=False."
        )
    return data


def load_config(workdir: str) -> ml_collections.ConfigDict:
    """The resolved config a run saved in its workdir."""
    with open(os.path.join(workdir, CONFIG_FILE)) as f:
        return ml_collections.ConfigDict(json.load(f))


def _normalise(tree):
    """JSON round trip, so a saved config and a live one compare equal (tuples become lists)."""
    return json.loads(json.dumps(tree))


def write_or_check_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Writes the resolved config to the workdir, or checks it against the one saved there.

    Raises:
      ValueError: if the workdir holds a run whose config differs in a field other than
        ``config.RESUMABLE_FIELDS``.
    """
    path = os.path.join(workdir, CONFIG_FILE)
    current = _normalise(config.to_dict())
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        differing = sorted(
            key
            for key in set(saved) | set(current)
            if key not in config_lib.RESUMABLE_FIELDS and saved.get(key) != current.get(key)
        )
        if differing:
            raise ValueError(
                f"{workdir} holds a run with a different config (fields {differing} differ); "
                "resume it with its own config, or train into a new workdir."
            )
    with open(path, "w") as f:
        json.dump(current, f, indent=2, sort_keys=True)


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
    """Everything fixed for a run: recipe, model, optimizer, data, step counts.

    Attributes:
      config: the resolved run config (``hparams`` complete).
      recipe: the method.
      hparams: the recipe's hyper-parameters (``config.hparams`` as a dict).
      data: the ``RetrievalData``.
      model: the flax module.
      tx: the optax optimizer.
      steps_per_epoch: ``len(data.train) // batch_size``.
      num_steps: ``steps_per_epoch * num_epochs``.
      pretrained: the variables of a pretrained backbone (``model.pretrained_path``), loaded
        into the initial state; ``None`` for a backbone trained from scratch.
    """

    config: ml_collections.ConfigDict
    recipe: methods.Recipe
    hparams: dict[str, Any]
    data: Any
    model: Any
    tx: optax.GradientTransformation
    steps_per_epoch: int
    num_steps: int
    pretrained: Any = None

    @property
    def learns_train_codes(self) -> bool:
        """Whether the recipe learns the training items' codes (``discrete.train_codes``)."""
        return self.recipe.discrete is not None and self.recipe.discrete.train_codes is not None

    def train_codes(self, discrete: Any) -> np.ndarray | None:
        """The learned ``[N, L]`` codes of the training items, or ``None``.

        ``recipe.discrete.train_codes(discrete)`` as a float32 host array for a recipe that
        learns them (ADSH's ``V``), from ``discrete``, a train state's ``discrete`` variables;
        ``None`` when the network gives the training items' codes.
        """
        if not self.learns_train_codes:
            return None
        return np.asarray(self.recipe.discrete.train_codes(discrete), np.float32)

    @functools.cached_property
    def prepared(self) -> Any:
        """``recipe.prepare(data.train, config)``, computed once and only when asked for."""
        if self.recipe.prepare is None:
            return None
        return self.recipe.prepare(self.data.train, self.config)


def setup_run(
    config: ml_collections.ConfigDict,
    *,
    recipe: methods.Recipe | None = None,
    data=None,
    workdir: str | None = None,
) -> Run:
    """Validates the config and builds the recipe, data, model and optimizer of a run."""
    recipe = config_lib.validate_config(config, recipe=recipe)
    if data is None:
        data = load_data(config, workdir)
    data = image_inputs(data, config.images, augment=config.augment)
    _check_modalities(recipe, data, config.protocol)
    steps_per_epoch = len(data.train) // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"config.batch_size={config.batch_size} is larger than the training split "
            f"({len(data.train)} items)."
        )
    num_steps = steps_per_epoch * config.num_epochs
    pretrained = None
    if config.model.backbone in models.PRETRAINED_BACKBONES:
        _, pretrained = models.load_pretrained(config.model.backbone, config.model.pretrained_path)
    return Run(
        config=config_lib.resolved_config(config, recipe),
        recipe=recipe,
        hparams=config_lib.resolve_hparams(config, recipe),
        data=data,
        model=recipe.make_model(config, data.num_classes),
        tx=make_optimizer(config.optimizer, num_steps, alternating=recipe.alternating),
        steps_per_epoch=steps_per_epoch,
        num_steps=num_steps,
        pretrained=pretrained,
    )


def initial_state(run: Run, *, fill_bank: bool) -> TrainState:
    """The run's step-0 state; ``fill_bank=False`` gives a restore template (bank of zeros)."""
    return create_train_state(
        run.model,
        run.tx,
        seed=run.config.seed,
        sample_inputs=first_rows(run.data.train.inputs, run.config.batch_size),
        recipe=run.recipe,
        train_split=run.data.train,
        fill_bank=fill_bank,
        batch_size=run.config.evaluation.batch_size,
        prepared=run.prepared,
        hparams=run.hparams,
        pretrained=run.pretrained,
    )
