"""Discrete supervised hashing with the inner-product objective (Zhang, Li, Jiang & Zhang, 2017).

Survey §5.2.2 (single-label, pairs), eq 14 with the quantization term of eq 2 (§4.2.1 credits
Zhang et al. with adding it). The method learns binary codes ``B ∈ {−1, +1}^{N×L}`` of the
training set whose inner products reproduce the pairwise labels, KSH-style,

    min_B ‖L·T − B Bᵀ‖²_F,   T_ij = +1 if items i and j share a label, −1 otherwise

and a hash function ``F`` (a deep network) that reproduces the codes, ``min_F Σ_i ℓ(b_i, F(x_i))``.
(The survey prints eq 14 with 0 for dissimilar pairs; the authors' code uses the ±1 targets.)
The paper alternates a discrete B-step (bit-wise binary quadratic programs, made linear in ``N``
by clustering) with a W-step that trains ``F`` towards the current ``B``.

How it maps onto the Recipe interface:

- ``B`` is the sign of a memory bank of the ``tanh`` outputs of all ``N`` training items,
  refreshed every step for the rows of the batch: ``B = sgn(F(X))``. That is the B-step
  replaced by the code the network currently gives, the re-initialisation ``B ← sgn(F(X))``
  the authors' code performs after every W-step.
- The pair term is eq 14 between the batch's relaxed outputs ``a = tanh(F(x))`` and the codes,
  ``inner_product_loss(a, B, S)`` with ``dissimilar=-1``, the mean over the ``batch × N`` block
  of ``(L·t_ij − a_i·b_j)²``: the W-step, fitting the network to discrete codes of the whole
  training set (one side discrete, as in the paper's asymmetric factorisation; only the batch
  side carries gradient).
- The fit of the real outputs to their codes is the quantization term (eq 2),
  ``quantization_loss(a)`` towards ``sgn(a)``.

Deviations from the paper:

- End-to-end training: no discrete B-step (bit-wise binary quadratic programs); the codes
  are always ``sgn`` of the current outputs, and the clustering that makes that B-step scale
  is not needed.
- The fit of ``F`` to ``B`` is the squared quantization error (eq 2, as the survey states)
  rather than the authors' per-bit classification losses (logistic in the B-step, squared
  hinge in their CNN).
- The authors' CNN also trains an auxiliary softmax classifier on the labels; we train the
  hash objective alone.
- Our backbone (an MLP on ``digits``) replaces the paper's CNN / VGG-16.
"""

from __future__ import annotations

import functools
import types

from dlhash_jax import codes
from dlhash_jax import losses
from dlhash_jax import similarity
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import hash_network

CITATION = (
    "Shifeng Zhang, Jianmin Li, Mingxing Jiang and Bo Zhang, 'Scalable discrete supervised "
    "multimedia hash learning with clustering', IEEE TCSVT 28(10), 2017; it builds on Zhang, "
    "Li, Guo and Zhang, 'Scalable discrete supervised hash learning with asymmetric matrix "
    "factorization', ICDM 2016 (arXiv:1609.08740; code github.com/zsffq999/DISH)."
)

# dissimilar = −1: the ±1 pair targets of the authors' code, S = 2PPᵀ − 1 (zsffq999/DISH).
# quantization_weight = 1e-4: the authors' weight μ = 1e-4·N of the code-fitting term, which is
# 1e-4 once the pair term and the fitting term are both means, as ours are.
DEFAULT_HPARAMS = types.MappingProxyType({"dissimilar": -1.0, "quantization_weight": 1e-4})


def loss_fn(outputs, batch, ctx):
    """Eq 14 between the batch's outputs and the bank's codes, plus weighted quantization.

    Args:
      outputs: model outputs on the local batch; ``"relaxed"`` is ``a = tanh(F(x))``
        ``[B, L]``.
      batch: local batch with ``"labels"`` ``[B, C]``.
      ctx: :class:`~dlhash_jax.methods.LossContext`: ``ctx.bank`` holds the ``tanh`` outputs of
        the ``N`` training items, already with this step's batch (its signs are the codes ``B``);
        ``ctx.hparams`` is ``{"dissimilar": t, "quantization_weight": λ}``.

    Returns:
      ``(loss, {"inner_product": ..., "quantization": ...})``.
    """
    a = outputs["relaxed"]
    pair_similarity = similarity.label_similarity(batch["labels"], ctx.bank.labels)
    inner_product = losses.inner_product_loss(
        a, codes.sign(ctx.bank.outputs), pair_similarity, dissimilar=ctx.hparams["dissimilar"]
    )
    quantization = losses.quantization_loss(a)
    loss = inner_product + ctx.hparams["quantization_weight"] * quantization
    return loss, {"inner_product": inner_product, "quantization": quantization}


RECIPE = Recipe(
    name="discrete_supervised",
    title="Discrete supervised hashing (inner-product objective)",
    citation=CITATION,
    taxonomy=Taxonomy("single", "pairs"),
    # A backbone and a tanh hash layer; its codes are sgn of the layer's input.
    make_model=functools.partial(hash_network, relaxation="tanh"),
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
    bank_output="relaxed",
)
