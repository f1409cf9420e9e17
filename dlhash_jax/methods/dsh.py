"""DSH: deep supervised hashing (Liu, Wang, Shan & Chen, CVPR 2016).

Survey §5.2.2 (single-label, pairs) with the contrastive loss (eq 17) in DSH's squared-L2 form
and the element-wise hash constraint (eq 7/25). For one pair of outputs ``(u_1, u_2)`` with
``D = ‖u_1 − u_2‖²`` DSH minimises

    ½ s D + ½ (1 − s) max(m − D, 0) + α (‖|u_1| − 1‖₁ + ‖|u_2| − 1‖₁),   m = 2L.

DSH forms its pairs inside a mini-batch; here, as in DPSH, each batch is paired with a memory bank
of the whole training set (the common PyTorch re-implementations do the same), so every step sees
every class. The pair term is the mean over the ``B × N`` block of
``0.5 * contrastive_loss(..., distance="squared_l2")``, computed from norms and the Gram matrix:
no ``[B, N, L]`` difference tensor is formed. Only the batch side of a pair carries gradient, so
the regulariser is ``α · hash_constraint_l1`` of the batch, which matches DSH's per-pair ``α``.
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
    "Haomiao Liu, Ruiping Wang, Shiguang Shan and Xilin Chen, 'Deep supervised hashing for fast "
    "image retrieval', CVPR 2016."
)

# The paper's values: margin m = 2L (margin_per_bit × L) and α = 0.01.
DEFAULT_HPARAMS = types.MappingProxyType({"alpha": 0.01, "margin_per_bit": 2.0})


def loss_fn(outputs, batch, ctx):
    """Half the squared-L2 contrastive loss against the bank, plus ``α`` times the L1 constraint.

    Args:
      outputs: model outputs on the local batch; ``"relaxed"`` is ``u`` ``[B, L]``.
      batch: local batch with ``"labels"`` ``[B, C]``.
      ctx: :class:`~dlhash_jax.methods.LossContext`: ``ctx.bank`` is the memory bank of the ``N``
        training items, already holding this step's batch; ``ctx.hparams`` is
        ``{"alpha": α, "margin_per_bit": m / L}``.

    Returns:
      ``(loss, {"contrastive": ..., "hash_constraint": ...})``.
    """
    u = outputs["relaxed"]
    pair_similarity = similarity.label_similarity(batch["labels"], ctx.bank.labels)
    margin = ctx.hparams["margin_per_bit"] * u.shape[1]
    contrastive = 0.5 * losses.contrastive_loss(
        u, ctx.bank.outputs, pair_similarity, margin=margin, distance="squared_l2"
    )
    constraint = losses.hash_constraint_l1(u)
    loss = contrastive + ctx.hparams["alpha"] * constraint
    return loss, {"contrastive": contrastive, "hash_constraint": constraint}


RECIPE = Recipe(
    name="dsh",
    title="Deep supervised hashing",
    citation=CITATION,
    taxonomy=Taxonomy("single", "pairs"),
    # A backbone and a linear hash layer: DSH regularises its real outputs towards ±1.
    make_model=functools.partial(hash_network, relaxation="none"),
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
    bank_output="relaxed",
)
