"""DSRH: deep semantic ranking based hashing (Zhao, Huang, Wang & Tan, CVPR 2015).

Survey §4.3.2 eq 19 and §5.3.3 (multi-label, multi-tuples). For a query ``q`` the relevance of
an item ``x_i`` is the number of labels they share, ``r_i``; the items of the query's list must
be ranked by it in Hamming space. With ``h(x) ∈ (−1, 1)^L`` the relaxed codes and
``d(q, i) = (L − h(q)·h(x_i))/2`` the relaxed Hamming distance, DSRH minimises

    F = Σ_q Σ_i Σ_{j: r_j < r_i} ω(r_i, r_j) [d(q, i) − d(q, j) + ρ]₊
        + (α/2) ‖mean_q h(q)‖² + (β/2) ‖W‖²,
    ω(r_i, r_j) = (2^{r_i} − 2^{r_j}) / Z,

i.e. a triplet ranking loss whose triplets are weighted by how much swapping ``i`` and ``j``
would cost NDCG, a bit-balance term, and weight decay. Every image of a mini-batch is a query,
and its list is the other images of the batch.

Mapping onto the catalogue, for ``F`` summed over one batch (every image a query) and divided by
``T``, the number of the batch's triplets ``(q, i, j)`` with ``r_i > r_j``:

- the ranking sum over ``T`` is :func:`~dlhash_jax.losses.ranking_loss` (eq 19) of the batch
  against itself with ``R = similarity.common_labels(Y, Y)`` and
  ``weights = ndcg_pair_weights(R)`` (eq 27's weights, ``Z = IDCG_q``), with the weights of
  every triplet that involves the query itself set to 0, so each query ranks the *other* images;
- the balance term is :func:`~dlhash_jax.losses.balance_loss` (survey eq 6, which cites DSRH):
  ``Σ_k (mean_q h_qk)²`` = ``‖mean_q h(q)‖²``, weighted ``α / (2T)``: dividing ``F`` by ``T``
  keeps the paper's balance between the terms, so ``α`` keeps its meaning. (Weighted ``α/2``
  next to the mean instead, it dominates from the first step, where the codes of non-negative
  images share their signs, and the network escapes it by shrinking every code to 0, where the
  ranking term is flat: NDCG@100 0.25 at 32 bits, below LSH.)
- ``(β/2)‖W‖²``, divided by ``T`` (about 3.3·10⁴ at batch 50 on ``digits_mosaic``), is weight
  decay ``β/T``, about 1.5·10⁻⁸ for a customary ``β = 5·10⁻⁴``: negligible, so the configs
  leave ``optimizer.weight_decay`` at 0 (a recipe's loss sees outputs, not parameters; set it
  there to study it). Plain weight decay ``β`` next to the mean-reduced ranking term instead
  would weigh it 3·10⁴ times more than the paper does, and does hurt (NDCG@100 0.48 against 0.62
  at 32 bits, seed 0).

Deviations from the paper:

- Reduction: ``ranking_loss`` takes the mean over the triplets of the batch (``F / T`` above; the
  weights scale triplets, they do not renormalise the mean). The query's own triplets, masked
  to weight 0, still count in ``T`` and its own gain in ``IDCG_q``; both only rescale a query's
  weights, which is what ``Z`` does.
- Relaxation: the paper's ``h = 2σ(Wᵀf) − 1 = tanh(Wᵀf / 2)``; we use ``tanh(Wᵀf)``, the same
  family with the hash layer's weights halved.
- Backbone: the paper's network is an ImageNet-pretrained CNN with features of two layers
  concatenated; we train the run config's backbone from scratch (an MLP on ``digits_mosaic``,
  see the config).
- Hyper-parameters: see ``DEFAULT_HPARAMS``; the optimiser and schedule are the run config's.
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
    "Fang Zhao, Yongzhen Huang, Liang Wang and Tieniu Tan, 'Deep semantic ranking based hashing "
    "for multi-label image retrieval', CVPR 2015."
)

# ρ = 1 bit: on ±1 codes d(q, i) − d(q, j) is an integer number of bits, so a margin of one bit
# asks for a strict order. α = 1: the balance weight. The paper's numeric values were not
# available to us; both are documented choices, not tuned.
DEFAULT_HPARAMS = types.MappingProxyType({"margin": 1.0, "alpha": 1.0})


def in_batch_ranking_loss(h, labels, *, margin):
    """NDCG-weighted ranking loss of every batch item as a query against the others.

    Args:
      h: ``[B, L]`` relaxed codes.
      labels: ``[B, C]`` multi-hot labels.
      margin: ``ρ`` in bits.

    Returns:
      ``(loss, count)``: ``ranking_loss(h, h, R, margin=ρ, weights=w)`` with ``R = Y Yᵀ`` and
      ``w = ndcg_pair_weights(R)``, zero for triplets in which the query is an item; and the
      number of triplets ``(q, i, j)`` with ``R_qi > R_qj`` that mean is taken over, so that
      ``loss · count`` is the paper's sum.
    """
    relevance = similarity.common_labels(labels, labels)
    size = h.shape[0]
    others = ~jnp.eye(size, dtype=bool)
    # Triplet (q, i, j) keeps its weight only when neither i nor j is the query q itself.
    not_self = others[:, :, None] & others[:, None, :]
    weights = jnp.where(not_self, losses.ndcg_pair_weights(relevance), 0.0)
    loss = losses.ranking_loss(h, h, relevance, margin=margin, weights=weights)
    count = jnp.sum(relevance[:, :, None] > relevance[:, None, :], dtype=h.dtype)
    return loss, count


def loss_fn(outputs, batch, ctx):
    """DSRH's weighted ranking loss within the batch plus ``α/2`` times bit balance.

    Args:
      outputs: model outputs on the local batch; ``"relaxed"`` ``h = tanh(u)`` ``[B, L]``.
      batch: local batch with multi-hot ``"labels"`` ``[B, C]``.
      ctx: :class:`~dlhash_jax.methods.LossContext`; ``ctx.hparams`` is ``{"margin": ρ, "alpha":
        α}``.

    Returns:
      ``(loss, {"ranking": ..., "balance": ...})``.
    """
    h = outputs["relaxed"]
    ranking, count = in_batch_ranking_loss(h, batch["labels"], margin=ctx.hparams["margin"])
    balance = losses.balance_loss(h)
    # F / count: the ranking sum becomes ranking_loss's mean, so α/2 is divided by the count.
    loss = ranking + 0.5 * ctx.hparams["alpha"] / jnp.maximum(count, 1.0) * balance
    return loss, {"ranking": ranking, "balance": balance}


RECIPE = Recipe(
    name="dsrh",
    title="Deep semantic ranking based hashing",
    citation=CITATION,
    taxonomy=Taxonomy("multi", "multi-tuples"),
    # A backbone and a tanh hash layer (DSRH's 2σ(·) − 1 up to the layer's scale).
    make_model=functools.partial(hash_network, relaxation="tanh"),
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
)
