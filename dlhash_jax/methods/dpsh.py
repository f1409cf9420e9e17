"""DPSH: deep pairwise-supervised hashing (Li, Wang & Kang, IJCAI 2016).

Survey §5.2.2 (single-label, pairs). Every training item ``i`` has a real output ``u_i``; the
objective pairs each item with every other through the pairwise likelihood (survey eq 15/24) and
pulls each output towards its code with a quantization term (eq 2):

    J = −Σ_ij [s_ij θ_ij − log(1 + e^θ_ij)] + η Σ_i ‖b_i − u_i‖²,  θ_ij = ½ u_iᵀ u_j.

As in the authors' code, the outputs of the whole training set are kept in a memory bank ``U``;
at each step the rows of the batch are refreshed and the batch is paired with all ``N`` rows.
The authors divide both sums by ``N·B``; our terms are means (the likelihood over the ``B × N``
pairs, the quantization over the ``B`` samples), so the same objective is
``pairwise_likelihood_loss + (η / N) · quantization_loss``, and ``eta`` keeps the paper's meaning.
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
    "Wu-Jun Li, Sheng Wang and Wang-Cheng Kang, 'Feature learning based deep supervised hashing "
    "with pairwise labels', IJCAI 2016 (arXiv:1511.03855)."
)

# η = 10: the value of the authors' CIFAR-10 runs (jiangqy/DPSH-pytorch).
DEFAULT_HPARAMS = types.MappingProxyType({"eta": 10.0})


def loss_fn(outputs, batch, ctx):
    """Pairwise likelihood of the batch against the bank, plus ``(η / N)`` times quantization.

    Args:
      outputs: model outputs on the local batch; ``"relaxed"`` is ``u`` ``[B, L]``.
      batch: local batch with ``"labels"`` ``[B, C]``.
      ctx: :class:`~dlhash_jax.methods.LossContext`: ``ctx.bank`` is the memory bank of the ``N``
        training items, already holding this step's batch; ``ctx.hparams`` is ``{"eta": η}``.

    Returns:
      ``(loss, {"likelihood": ..., "quantization": ...})``.
    """
    u = outputs["relaxed"]
    pair_similarity = similarity.label_similarity(batch["labels"], ctx.bank.labels)
    likelihood = losses.pairwise_likelihood_loss(u, ctx.bank.outputs, pair_similarity)
    quantization = losses.quantization_loss(u)
    weight = ctx.hparams["eta"] / ctx.bank.outputs.shape[0]
    loss = likelihood + weight * quantization
    return loss, {"likelihood": likelihood, "quantization": quantization}


RECIPE = Recipe(
    name="dpsh",
    title="Deep pairwise-supervised hashing",
    citation=CITATION,
    taxonomy=Taxonomy("single", "pairs"),
    # A backbone and a linear hash layer: DPSH's outputs u are unbounded real numbers.
    make_model=functools.partial(hash_network, relaxation="none"),
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
    bank_output="relaxed",
)
