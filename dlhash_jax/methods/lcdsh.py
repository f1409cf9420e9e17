"""LCDSH: locality-constrained deep supervised hashing (Zhu & Gao, IJCAI 2017).

Survey §5.2.2's family (single-label, pairs); the method itself is beyond the survey. A hash
layer on the backbone gives real features ``h`` and the codes are ``b = sgn(h)``. The pairwise
labels are modelled as in DPSH, ``p(s_ij = 1 | ·) = σ(½ ⟨·_i, ·_j⟩)``; the features are
trained to maximise that likelihood, and, instead of the usual quantization loss (which pulls
each ``h`` onto its code and so changes the feature distribution), a locality constraint asks
each pair's probability under the features to match its probability under the codes:

    J = Σ_ij −log p(s_ij | h_i, h_j) + λ Σ_ij (p(s_ij | h_i, h_j) − p(s_ij | b_i, b_j))²,

with ``−log p(s_ij | h) = log(1 + e^{θ_ij}) − s_ij θ_ij``, ``θ_ij = ½ h_iᵀh_j`` (``s`` in {0, 1};
the ±1 labels of the re-implementations, ``log(1 + e^{−s θ})``, are the same function).

Mapping onto the catalogue:

- The first sum is :func:`~dlhash_jax.losses.pairwise_likelihood_loss` (survey eq 15/24), on
  the real features ``h`` (``θ = ½ h_iᵀh_j``, the catalogue's convention).
- The second is :func:`~dlhash_jax.losses.locality_constraint_loss` (LCDSH's own term), with
  the codes ``b = sgn(h)`` under ``stop_gradient``: the gradient moves ``σ(θ_ij)`` towards
  ``σ(½ b_iᵀb_j)``, never the codes. The gap is the same for either label (``p(s = 0) = 1 −
  p(s = 1)``), so it is computed on ``p(s = 1)``.
- Normalisation: both terms are means over the ``B × B`` pairs of the batch, so
  ``J_ours = likelihood + λ · locality`` is the paper's ``J`` divided by ``B²`` with the same
  ``λ`` (the re-implementations take the same means).

Pairs: the pairs of each mini-batch, ``(i, i)`` included, as in the re-implementations (the paper
trains a Siamese network on image pairs); no memory bank.

Sources and deviations:

- The paper's text was not reachable from this machine, so its equations could not be
  checked. The objective above is the one a published summary of the paper describes (the
  posterior of the pairwise labels given the hash codes, plus a locality constraint between
  the pairwise similarities of the continuous features and of the binary codes, on a
  Siamese-like network with a sign layer), in the exact form of the two public
  re-implementations, which agree line for line (swuxyj/DeepHash-pytorch ``LCDSH.py`` and
  PaddlePaddle/PaddleClas ``LCDSHLoss``).
- Those re-implementations clamp ``θ`` to ``[−50, 50]`` before ``log(1 + exp θ)``; we use the
  stable ``softplus`` (same value, and a gradient beyond ±50).
- Backbone and optimiser: the paper fine-tunes an ImageNet-pre-trained network (AlexNet in the
  re-implementations, RMSprop at 1e-5); we train the run config's backbone (an MLP on
  ``digits``) from scratch with the config's optimizer (Adam).
- ``sgn(0) = +1`` (the library's convention; PyTorch's ``sign(0) = 0``).
- Multi-label data: ``s_ij = 1`` for any shared label, as the re-implementations do on NUS-WIDE.
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
    "Hao Zhu and Shenghua Gao, 'Locality constrained deep supervised hashing for image "
    "retrieval', IJCAI 2017."
)

# λ = 3: the weight of the locality constraint in both public re-implementations
# (swuxyj/DeepHash-pytorch LCDSH.py, "lambda": 3; PaddleClas's LCDSH config), on the same
# means over the pairs as ours.
DEFAULT_HPARAMS = types.MappingProxyType({"lam": 3.0})


def loss_fn(outputs, batch, ctx):
    """Pairwise likelihood of the batch with itself plus ``λ`` times the locality constraint.

    Args:
      outputs: model outputs on the local batch; ``"relaxed"`` is the real feature ``h``
        ``[B, L]`` (a linear hash layer).
      batch: local batch with ``"labels"`` ``[B, C]``.
      ctx: :class:`~dlhash_jax.methods.LossContext`; ``ctx.hparams`` is ``{"lam": λ}``.

    Returns:
      ``(loss, {"likelihood": ..., "locality": ...})``.
    """
    h = outputs["relaxed"]
    pair_similarity = similarity.label_similarity(batch["labels"], batch["labels"])
    likelihood = losses.pairwise_likelihood_loss(h, h, pair_similarity)
    locality = losses.locality_constraint_loss(h, h)
    loss = likelihood + ctx.hparams["lam"] * locality
    return loss, {"likelihood": likelihood, "locality": locality}


RECIPE = Recipe(
    name="lcdsh",
    title="Locality-constrained deep supervised hashing",
    citation=CITATION,
    taxonomy=Taxonomy("single", "pairs"),
    # A backbone and a linear hash layer: LCDSH's features h are unbounded real numbers.
    make_model=functools.partial(hash_network, relaxation="none"),
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
)
