"""DBDH: deep balanced discrete hashing (Zheng, Zhang & Lu, Neurocomputing 2020).

Survey §5.2.2's family (single-label, pairs); the method itself is beyond the survey. The hash
layer's outputs ``u`` are binarised in the forward pass, ``b = sgn(u)``, and the gradient is
passed back through ``sgn`` by a straight-through estimator, so the network trains on the
discrete codes it retrieves with and needs no quantization term. The codes are scored by the
pairwise likelihood of DPSH and kept balanced (as many +1 as −1 bits in each code):

    J = −Σ_ij [s_ij θ_ij − log(1 + e^{θ_ij})] + α Σ_i |mean_k b_ik|^p,   θ_ij = ½ b_iᵀb_j,

with ``p = 2``.

Mapping onto the catalogue:

- ``b`` is ``HashHead(relaxation="ste_clipped")``
  (:func:`dlhash_jax.relaxations.sign_ste` with ``clipped=True``): exactly ``sgn(u)`` forward,
  gradient ``1[|u| ≤ 1]`` backward, the derivative of the hard tanh ``clip(u, −1, 1)`` that the
  common re-implementation uses in the forward pass.
- The first sum is :func:`~dlhash_jax.losses.pairwise_likelihood_loss` (survey eq 15/24) on the
  codes.
- The second is :func:`~dlhash_jax.losses.code_balance_loss` (DBDH's own term, beyond the
  survey; with ``p = 2`` it is the bit balance of survey eq 6 taken across the bits of each
  code instead of across the samples of each bit).
- Normalisation: the likelihood is the mean over the ``B × N`` pairs of the batch and the bank,
  the balance the mean over the ``B`` codes of the batch, so ``J_ours = likelihood + α ·
  balance``, the re-implementation's means with its ``α``.

Pairs: as in the re-implementation, which builds on DPSH's, each batch is paired with a memory
bank of the codes of all ``N`` training items (``bank_output="relaxed"``, the codes ``b``),
refreshed with the batch's codes at every step.

Sources and deviations:

- The paper's text was not reachable from this machine, so its equations could not be
  checked. The loss terms, weights and normalisation are those of the common
  re-implementation (swuxyj/DeepHash-pytorch ``DBDH.py``); the discrete codes in the forward
  pass with a straight-through gradient are the paper's method as it is described (its title's
  "discrete": codes, not a relaxation, during training), not checked against its equations.
- Where the two differ we follow the paper: the re-implementation feeds the hard tanh
  ``clip(u, −1, 1)`` itself to both terms (a relaxation, not discrete codes); we feed the exact
  codes ``sgn(u)`` and keep its gradient (``1[|u| ≤ 1]``) as the straight-through estimator
  (the identity estimator trains worse on ``digits``: 0.831 against 0.938, seed 0).
- Balance: per code (the mean over the bits of each code), as the re-implementation computes
  it; the paper's exact form could not be checked.
- Backbone and optimiser: the paper fine-tunes an ImageNet-pre-trained network (AlexNet in the
  re-implementation, RMSprop at 1e-5 divided by 10 every 50 epochs); we train the run config's
  backbone (an MLP on ``digits``) from scratch with the config's optimizer. On ``digits`` that
  is RMSprop at 1e-4 for 4,000 steps: with the Adam 1e-3 of the other pairwise recipes the
  codes of a whole batch flip together and training collapses (mAP 0.16-0.27 at 32 bits;
  the measurements are in ``experiments/configs/dbdh.py``).
- ``sgn(0) = +1`` (the library's convention).
- Multi-label data: ``s_ij = 1`` for any shared label, as for DPSH.
- Hyper-parameters: see :data:`DEFAULT_HPARAMS`.
"""

from __future__ import annotations

import functools
import types

from dlhash_jax import losses
from dlhash_jax import similarity
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import hash_network

CITATION = (
    "Xiangtao Zheng, Yichao Zhang and Xiaoqiang Lu, 'Deep balanced discrete hashing for image "
    "retrieval', Neurocomputing 2020."
)

# α = 0.1 and p = 2: the balance weight and power of the common re-implementation
# (swuxyj/DeepHash-pytorch DBDH.py, "alpha": 0.1, "p": 2, with p = 1 as its alternative), on
# the same means as ours.
DEFAULT_HPARAMS = types.MappingProxyType({"alpha": 0.1, "p": 2.0})


def loss_fn(outputs, batch, ctx):
    """Pairwise likelihood of the batch's codes against the bank plus ``α`` times the balance.

    Args:
      outputs: model outputs on the local batch; ``"relaxed"`` is ``b = sgn(u)`` ``[B, L]``
        with the straight-through gradient.
      batch: local batch with ``"labels"`` ``[B, C]``.
      ctx: :class:`~dlhash_jax.methods.LossContext`: ``ctx.bank`` is the memory bank of the
        ``N`` training codes, already holding this step's batch; ``ctx.hparams`` is
        ``{"alpha": α, "p": p}``.

    Returns:
      ``(loss, {"likelihood": ..., "balance": ...})``.
    """
    b = outputs["relaxed"]
    pair_similarity = similarity.label_similarity(batch["labels"], ctx.bank.labels)
    likelihood = losses.pairwise_likelihood_loss(b, ctx.bank.outputs, pair_similarity)
    balance = losses.code_balance_loss(b, p=ctx.hparams["p"])
    loss = likelihood + ctx.hparams["alpha"] * balance
    return loss, {"likelihood": likelihood, "balance": balance}


RECIPE = Recipe(
    name="dbdh",
    title="Deep balanced discrete hashing",
    citation=CITATION,
    taxonomy=Taxonomy("single", "pairs"),
    # A backbone and a hash layer whose output is the code sgn(u), with the straight-through
    # gradient of the hard tanh.
    make_model=functools.partial(hash_network, relaxation="ste_clipped"),
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
    bank_output="relaxed",
)
