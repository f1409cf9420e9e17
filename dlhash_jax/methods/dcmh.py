"""DCMH: deep cross-modal hashing (Jiang & Li, CVPR 2017).

Survey §5 (multi-label, pairs; cross-modal). Each training item ``i`` has an image ``x_i`` and a
text ``y_i``; an image network gives ``F = f(x; θ_x)`` and a text network ``G = g(y; θ_y)``, both
``[N, L]``, and the item has one shared code ``b_i``. The objective (paper eq 2, our orientation):

    J = −Σ_ij [s_ij θ_ij − log(1 + e^θ_ij)] + γ (‖B − F‖² + ‖B − G‖²) + η (‖Fᵀ1‖² + ‖Gᵀ1‖²),

with ``θ_ij = ½ f_iᵀ g_j`` (survey eq 24, the pairwise likelihood across modalities), ``s_ij = 1``
when items ``i`` and ``j`` share a label, a quantization term to the shared codes and a balance
term. The paper minimises it by alternating: ``θ_x`` with ``θ_y`` and ``B`` fixed, then ``θ_y``, then
``B = sign(F + G)`` (the exact minimiser over ``B`` given ``F`` and ``G``).

Here, as in the authors' code, ``F`` and ``G`` of the whole training split are kept in the memory
bank (``bank.outputs[:, 0]`` and ``[:, 1]``). The recipe sets ``alternating=("image", "text")``:
step ``t`` updates the image network when ``t`` is even and the text network when it is odd, the
other network's parameters and optimizer state staying fixed, and each step's loss is the paper's
objective as a function of the network it updates (the batch's ``F`` rows against all of ``G``,
or the reverse). ``B`` is ``sign(F + G)`` of the bank rows, i.e. the ``B``-step is taken at every
step instead of once per pass over the data.

Deviations: the authors alternate per epoch (one pass for the image network, one for the text
network, then ``B``) with SGD on a CNN-F image network; we alternate per step, with the config's
optimizer and backbone, and compute ``B`` from the freshest outputs. The authors divide the
objective by ``N·B``; our likelihood is the mean over the ``B × N`` pairs and the quantization the
mean over the batch, so the same objective is

    pairwise_likelihood_loss + (γ / N) · quantization_loss + (η · N / B) · balance_loss(F),

where ``balance_loss`` (survey eq 6) is ``Σ_k (mean_i F_ik)²`` over all ``N`` rows (the batch rows
carry the gradient) and ``B`` is the local batch size; ``γ`` and ``η`` keep the paper's meaning.
On ``D`` devices each device weights the balance by its own ``B/D`` rows, which makes the
averaged gradient exactly the one-device gradient (the parameters agree, tests/test_train.py);
the logged ``loss`` then counts the balance ``D`` times (the logged terms are unweighted and
agree).
"""

from __future__ import annotations

import functools
import types

from dlhash_jax import codes
from dlhash_jax import conventions
from dlhash_jax import losses
from dlhash_jax import similarity
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import cross_modal_network

CITATION = (
    "Qing-Yuan Jiang and Wu-Jun Li, 'Deep cross-modal hashing', CVPR 2017 (arXiv:1602.02255)."
)

# γ = η = 1: the values of the authors' code (jiangqy/DCMH-CVPR2017, DCMH_demo.py).
DEFAULT_HPARAMS = types.MappingProxyType({"gamma": 1.0, "eta": 1.0})

# Parameter groups of models.CrossModalNetwork, updated in turn (image on even steps); their order
# is also the order of the two rows of outputs["stacked"] and of the bank.
MODALITY_GROUPS = conventions.MODALITIES


def modality_terms(outputs, batch, bank, *, modality: str, gamma, eta):
    """The DCMH objective as a function of one modality's network, on the local batch.

    Args:
      outputs: the model's dict; ``outputs["stacked"]`` ``[b, 2, L]`` holds the batch's ``F``
        and ``G`` rows.
      batch: local batch with ``"labels"`` ``[b, C]`` and ``"index"`` ``[b]``.
      bank: :class:`~dlhash_jax.methods.MemoryBank` with ``outputs`` ``[N, 2, L]`` (``F`` and
        ``G`` of every training item, this step's rows included) and ``labels`` ``[N, C]``.
      modality: the network being updated, ``"image"`` (``F``) or ``"text"`` (``G``).
      gamma, eta: the quantization and balance weights of the paper.

    Returns:
      ``(loss, {"likelihood", "quantization", "balance"})``: the cross-modal likelihood of the
      batch's rows against every row of the other modality, the quantization to
      ``B = sign(F + G)`` and the balance of the updated modality's whole matrix.
    """
    row = MODALITY_GROUPS.index(modality)
    active = outputs["stacked"][:, row]
    other = bank.outputs[:, 1 - row]
    index = batch["index"]
    num_items = bank.outputs.shape[0]
    pair_similarity = similarity.label_similarity(batch["labels"], bank.labels)
    likelihood = losses.pairwise_likelihood_loss(active, other, pair_similarity)
    shared_codes = codes.sign(bank.outputs[index, 0] + bank.outputs[index, 1])
    quantization = losses.quantization_loss(active, shared_codes)
    # The bank rows of this batch carry no gradient; put the live rows back for the balance term.
    whole = bank.outputs[:, row].at[index].set(active)
    balance = losses.balance_loss(whole)
    loss = (
        likelihood
        + gamma / num_items * quantization
        + eta * num_items / active.shape[0] * balance
    )
    return loss, {"likelihood": likelihood, "quantization": quantization, "balance": balance}


def updated_modality(ctx) -> str:
    """The network the step updates, ``ctx.group``: ``"image"`` or ``"text"``.

    The training step sets it from ``RECIPE.alternating`` (image on even steps, text on odd) and
    runs only that network's terms; the other network gets a zero gradient, and the alternating
    optimizer leaves it and its optimizer state unchanged.

    Raises:
      ValueError: if ``ctx.group`` is not one of ``MODALITY_GROUPS``.
    """
    if ctx.group not in MODALITY_GROUPS:
        raise ValueError(
            f"The cross-modal loss needs ctx.group, the network this step updates, one of "
            f"{MODALITY_GROUPS}; got {ctx.group!r}. The training step sets it from "
            "recipe.alternating."
        )
    return ctx.group


def loss_fn(outputs, batch, ctx):
    """The DCMH objective for the network updated at this step (see the module docstring).

    Args:
      outputs: model outputs on the local batch; ``"stacked"`` is ``[b, 2, L]`` (``F``, ``G``).
      batch: local batch with ``"labels"`` ``[b, C]`` and ``"index"`` ``[b]``.
      ctx: :class:`~dlhash_jax.methods.LossContext`: ``ctx.bank`` holds the ``N`` training
        items' ``F`` and ``G`` (``[N, 2, L]``), already with this step's batch; ``ctx.group`` is
        the network updated (:func:`updated_modality`); ``ctx.hparams`` is
        ``{"gamma": γ, "eta": η}``.

    Returns:
      ``(loss, {"likelihood": ..., "quantization": ..., "balance": ...})`` of the updated network.
    """
    return modality_terms(
        outputs,
        batch,
        ctx.bank,
        modality=updated_modality(ctx),
        gamma=ctx.hparams["gamma"],
        eta=ctx.hparams["eta"],
    )


RECIPE = Recipe(
    name="dcmh",
    title="Deep cross-modal hashing",
    citation=CITATION,
    taxonomy=Taxonomy("multi", "pairs", cross_modal=True),
    # Image and text hash networks with linear outputs F and G, as in DCMH.
    make_model=functools.partial(cross_modal_network, relaxation="none"),
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
    bank_output="stacked",
    bank_init="normal",
    alternating=MODALITY_GROUPS,
)
