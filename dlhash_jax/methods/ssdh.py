"""SSDH: supervised semantics-preserving deep hashing (Yang, Lin & Chen, TPAMI 2018).

Survey §5.2.1 (single-label, single samples). SSDH keeps DLBHC's network (a sigmoid latent layer
``h_n ∈ (0, 1)^L`` feeding the classifier, see :mod:`dlhash_jax.methods.dlbhc`) and adds two
terms on the latent layer to the classification loss:

    min_W  α E1 + β E2 + γ E3,
    E1 = Σ_n ℓ(y_n, ŷ_n) + λ‖W‖²              (classification; softmax for single-label data)
    E2 = −(1/L) Σ_n ‖h_n − 0.5·1‖²             (binarisation: push every unit away from 0.5)
    E3 = Σ_n (mean_k h_nk − 0.5)²              (balance: half of each code's bits are 1)

Mapping onto the catalogue, with ``a_n = 2 h_n − 1`` the latent layer on the ±1 scale (the
``"relaxed"`` output of :class:`~dlhash_jax.models.LatentLayer`) and every sum over samples
replaced by the mean (the whole objective divided by ``N``, so ``α, β, γ`` keep their meaning):

- ``E1 / N`` → :func:`~dlhash_jax.losses.softmax_loss` of the logits (survey eq 20);
- ``E2 / N = −mean_nk (h_nk − 0.5)²`` → ``variance_loss(a) / (4L)`` (survey eq 5; the
  ``(h − 0.5)² = a² / 4`` of SSDH is the variance of a bit on the ±1 scale);
- ``E3 / N = mean_n (mean_k h_nk − 0.5)²`` → ``balance_loss(aᵀ) / (4N)``. SSDH balances each
  *code* (the mean over the ``L`` bits of one sample), while survey eq 6 balances each *bit*
  (the mean over the samples); ``balance_loss`` of the transposed outputs is SSDH's form.

The code is ``h_k > 0.5``, i.e. ``codes.sign(pre)``.

Deviations from the paper:

- Backbone: the paper fine-tunes AlexNet / VGG-16 pre-trained on ImageNet; we train the run
  config's backbone (an MLP on ``digits``) from scratch.
- ``λ‖W‖²`` is left to the optimiser's weight decay (``optimizer.weight_decay``; 0 on ``digits``),
  since a recipe's loss sees the outputs and not the parameters.
- Optimiser: the paper fine-tunes with Caffe's SGD; the run config chooses the optimiser (Adam
  on ``digits``).
- Multi-label data: SSDH then uses a sigmoid (or hinge) loss per label; this recipe is the
  single-label form and always uses the softmax loss.
"""

from __future__ import annotations

import types

from dlhash_jax import losses
from dlhash_jax import models
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import build_backbone

CITATION = (
    "Huei-Fang Yang, Kevin Lin and Chu-Song Chen, 'Supervised learning of semantics-preserving "
    "hash via deep convolutional neural networks', IEEE TPAMI 40(2), 2018 (arXiv:1507.00101)."
)

# α = β = γ = 1: the terms weighed equally, as in the authors' released training model
# (loss_weight 1 on all three loss layers of kevinlin311tw/Caffe-DeepBinaryCode,
# examples/SSDH/train_val.prototxt).
DEFAULT_HPARAMS = types.MappingProxyType({"alpha": 1.0, "beta": 1.0, "gamma": 1.0})


def make_model(config, num_classes):
    """A backbone, the sigmoid latent layer of ``config.bits`` units, and a softmax classifier."""
    return models.HashNetwork(
        build_backbone(config.model), models.LatentLayer(config.bits, num_classes)
    )


def loss_fn(outputs, batch, ctx):
    """``α E1 + β E2 + γ E3`` of the batch, each term a mean over samples.

    Args:
      outputs: model outputs on the local batch; ``"logits"`` ``[B, C]`` and ``"relaxed"``
        ``[B, L]`` (``2H − 1``).
      batch: local batch with ``"labels"`` ``[B, C]`` (one-hot).
      ctx: :class:`~dlhash_jax.methods.LossContext`; ``ctx.hparams`` is ``{"alpha": α, "beta": β,
        "gamma": γ}``.

    Returns:
      ``(loss, {"softmax": E1/N, "binarization": E2/N, "balance": E3/N})``.
    """
    a = outputs["relaxed"]
    num_samples, num_bits = a.shape
    softmax = losses.softmax_loss(outputs["logits"], batch["labels"])
    binarization = losses.variance_loss(a) / (4.0 * num_bits)
    balance = losses.balance_loss(a.T) / (4.0 * num_samples)
    loss = ctx.hparams["alpha"] * softmax + ctx.hparams["beta"] * binarization + ctx.hparams["gamma"] * balance
    return loss, {"softmax": softmax, "binarization": binarization, "balance": balance}


RECIPE = Recipe(
    name="ssdh",
    title="Supervised semantics-preserving deep hashing",
    citation=CITATION,
    taxonomy=Taxonomy("single", "single"),
    make_model=make_model,
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
)
