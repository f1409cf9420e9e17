"""JMLH: stochastic binary codes, a classifier on them and a Bernoulli prior (Shen et al., 2019).

Not in the survey; a single-label, single-sample method of §5.2.1. A fully connected layer on the
backbone features gives logits ``z`` and probabilities ``q = σ(z)``; in training every bit is
*sampled*, ``b = 1[q > ε]`` with ``ε ~ U(0, 1)`` (so ``b ~ Bernoulli(q)``), at test time it is
thresholded at ``ε = 0.5``. A linear classifier reads the ``{0, 1}`` code ``b``, and the objective
is a variational information bottleneck:

    L = −(1/N) Σ_i log p(y_i | b_i) + λ (1/N) Σ_i Σ_j KL(Bernoulli(q_ij) ‖ Bernoulli(0.5)),

the softmax cross-entropy of the classifier on the sampled codes plus ``λ`` times the KL of the
code distribution to fair coins (an upper bound on the information the code keeps about the
input). The sampling step has no derivative; the paper back-propagates through it with the
distributional derivative of Stochastic Generative Hashing, ``∂b/∂z ≈ ∂q/∂z = q(1 − q)``: the
gradient reaching ``b`` is passed to ``q`` unchanged (a straight-through estimator through the
sampling, not through the sigmoid).

Mapping onto the catalogue: the first term is :func:`~dlhash_jax.losses.softmax_loss` of the
classifier logits (survey eq 20); the second is :func:`~dlhash_jax.losses.bernoulli_kl_loss` of
``z`` with ``prior = 0.5``. The stochastic layer and the classifier are
:class:`StochasticBinaryHead` (it needs ``train`` and the step's ``"dropout"`` RNG, so it is not a
:class:`~dlhash_jax.models.HashHead`); ``ε`` is drawn from the step's ``"dropout"`` stream
(``self.make_rng("dropout")``), which the training step folds per step and per device.

The code is ``sgn(z)`` (the same bits as ``q ≥ 0.5``); ``"relaxed"`` is ``2b − 1``, the sampled
code on the ±1 scale of our losses.

Deviations from the paper:

- Backbone and optimiser: the paper puts its two layers on an ImageNet-pre-trained backbone
  (the released code trains them on fixed 4,096-d CNN features with Adam 1e-4, batch 400); we
  train the run config's backbone from scratch with the config's optimiser (Adam with a
  constant rate on ``digits``).
- λ: the paper's text was not available to us; ``DEFAULT_HPARAMS`` takes the released code's.
- The released code (ymcidence/TBH, ``model/jmlh.py``) samples with a fixed ``ε = 0.5`` in
  training too, i.e. a deterministic threshold; we sample ``ε ~ U(0, 1)`` as the paper
  describes (the OrthoHash authors' re-implementation does the same).
- At ``q = 0.5`` exactly the paper's test-time bit is ``(sgn(0) + 1)/2 = 0.5``; ours is 1
  (``sgn(0) = +1``, the library's convention).
"""

from __future__ import annotations

import types

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlhash_jax import losses
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import build_backbone

CITATION = (
    "Yuming Shen, Jie Qin, Jiaxin Chen, Li Liu, Fan Zhu and Ziyi Shen, 'Embarrassingly simple "
    "binary representation learning', ICCV Workshops 2019 (arXiv:1908.09573)."
)

# λ = 0.2: the KL weight of the authors' released training code (ymcidence/TBH,
# train/jmlh_train.py: `kld * .2 + cls`), the paper's prior Bernoulli(0.5). The OrthoHash authors'
# re-implementation runs JMLH with λ = 0.1 (their supplementary Table 1).
DEFAULT_HPARAMS = types.MappingProxyType({"kl_weight": 0.2, "prior": 0.5})


def stochastic_binary(logits: jax.Array, threshold: jax.Array) -> jax.Array:
    """JMLH's binary neuron: ``b = 1[σ(z) > ε]`` with ``∂b/∂z := σ(z)(1 − σ(z))``.

    The forward value is the ``{0, 1}`` code; the backward pass treats ``b`` as if it were
    ``q = σ(z)`` (the distributional derivative of the paper), so the gradient reaching ``b``
    flows into ``z`` through the sigmoid. No gradient reaches ``threshold``.

    Args:
      logits: ``z``, any shape.
      threshold: ``ε`` of the same shape (uniform samples in training, 0.5 at test time).

    Returns:
      ``b`` in {0, 1}, the dtype of ``logits``.
    """
    q = jax.nn.sigmoid(logits)
    code = (q > jax.lax.stop_gradient(threshold)).astype(q.dtype)
    return q + jax.lax.stop_gradient(code - q)


class StochasticBinaryHead(nn.Module):
    """JMLH's two layers on the backbone features: stochastic binary codes and a classifier.

    ``z = Dense(L)(features)``; in training ``b = 1[σ(z) > ε]`` with ``ε ~ U(0, 1)`` drawn from
    the ``"dropout"`` RNG stream, in evaluation ``ε = 0.5``; ``logits = Dense(C)(b)``. The
    binarisation back-propagates with :func:`stochastic_binary`'s estimator.

    Attributes:
      bits: code length ``L``.
      num_classes: number of classes ``C``.

    Call:
      ``features``: ``[B, D]``; ``train``: sample (needs ``rngs={"dropout": key}``) or threshold.

    Returns:
      ``{"pre": z, "relaxed": 2b − 1, "bits": b, "logits": [B, C]}``, the first three ``[B, L]``.
    """

    bits: int
    num_classes: int

    @nn.compact
    def __call__(self, features: jax.typing.ArrayLike, *, train: bool) -> dict[str, jax.Array]:
        z = nn.Dense(self.bits, name="hash")(features)
        if train:
            threshold = jax.random.uniform(self.make_rng("dropout"), z.shape, z.dtype)
        else:
            threshold = jnp.full(z.shape, 0.5, z.dtype)
        b = stochastic_binary(z, threshold)
        logits = nn.Dense(self.num_classes, name="classifier")(b)
        return {"pre": z, "relaxed": 2.0 * b - 1.0, "bits": b, "logits": logits}


class JMLHNetwork(nn.Module):
    """A backbone followed by :class:`StochasticBinaryHead` (which needs ``train``).

    Attributes:
      backbone: module called as ``backbone(x, train=...)`` returning ``[B, D]``.
      head: a :class:`StochasticBinaryHead`.

    Call:
      ``x``: ``[B, ...]``; ``train``: training mode (sampled codes, backbone dropout);
      ``beta``: ignored (accepted so the training loop can pass it).

    Returns:
      The head's dict with ``"features": [B, D]`` added.
    """

    backbone: nn.Module
    head: nn.Module

    def __call__(
        self, x: jax.typing.ArrayLike, *, train: bool, beta: jax.typing.ArrayLike = 1.0
    ) -> dict[str, jax.Array]:
        del beta
        features = self.backbone(x, train=train)
        out = dict(self.head(features, train=train))
        out["features"] = features
        return out


def make_model(config, num_classes):
    """The run config's backbone, then the stochastic binary layer and the classifier."""
    return JMLHNetwork(build_backbone(config.model), StochasticBinaryHead(config.bits, num_classes))


def loss_fn(outputs, batch, ctx):
    """Softmax loss of the classifier on the sampled codes plus ``λ`` times the Bernoulli KL.

    Args:
      outputs: model outputs on the local batch: ``"pre"`` ``z`` ``[B, L]`` and ``"logits"``
        ``[B, C]`` (the classifier on the sampled codes).
      batch: local batch with ``"labels"`` ``[B, C]`` (one-hot).
      ctx: :class:`~dlhash_jax.methods.LossContext`; ``ctx.hparams`` is ``{"kl_weight": λ,
        "prior": p}``.

    Returns:
      ``(loss, {"classification": ..., "kl": ...})``.
    """
    classification = losses.softmax_loss(outputs["logits"], batch["labels"])
    kl = losses.bernoulli_kl_loss(outputs["pre"], prior=ctx.hparams["prior"])
    loss = classification + ctx.hparams["kl_weight"] * kl
    return loss, {"classification": classification, "kl": kl}


RECIPE = Recipe(
    name="jmlh",
    title="Embarrassingly simple binary representation learning",
    citation=CITATION,
    taxonomy=Taxonomy("single", "single"),
    make_model=make_model,
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
)
