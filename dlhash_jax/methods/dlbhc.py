"""DLBHC: deep learning of binary hash codes (Lin, Yang, Hsiao & Chen, CVPR Workshops 2015).

Survey §5.2.1 (single-label, single samples; survey ref [22]). DLBHC inserts a latent layer of
``L`` sigmoid units ``H = σ(W_H x + b_H)`` between the penultimate layer of a classification
network and its softmax classifier, and fine-tunes the whole network with the classification loss
alone (survey eq 20):

    min_W  −Σ_n log softmax(W_C h_n + b_C)_{y_n},

so the latent units become the "latent concepts" that the classes are built from. The code of an
item is its latent layer thresholded at 0.5: ``b_k = 1`` iff ``h_k > 0.5``.

In our terms the model is a backbone followed by :class:`~dlhash_jax.models.LatentLayer`
(``"latent"`` = ``H``, ``"logits"`` = the classifier on ``H``) and the loss is
:func:`dlhash_jax.losses.softmax_loss` of the logits, the mean over the batch instead of the sum.
The code ``codes.sign(pre)`` is DLBHC's ``H > 0.5`` (``σ(pre) > 0.5`` iff ``pre > 0``) except on
the measure-zero set ``pre = 0``, where ``sgn(0) = +1``.

Deviations from the paper:

- Backbone: the paper fine-tunes an AlexNet pre-trained on ImageNet; we train the backbone of the
  run config (an MLP on ``digits``) from scratch.
- Retrieval: the paper's coarse-to-fine search (Hamming candidates re-ranked by the Euclidean
  distance of fc7 features) is not part of this recipe; retrieval here is Hamming ranking of the
  codes, the protocol every recipe is evaluated with.
- Optimiser: the paper fine-tunes with Caffe's SGD; the run config chooses the optimiser (Adam
  on ``digits``).
"""

from __future__ import annotations

import types

from dlhash_jax import losses
from dlhash_jax import models
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import build_backbone

CITATION = (
    "Kevin Lin, Huei-Fang Yang, Jen-Hao Hsiao and Chu-Song Chen, 'Deep learning of binary hash "
    "codes for fast image retrieval', CVPR Workshops (DeepVision) 2015."
)

# DLBHC's objective is the classification loss alone: it has no loss hyper-parameters.
DEFAULT_HPARAMS = types.MappingProxyType({})


def make_model(config, num_classes):
    """A backbone, the sigmoid latent layer of ``config.bits`` units, and a softmax classifier."""
    return models.HashNetwork(
        build_backbone(config.model), models.LatentLayer(config.bits, num_classes)
    )


def loss_fn(outputs, batch, ctx):
    """Softmax cross-entropy of the classifier on the latent layer (survey eq 20).

    Args:
      outputs: model outputs on the local batch; ``"logits"`` ``[B, C]``.
      batch: local batch with ``"labels"`` ``[B, C]`` (one-hot).
      ctx: :class:`~dlhash_jax.methods.LossContext`; ``ctx.hparams`` is unused (DLBHC has none).

    Returns:
      ``(loss, {"softmax": loss})``.
    """
    softmax = losses.softmax_loss(outputs["logits"], batch["labels"])
    return softmax, {"softmax": softmax}


RECIPE = Recipe(
    name="dlbhc",
    title="Deep learning of binary hash codes",
    citation=CITATION,
    taxonomy=Taxonomy("single", "single"),
    make_model=make_model,
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
)
