"""Hinge-softmax hashing (Guo, Zhang & Li, PAKDD 2016).

Survey §5.2.1 (single-label, single samples; survey ref [43]). A CNN learns semantic features
with an ordinary softmax classifier; a fully connected hash layer on the same features feeds a
second classifier trained with the hinge-softmax loss (survey eq 26): a sample costs
``−log p_y`` until its true class wins by a probability margin ``m``,

    ℓ(y, p) = 0 if p_y ≥ max_{c≠y} p_c + m, else −log p_y,

and a hash constraint (survey eq 9, attributed to the same paper) pulls the clipped outputs of
the hash layer to ±1:

    Σ_k (1 − |f(a_k)|)²,  f = clip(·, −1, 1).

After training both classifiers are dropped and the hash layer's outputs are binarised by sign.

In our terms, with ``a = Dense(L)(features)`` the hash layer (``"pre"``), ``f(a)`` its clipped
output (``"relaxed"``) and the hinge-softmax classifier reading ``f(a)``
(:class:`FeatureAndCodeClassifiers`):

    J = softmax_weight · softmax_loss(feature_logits) + hinge_softmax_loss(logits; m)
        + constraint_weight · hash_constraint_clipped(a),

each a mean over the batch (survey eqs 20, 26, 9). The code is ``sgn(a)``.

Deviations and open points:

- The survey gives the terms but not their weights or ``m``, and the paper's text was not
  available to us: the weights (1 for both classifiers, 0.1 for the constraint) and ``m = 0.5``
  are our choice, not the paper's values (see ``DEFAULT_HPARAMS``).
- Backbone: the paper trains a CNN on CIFAR-10 / SVHN images; we use the run config's backbone
  (an MLP on ``digits``).
- The paper calls its hash layer new; the survey does not say how. We read it as a linear
  layer followed by the ``f`` of eq 9 (a hard tanh), which the classifier reads.
"""

from __future__ import annotations

import types

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlhash_jax import losses
from dlhash_jax import models
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import build_backbone

CITATION = (
    "J. Guo, S. Zhang and J. Li, 'Hash learning with convolutional neural networks for "
    "semantic based image retrieval', PAKDD 2016, LNCS 9651, pp. 227-238."
)

# Not in the survey, and the paper was not available to us, so these are our choices: a margin
# halfway through the probability range and unit weights on both classifiers. The constraint gets
# 0.1 because at weight 1 it outweighs the classifiers at initialisation (it sums over the L bits)
# and pushes every output past ±1 with the sign of its bias within ~50 steps; f then passes no
# gradient and every item keeps the same code (digits, 32 bits: mAP 0.10, chance level).
DEFAULT_HPARAMS = types.MappingProxyType(
    {"margin": 0.5, "softmax_weight": 1.0, "constraint_weight": 0.1}
)


class FeatureAndCodeClassifiers(nn.Module):
    """Guo et al.'s two heads on the backbone features: a softmax classifier and a hash layer.

    The hash layer is ``a = Dense(L)(features)`` followed by the piecewise-linear
    ``f(a) = clip(a, −1, 1)`` of survey eq 9, and the hinge-softmax classifier reads ``f(a)``.
    Reading the clipped outputs matters: a classifier on the unclipped ``a`` can separate the
    classes by the magnitude of outputs that the constraint has already pushed past ±1 with one
    common sign, which leaves every item with the same code.

    Attributes:
      bits: code length ``L``.
      num_classes: number of classes ``C``.

    Call:
      ``features``: ``[B, D]``.
      ``beta``: ignored (accepted so every head has the same call).

    Returns:
      ``{"pre": a, "relaxed": f(a), "logits": [B, C], "feature_logits": [B, C]}``: the hash
      layer ``[B, L]`` before and after ``f``, the classifier on ``f(a)`` and the classifier on
      the features.
    """

    bits: int
    num_classes: int

    @nn.compact
    def __call__(
        self, features: jax.typing.ArrayLike, *, beta: jax.typing.ArrayLike = 1.0
    ) -> dict[str, jax.Array]:
        del beta
        pre = nn.Dense(self.bits, name="hash")(features)
        relaxed = jnp.clip(pre, -1.0, 1.0)
        return {
            "pre": pre,
            "relaxed": relaxed,
            "logits": nn.Dense(self.num_classes, name="classifier")(relaxed),
            "feature_logits": nn.Dense(self.num_classes, name="feature_classifier")(features),
        }


def make_model(config, num_classes):
    """A backbone, then a softmax classifier and a clipped hash layer with its own classifier."""
    return models.HashNetwork(
        build_backbone(config.model), FeatureAndCodeClassifiers(config.bits, num_classes)
    )


def loss_fn(outputs, batch, ctx):
    """Softmax on the features, hinge-softmax on the hash layer, and the clipped hash constraint.

    Args:
      outputs: model outputs on the local batch: ``"feature_logits"`` and ``"logits"``
        ``[B, C]``, ``"pre"`` ``[B, L]`` (the hash layer before clipping).
      batch: local batch with ``"labels"`` ``[B, C]`` (one-hot).
      ctx: :class:`~dlhash_jax.methods.LossContext`; ``ctx.hparams`` is ``{"margin": m,
        "softmax_weight": ..., "constraint_weight": ...}``.

    Returns:
      ``(loss, {"softmax": ..., "hinge_softmax": ..., "hash_constraint": ...})``.
    """
    labels = batch["labels"]
    softmax = losses.softmax_loss(outputs["feature_logits"], labels)
    hinge = losses.hinge_softmax_loss(outputs["logits"], labels, margin=ctx.hparams["margin"])
    constraint = losses.hash_constraint_clipped(outputs["pre"])
    loss = (
        ctx.hparams["softmax_weight"] * softmax + hinge + ctx.hparams["constraint_weight"] * constraint
    )
    return loss, {"softmax": softmax, "hinge_softmax": hinge, "hash_constraint": constraint}


RECIPE = Recipe(
    name="hinge_softmax",
    title="Hash learning with a hinge-softmax loss",
    citation=CITATION,
    taxonomy=Taxonomy("single", "single"),
    make_model=make_model,
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
)
