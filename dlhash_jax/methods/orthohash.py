"""OrthoHash: one cosine-similarity loss to fixed orthogonal codes (Hoe et al., NeurIPS 2021).

Not in the survey (which appeared a year earlier); a single-sample method of the kind §5.2.1
describes, supervised by labels alone, and usable on multi-label data. Every class ``k`` gets a
fixed binary *orthogonal target* ``o_k ∈ {−1, +1}^L``, chosen once and never trained. The code
layer ``v = BN(W f)`` (a linear layer without bias followed by batch normalisation) is scored
against the targets by cosine similarity, and a single cross-entropy with an additive cosine
margin trains the network:

    L = −(1/N) Σ_i Σ_k q_ik log softmax_k(s (cos(v_i, o_k) − m y_ik)),   q_i = y_i / Σ_k y_ik.

For a one-hot ``y_i`` this is CosFace's loss with the class weights frozen to the targets; for a
multi-hot ``y_i`` the target is spread uniformly over the item's classes, each of them with the
margin (the paper's "label smoothing" form for multi-label data). The code is ``sgn(v)``.

The paper's point is that this one term does all the work: maximising ``cos(v_i, o_y)`` is
classification, and since the cosine to a ±1 code is 1 only when ``sgn(v_i) = o_y`` with equal
magnitudes, it also minimises the quantization error (the quantization term of the authors'
code has weight 0 by default and in their published command). The batch normalisation of the
code layer keeps every bit's mean over the batch at its learned shift, which the paper uses for
bit balance instead of a balance loss.

Mapping onto the catalogue: ``L`` is :func:`~dlhash_jax.losses.cosine_margin_loss` of ``v``
against the targets (``ctx.prepared["targets"]``, drawn once by :func:`prepare`); the network
is :class:`OrthoHashNetwork` (a backbone, the linear code layer and its BatchNorm, which needs
``train`` and so is not a :class:`~dlhash_jax.models.HashHead`).

Deviations from the paper:

- Targets: as the paper's default, every bit of every class's target is drawn from
  Bernoulli(0.5) (:func:`draw_targets`, in the recipe's ``prepare``, from the run seed; kept in
  the train state and checkpointed). A draw that gives two classes the same target is drawn
  again, which the paper does not do (at its 16-128 bits it does not happen). The paper's
  supplementary Table 4 finds Hadamard-matrix targets (CSQ's, :mod:`dlhash_jax.centers`)
  equivalent; on ``digits_mosaic`` they did worse here (MLP backbone, seed 0: NDCG@100 0.572
  against 0.596 with Bernoulli targets; one seed, not investigated further: sums of
  Sylvester-Hadamard rows, the directions multi-label items are pulled towards, tie on
  structured subsets of the bits).
- Backbone and optimiser: the paper fine-tunes ImageNet-pre-trained AlexNet with Adam
  (learning rate 1e-4, one tenth for the backbone, weight decay 5e-4, divided by 10 after 80 of
  100 epochs, batch 256); we train the run config's backbone from scratch with the config's
  optimiser (Adam with a constant rate on ``digits``).
- BatchNorm statistics are averaged over all devices of a replicated step (the step is then
  exactly the single-device one); the authors train on one GPU.
- The quantization term of the authors' code (``--quan``, 0 in every published command) and the
  angular-margin variant (OrthoArc) are left out.
"""

from __future__ import annotations

import math
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlhash_jax import losses
from dlhash_jax.methods._recipe import AXIS_NAME
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import build_backbone

CITATION = (
    "Jiun Tian Hoe, Kam Woh Ng, Tianyu Zhang, Chee Seng Chan, Yi-Zhe Song and Tao Xiang, 'One "
    "loss for all: deep hashing with a single cosine similarity based learning objective', "
    "NeurIPS 2021 (arXiv:2109.14449)."
)

# m = 0.2 and s = √L: the values of the paper's tables, listed in its supplementary material,
# Table 1 ("OrthoCos+BN: m = 0.2; s = √K", K the number of bits; kamwoh/orthohash,
# docs/suppmat.pdf). The scale is a factor of √L so that the default follows the code length:
# s = scale_factor · √L.
DEFAULT_HPARAMS = types.MappingProxyType({"margin": 0.2, "scale_factor": 1.0})

# Stream of the run seed that draws the targets (independent of the initialisation's).
_TARGET_STREAM = 7


def draw_targets(num_classes: int, bits: int, seed: int) -> np.ndarray:
    """The paper's orthogonal targets: ``[C, L]`` bits drawn from Bernoulli(0.5), on ±1.

    Every bit of every class's target is an independent fair coin (the paper's Algorithm 1 and
    its default, ``--codebook-method B``); for ``L`` large against ``log C`` the targets are
    nearly orthogonal (their expected Hamming distance is ``L/2``). A draw that gives two
    classes the same target is drawn again (the paper does not; at its 16 to 128 bits this never
    happens, at the few bits of a test it can). Deterministic in ``(C, L, seed)``.

    Args:
      num_classes: ``C``.
      bits: ``L``.
      seed: the run seed (the paper seeds the run, targets included).

    Returns:
      ``[C, L]`` float32 array with values in {-1, +1}, rows distinct when ``C ≤ 2^L``.
    """
    rng = np.random.default_rng([seed, _TARGET_STREAM])
    while True:
        targets = np.where(rng.random((num_classes, bits)) < 0.5, -1.0, 1.0).astype(np.float32)
        if len(np.unique(targets, axis=0)) == num_classes or num_classes > 2**bits:
            return targets


def prepare(train_split, config) -> dict[str, np.ndarray]:
    """The fixed targets of the run: ``{"targets": [C, L]}`` (:func:`draw_targets`).

    Args:
      train_split: the training split; only the number of classes of its ``labels`` is read.
      config: the resolved run config (``bits``, ``seed``).
    """
    num_classes = np.shape(train_split.labels)[1]
    return {"targets": draw_targets(num_classes, int(config.bits), int(config.seed))}


class OrthoHashNetwork(nn.Module):
    """A backbone, then the code layer ``v = BatchNorm(Dense(L, no bias)(features))``.

    The code layer is the paper's latent layer with its batch normalisation: a linear map without
    bias (the BatchNorm's learned shift plays that role) whose weights start from ``N(0, 0.01²)``
    as in the authors' code, and a BatchNorm with PyTorch's default momentum (flax ``0.9``) and
    ``ε = 1e-5``. In training the batch statistics normalise ``v`` (averaged over the devices of
    the replicated step when ``bn_axis_name`` is set) and update the running averages kept in
    the ``"batch_stats"`` collection; in evaluation the running averages are used, so each item's
    code depends on that item alone.

    Attributes:
      backbone: module called as ``backbone(x, train=...)`` returning ``[B, D]``.
      bits: code length ``L``.
      bn_axis_name: axis over which BatchNorm averages batch statistics, or ``None``.

    Call:
      ``x``: ``[B, ...]`` inputs; ``train``: batch statistics (and their update) or running
      averages; ``beta``: ignored (accepted so the training loop can pass it).

    Returns:
      ``{"pre": v, "relaxed": v, "features": [B, D]}`` with ``v`` the ``[B, L]`` normalised code
      layer, whose signs are the codes.
    """

    backbone: nn.Module
    bits: int
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(
        self, x: jax.typing.ArrayLike, *, train: bool, beta: jax.typing.ArrayLike = 1.0
    ) -> dict[str, jax.Array]:
        del beta
        features = self.backbone(x, train=train)
        linear = nn.Dense(
            self.bits,
            use_bias=False,
            kernel_init=nn.initializers.normal(stddev=0.01),
            name="hash",
        )(features)
        v = nn.BatchNorm(
            use_running_average=not train,
            momentum=0.9,
            epsilon=1e-5,
            axis_name=self.bn_axis_name,
            name="code_norm",
        )(linear)
        return {"pre": v, "relaxed": v, "features": features}


def make_model(config, num_classes=None):
    """The run config's backbone and the batch-normalised code layer of ``config.bits``."""
    del num_classes  # The targets are fixed; the network has no classifier weights.
    return OrthoHashNetwork(build_backbone(config.model), config.bits, bn_axis_name=AXIS_NAME)


def loss_fn(outputs, batch, ctx):
    """Cosine-margin cross-entropy of the code layer against the fixed class targets.

    Args:
      outputs: model outputs on the local batch; ``"pre"`` is ``v`` ``[B, L]``.
      batch: local batch with ``"labels"`` ``[B, C]`` (one-hot or multi-hot).
      ctx: :class:`~dlhash_jax.methods.LossContext`; ``ctx.prepared["targets"]`` is the
        ``[C, L]`` ±1 targets of :func:`prepare`; ``ctx.hparams`` is ``{"margin": m,
        "scale_factor": f}``, and the scale is ``s = f √L``.

    Returns:
      ``(loss, {"cosine_margin": loss})``.
    """
    v = outputs["pre"]
    bits = v.shape[1]
    targets = jnp.asarray(ctx.prepared["targets"], v.dtype)
    scale = ctx.hparams["scale_factor"] * math.sqrt(bits)
    loss = losses.cosine_margin_loss(
        v, targets, batch["labels"], scale=scale, margin=ctx.hparams["margin"]
    )
    return loss, {"cosine_margin": loss}


RECIPE = Recipe(
    name="orthohash",
    title="OrthoHash (one loss for all)",
    citation=CITATION,
    # Single samples; multi-label data is handled by the label-smoothed target (the paper's
    # NUS-WIDE and MS-COCO tables), though relevance is not graded.
    taxonomy=Taxonomy("single", "single"),
    make_model=make_model,
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
    prepare=prepare,
)
