"""What a method recipe is: a model factory, a loss over a batch, paper defaults and a citation.

A recipe is data, not a class hierarchy: :class:`Recipe` bundles the pieces the training loop
(``dlhash_jax.train``) needs, and each method module (``dpsh.py``, ``dsh.py``, ...) builds one.
The loop owns everything stateful (optimizer, memory bank, β schedule, devices); a recipe's loss
is a pure function of the model outputs on the local batch and of that state.

How the families of the survey (§5) fit this interface:

- pairwise methods against the whole training set (DPSH, DSH): ``bank_output="relaxed"``; the loop
  keeps a :class:`MemoryBank` of every training item's output and labels, refreshes the rows of
  the global batch before the loss, and passes it as ``bank``;
- pairwise or triplet methods within the batch (DNNH, DSRH, sparse similarity-preserving):
  ``bank_output=None``; the loss uses ``outputs`` and ``batch["labels"]`` alone;
- classification heads (DLBHC, SSDH, hinge-softmax): the factory builds a head with
  ``num_classes`` and the loss reads ``outputs["logits"]``;
- unsupervised and autoencoder methods (DH, UDH): the loss reads ``batch["inputs"]`` and the
  model's reconstruction, and ignores the labels;
- β continuation (HashNet): ``beta_schedule(hparams)`` returns ``step -> β``, which the loop
  passes to the model as ``beta`` at every step;
- cross-modal methods (DCMH, GLSP): ``cross_modal=True``; the inputs are
  ``{"image": ..., "text": ...}``, the model a :class:`~dlhash_jax.models.CrossModalNetwork`, the
  bank keeps both modalities' outputs (``bank_output="stacked"``, ``[N, 2, L]``), and
  ``alternating=("image", "text")`` makes the loop update one network per step with the other
  fixed, as the papers' alternating optimisation does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import ml_collections

from dlhash_jax import models

BACKBONES = ("mlp", "convnet", "resnet")

# Axis name of the replicated training step; ResNet averages BatchNorm statistics over it.
AXIS_NAME = "batch"


@flax.struct.dataclass
class MemoryBank:
    """Outputs and labels of every item of the training split, held across steps.

    Rows follow the order of the training split (``batch["index"]`` addresses them). ``outputs``
    carries no gradient: the loss differentiates only the current batch, paired against the
    stored outputs of all ``N`` items (DPSH's ``U``).

    Attributes:
      outputs: ``[N, L]`` model outputs (the recipe's ``bank_output``), refreshed every step for
        the rows of the global batch.
      labels: ``[N, C]`` multi-hot labels of the training split.
    """

    outputs: jax.Array
    labels: jax.Array


LossFn = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A method from the literature, as the training loop consumes it.

    Attributes:
      name: key in the name→recipe table, e.g. ``"dpsh"``.
      title: the method's full name.
      citation: the original paper.
      make_model: ``(config, num_classes) -> flax module`` whose call
        ``(x, *, train, beta)`` returns a dict with at least ``"pre"`` and ``"relaxed"``
        ``[B, L]`` (``config`` is the full run config: ``bits`` and ``model``).
      loss_fn: ``(outputs, batch, *, bank, step, hparams) -> (loss, metrics)``: ``outputs`` is the
        model's dict on the local batch, ``batch`` the local batch dict (``inputs``, ``labels``,
        ``index``), ``bank`` a :class:`MemoryBank` already holding the global batch's outputs
        (``None`` when ``bank_output`` is ``None``), ``step`` the number of completed steps,
        ``hparams`` a mapping with the keys of ``default_hparams``. Returns a float scalar and a
        dict of float scalars to log (the loss terms).
      default_hparams: the loss hyper-parameters and their values in the paper.
      bank_output: key of ``outputs`` kept in the memory bank, or ``None`` for no bank.
      beta_schedule: optional ``hparams -> (step -> β)`` for relaxations annealed by
        continuation; ``None`` keeps ``β = 1``.
      bank_init: how the bank starts: ``"outputs"``, the untrained network's outputs on the
        training split, or ``"normal"``, standard normal values (DCMH's authors initialise
        ``F`` and ``G`` so, which keeps two networks with near-zero outputs from starting at
        the saddle ``F = G = 0`` of the cross-modal likelihood).
      cross_modal: the method takes ``{"image", "text"}`` inputs (a cross-modal protocol).
      alternating: names of the model's top-level parameter groups, updated one per step in
        turn (step ``t`` updates group ``t % len(alternating)``; see
        ``dlhash_jax.train.make_optimizer``); empty: every parameter at every step.
    """

    name: str
    title: str
    citation: str
    make_model: Callable[[ml_collections.ConfigDict, int], nn.Module]
    loss_fn: LossFn
    default_hparams: Mapping[str, Any]
    bank_output: str | None = None
    beta_schedule: Callable[[Mapping[str, Any]], Callable[[Any], Any]] | None = None
    cross_modal: bool = False
    alternating: tuple[str, ...] = ()
    bank_init: str = "outputs"


def build_backbone(model_config: ml_collections.ConfigDict) -> nn.Module:
    """The backbone named by ``model_config.backbone``, with that backbone's fields.

    Args:
      model_config: the ``model`` block of a run config (see ``dlhash_jax.train.default_config``):
        ``backbone`` in ``BACKBONES``; ``features`` and ``dropout_rate`` for ``"mlp"``;
        ``conv_features``, ``dense_features`` and ``dropout_rate`` for ``"convnet"``; ``depth``
        and ``widths`` for ``"resnet"``.

    Returns:
      A flax module mapping ``[B, ...]`` inputs to ``[B, D]`` features.

    Raises:
      ValueError: if the backbone name is unknown.
    """
    name = model_config.backbone
    if name == "mlp":
        return models.MLP(
            features=tuple(model_config.features), dropout_rate=model_config.dropout_rate
        )
    if name == "convnet":
        return models.ConvNet(
            conv_features=tuple(model_config.conv_features),
            dense_features=model_config.dense_features,
            dropout_rate=model_config.dropout_rate,
        )
    if name == "resnet":
        return models.ResNet(
            depth=model_config.depth, widths=tuple(model_config.widths), bn_axis_name=AXIS_NAME
        )
    raise ValueError(f"model.backbone must be one of {BACKBONES}, got {name!r}.")


def hash_network(
    config: ml_collections.ConfigDict, *, relaxation: str, num_classes: int | None = None
) -> nn.Module:
    """``HashNetwork(backbone, HashHead(config.bits, relaxation, num_classes))``.

    The factory most recipes share; ``num_classes`` adds a classifier on the relaxed bits.
    """
    head = models.HashHead(config.bits, relaxation=relaxation, num_classes=num_classes)
    return models.HashNetwork(build_backbone(config.model), head)


def cross_modal_network(config: ml_collections.ConfigDict, *, relaxation: str) -> nn.Module:
    """An image hash network (``config.model``'s backbone) and a text hash network.

    The text network is a :class:`~dlhash_jax.models.TextEncoder` MLP of widths
    ``config.model.text_features`` on the bag-of-words vector; both end in a
    ``HashHead(config.bits, relaxation)``, so the two modalities share one code length.
    """
    image = models.HashNetwork(
        build_backbone(config.model), models.HashHead(config.bits, relaxation=relaxation)
    )
    text = models.HashNetwork(
        models.TextEncoder(tuple(config.model.text_features)),
        models.HashHead(config.bits, relaxation=relaxation),
    )
    return models.CrossModalNetwork(image=image, text=text)
