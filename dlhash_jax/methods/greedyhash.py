"""GreedyHash (Su, Zhang, Han & Tian, NeurIPS 2018): exact ``sgn`` forward, straight-through back.

Not in the survey (its §4.5 lists smooth relaxations only); a single-label, single-sample method
of §5.2.1. The hash layer's real outputs ``h`` are binarised with the exact ``b = sgn(h)`` in the
forward pass, and the gradient is passed through it unchanged (the greedy step of the paper: the
update of ``b`` is the update ``h`` would get), so the network trains on the very codes it
retrieves with. A linear classifier on ``b`` supplies the supervision, and a cubic penalty keeps
``h`` near ±1, where the identity gradient of ``sgn`` is least wrong:

    min  L(b) + α ‖ |h| − 1 ‖_p^p,   b = sgn(h),   p = 3,

with ``L`` the softmax cross-entropy of the classifier on ``b`` for single-label data.

Mapping onto the catalogue: ``b`` is ``HashHead(relaxation="ste")``
(:func:`dlhash_jax.relaxations.sign_ste`, identity gradient); ``L`` is
:func:`~dlhash_jax.losses.softmax_loss` of the classifier logits (survey eq 20); the penalty is
:func:`~dlhash_jax.losses.hash_constraint_lp` of ``h`` (the ``"pre"`` output). The authors' code
takes the penalty's mean over all ``N·L`` entries and ``hash_constraint_lp`` the mean over the
``N`` samples, so the weight is ``α / L``, which keeps the paper's ``α``.

Deviations from the paper:

- Backbone: the paper fine-tunes AlexNet / VGG-16 pre-trained on ImageNet; we train the run
  config's backbone (an MLP on ``digits``) from scratch.
- The classifier on ``b`` has a bias (``HashHead(num_classes=...)``); the authors' layer has
  none.
- Optimiser and schedule: the authors use SGD (momentum 0.9, weight decay 5e-4, learning rate
  1e-3 divided by 10 after 30 epochs); the run config chooses (Adam with a constant rate on
  ``digits``).
- The unsupervised variant of the paper (a reconstruction of VGG features) is not this recipe.
"""

from __future__ import annotations

import functools
import types

from dlhash_jax import losses
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import hash_network

CITATION = (
    "Shupeng Su, Chao Zhang, Kai Han and Yonghong Tian, 'Greedy hash: towards fast optimization "
    "for accurate hash coding in CNN', NeurIPS 2018."
)

# p = 3: the paper's choice of the penalty's power; α = 0.1: the weight of the authors' CIFAR-10
# code (ssppp/GreedyHash, cifar1.py: `loss1 + 0.1 * loss2`).
DEFAULT_HPARAMS = types.MappingProxyType({"alpha": 0.1, "p": 3.0})


def loss_fn(outputs, batch, ctx):
    """Softmax loss of the classifier on ``b = sgn(h)`` plus ``(α / L)`` times the ℓp penalty.

    Args:
      outputs: model outputs on the local batch: ``"pre"`` ``h`` ``[B, L]`` and ``"logits"``
        ``[B, C]`` (the classifier on the codes).
      batch: local batch with ``"labels"`` ``[B, C]`` (one-hot).
      ctx: :class:`~dlhash_jax.methods.LossContext`; ``ctx.hparams`` is ``{"alpha": α, "p": p}``.

    Returns:
      ``(loss, {"classification": ..., "penalty": ...})``.
    """
    h = outputs["pre"]
    classification = losses.softmax_loss(outputs["logits"], batch["labels"])
    penalty = losses.hash_constraint_lp(h, p=ctx.hparams["p"])
    loss = classification + ctx.hparams["alpha"] / h.shape[1] * penalty
    return loss, {"classification": classification, "penalty": penalty}


RECIPE = Recipe(
    name="greedyhash",
    title="Greedy hash",
    citation=CITATION,
    taxonomy=Taxonomy("single", "single"),
    # A backbone, a hash layer with the straight-through sgn, and a classifier on the codes.
    make_model=functools.partial(hash_network, relaxation="ste", classifier=True),
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
)
