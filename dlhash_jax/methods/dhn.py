"""DHN: deep hashing network (Zhu, Long, Wang & Cao, AAAI 2016).

Survey §5.2.2 (single-label, pairs). The hash layer's outputs are squashed by ``z = tanh(·)``;
the pairs of a mini-batch are scored by the pairwise likelihood of the inner products, and each
output's magnitude is pulled to 1 by a smooth (``log cosh``) surrogate of the L1 constraint:

    J = Σ_ij [log(1 + e^{⟨z_i, z_j⟩}) − s_ij ⟨z_i, z_j⟩] + λ Σ_i Σ_k log cosh(|z_ik| − 1).

Mapping onto the catalogue:

- The first sum is :func:`~dlhash_jax.losses.pairwise_likelihood_loss` (survey eq 15/24) with
  ``θ_ij = ⟨z_i, z_j⟩``: DHN's sigmoid takes the whole inner product, where the catalogue's
  ``θ`` is half of it (DPSH's convention), so the recipe passes ``2z`` and ``z``.
- The second is :func:`~dlhash_jax.losses.log_cosh_quantization_loss` (DHN's own term, beyond
  the survey: the smooth form of the L1 constraint of eq 7/25).
- Normalisation: the likelihood is the mean over the ``B × B`` pairs of the batch and the
  quantization the mean over its ``B`` items (summed over bits), so
  ``J_ours = likelihood + λ · quantization``. The paper's sums are ``B²`` times the first and
  ``B`` times the second, so the paper's ``λ`` is ``B`` times ours.

Pairs: as in the authors' code (thulab/DeepHash), each batch is paired with itself, the pairs
``(i, i)`` included (similar pairs, as every item shares its own label); no memory bank.

Deviations from the paper:

- Backbone: the paper fine-tunes AlexNet pre-trained on ImageNet, with a 10× learning rate on
  the hash layer; we train the run config's backbone (an MLP on ``digits``) from scratch with
  one learning rate and the config's optimizer (Adam) instead of SGD with momentum.
- ``λ``: the paper cross-validates it over ``10⁻⁵ … 10²`` and prints no value; see
  :data:`DEFAULT_HPARAMS`.
- Multi-label data: the same ``s_ij = 1`` for any shared label, as in the paper.
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
    "Han Zhu, Mingsheng Long, Jianmin Wang and Yue Cao, 'Deep hashing network for efficient "
    "similarity retrieval', AAAI 2016."
)

# λ: the paper chooses it by cross-validation over 1e-5 ... 100 (multiplicative step 10) and
# prints no value. 0.1 on our mean over the batch (the paper's λ = 0.1·B, 6.4 for its batch of
# 64) is the value of the common PyTorch re-implementation (swuxyj/DeepHash-pytorch, alpha = 0.1
# on a mean quantization term) and the best validation mAP on digits among 0.01 / 0.1 / 1
# (0.962 / 0.969 / 0.255 at 32 bits, seed 0; with λ = 1 the likelihood stalls at 3.3 per pair).
DEFAULT_HPARAMS = types.MappingProxyType({"lam": 0.1})


def loss_fn(outputs, batch, ctx):
    """Pairwise likelihood of the batch with itself plus ``λ`` times the log-cosh quantization.

    Args:
      outputs: model outputs on the local batch; ``"relaxed"`` is ``z = tanh(·)`` ``[B, L]``.
      batch: local batch with ``"labels"`` ``[B, C]``.
      ctx: :class:`~dlhash_jax.methods.LossContext`; ``ctx.hparams`` is ``{"lam": λ}``.

    Returns:
      ``(loss, {"likelihood": ..., "quantization": ...})``.
    """
    z = outputs["relaxed"]
    pair_similarity = similarity.label_similarity(batch["labels"], batch["labels"])
    # θ_ij = ⟨z_i, z_j⟩ is the catalogue's ½ a_i·a'_j with a = 2z, a' = z.
    likelihood = losses.pairwise_likelihood_loss(2.0 * z, z, pair_similarity)
    quantization = losses.log_cosh_quantization_loss(z)
    loss = likelihood + ctx.hparams["lam"] * quantization
    return loss, {"likelihood": likelihood, "quantization": quantization}


RECIPE = Recipe(
    name="dhn",
    title="Deep hashing network",
    citation=CITATION,
    taxonomy=Taxonomy("single", "pairs"),
    # A backbone and a hash layer squashed by tanh, as in the paper's fch layer.
    make_model=functools.partial(hash_network, relaxation="tanh"),
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
)
