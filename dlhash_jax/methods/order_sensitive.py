"""Order-sensitive deep hashing (Chen et al., MICCAI 2018).

Survey §5.3.3 eq 27 (multi-label, multi-tuples). A CNN and a hash layer produce relaxed codes
``h``; three terms train them:

- the order-sensitive ranking loss of every query ``x_q`` against its list (eq 27):
  ``L_R(x_q) = Σ_i Σ_{j: r_j < r_i} ((2^{r_i} − 2^{r_j}) / Z) [d(q, i) − d(q, j) + M]₊``, with
  ``r`` the number of labels an item shares with the query, so that swapping two items costs
  in proportion to what the swap costs NDCG;
- a multi-label classification term on the codes, the sigmoid cross-entropy of a classifier
  over ``h`` against the labels (survey eq 21);
- a quantization term pulling the relaxed codes to their signs (survey eq 2),

    L = Σ_q [L_R(x_q) + λ₁ L_C(x_q) + λ₂ L_Q(x_q)].

Every image of a mini-batch is a query and its list is the other images of the batch.

Mapping onto the catalogue, for ``L`` over one batch divided by its size ``B``:

- ``(1/B) Σ_q L_R(x_q)`` is ``(T / B)`` times DSRH's masked, NDCG-weighted
  :func:`~dlhash_jax.losses.ranking_loss` (:func:`dlhash_jax.methods.dsrh.in_batch_ranking_loss`:
  weights :func:`~dlhash_jax.losses.ndcg_pair_weights`, ``Z = IDCG_q``, the query's own
  triplets masked out), whose mean is over the ``T`` triplets with ``r_i > r_j``;
- ``(1/B) Σ_q L_C`` is :func:`~dlhash_jax.losses.multilabel_bce_loss` of the classifier logits;
- ``(1/B) Σ_q L_Q`` is :func:`~dlhash_jax.losses.quantization_loss` of ``h``.

Deviations from the paper:

- Backbone: the paper fine-tunes an ImageNet-pretrained CNN on chest X-rays; we train the run
  config's backbone from scratch (an MLP on ``digits_mosaic``, see the config).
- The hash layer is ``tanh`` and the classifier reads the relaxed codes
  (``HashHead(relaxation="tanh", num_classes=C)``).
- ``Z``: the survey prints it as "a constant related to the list length"; we take the query's
  ideal DCG, the normaliser of NDCG (see :func:`~dlhash_jax.losses.ndcg_pair_weights`). The
  query's own triplets count in ``T`` and its own gain in ``IDCG_q`` (see DSRH).
- Hyper-parameters: see ``DEFAULT_HPARAMS``; the optimiser and schedule are the run config's.
"""

from __future__ import annotations

import functools
import types

from dlhash_jax import losses
from dlhash_jax.methods import dsrh
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import hash_network

CITATION = (
    "Zhixiang Chen, Ruojin Cai, Jiwen Lu, Jianjiang Feng and Jie Zhou, 'Order-sensitive deep "
    "hashing for multimorbidity medical image retrieval', MICCAI 2018, pp. 620-628."
)

# M = 1 bit: on ±1 codes d(q, i) − d(q, j) is an integer number of bits, so a margin of one bit
# asks for a strict order. λ₁ = λ₂ = 1: the three terms weighed equally. The paper's numeric
# values were not available to us; these are documented choices, not tuned.
DEFAULT_HPARAMS = types.MappingProxyType(
    {"margin": 1.0, "lambda_classification": 1.0, "lambda_quantization": 1.0}
)


def loss_fn(outputs, batch, ctx):
    """Order-sensitive ranking + ``λ₁`` multi-label BCE + ``λ₂`` quantization, per query.

    Args:
      outputs: model outputs on the local batch: ``"relaxed"`` ``h`` ``[B, L]`` and
        ``"logits"`` ``[B, C]``.
      batch: local batch with multi-hot ``"labels"`` ``[B, C]``.
      ctx: :class:`~dlhash_jax.methods.LossContext`; ``ctx.hparams`` is ``{"margin": M,
        "lambda_classification": λ₁, "lambda_quantization": λ₂}``.

    Returns:
      ``(loss, {"ranking": ..., "classification": ..., "quantization": ...})``; ``ranking`` is
      the mean over triplets, which enters the loss times ``T / B``.
    """
    h, labels = outputs["relaxed"], batch["labels"]
    ranking, count = dsrh.in_batch_ranking_loss(h, labels, margin=ctx.hparams["margin"])
    classification = losses.multilabel_bce_loss(outputs["logits"], labels)
    quantization = losses.quantization_loss(h)
    loss = (
        count / h.shape[0] * ranking
        + ctx.hparams["lambda_classification"] * classification
        + ctx.hparams["lambda_quantization"] * quantization
    )
    return loss, {
        "ranking": ranking,
        "classification": classification,
        "quantization": quantization,
    }


RECIPE = Recipe(
    name="order_sensitive",
    title="Order-sensitive deep hashing",
    citation=CITATION,
    taxonomy=Taxonomy("multi", "multi-tuples"),
    # A backbone, a tanh hash layer, and a multi-label classifier on the relaxed codes.
    make_model=functools.partial(hash_network, relaxation="tanh", classifier=True),
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
)
