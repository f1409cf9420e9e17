"""MIHash: mutual information between neighbourhood and Hamming distance (Cakir et al., 2017).

Not in the survey. Supervised by pairwise neighbourhood (two items are neighbours when they share
a label), like the pairwise methods of §5.2.2, but scored per query over a whole set rather than
pair by pair. Every item of a mini-batch is a query against the rest of the batch: the relaxed
Hamming distances from the query to its neighbours and to its non-neighbours are binned into two
differentiable histograms (triangular kernels), and MIHash maximises the mutual information
``I(C; D)`` between the neighbour indicator ``C`` and the distance ``D``:

    φ_i = 2σ(a u_i) − 1 = tanh(a u_i / 2),   d_ij = (L − φ_iᵀ φ_j) / 2,
    J = −(1/B) Σ_i I_i(C; D) = −(1/B) Σ_i [H(D_i) − p_i(+) H(D_i | +) − p_i(−) H(D_i | −)],

with ``u`` the linear hash layer, ``a`` the sharpness of the sigmoid, the pairs ``j ≠ i`` of the
batch, and entropies in bits over ``K + 1`` bins of width ``L / K``. The code is ``sgn(u)``.

This is the batch version the authors use for deep hashing (fcakir/deep-mihash, the code of
their TPAMI 2019 paper "Hashing with mutual information", which extends the ICCV 2017 online
MIHash to mini-batch training of CNNs); the ICCV paper itself trains online, one streaming item
against a reservoir set.

Mapping onto the catalogue: ``J`` is :func:`~dlhash_jax.losses.mutual_information_loss` of
``φ`` against itself with ``valid = 1 − I`` and ``S`` from
:func:`~dlhash_jax.similarity.label_similarity`; the network is a backbone and a linear
:class:`~dlhash_jax.models.HashHead` (``relaxation="none"``), whose output ``u`` the loss maps
to ``φ``.

Deviations from the paper:

- Reduction: the authors' loss layer sums ``I_i`` over the batch; we take the mean, so the
  gradient does not grow with the batch size (Adam, our default optimiser, is almost invariant
  to that scale; for SGD divide the authors' learning rate by the batch size).
- Backbone and optimiser: the authors fine-tune VGG-F (or train on its fc7 features) with SGD
  (learning rate 1e-3 on CIFAR-10's first setting, weight decay 5e-4); we train the run config's
  backbone from scratch with the config's optimiser (Adam with a constant rate on ``digits``).
- Hyper-parameters: from the authors' 32-bit CIFAR-10 command of their second setting, not of
  their first, whose sigmoid sharpness 1 let the codes collapse here (see ``DEFAULT_HPARAMS``).
- The authors' backward pass is written by hand; ours is JAX's derivative of the same forward
  computation, which agrees with it except on the measure-zero set of distances that sit exactly
  on a bin centre or edge.
"""

from __future__ import annotations

import functools
import types

import jax.numpy as jnp

from dlhash_jax import losses
from dlhash_jax import similarity
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import hash_network

CITATION = (
    "Fatih Cakir, Kun He, Sarah Adel Bargal and Stan Sclaroff, 'MIHash: online hashing with "
    "mutual information', ICCV 2017 (arXiv:1703.08919); batch version: 'Hashing with mutual "
    "information', TPAMI 2019 (arXiv:1803.00974)."
)

# K = 12 bins and sharpness a = 30: the authors' command for CIFAR-10 at 32 bits in their second
# setting (fcakir/deep-mihash, README: `demo_AP('cifar', 32, 'vggf', 'split', 2, 'nbins', 12,
# 'sigmf', [30 0], ...)`). Their first setting (5,000 training images, nearer our `digits` in
# size) uses K = 32, a = 1; with it, on `digits` (32 bits, seed 0, our MLP trained from
# scratch), the codes collapsed: 480 of the 500 training items took one of two codes and mAP
# was 0.20, while the mutual information of the relaxed codes kept rising (0.34 bit). Their
# ImageNet command uses a = 10 (mAP 0.93 / 0.96 / 0.95 here with K = 32).
DEFAULT_HPARAMS = types.MappingProxyType({"num_bins": 12, "sharpness": 30.0})


def loss_fn(outputs, batch, ctx):
    """Minus the mean over the batch of each item's ``I(C; D)`` against the rest of the batch.

    Args:
      outputs: model outputs on the local batch; ``"pre"`` is the linear hash layer ``u``
        ``[B, L]``.
      batch: local batch with ``"labels"`` ``[B, C]``.
      ctx: :class:`~dlhash_jax.methods.LossContext`; ``ctx.hparams`` is ``{"num_bins": K,
        "sharpness": a}``.

    Returns:
      ``(loss, {"mutual_information": mean I in bits})``.
    """
    phi = jnp.tanh(0.5 * ctx.hparams["sharpness"] * outputs["pre"])
    labels = batch["labels"]
    neighbours = similarity.label_similarity(labels, labels)
    others = 1.0 - jnp.eye(phi.shape[0], dtype=phi.dtype)
    loss = losses.mutual_information_loss(
        phi, phi, neighbours, others, num_bins=ctx.hparams["num_bins"]
    )
    return loss, {"mutual_information": -loss}


RECIPE = Recipe(
    name="mihash",
    title="Hashing with mutual information",
    citation=CITATION,
    taxonomy=Taxonomy("single", "pairs"),
    # A backbone and a linear hash layer: the loss maps u to φ = tanh(a u / 2).
    make_model=functools.partial(hash_network, relaxation="none"),
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
)
