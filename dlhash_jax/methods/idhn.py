"""IDHN: improved deep hashing with soft pairwise similarity (Zhang et al., IEEE TMM 2019).

Not in the survey; a pairwise method for multi-label data (the survey's multi-label × pairs cell
of §5). Two multi-label images are similar to a degree: IDHN's soft similarity is the cosine of
their label vectors,

    s_ij = y_iᵀy_j / (‖y_i‖ ‖y_j‖)  ∈ [0, 1],

1 for the same label set, 0 for none shared. Every pair of the batch is fitted according to its
kind, on the softsign outputs ``u = x / (1 + |x|)`` of the linear hash layer ``x``, with ``K`` bits
and ``ω_ij = u_iᵀu_j``:

    L = mean_ij ℓ_ij + α · (1/(N K)) Σ_ik | |u_ik| − 1 |,
    ℓ_ij = log(1 + e^θ_ij) − s_ij θ_ij,   θ_ij = (β / K) ω_ij,          if s_ij ∈ {0, 1};
    ℓ_ij = γ K ((ω_ij + K) / (2K) − s_ij)²,                            otherwise.

Mapping onto the catalogue: ``mean_ij ℓ_ij`` is :func:`~dlhash_jax.losses.soft_similarity_loss`
(new with this method) of ``(u, u, s)``; the quantization term is
:func:`~dlhash_jax.losses.hash_constraint_l1` (survey eq 7, 25) divided by ``K`` (the authors' code
takes the mean over bits). The code is ``sgn(u) = sgn(x)``.

Deviations from the paper:

- The paper's text was not at hand when this recipe was written: the scale ``β / K`` of the inner
  product, the factor ``K`` of the squared term, the 0.01 / 0.99 thresholds between hard and soft
  pairs, the mean over every ``B × B`` pair of the batch (diagonal included), the softsign and the
  values of ``α, β, γ`` follow the authors' released code (pectinid16/IDHN, ``train.py``); check
  them against the paper before quoting numbers. (The DeepHash-pytorch port differs: it pairs the
  batch with a memory bank of the training set, scales the inner product by a fixed 0.5 and
  weighs the squared term by ``(2K)²``.)
- Softsign: our hash heads have no softsign relaxation, so the model's hash layer is linear
  (``relaxation="none"``) and the loss applies ``jax.nn.soft_sign`` to its output.
- Backbone: the paper fine-tunes AlexNet pre-trained on ImageNet (the new layer at 100× the
  rate of the others); we train the run config's backbone from scratch with one learning rate
  and the run config's optimiser (Adam in both).
"""

from __future__ import annotations

import functools
import types

import jax
import jax.numpy as jnp

from dlhash_jax import losses
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import hash_network

CITATION = (
    "Zheng Zhang, Qin Zou, Yuewei Lin, Long Chen and Song Wang, 'Improved deep hashing with soft "
    "pairwise similarity for multi-label image retrieval', IEEE Transactions on Multimedia, 2019 "
    "(arXiv:1803.02987)."
)

# α = 0.1 (quantization), β = 5 (scale of the inner product), γ = 0.1 (weight of the soft pairs):
# the defaults of the authors' train.py (pectinid16/IDHN: --alpha 0.1, --belta 5, --gama 0.1),
# which their train-flickr.sh runs unchanged.
DEFAULT_HPARAMS = types.MappingProxyType({"alpha": 0.1, "beta": 5.0, "gamma": 0.1})


def soft_similarity(labels1, labels2):
    """IDHN's soft similarity: the cosine of two sets of label vectors, ``[N, C], [M, C] → [N, M]``.

    An item without labels (a zero row) is similar to nothing (0), never NaN.
    """
    labels1 = jnp.asarray(labels1, jnp.result_type(labels1, jnp.float32))
    labels2 = jnp.asarray(labels2, jnp.result_type(labels2, jnp.float32))
    norms1 = jnp.linalg.norm(labels1, axis=1)
    norms2 = jnp.linalg.norm(labels2, axis=1)
    denominator = norms1[:, None] * norms2[None, :]
    return (labels1 @ labels2.T) / jnp.where(denominator > 0, denominator, 1.0)


def loss_fn(outputs, batch, ctx):
    """Soft-similarity pairwise loss over the batch's pairs + ``α`` times quantization.

    Args:
      outputs: model outputs on the local batch; ``"pre"`` is the linear hash layer ``x``
        ``[B, K]``, squashed here to ``u = softsign(x)``.
      batch: local batch with ``"labels"`` ``[B, C]``.
      ctx: :class:`~dlhash_jax.methods.LossContext`; ``ctx.hparams`` is
        ``{"alpha": α, "beta": β, "gamma": γ}``.

    Returns:
      ``(loss, {"pairwise": ..., "quantization": ...})``.
    """
    u = jax.nn.soft_sign(outputs["pre"])
    bits = u.shape[1]
    s = soft_similarity(batch["labels"], batch["labels"])
    pairwise = losses.soft_similarity_loss(
        u, u, s, beta=ctx.hparams["beta"], gamma=ctx.hparams["gamma"]
    )
    quantization = losses.hash_constraint_l1(u) / bits
    loss = pairwise + ctx.hparams["alpha"] * quantization
    return loss, {"pairwise": pairwise, "quantization": quantization}


RECIPE = Recipe(
    name="idhn",
    title="Improved deep hashing with soft pairwise similarity",
    citation=CITATION,
    taxonomy=Taxonomy("multi", "pairs"),
    # A backbone and a linear hash layer; the loss applies IDHN's softsign to it.
    make_model=functools.partial(hash_network, relaxation="none"),
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
)
