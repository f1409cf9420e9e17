"""DNNH: deep neural network hashing (Lai, Pan, Liu & Yan, CVPR 2015).

Survey §5.2.3 (single-label, multi-tuples; survey ref [19]). DNNH feeds triplets
``(I, I⁺, I⁻)`` (``I⁺`` shares ``I``'s label, ``I⁻`` does not) through one shared network whose
last stage is the divide-and-encode module (:class:`~dlhash_jax.models.DivideAndEncode`): the
features are cut into ``L`` equal slices, slice ``k`` alone feeds bit ``k`` through a sigmoid and
a piecewise threshold ``g``, so the outputs ``F(I) ∈ [0, 1]^L`` are close to binary. The loss is
the triplet ranking hinge on squared Euclidean distances, with margin 1:

    ℓ(I, I⁺, I⁻) = max(0, 1 − (‖F(I) − F(I⁻)‖² − ‖F(I) − F(I⁺)‖²)).

Mapping onto the catalogue: our head's ``"relaxed"`` output is ``a = 2F − 1`` (the ±1 scale of
every loss), so ``‖F − F'‖² = ‖a − a'‖² / 4`` and

    ℓ = ¼ · max(0, ‖a − a⁺‖² − ‖a − a⁻‖² + 4m),   m = 1,

which is ``0.25 * batch_triplet_loss(a, Y, margin=4m, distance="squared_l2", mining="all")``
averaged over the triplets. The code bit is ``g(σ(z)) > 0.5``, i.e. ``codes.sign(pre)``.

Deviations from the paper:

- Triplets: DNNH trains on a list of triplets sampled from the labels; we form every valid
  triplet inside each mini-batch (all anchors, all same-label positives, all other-label
  negatives) and average the hinge over them.
- Backbone: the paper uses a Network-in-Network CNN trained on the image datasets, its last
  layer sized so the features split into ``L`` equal slices; we use the run config's backbone
  (an MLP of width 256 on ``digits``), whose last width must be a multiple of ``L``.
- Optimiser and weight decay: the paper trains with SGD in Caffe; the run config chooses (Adam on
  ``digits``), and weight decay is the optimiser's (``optimizer.weight_decay``), since a
  recipe's loss sees outputs, not parameters.
- ``ε`` of the threshold: the paper's value was not at hand when this recipe was written; 0.1
  is the default of :class:`~dlhash_jax.models.DivideAndEncode`.
"""

from __future__ import annotations

import types

from dlhash_jax import losses
from dlhash_jax import models
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import build_backbone

CITATION = (
    "Hanjiang Lai, Yan Pan, Ye Liu and Shuicheng Yan, 'Simultaneous feature learning and hash "
    "coding with deep neural networks', CVPR 2015 (arXiv:1504.03410)."
)

# margin = 1: the constant of DNNH's triplet ranking loss, on its [0, 1] outputs.
# epsilon = 0.1: half-width of the linear band of the piecewise threshold g, "a small positive
# hyper-parameter" in DNNH; the value is our choice (see the module docstring).
DEFAULT_HPARAMS = types.MappingProxyType({"margin": 1.0, "epsilon": 0.1})


def make_model(config, num_classes):
    """A backbone and DNNH's divide-and-encode module with the piecewise threshold."""
    del num_classes
    hparams = {**DEFAULT_HPARAMS, **config.hparams.to_dict()}
    head = models.DivideAndEncode(
        config.bits, relaxation="threshold", epsilon=hparams["epsilon"]
    )
    return models.HashNetwork(build_backbone(config.model), head)


def loss_fn(outputs, batch, ctx):
    """DNNH's triplet ranking loss over every triplet of the batch, on the [0, 1] scale.

    Args:
      outputs: model outputs on the local batch; ``"relaxed"`` is ``2F − 1`` ``[B, L]``.
      batch: local batch with ``"labels"`` ``[B, C]``.
      ctx: :class:`~dlhash_jax.methods.LossContext`; ``ctx.hparams`` is ``{"margin": m, "epsilon":
        ε}`` (``ε`` is used by the model).

    Returns:
      ``(loss, {"triplet": loss})``.
    """
    # ‖F − F'‖² = ‖a − a'‖² / 4 for a = 2F − 1: margin 4m on the ±1 scale, the result scaled by ¼.
    triplet = 0.25 * losses.batch_triplet_loss(
        outputs["relaxed"],
        batch["labels"],
        margin=4.0 * ctx.hparams["margin"],
        mining="all",
        distance="squared_l2",
    )
    return triplet, {"triplet": triplet}


RECIPE = Recipe(
    name="dnnh",
    title="Deep neural network hashing",
    citation=CITATION,
    taxonomy=Taxonomy("single", "multi-tuples"),
    make_model=make_model,
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
)
