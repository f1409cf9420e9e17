"""DTSH: deep supervised hashing with triplet labels (Wang, Shi & Kitani, ACCV 2016).

A method of the kind survey §5.2.3 describes (single-label, multi-tuples). DTSH carries DPSH's
likelihood of pairwise labels over to triplet labels: a triplet ``(q, p, n)`` says that ``p`` is
more similar to ``q`` than ``n`` is, and with ``Θ_ij = ½ u_iᵀu_j`` on the real outputs ``u`` it
has likelihood ``σ(Θ_qp − Θ_qn − α)``. The objective is the negative log-likelihood of the
triplets plus a quantization term:

    J = −Σ_(q,p,n) [Θ_qp − Θ_qn − α − log(1 + e^(Θ_qp − Θ_qn − α))] + λ Σ_i ‖b_i − u_i‖²,

with ``b_i = sgn(u_i)``. The triplets of a step are every valid ``(anchor, positive, negative)``
of the batch: every sample is an anchor, its positives are the other samples that share a label
with it, its negatives those that share none.

The paper's sums run over the triplet labels and the images of the whole training set. We divide
``J`` by the number ``T`` of the training set's triplets (each image an anchor, every other image
of a shared label a positive, every image of no shared label a negative) and estimate each mean on
the batch. Mapping onto the catalogue, the loss is

    triplet_likelihood_loss(u, Y, margin=α) + (λ N / T) · quantization_loss(u),

with :func:`~dlhash_jax.losses.triplet_likelihood_loss` the mean over every valid triplet of the
batch (vectorised per anchor) and :func:`~dlhash_jax.losses.quantization_loss` (survey eq 2) the
mean over the batch's samples; ``T / N``, the triplets per anchor, is computed once over the
training split (:func:`prepare`: 22,050 on ``digits``, 49 positives × 450 negatives, close to the
authors' 50 × 50 × 9 = 22,500 sampled per anchor on CIFAR-10), and ``α = alpha_per_bit · L``.

Deviations from the paper:

- The paper's text was not at hand when this recipe was written: the objective above is the
  paper's as its authors' released code (Minione/DTSH) computes it, and ``α = L/2``, ``λ = 100``
  are that code's values; check them against the paper before quoting numbers. (The
  DeepHash-pytorch port differs: ``θ = u_iᵀu_j`` without the ½, ``α = 5``, and the quantization as
  a mean over bits with weight 1.)
- Triplets: each step averages over every valid triplet inside the mini-batch, with the gradient
  reaching every member of a triplet. The authors' code pairs each batch anchor with
  ``50 × 50 × 9`` triplets sampled from the training set, whose positives and negatives are read
  from a memory of stored outputs (no gradient through them), and divides the objective by
  ``B · N`` (DPSH's normalisation), which weighs the terms as ours do up to that sampling.
- Backbone: the paper fine-tunes CNN-F (VGG-F) pre-trained on ImageNet; we train the run
  config's backbone (an MLP on ``digits``) from scratch. Optimiser: the run config's (Adam on
  ``digits``) instead of SGD with weight decay 5e-4 and a step-decayed rate.
- Multi-label data (NUS-WIDE in the paper): a positive shares at least one label with the anchor,
  a negative none (the usual relevance on NUS-WIDE).
"""

from __future__ import annotations

import functools
import types

import jax.numpy as jnp
import numpy as np

from dlhash_jax import losses
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import hash_network

CITATION = (
    "Xiaofang Wang, Yi Shi and Kris M. Kitani, 'Deep supervised hashing with triplet labels', "
    "ACCV 2016 (arXiv:1612.03900)."
)

# α = L/2 and λ = 100: the authors' released code (Minione/DTSH: DTSH.m calls train_triplet with
# margin codelens / 2 and eta = 100, the weight of the quantization term in its gradient).
DEFAULT_HPARAMS = types.MappingProxyType({"alpha_per_bit": 0.5, "lambda_q": 100.0})


def triplets_per_anchor(labels, *, chunk_size: int = 1024) -> float:
    """``T / N``: the mean number of valid (anchor, positive, negative) triplets per anchor.

    For each item: (other items sharing a label with it) × (items sharing none), the triplets
    :func:`~dlhash_jax.losses.triplet_likelihood_loss` averages over, counted on the host in chunks
    of ``chunk_size`` rows (never an ``[N, N]`` matrix).

    Args:
      labels: ``[N, C]`` multi-hot labels.

    Returns:
      A float (0.0 when the items hold no triplet).
    """
    labels = np.asarray(labels, np.float64)
    n = labels.shape[0]
    total = 0.0
    for start in range(0, n, chunk_size):
        rows = labels[start : start + chunk_size]
        shares = (rows @ labels.T) > 0
        self_share = np.sum(rows * rows, axis=1) > 0
        positives = shares.sum(axis=1) - self_share
        negatives = n - shares.sum(axis=1)
        total += float(np.sum(positives * negatives))
    return total / n


def prepare(train_split, config) -> dict[str, np.ndarray]:
    """The training split's triplets per anchor: ``{"triplets_per_anchor": float32 []}``.

    Args:
      train_split: the training split; ``labels`` ``[N, C]`` is read.
      config: the resolved run config (unused: the count depends on the labels alone).

    Returns:
      ``{"triplets_per_anchor": T / N}`` (see :func:`triplets_per_anchor`).
    """
    del config  # The count depends on the labels alone.
    return {"triplets_per_anchor": np.float32(triplets_per_anchor(train_split.labels))}


def loss_fn(outputs, batch, ctx):
    """Triplet likelihood over the batch's triplets + ``(λ N / T)`` times quantization.

    Args:
      outputs: model outputs on the local batch; ``"relaxed"`` is ``u`` ``[B, L]`` (unbounded).
      batch: local batch with ``"labels"`` ``[B, C]``.
      ctx: :class:`~dlhash_jax.methods.LossContext`; ``ctx.hparams`` is
        ``{"alpha_per_bit": α / L, "lambda_q": λ}``; ``ctx.prepared["triplets_per_anchor"]`` is
        the training split's ``T / N`` (:func:`prepare`).

    Returns:
      ``(loss, {"likelihood": ..., "quantization": ...})``.
    """
    u = outputs["relaxed"]
    margin = ctx.hparams["alpha_per_bit"] * u.shape[1]
    likelihood = losses.triplet_likelihood_loss(u, batch["labels"], margin=margin)
    quantization = losses.quantization_loss(u)
    # J / T: λ Σ_n ‖b_n − u_n‖² over the N training items is λ N · (their mean), divided by T.
    weight = ctx.hparams["lambda_q"] / jnp.maximum(ctx.prepared["triplets_per_anchor"], 1.0)
    loss = likelihood + weight * quantization
    return loss, {"likelihood": likelihood, "quantization": quantization}


RECIPE = Recipe(
    name="dtsh",
    title="Deep supervised hashing with triplet labels",
    citation=CITATION,
    taxonomy=Taxonomy("single", "multi-tuples"),
    # A backbone and a linear hash layer: DTSH's outputs u are unbounded real numbers.
    make_model=functools.partial(hash_network, relaxation="none"),
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
    prepare=prepare,
)
