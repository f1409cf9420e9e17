"""GreedyHash, unsupervised (Su, Zhang, Han & Tian, NeurIPS 2018): codes whose cosine
similarities match those of the inputs' features, trained through the greedy ``sgn``.

Not in the survey; an unsupervised, single-sample method (§5.1.1). The paper's unsupervised
variant keeps the hash layer of :mod:`~dlhash_jax.methods.greedyhash` (the exact
``b = sgn(h)`` in the forward pass, its gradient passed to ``h`` unchanged, and the cubic
penalty that keeps ``h`` near ±1) and replaces the classifier by a similarity-preserving
objective: without labels, two items should be as similar in code space as they are in the
feature space of a pre-trained network. The authors' code (ssppp/GreedyHash,
``unsupervised_vgg.py``) pairs the first half of each mini-batch of ``N`` items with the second
half, item ``i`` with item ``i + N/2``, and minimises

    (2/N) Σ_{i < N/2} (cos(b_i, b_{i+N/2}) − cos(x_i, x_{i+N/2}))²
        + α · (1/(N·L)) Σ_ij | |h_ij| − 1 |^p,      b = sgn(h),  α = 0.1,  p = 3,

with ``x`` the VGG-16 fc7 features of the images (the ``mse_loss`` of the two cosine vectors
plus ``0.1`` times the mean of the cubed gaps). The paper's text was not available to us; the
objective and its constants are read from the authors' code.

Mapping onto the catalogue: ``b`` is ``HashHead(relaxation="ste")``
(:func:`dlhash_jax.relaxations.sign_ste`, identity gradient) and ``h`` its ``"pre"`` output; the
first term is :func:`~dlhash_jax.losses.cosine_similarity_matching_loss` of the two halves of
the batch; the penalty is :func:`~dlhash_jax.losses.hash_constraint_lp` (the mean over the
``N`` samples, so its weight is ``α / L``, which keeps the authors' ``α``).

Deviations from the paper:

- Features: the paper's similarity target is the cosine of a pre-trained VGG-16's fc7
  features, and only a linear hash layer on them is trained. There is no pre-trained network
  for 8×8 digits (or the 28×28 MNIST digits of ``mnist5k``); the target here is the cosine of
  the inputs themselves, flattened and centred by their mean over the training split
  (:func:`prepare`; ``center_features=True``, as PCA and ITQ centre the same inputs), and the
  run config's backbone (an MLP on ``digits``, a ConvNet on ``mnist5k``) is trained from
  scratch with the hash layer. Uncentred pixels are all non-negative and alike: on ``digits``
  the cosine of two training digits of different classes averages 0.68 (same class 0.82), so
  matching it asks nearly every pair of codes to agree on most bits, and the codes collapse to
  almost one code (32 bits, seeds 0 / 1 / 2: mAP 0.172 / 0.103 / 0.103 with
  ``center_features=False``; on seed 0 Adam 1e-3, Adam 1e-4 and SGD 1e-2 all stay below 0.18
  from step 100 on); on ``mnist5k`` (seed 0) they reach 0.465 uncentred against 0.504
  centred. Centred, the feature cosines spread around 0, as those of balanced codes do.
- A batch of odd size leaves its last item unpaired (the authors' code needs an even batch).
- Optimiser and schedule: the authors use SGD (momentum 0.9, weight decay 5e-4, learning rate
  1e-4, batch 32, 60 epochs of CIFAR-10); the run config chooses (Adam 1e-3).
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
    "Shupeng Su, Chao Zhang, Kai Han and Yonghong Tian, 'Greedy hash: towards fast optimization "
    "for accurate hash coding in CNN', NeurIPS 2018."
)

# α = 0.1 and p = 3: the authors' unsupervised code (ssppp/GreedyHash, unsupervised_vgg.py:
# `loss1 + 0.1 * loss2`, loss2 the mean of | |h| − 1 |³), as in their supervised code.
# center_features: ours, not the paper's (its VGG features are used as they are); the target
# is the cosine of the inputs centred by their training mean (module docstring, Deviations).
DEFAULT_HPARAMS = types.MappingProxyType({"alpha": 0.1, "p": 3.0, "center_features": True})


def halves(x):
    """``(x[:n], x[n:2n])`` with ``n = ⌊B/2⌋``: the authors' pairs of a batch of ``B`` rows.

    Raises:
      ValueError: if the batch has fewer than 2 rows (no pair).
    """
    n = x.shape[0] // 2
    if n < 1:
        raise ValueError(
            f"the batch must hold at least 2 items to pair its halves, got shape {x.shape}."
        )
    return x[:n], x[n : 2 * n]


def _flatten(inputs):
    inputs = jnp.asarray(inputs)
    return inputs.reshape(inputs.shape[0], -1).astype(jnp.result_type(inputs, jnp.float32))


def prepare(train_split, config) -> dict[str, np.ndarray]:
    """The mean of the flattened training inputs, ``{"feature_mean": float32 [D]}``.

    Computed once over the training split; :func:`target_features` subtracts it when
    ``hparams.center_features`` is set.

    Args:
      train_split: the training split; ``inputs`` ``[N, ...]`` (flattened to ``[N, D]``).
      config: the resolved run config (not read: the mean is kept whatever the flag).
    """
    del config  # The same statistics serve both settings of center_features.
    inputs = np.asarray(train_split.inputs, np.float64)
    return {"feature_mean": inputs.reshape(inputs.shape[0], -1).mean(axis=0).astype(np.float32)}


def target_features(inputs, ctx):
    """The features whose cosines the codes match: the inputs flattened to ``[B, D]``, minus
    the training mean (``ctx.prepared["feature_mean"]``) when ``ctx.hparams["center_features"]``.
    """
    features = _flatten(inputs)
    if ctx.hparams["center_features"]:
        features = features - jnp.asarray(ctx.prepared["feature_mean"], features.dtype)
    return features


def loss_fn(outputs, batch, ctx):
    """Cosine matching of the batch's two halves plus ``(α / L)`` times the ℓp penalty.

    Args:
      outputs: model outputs on the local batch: ``"pre"`` ``h`` ``[B, L]`` and ``"relaxed"``
        ``b = sgn(h)`` (straight-through).
      batch: local batch; only ``"inputs"`` is read (the features of the target; no labels).
      ctx: :class:`~dlhash_jax.methods.LossContext`; ``ctx.hparams`` is ``{"alpha": α, "p": p,
        "center_features": ...}``, ``ctx.prepared`` what :func:`prepare` returned.

    Returns:
      ``(loss, {"similarity": ..., "penalty": ...})``.
    """
    h, b = outputs["pre"], outputs["relaxed"]
    (b1, b2), (x1, x2) = halves(b), halves(target_features(batch["inputs"], ctx))
    similarity = losses.cosine_similarity_matching_loss(b1, b2, x1, x2)
    penalty = losses.hash_constraint_lp(h, p=ctx.hparams["p"])
    loss = similarity + ctx.hparams["alpha"] / h.shape[1] * penalty
    return loss, {"similarity": similarity, "penalty": penalty}


RECIPE = Recipe(
    name="greedyhash_unsupervised",
    title="Greedy hash (unsupervised)",
    citation=CITATION,
    taxonomy=Taxonomy("none", "single"),
    # A backbone and a hash layer with the straight-through sgn; no classifier.
    make_model=functools.partial(hash_network, relaxation="ste"),
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
    prepare=prepare,
)
