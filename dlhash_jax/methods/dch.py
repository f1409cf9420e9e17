"""DCH: deep Cauchy hashing for Hamming space retrieval (Cao, Long, Liu & Wang, CVPR 2018).

Survey §5.2.2's family (single-label, pairs); the method itself is beyond the survey. The hash
layer's outputs are squashed by ``h = tanh(·)``; codes are compared by the normalised Hamming
distance ``d(h_i, h_j) = (L/2)(1 − cos(h_i, h_j))``, which a Cauchy kernel turns into the
probability ``γ / (γ + d)`` that a pair is similar. The objective is the class-balanced
cross-entropy of the pairs plus a Cauchy quantization of each output:

    J = Σ_ij w_ij [s_ij log(d_ij / γ) + log(1 + γ / d_ij)] + λ Σ_i log(1 + d(|h_i|, 1) / γ),
    w_ij = |S| / |S_1| if s_ij = 1,  |S| / |S_0| if s_ij = 0,

with ``S_1`` / ``S_0`` the similar / dissimilar pairs of the batch and ``|S|`` all its pairs.

Mapping onto the catalogue (both terms are DCH's own, beyond the survey):

- The first sum, divided by ``|S|``, is
  :func:`~dlhash_jax.losses.cauchy_cross_entropy_loss` with ``balanced=True``: the mean over
  similar pairs plus the mean over dissimilar pairs (a kind of pair absent from the batch
  contributes 0).
- The second is :func:`~dlhash_jax.losses.cauchy_quantization_loss`, the mean over the batch.
- Normalisation: ``J_ours = cross_entropy + λ · quantization``; the paper's sums are ``|S| = B²``
  times the first and ``B`` times the second, so the paper's ``λ`` is ``B`` times ours.

Pairs: as in the authors' code (thulab/DeepHash, and the PyTorch re-implementations), each batch
is paired with itself, the pairs ``(i, i)`` included (similar, at distance 0, loss 0; they count
in ``|S_1|``); no memory bank.

Deviations from the paper:

- Backbone: the paper fine-tunes AlexNet pre-trained on ImageNet, with a 10× learning rate on
  the hash layer; we train the run config's backbone (an MLP on ``digits``) from scratch with
  one learning rate and the config's optimizer (Adam) instead of SGD with momentum.
- Multi-label data: the paper multiplies ``w_ij`` by a continuous similarity for multi-label
  images; this recipe is the single-label form (``s_ij = 1`` for any shared label).
- Numerics: a dissimilar pair at distance 0 costs ``log(1 + γ / 10⁻⁶)`` instead of ∞ (see
  :func:`~dlhash_jax.losses.cauchy_cross_entropy_loss`).
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
    "Yue Cao, Mingsheng Long, Bin Liu and Jianmin Wang, 'Deep Cauchy hashing for Hamming space "
    "retrieval', CVPR 2018."
)

# The paper selects γ and λ by cross-validation. γ = 20 is the default of the authors' release
# (thulab/DeepHash, examples/dch: --gamma 20); λ = 0.1 on the mean over the batch is the value of
# the common PyTorch re-implementation (swuxyj/DeepHash-pytorch, whose DCH objective is this
# one, normalised as ours), since the release weights its own, different quantization term by 0.
DEFAULT_HPARAMS = types.MappingProxyType({"gamma": 20.0, "lam": 0.1})


def loss_fn(outputs, batch, ctx):
    """Class-balanced Cauchy cross-entropy of the batch with itself plus ``λ`` times quantization.

    Args:
      outputs: model outputs on the local batch; ``"relaxed"`` is ``h = tanh(·)`` ``[B, L]``.
      batch: local batch with ``"labels"`` ``[B, C]``.
      ctx: :class:`~dlhash_jax.methods.LossContext`; ``ctx.hparams`` is
        ``{"gamma": γ, "lam": λ}``.

    Returns:
      ``(loss, {"cauchy": ..., "quantization": ...})``.
    """
    h = outputs["relaxed"]
    gamma = ctx.hparams["gamma"]
    pair_similarity = similarity.label_similarity(batch["labels"], batch["labels"])
    cauchy = losses.cauchy_cross_entropy_loss(h, h, pair_similarity, gamma=gamma, balanced=True)
    quantization = losses.cauchy_quantization_loss(h, gamma=gamma)
    loss = cauchy + ctx.hparams["lam"] * quantization
    return loss, {"cauchy": cauchy, "quantization": quantization}


RECIPE = Recipe(
    name="dch",
    title="Deep Cauchy hashing",
    citation=CITATION,
    taxonomy=Taxonomy("single", "pairs"),
    # A backbone and a hash layer squashed by tanh, as in the paper's fch layer.
    make_model=functools.partial(hash_network, relaxation="tanh"),
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
)
