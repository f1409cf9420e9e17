"""What a method recipe is: a model factory, a loss over a batch, its taxonomy, paper defaults.

A recipe is data, not a class hierarchy: :class:`Recipe` bundles what the training loop
(``dlhash_jax.train``) needs, and each method module (``dpsh.py``, ``dsh.py``, ...) builds one. The
loop owns everything stateful (optimizer, memory bank, β schedule, devices); a recipe's loss is a
pure function ``loss_fn(outputs, batch, ctx)`` of the model outputs on the local batch, the batch,
and a :class:`LossContext` holding the parameters, the memory bank, the step, the hyper-parameters
and whatever the recipe's ``prepare`` computed once over the training split.

How the families of the survey (§5) fit this contract:

- pairwise methods against the whole training set (DPSH, DSH): ``bank_output="relaxed"``; the loop
  keeps a :class:`MemoryBank` of every training item's output and labels, refreshes the rows of
  the global batch before the loss, and passes it as ``ctx.bank``;
- pairwise or triplet methods within the batch (DNNH, DSRH, sparse similarity-preserving): no
  bank; the loss uses ``outputs`` and ``batch["labels"]`` alone;
- classification heads (DLBHC, SSDH, hinge-softmax): the factory builds a head with
  ``num_classes`` and the loss reads ``outputs["logits"]``;
- weight regularisers (DH's orthogonality, survey eq 10): the loss reads ``ctx.params``, the
  parameters being differentiated;
- targets or graphs over the whole training set (CNNH's stage-1 codes, the kNN graph,
  fingerprint's affinity): ``prepare(train_split, config)`` computes them once before training;
  the result is kept in the train state (checkpointed with it) and read as ``ctx.prepared``, rows
  addressed by ``batch["index"]``;
- β continuation (HashNet): ``beta_schedule(hparams)`` returns ``step -> β``, which the loop
  passes to the model as ``beta`` at every step;
- cross-modal methods (DCMH, GLSP): ``taxonomy.cross_modal``; the inputs are
  ``{"image": ..., "text": ...}``, the model a :class:`~dlhash_jax.models.CrossModalNetwork`, the
  bank keeps both modalities' outputs (``bank_output="stacked"``, ``[N, 2, L]``), and
  ``alternating=("image", "text")`` updates one network per step with the other fixed, as the
  papers' alternating optimisation does. That one declaration drives both the optimizer
  (``dlhash_jax.train.optimizer``) and the step, which hands the loss the group it updates as
  ``ctx.group`` (:func:`active_group`);
- discrete variables updated between network updates by a non-gradient step (DSDH's codes ``B``
  and classifier ``W``, ADSH's database codes ``V``): ``discrete=DiscreteUpdate(init, update,
  every_epochs, train_codes)``. ``init`` builds a pytree of arrays once, from the bank of the
  untrained network; the train state holds it (checkpointed with it, identical on every
  device); at the start of every ``every_epochs``-th epoch (epoch 0 included) the step replaces
  it with ``update(discrete, ctx)``, computed on every device from the replicated bank before
  the batch's rows are refreshed, so the replicas stay equal and a resumed run recomputes
  exactly what an uninterrupted one did; the loss reads it as ``ctx.discrete``.
  ``train_codes``, if given, maps it to ``[N, L]`` codes of the training items that evaluation
  puts in the database in place of the network's codes for those items (ADSH ranks queries
  against its learned ``V``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import ml_collections
from jax import lax

from dlhash_jax import _checks
from dlhash_jax import models

# Trained from scratch, then the ImageNet-pretrained ones a run loads from `model.pretrained_path`.
BACKBONES = ("mlp", "convnet", "resnet", *models.PRETRAINED_BACKBONES)

# Axis name of the replicated training step; ResNet averages BatchNorm statistics over it.
AXIS_NAME = "batch"

# Survey §5: the supervision a method learns from, and the form of its training inputs.
LABEL_KINDS = ("none", "single", "multi")
INPUT_FORMS = ("single", "pairs", "multi-tuples")


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


@dataclasses.dataclass(frozen=True)
class Taxonomy:
    """Where a method sits in the survey's taxonomy (§5): labels × input form, and modality.

    Attributes:
      labels: ``"none"`` (unsupervised), ``"single"`` (designed for single-label data) or
        ``"multi"`` (multi-label data, graded relevance).
      input_form: ``"single"`` samples, ``"pairs"`` or ``"multi-tuples"`` (triplets, rankings).
      cross_modal: the method maps two modalities (image and text) to one Hamming space.
    """

    labels: str
    input_form: str
    cross_modal: bool = False

    def __post_init__(self):
        _checks.check_choice(self.labels, LABEL_KINDS, "Taxonomy.labels")
        _checks.check_choice(self.input_form, INPUT_FORMS, "Taxonomy.input_form")

    @property
    def supervised(self) -> bool:
        """Whether the method reads labels."""
        return self.labels != "none"

    def __str__(self) -> str:
        text = f"{self.labels} × {self.input_form}"
        return f"{text} (cross-modal)" if self.cross_modal else text


@dataclasses.dataclass(frozen=True)
class LossContext:
    """What a recipe's loss sees besides the model outputs and the batch.

    Built by the training step on every device (``dlhash_jax.train.step.train_step``); tests and
    custom loops build it directly.

    Attributes:
      params: the model parameters being differentiated (weight terms such as DH's
        orthogonality read them; the gradient flows through them).
      bank: the :class:`MemoryBank` already holding the global batch's outputs, or ``None`` for a
        recipe without ``bank_output``.
      step: the number of completed steps (int32 scalar).
      prepared: what ``recipe.prepare`` returned for the training split (a pytree of arrays), or
        ``None``.
      hparams: the recipe's hyper-parameters (the keys of ``default_hparams``), static.
      group: for an alternating recipe, the parameter group this step updates (one of
        ``recipe.alternating``); ``None`` otherwise.
      discrete: for a recipe with a :class:`DiscreteUpdate`, its variables (a pytree of
        arrays, no gradient), already updated when this step starts an update period; ``None``
        otherwise. ``DiscreteUpdate.update`` receives the current value here too.
    """

    params: Any = None
    bank: MemoryBank | None = None
    step: Any = 0
    prepared: Any = None
    hparams: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    group: str | None = None
    discrete: Any = None


def _every_epoch(hparams: Mapping[str, Any]) -> int:
    """One update per epoch."""
    del hparams  # The default period does not depend on the hyper-parameters.
    return 1


@dataclasses.dataclass(frozen=True)
class DiscreteUpdate:
    """Variables a recipe keeps besides the network, updated by a non-gradient step.

    Discrete hashing methods alternate between the network (trained by gradient with these
    variables fixed) and variables of their own solved with the network fixed: DSDH's training
    codes ``B`` and classifier ``W`` (closed form and discrete cyclic coordinate descent), ADSH's
    database codes ``V`` (a bit-wise discrete update). The training loop holds them in
    ``TrainState.discrete``, checkpoints them, and runs ``update`` inside the replicated step,
    so every device computes the same values from the same replicated inputs.

    Attributes:
      init: ``ctx -> pytree`` of arrays, the variables before the first update, computed once on
        the host; ``ctx`` is a :class:`LossContext` with the bank of the untrained network
        (``ctx.bank``, or ``None`` without ``bank_output``), ``prepared`` and ``hparams``. Its
        structure, shapes and dtypes must not depend on the bank's values: the restore
        template builds it from a bank of zeros.
      update: ``(discrete, ctx) -> pytree`` of the same structure, shapes and dtypes, a pure
        jittable function; ``ctx.bank`` is the bank as the previous steps left it (this step's
        rows not yet refreshed), ``ctx.step`` the number of completed steps, ``ctx.discrete``
        the current value (also passed first), ``ctx.params`` ``None``. It runs at the start of
        every step whose ``step`` is a multiple of ``every_epochs(hparams)`` epochs (step 0
        included), and the loss of that step already sees its result.
      every_epochs: ``hparams -> int``, epochs between updates (default: every epoch).
      train_codes: optional ``discrete -> [N, L]`` ±1 codes of the training items, in the order
        of the training split. When given, evaluation (and validation, which ranks against the
        training split) uses them as the codes of the training items in the database, and the
        network's codes for every other item and for the queries (ADSH's learned ``V``).
    """

    init: Callable[[LossContext], Any]
    update: Callable[[Any, LossContext], Any]
    every_epochs: Callable[[Mapping[str, Any]], int] = _every_epoch
    train_codes: Callable[[Any], Any] | None = None

    def period(self, hparams: Mapping[str, Any], steps_per_epoch: int) -> int:
        """Steps between two updates: ``every_epochs(hparams) * steps_per_epoch``.

        Raises:
          ValueError: if either factor is not a positive integer.
        """
        epochs = _checks.check_int(self.every_epochs(hparams), "DiscreteUpdate.every_epochs")
        return epochs * _checks.check_int(steps_per_epoch, "steps_per_epoch")


LossFn = Callable[[Mapping[str, jax.Array], Mapping[str, Any], LossContext],
                  tuple[jax.Array, dict[str, jax.Array]]]


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A method from the literature, as the training loop consumes it.

    Attributes:
      name: key in the name→recipe table, e.g. ``"dpsh"``.
      title: the method's full name.
      citation: the original paper.
      taxonomy: the method's :class:`Taxonomy` (survey §5); tests, the results tables and the
        docs read it from here.
      make_model: ``(config, num_classes) -> flax module`` whose call ``(x, *, train, beta)``
        returns a dict with at least ``"pre"`` and ``"relaxed"`` ``[B, L]`` (``config`` is the
        full run config: ``bits`` and ``model``). :func:`hash_network` with the relaxation bound
        by ``functools.partial`` serves most recipes.
      loss_fn: ``(outputs, batch, ctx) -> (loss, terms)``: ``outputs`` is the model's dict on the
        local batch, ``batch`` the local batch dict (``inputs``, ``labels``, ``index``), ``ctx`` a
        :class:`LossContext`. Returns a float scalar and a dict of float scalars to log.
      default_hparams: the loss hyper-parameters and their values in the paper.
      prepare: optional ``(train_split, config) -> pytree``, run once on the host before
        training, with the training split (``inputs``, ``labels``) and the resolved run config
        (``config.hparams`` complete); the result is kept in the train state and reaches the
        loss as ``ctx.prepared``. It must be deterministic in its arguments (a resumed run and
        the restore template compute it again).
      bank_output: key of ``outputs`` kept in the memory bank, or ``None`` for no bank.
      bank_init: how the bank starts: ``"outputs"``, the untrained network's outputs on the
        training split, or ``"normal"``, standard normal values (DCMH's authors initialise
        ``F`` and ``G`` so, which keeps two networks with near-zero outputs from starting at
        the saddle ``F = G = 0`` of the cross-modal likelihood).
      beta_schedule: optional ``hparams -> (step -> β)`` for relaxations annealed by
        continuation; ``None`` keeps ``β = 1``.
      alternating: names of the model's top-level parameter groups, updated one per step in
        turn (:func:`active_group`); empty: every parameter at every step.
      discrete: optional :class:`DiscreteUpdate`: variables of the recipe's own, updated
        between network updates by a non-gradient step and read by the loss as
        ``ctx.discrete``; ``None`` for none.
    """

    name: str
    title: str
    citation: str
    taxonomy: Taxonomy
    make_model: Callable[[ml_collections.ConfigDict, int], nn.Module]
    loss_fn: LossFn
    default_hparams: Mapping[str, Any]
    prepare: Callable[[Any, ml_collections.ConfigDict], Any] | None = None
    bank_output: str | None = None
    bank_init: str = "outputs"
    beta_schedule: Callable[[Mapping[str, Any]], Callable[[Any], Any]] | None = None
    alternating: tuple[str, ...] = ()
    discrete: DiscreteUpdate | None = None

    def __post_init__(self):
        _checks.check_choice(self.bank_init, ("outputs", "normal"), f"{self.name}: bank_init")

    @property
    def cross_modal(self) -> bool:
        """Whether the method takes ``{"image", "text"}`` inputs (``taxonomy.cross_modal``)."""
        return self.taxonomy.cross_modal


def active_group_index(step, num_groups: int):
    """Index of the parameter group an alternating recipe updates at ``step``: ``step % n``.

    The one rule of alternation: the optimizer masks updates with it and the step passes the
    matching group name to the loss, so the two cannot drift apart.
    """
    return step % num_groups


def active_group(groups: Sequence[str], step, branch: Callable[[str], Any]):
    """``branch(group)`` for the group updated at ``step`` (``groups[step % len(groups)]``).

    ``lax.switch`` keeps the step one compiled program while running only the active group's
    branch (DCMH's terms pair a batch with all ``N`` bank rows; computing both would double the
    cost). ``step`` may be a traced integer.
    """
    groups = tuple(groups)
    if len(groups) == 1:
        return branch(groups[0])
    index = active_group_index(step, len(groups))
    return lax.switch(index, [lambda g=group: branch(g) for group in groups])


def build_backbone(model_config: ml_collections.ConfigDict) -> nn.Module:
    """The backbone named by ``model_config.backbone``, with that backbone's fields.

    Args:
      model_config: the ``model`` block of a run config (see ``dlhash_jax.train.default_config``):
        ``backbone`` in ``BACKBONES``; ``features`` and ``dropout_rate`` for ``"mlp"``;
        ``conv_features``, ``dense_features`` and ``dropout_rate`` for ``"convnet"``; ``depth``
        and ``widths`` for ``"resnet"``; ``"alexnet"``, ``"vgg16"``, ``"resnet50"`` and
        ``"vit_b16"`` are :class:`~dlhash_jax.models.PretrainedFeatures` (``vit_image_size`` for
        ``vit_b16``), whose weights the run loads from ``pretrained_path``.

    Returns:
      A flax module mapping ``[B, ...]`` inputs to ``[B, D]`` features.

    Raises:
      ValueError: if the backbone name is unknown.
    """
    name = model_config.backbone
    _checks.check_choice(name, BACKBONES, "model.backbone")
    if name == "mlp":
        return models.MLP(
            features=tuple(model_config.features), dropout_rate=model_config.dropout_rate
        )
    if name in models.PRETRAINED_BACKBONES:
        return models.PretrainedFeatures(
            name, image_size=model_config.get("vit_image_size") or None, bn_axis_name=AXIS_NAME
        )
    if name == "convnet":
        return models.ConvNet(
            conv_features=tuple(model_config.conv_features),
            dense_features=model_config.dense_features,
            dropout_rate=model_config.dropout_rate,
        )
    return models.ResNet(
        depth=model_config.depth, widths=tuple(model_config.widths), bn_axis_name=AXIS_NAME
    )


def hash_network(
    config: ml_collections.ConfigDict,
    num_classes: int | None = None,
    *,
    relaxation: str,
    classifier: bool = False,
) -> nn.Module:
    """``HashNetwork(backbone, HashHead(config.bits, relaxation))``, the factory most recipes share.

    Bind the relaxation to get a recipe's ``make_model``:
    ``functools.partial(hash_network, relaxation="tanh")``.

    Args:
      config: the run config (``bits``, ``model``).
      num_classes: the protocol's number of classes; used only with ``classifier``.
      relaxation: the hash layer's relaxation (see :class:`~dlhash_jax.models.HashHead`).
      classifier: add a linear classifier on the relaxed bits (``outputs["logits"]``).
    """
    head = models.HashHead(
        config.bits, relaxation=relaxation, num_classes=num_classes if classifier else None
    )
    return models.HashNetwork(build_backbone(config.model), head)


def cross_modal_network(
    config: ml_collections.ConfigDict, num_classes: int | None = None, *, relaxation: str
) -> nn.Module:
    """An image hash network (``config.model``'s backbone) and a text hash network.

    The text network is a :class:`~dlhash_jax.models.TextEncoder` MLP of widths
    ``config.model.text_features`` on the bag-of-words vector; both end in a
    ``HashHead(config.bits, relaxation)``, so the two modalities share one code length.
    ``num_classes`` is accepted for the ``make_model`` signature and not used.
    """
    del num_classes  # The signature of Recipe.make_model; neither network classifies.
    image = models.HashNetwork(
        build_backbone(config.model), models.HashHead(config.bits, relaxation=relaxation)
    )
    text = models.HashNetwork(
        models.TextEncoder(tuple(config.model.text_features)),
        models.HashHead(config.bits, relaxation=relaxation),
    )
    return models.CrossModalNetwork(image=image, text=text)
