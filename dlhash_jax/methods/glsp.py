"""GLSP: global and local semantics-preserving deep hashing (Ma et al., Neurocomputing 2018).

Survey §5 (multi-label, pairs; cross-modal), ref [24], and survey eq 18. Like DCMH
(:mod:`dlhash_jax.methods.dcmh`), an image network ``F`` and a text network ``G`` are trained
towards shared codes ``B``; GLSP preserves two kinds of semantics:

- global, across modalities: the pairwise likelihood of the image outputs against the text
  outputs of every training item (survey eq 24), ``s_ij = 1`` when items share a label;
- local, within each modality: the KL divergence of survey eq 18 between the distribution
  ``p_ij ∝ G_ij`` of label overlap (``G = Y Yᵀ``, the number of shared labels, so items sharing
  more labels should be closer) and the distribution ``v_ij ∝ exp(−d_ij)`` of the relaxed Hamming
  distances between the same modality's outputs;

plus DCMH's quantization to ``B = sign(F + G)`` and bit balance. Per updated network (image on
even steps, text on odd steps, the other fixed, as in DCMH's alternating optimisation):

    J_x = pairwise_likelihood_loss(F_b, G) + α · kl_similarity_loss(F_b, Y_b Y_bᵀ)
          + (γ / N) · quantization_loss(F_b, B_b) + (η · N / b) · balance_loss(F)

and symmetrically ``J_y`` for the text network.

Deviations: the local term is computed over the pairs of the batch (``p`` and ``v`` normalised
over the batch's ordered pairs), a mini-batch estimate of eq 18 over all ``N`` items; the
likelihood, quantization and balance terms and their scaling are DCMH's (see its docstring).
``α`` is ours, not the paper's (whose value we could not verify): ``α = 0.1`` gave 0.713 / 0.743
image→text / text→image mAP against 0.659 / 0.705 for ``α = 1`` on ``digits_mosaic_tags`` (32
bits, seed 0, η = 0.001); ``γ = η = 1`` as in DCMH.
"""

from __future__ import annotations

import types

from dlhash_jax import losses
from dlhash_jax import similarity
from dlhash_jax.methods import dcmh
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy

CITATION = (
    "Lei Ma, Hongliang Li, Fanman Meng, Qingbo Wu and King Ngi Ngan, 'Global and local "
    "semantics-preserving based deep hashing for cross-modal retrieval', Neurocomputing 312 "
    "(2018) 49-62."
)

DEFAULT_HPARAMS = types.MappingProxyType({"alpha": 0.1, "gamma": 1.0, "eta": 1.0})


def loss_fn(outputs, batch, ctx):
    """The GLSP objective for the network updated at this step (see the module docstring).

    Args:
      outputs: model outputs on the local batch; ``"stacked"`` is ``[b, 2, L]`` (``F``, ``G``).
      batch: local batch with ``"labels"`` ``[b, C]`` and ``"index"`` ``[b]``.
      ctx: :class:`~dlhash_jax.methods.LossContext`, as for :func:`dcmh.loss_fn`;
        ``ctx.hparams`` is ``{"alpha": α, "gamma": γ, "eta": η}``.

    Returns:
      ``(loss, {"likelihood", "local_kl", "quantization", "balance"})`` of the updated network.
    """
    modality = dcmh.updated_modality(ctx)
    loss, parts = dcmh.loss_fn(outputs, batch, ctx)
    shared = similarity.common_labels(batch["labels"], batch["labels"])
    active = outputs["stacked"][:, dcmh.MODALITY_GROUPS.index(modality)]
    local = losses.kl_similarity_loss(active, shared)
    return loss + ctx.hparams["alpha"] * local, {**parts, "local_kl": local}


RECIPE = Recipe(
    name="glsp",
    title="Global and local semantics-preserving deep cross-modal hashing",
    citation=CITATION,
    taxonomy=Taxonomy("multi", "pairs", cross_modal=True),
    make_model=dcmh.RECIPE.make_model,
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
    bank_output="stacked",
    bank_init="normal",
    alternating=dcmh.MODALITY_GROUPS,
)
