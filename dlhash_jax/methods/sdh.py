"""SDH: supervised deep hashing (Erin Liong, Lu, Wang, Moulin & Zhou, CVPR 2015).

Survey §5.2.2 (single-label, pairs): the supervised variant of DH (:mod:`.dh`, §5.1.1), in the
same paper. The network and three of the four terms are DH's (``tanh`` in every layer, codes
``B = sgn(H)``); SDH replaces the bit-variance term with variance plus the between/within-class
scatter of the outputs, weighted by ``α``:

    J = ½ ‖B − H‖²_F − (λ₁/2) [ (1/N) tr(H Hᵀ) + α tr(Σ_B − Σ_W) ]
        + (λ₂/2) Σ_m ‖W^m W^mᵀ − I‖²_F + (λ₃/2) Σ_m (‖W^m‖²_F + ‖c^m‖²),

where ``Σ_W`` (``Σ_B``) is the mean of ``(h_i − h_j)(h_i − h_j)ᵀ`` over the similar (dissimilar)
pairs. ``tr(Σ_B − Σ_W)`` is the mean squared distance of dissimilar pairs minus that of similar
pairs, i.e. ``−between_within_loss`` (survey eq 16, sign flipped there to be minimised). With
DH's normalisation (``2J/N``, ``N`` the batch size, see :mod:`.dh`) the loss is

    DH's loss + (λ₁ α / N) · between_within_loss(H, U, S),

with ``U`` a memory bank of the ``tanh`` outputs of all training items (refreshed every step
for the batch rows; no gradient through it) and ``S`` their label similarity to the batch, so
the scatter means run over the batch's pairs with the whole training set, as in the paper's
full-set objective, and every batch sees every class. The pairs ``(i, i)`` count as similar
pairs at distance 0. With ``α = 0`` the loss is exactly DH's.

Deviations from the paper: DH's (mini-batch Adam, ``N`` = batch size, biases not decayed, our
inputs and backbones; see :mod:`.dh`), and the scatter computed against the memory bank.

On ``digits`` this objective collapses: the untrained network's bits are unbalanced (most items
share most bits); the quantization and variance terms push each output towards the sign it
has, which moves the shared weights towards each bit's majority sign and carries every item to
the same corner of ``{−1, +1}^L`` within a few dozen steps. The scatter term's gradient on an
output is the difference of the bank's class means, which vanishes as the outputs coincide,
and saturating ``tanh`` units pass little gradient, so the classes never separate (evidence in
``experiments/configs/sdh.py``).
"""

from __future__ import annotations

import types

from dlhash_jax import losses
from dlhash_jax import similarity
from dlhash_jax.methods import dh
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy

CITATION = (
    "Venice Erin Liong, Jiwen Lu, Gang Wang, Pierre Moulin and Jie Zhou, 'Deep hashing for "
    "compact binary codes learning', CVPR 2015 (its supervised variant, SDH)."
)

# DH's λ₁ = 100, λ₂ = 0.001, λ₃ = 0.001 (see dh.DEFAULT_HPARAMS) and α = 1: the paper's
# parameter settings (§4), shared by DH and SDH.
DEFAULT_HPARAMS = types.MappingProxyType({**dh.DEFAULT_HPARAMS, "alpha": 1.0})


def loss_fn(outputs, batch, ctx):
    """DH's loss on the batch plus ``(λ₁ α / N)`` times the scatter term against the bank.

    Args:
      outputs: model outputs on the local batch: ``"relaxed"`` is ``H`` ``[N, L]`` (``tanh``).
      batch: local batch with ``"labels"`` ``[N, C]``.
      ctx: :class:`~dlhash_jax.methods.LossContext`: ``ctx.params`` the network's parameters,
        ``ctx.bank`` the memory bank of the training items' outputs (already holding this step's
        batch), ``ctx.hparams`` DH's ``lambda_variance``, ``lambda_orthogonality``,
        ``lambda_weight``, and ``alpha``.

    Returns:
      ``(loss, terms)``: DH's terms plus ``"between_within"``.
    """
    h = outputs["relaxed"]
    dh_loss, terms = dh.loss_fn(outputs, batch, ctx)
    pair_similarity = similarity.label_similarity(batch["labels"], ctx.bank.labels)
    between_within = losses.between_within_loss(h, ctx.bank.outputs, pair_similarity)
    weight = ctx.hparams["lambda_variance"] * ctx.hparams["alpha"] / h.shape[0]
    loss = dh_loss + weight * between_within
    return loss, {**terms, "between_within": between_within}


RECIPE = Recipe(
    name="sdh",
    title="Supervised deep hashing",
    citation=CITATION,
    taxonomy=Taxonomy("single", "pairs"),
    make_model=dh.make_model,
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
    bank_output="relaxed",
)
