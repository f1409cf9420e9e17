"""HashNet: deep learning to hash by continuation (Cao, Long, Wang & Yu, ICCV 2017).

Survey §5.2.2 (single-label, pairs) with the scaled tanh of §4.5 (eq 23). The hash layer's
outputs are squashed by ``h = tanh(β z)``, and ``β`` grows during training (continuation), so the
network converges to the ``sgn`` it is evaluated with. The pairs of a mini-batch are scored by a
weighted pairwise likelihood with an adaptive sigmoid scale ``α``:

    J = Σ_ij w_ij [log(1 + exp(α h_iᵀh_j)) − α s_ij h_iᵀh_j],
    w_ij = |S| / |S_1| if s_ij = 1,  |S| / |S_0| if s_ij = 0,

where ``S_1`` / ``S_0`` are the similar / dissimilar pairs of the batch: similar pairs are rare
(10% for 10 balanced classes), and the weights give both kinds of pair the same total weight.

Mapping onto the catalogue:

- The bracket is :func:`~dlhash_jax.losses.pairwise_likelihood_loss` (survey eq 15/24) of one
  pair with ``θ = α h_iᵀh_j``, i.e. called with ``2α h_i`` and ``h_j`` (the catalogue's ``θ`` is
  ``½ a_iᵀa'_j``). ``pairwise_likelihood_loss`` returns the *unweighted* mean over a pair block and
  has no ``weights`` argument, so the recipe evaluates it on every ``1 × 1`` block (``vmap``) and
  takes the weighted mean itself.
- Normalised by ``|S|`` (the authors' ``pairwise_loss_updated``), the weighted sum is
  ``mean_{S_1} ℓ + mean_{S_0} ℓ``: the mean over similar pairs plus the mean over dissimilar
  pairs; a kind of pair absent from the batch contributes 0.
- ``h = scaled_tanh(z, β)`` (``HashHead(relaxation="scaled_tanh")``), with ``β`` from
  :func:`~dlhash_jax.relaxations.continuation_schedule` at the paper's settings (β₀ = 1,
  ``β = (1 + 0.005 t)^0.5`` raised every 200 iterations). The authors raise ``β`` on their 1-based
  iteration count, so :data:`RECIPE`'s ``beta_schedule`` evaluates the schedule at ``step + 1``.

Pairs: as in the authors' code, which draws two independent mini-batches and pairs each item of
the first with each item of the second, the local batch is split into halves and the first half
is paired with the second (no item is paired with itself).

Deviations from the paper:

- Backbone: the paper fine-tunes AlexNet (ResNet-50 in the PyTorch release) pre-trained on
  ImageNet with a 10× learning rate on the hash layer; we train the run config's backbone (an MLP
  on ``digits``) from scratch with one learning rate.
- Multi-label data: the paper multiplies ``w_ij`` by a continuous similarity ``c_ij`` for
  multi-label images; this recipe is the single-label form (``c_ij = 1``).
- Training length: the authors train 10,000 iterations (β reaches about 7); a 2,000-step run
  on ``digits`` ends at β ≈ 3.3 with the same schedule. Codes are ``sgn(z)`` whatever ``β`` is.
"""

from __future__ import annotations

import functools
import types

import jax
import jax.numpy as jnp

from dlhash_jax import losses
from dlhash_jax import relaxations
from dlhash_jax import similarity
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import hash_network

CITATION = (
    "Zhangjie Cao, Mingsheng Long, Jianmin Wang and Philip S. Yu, 'HashNet: deep learning to hash "
    "by continuation', ICCV 2017."
)

# α = 10 / L: the authors' code (thuml/HashNet, sigmoid_param = 10 / hash_bit). The continuation
# schedule is the authors' too: init_scale 1, gamma 0.005, power 0.5, step_size 200.
DEFAULT_HPARAMS = types.MappingProxyType(
    {
        "alpha_times_bits": 10.0,
        "beta_init": 1.0,
        "beta_gamma": 0.005,
        "beta_power": 0.5,
        "beta_step_size": 200,
    }
)


def beta_schedule(hparams):
    """``step -> β``: HashNet's continuation at the authors' 1-based iteration ``step + 1``."""
    schedule = relaxations.continuation_schedule(
        init_value=hparams["beta_init"],
        gamma=hparams["beta_gamma"],
        power=hparams["beta_power"],
        step_size=hparams["beta_step_size"],
    )
    return lambda step: schedule(step + 1)


def _pair_likelihoods(h1, h2, pair_similarity, alpha):
    """``[N, M]`` likelihood terms ``ℓ_ij``, each the catalogue term on one pair (a 1×1 block)."""

    def one_pair(a, b, s):
        return losses.pairwise_likelihood_loss(2.0 * alpha * a[None], b[None], s[None, None])

    per_row = jax.vmap(one_pair, in_axes=(None, 0, 0))
    return jax.vmap(per_row, in_axes=(0, None, 0))(h1, h2, pair_similarity)


def _mean_where(values, mask):
    """Mean of ``values`` where ``mask`` is 1; 0 (with zero gradient) when the mask is empty."""
    count = jnp.sum(mask)
    return jnp.sum(mask * values) / jnp.where(count > 0, count, 1.0)


def loss_fn(outputs, batch, ctx):
    """Weighted pairwise likelihood between the two halves of the batch.

    Args:
      outputs: model outputs on the local batch; ``"relaxed"`` is ``h = tanh(β z)`` ``[B, L]``,
        ``B ≥ 2``.
      batch: local batch with ``"labels"`` ``[B, C]``.
      ctx: :class:`~dlhash_jax.methods.LossContext`; ``ctx.hparams`` is ``{"alpha_times_bits": α·L,
        ...}`` (the ``beta_*`` keys drive the schedule).

    Returns:
      ``(loss, {"similar": mean_{S_1} ℓ, "dissimilar": mean_{S_0} ℓ})``.

    Raises:
      ValueError: if the batch has fewer than 2 items (no pair to form).
    """
    h = outputs["relaxed"]
    num_items, num_bits = h.shape
    if num_items < 2:
        raise ValueError(f"HashNet pairs the two halves of a batch; got a batch of {num_items}.")
    half = num_items // 2
    labels = batch["labels"]
    pair_similarity = similarity.label_similarity(labels[:half], labels[half:])
    alpha = ctx.hparams["alpha_times_bits"] / num_bits
    likelihoods = _pair_likelihoods(h[:half], h[half:], pair_similarity, alpha)
    similar = _mean_where(likelihoods, pair_similarity)
    dissimilar = _mean_where(likelihoods, 1.0 - pair_similarity)
    return similar + dissimilar, {"similar": similar, "dissimilar": dissimilar}


RECIPE = Recipe(
    name="hashnet",
    title="HashNet: deep learning to hash by continuation",
    citation=CITATION,
    taxonomy=Taxonomy("single", "pairs"),
    # A backbone and a linear hash layer squashed by tanh(β z).
    make_model=functools.partial(hash_network, relaxation="scaled_tanh"),
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
    beta_schedule=beta_schedule,
)
