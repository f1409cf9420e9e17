"""DFH: push for quantization, deep Fisher hashing (Li, Pei, Zha & van Gemert, BMVC 2019).

Survey §5.2.2's family (single-label, pairs); the method itself is beyond the survey. DFH learns
real outputs ``u`` (a linear hash layer), binary codes ``b`` and binary class centres ``c``. With
``θ_ij = ½ u_iᵀu_j`` and a margin ``m``, it alternates three steps on every mini-batch:

- C-step: relaxed centres ``V`` (``[C, L]``) minimise the Fisher objective
  ``(1/(N·L)) ‖Y V − B‖² + ν (1/C²) ‖V Vᵀ − L(2I − 11ᵀ)‖² + η_c (1/(C·L)) ‖V − sgn V‖²`` by
  gradient descent (codes near their class's centre, centres far apart, centres near ±1), and
  the binary centres are ``C = sgn(V)``;
- B-step: ``b_i = sgn(μ Σ_c y_ic c_c + u_i)``: each code is pushed towards its class's centre,
  which is the "push for quantization";
- U-step: the network minimises the margin likelihood of the pairs plus the quantization:

      J = mean_ij [s_ij log(1 + e^{m − θ_ij}) + (1 − s_ij) log(1 + e^{θ_ij + m})]
          + η mean_ik (b_ik − u_ik)².

Mapping onto the catalogue:

- The pair term is :func:`~dlhash_jax.losses.margin_likelihood_loss` (DFH's own; with ``m = 0``
  it is :func:`~dlhash_jax.losses.pairwise_likelihood_loss`, survey eq 15/24).
- The quantization is :func:`~dlhash_jax.losses.quantization_loss` (survey eq 2) against the
  pushed codes ``b`` (no gradient into ``b``); it is a mean over samples of a sum over bits, so
  the authors' mean over entries is ``quantization_loss / L`` and the weight is ``η / L``.
- The C-step minimises :func:`~dlhash_jax.losses.fisher_center_loss` (DFH's own) with the
  authors' gradient descent: ``center_steps`` steps of size ``center_lr``, divided by 10 after
  75% and again after 90% of them (after 150 and 180 of 200 steps; the authors' counter
  decays after 148 and 178), all under ``stop_gradient``.

Pairs: as in the authors' code, which keeps the outputs of the whole training set, the batch is
paired with a memory bank of all ``N`` training outputs (``bank_output="relaxed"``).

Deviations from the paper and the authors' code:

- Centres are recomputed at every step from the memory bank, not carried across steps: the
  recipe contract keeps no state besides the bank, so the C-step starts from the label means of
  the bank's codes ``sgn(U)`` (the minimiser of the within-class part alone) and fits all ``N``
  items, where the authors warm-start ``V`` from the previous batch's and fit the batch's
  pushed codes. The B-step then pushes the batch's codes with these centres.
- Backbone: the paper fine-tunes AlexNet pre-trained on ImageNet with SGD; we train the run
  config's backbone (an MLP on ``digits``) from scratch with the config's optimizer (Adam).
- ``sgn(0) = +1`` for codes and centres (the library's convention; PyTorch's ``sign(0) = 0``).
- Hyper-parameters: see :data:`DEFAULT_HPARAMS`.
"""

from __future__ import annotations

import functools
import types

import jax
import jax.numpy as jnp
from jax import lax

from dlhash_jax import codes
from dlhash_jax import losses
from dlhash_jax import similarity
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import hash_network

CITATION = (
    "Yunqiang Li, Wenjie Pei, Yufei Zha and Jan van Gemert, 'Push for quantization: deep Fisher "
    "hashing', BMVC 2019 (arXiv:1909.00206)."
)

# From the authors' released code (liyunqianggyn/Push-for-Quantization-Deep-Fisher-Hashing,
# Main.py and Gradient_center.py): μ = 1, ν = 1, η_c = 1, η = 0.5, and the C-step's 200 gradient
# steps of size 0.03. The margin: that script runs with m = 0 (its margin line is commented out,
# a COCO setting); m = 3 is the value of the common PyTorch re-implementation
# (swuxyj/DeepHash-pytorch), which keeps the margin the paper is about.
DEFAULT_HPARAMS = types.MappingProxyType(
    {
        "margin": 3.0,
        "mu": 1.0,
        "nu": 1.0,
        "center_eta": 1.0,
        "eta": 0.5,
        "center_steps": 200,
        "center_lr": 0.03,
    }
)


def _label_mean_centers(labels, bank_codes):
    """``[C, L]`` initial centres: each class's mean code (0 for a class with no item)."""
    counts = jnp.sum(labels, axis=0)[:, None]
    return (labels.T @ bank_codes) / jnp.where(counts > 0, counts, 1.0)


def fit_centers(labels, bank_codes, hparams):
    """DFH's C-step: relaxed centres by gradient descent on the Fisher objective, then ``sgn``.

    Args:
      labels: ``[N, C]`` multi-hot labels of the training set.
      bank_codes: ``[N, L]`` ±1 codes of the training set.
      hparams: the recipe's hyper-parameters (``nu``, ``center_eta``, ``center_steps``,
        ``center_lr``).

    Returns:
      ``(centers, relaxed)``: ``[C, L]`` ±1 centres ``sgn(V)`` and the relaxed ``V``, without
      gradient.
    """
    labels, bank_codes = lax.stop_gradient(labels), lax.stop_gradient(bank_codes)
    steps = int(hparams["center_steps"])
    base_lr = hparams["center_lr"]

    def objective(relaxed):
        return losses.fisher_center_loss(
            relaxed, labels, bank_codes, nu=hparams["nu"], eta=hparams["center_eta"]
        )

    grad = jax.grad(objective)

    def step(i, relaxed):
        # The authors divide the step by 10 after 75% and again after 90% of the steps.
        lr = base_lr * jnp.where(i >= (3 * steps) // 4, 0.1, 1.0)
        lr = lr * jnp.where(i >= (9 * steps) // 10, 0.1, 1.0)
        return relaxed - lr * grad(relaxed)

    relaxed = lax.fori_loop(0, steps, step, _label_mean_centers(labels, bank_codes))
    return codes.sign(relaxed), relaxed


def loss_fn(outputs, batch, ctx):
    """Margin likelihood of the batch against the bank plus ``(η / L)`` times the quantization
    towards the codes pushed by the class centres.

    Args:
      outputs: model outputs on the local batch; ``"relaxed"`` is ``u`` ``[B, L]``.
      batch: local batch with ``"labels"`` ``[B, C]``.
      ctx: :class:`~dlhash_jax.methods.LossContext`: ``ctx.bank`` is the memory bank of the ``N``
        training items, already holding this step's batch; ``ctx.hparams`` holds the keys of
        :data:`DEFAULT_HPARAMS`.

    Returns:
      ``(loss, {"likelihood": ..., "quantization": ..., "centers": ...})``, ``"centers"`` being
      the Fisher objective of the fitted relaxed centres.
    """
    hparams = ctx.hparams
    u = outputs["relaxed"]
    labels = batch["labels"].astype(u.dtype)
    bank_labels = ctx.bank.labels.astype(u.dtype)
    bank_codes = codes.sign(lax.stop_gradient(ctx.bank.outputs))
    centers, relaxed = fit_centers(bank_labels, bank_codes, hparams)
    pushed = lax.stop_gradient(codes.sign(hparams["mu"] * (labels @ centers) + u))
    pair_similarity = similarity.label_similarity(labels, bank_labels)
    likelihood = losses.margin_likelihood_loss(
        u, ctx.bank.outputs, pair_similarity, margin=hparams["margin"]
    )
    quantization = losses.quantization_loss(u, pushed)
    loss = likelihood + hparams["eta"] / u.shape[1] * quantization
    center_objective = losses.fisher_center_loss(
        relaxed, bank_labels, bank_codes, nu=hparams["nu"], eta=hparams["center_eta"]
    )
    return loss, {
        "likelihood": likelihood,
        "quantization": quantization,
        "centers": center_objective,
    }


RECIPE = Recipe(
    name="dfh",
    title="Push for quantization: deep Fisher hashing",
    citation=CITATION,
    taxonomy=Taxonomy("single", "pairs"),
    # A backbone and a linear hash layer: DFH's outputs u are unbounded real numbers.
    make_model=functools.partial(hash_network, relaxation="none"),
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
    bank_output="relaxed",
)
