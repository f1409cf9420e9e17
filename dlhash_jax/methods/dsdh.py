"""DSDH: deep supervised discrete hashing (Li, Sun, He & Tan, NeurIPS 2017).

Single-label data, pairs (survey §5.2.2's family of DPSH, with a classifier of the codes). Every
training item ``i`` has a real output ``u_i`` (a linear hash layer on the backbone) and a binary
code ``b_i``, a variable of its own; a linear classifier ``W`` (``[L, C]``) predicts the labels
from the codes. The paper's objective, in our orientation (``B``: ``[N, L]``), is

    J = −Σ_ij [s_ij Ψ_ij − log(1 + e^Ψ_ij)] + μ ‖Y − B W‖²_F + ν ‖W‖²_F + η ‖B − U‖²_F,

with ``Ψ_ij = ½ u_iᵀ u_j``: the pairwise likelihood of DPSH (survey eq 15/24) on the outputs,
the labels regressed on the codes (survey eq 22) with a ridge penalty, and the quantization of
the outputs to the codes (eq 2). It is minimised by alternation: the network by back-propagation
with ``B`` and ``W`` fixed (only the likelihood and ``η ‖B − U‖²`` depend on it), then ``W`` in
closed form, ``W = (BᵀB + (ν/μ) I)⁻¹ BᵀY``, then ``B`` by discrete cyclic coordinate descent
(DCC, as in SDH by Shen et al. 2015), bit by bit, each bit the exact minimiser of
``μ ‖Y − B W‖² + η ‖B − U‖²`` given the others:
``b_k = sgn(p_k − B̂ Ŵ w_k)`` with ``P = Y Wᵀ + (η/μ) U``.

How it maps onto the recipe contract and the catalogue:

- ``U`` of all ``N`` training items is the memory bank (``bank_output="relaxed"``), refreshed for
  the batch rows at every step, as in DPSH and in the authors' code;
- ``B``, ``W`` (and the value of their objective, for the log) are the recipe's discrete
  variables (``discrete=DiscreteUpdate``): initialised with ``B = sgn(U)`` of the untrained
  network, and replaced at the start of every epoch (epoch 0 included) by ``dcc_iterations``
  rounds of the W-step (:func:`dlhash_jax.discrete.ridge_classifier`, ``reg = ν/μ``) and one DCC
  sweep (:func:`dlhash_jax.discrete.bitwise_code_update` with ``G = W Wᵀ`` and
  ``P = Y Wᵀ + (η/μ) U``), computed from the bank;
- the network's loss on a batch of ``n`` items is the paper's ``J`` restricted to the batch rows
  (the likelihood against all ``N`` bank rows) divided by ``n·N`` (the authors' normalisation,
  as in :mod:`.dpsh`):
  ``pairwise_likelihood_loss(u, U, S) + discrete_classification_loss(B_batch, u, Y_batch, W;
  μ, ν, η) / N``. The classification and ridge parts are constant in the network's parameters
  (logged, no gradient); the quantization part pulls each output to its code.

Paper defaults: ``μ = 1``, ``ν = 0.1``, ``η = 55`` (the authors' code,
liqi-casia/DSDH-HashingCode: ``eta = 55`` in ``main.m``, ``ν/μ = λ = 0.1`` in the ridge solve of
``train.m`` with ``Q = ηU + YWᵀ``, i.e. ``μ = 1``). ``dcc_iterations = 1``: one W-step and one
sweep over the bits per update, one update of each block per alternation, as in TreezzZ's
DSDH_PyTorch (DeepHash-pytorch takes 10 rounds).

Deviations from the paper:

- When ``B`` and ``W`` are updated: once per pass over the training data, from the bank of all
  ``N`` outputs (TreezzZ/DSDH_PyTorch and DeepHash-pytorch do the same); the authors' MATLAB code
  instead solves ``W`` and ``B`` for each minibatch from that batch's outputs alone.
- ``B`` starts at ``sgn(U)`` of the untrained network (the authors' code sets ``B = sgn(U)`` of
  each batch before solving; TreezzZ starts from random signs).
- Our backbone (an MLP on ``digits``) and optimizer replace the paper's CNN-F with SGD; the
  authors' step divides the gradient by ``n·N`` as our normalisation does.
- On ``digits`` the config sets ``η = 5.5``: η weighs each output's quantization against its
  likelihood summed over the ``N`` items it is paired with, and the authors' ``η = 55`` is for
  ``N = 5,000`` (CIFAR-10) where ``digits`` has ``N = 500``; 5.5 keeps their ``η / N``. With
  ``η = 55`` the quantization pins the outputs to the signs of the untrained network (mAP
  0.768 / 0.818 / 0.834 for seeds 0 / 1 / 2 at 32 bits; evidence in
  ``experiments/configs/dsdh.py``).
"""

from __future__ import annotations

import functools
import types

import jax.numpy as jnp

from dlhash_jax import codes
from dlhash_jax import discrete
from dlhash_jax import losses
from dlhash_jax import similarity
from dlhash_jax.methods._recipe import DiscreteUpdate
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import hash_network

CITATION = (
    "Qi Li, Zhenan Sun, Ran He and Tieniu Tan, 'Deep supervised discrete hashing', NeurIPS 2017 "
    "(arXiv:1705.10999; code github.com/liqi-casia/DSDH-HashingCode)."
)

# μ = 1, ν = 0.1, η = 55: the authors' code (see the module docstring); dcc_iterations = 1:
# one W-step and one DCC sweep per update, the paper's alternation.
DEFAULT_HPARAMS = types.MappingProxyType(
    {"mu": 1.0, "nu": 0.1, "eta": 55.0, "dcc_iterations": 1}
)


def solve_codes(B, U, Y, *, mu, nu, eta, iterations):
    """DSDH's discrete step: ``iterations`` rounds of the W-step, then one DCC sweep over ``B``.

    Each round sets ``W = (BᵀB + (ν/μ) I)⁻¹ BᵀY`` (the exact minimiser over ``W``), then each bit
    of ``B`` in turn to its exact minimiser of ``μ ‖Y − B W‖² + η ‖B − U‖²`` given the others,
    so the objective ``discrete_classification_loss(B, U, Y, W)`` never increases.

    Args:
      B: ``[N, L]`` current codes.
      U: ``[N, L]`` network outputs of the same items.
      Y: ``[N, C]`` labels.
      mu, nu, eta: the weights ``μ``, ``ν``, ``η`` of the paper.
      iterations: rounds of (W-step, B-sweep), a positive int.

    Returns:
      ``{"B": [N, L] codes, "W": [L, C] classifier, "objective": scalar}``, where ``objective`` is
      ``discrete_classification_loss(B, U, Y, W; μ, ν, η)`` of the result.
    """
    for _ in range(iterations):
        W = discrete.ridge_classifier(B, Y, reg=nu / mu)
        P = Y @ W.T + (eta / mu) * U
        B = discrete.bitwise_code_update(B, W @ W.T, P)
    objective = losses.discrete_classification_loss(B, U, Y, W, mu=mu, nu=nu, eta=eta)
    return {"B": B, "W": W, "objective": objective}


def init_codes(ctx):
    """``B = sgn(U)`` of the bank (the untrained network), ``W = 0``, objective 0."""
    outputs, labels = ctx.bank.outputs, ctx.bank.labels
    return {
        "B": codes.sign(outputs),
        "W": jnp.zeros((outputs.shape[1], labels.shape[1]), outputs.dtype),
        "objective": jnp.zeros((), outputs.dtype),
    }


def update_codes(variables, ctx):
    """The discrete step over the whole training split, from the bank (:func:`solve_codes`)."""
    h = ctx.hparams
    return solve_codes(
        variables["B"],
        ctx.bank.outputs,
        ctx.bank.labels,
        mu=h["mu"],
        nu=h["nu"],
        eta=h["eta"],
        iterations=int(h["dcc_iterations"]),
    )


def loss_fn(outputs, batch, ctx):
    """The paper's objective on the batch rows, divided by ``n·N`` (see the module docstring).

    Args:
      outputs: model outputs on the local batch; ``"relaxed"`` is ``u`` ``[n, L]``.
      batch: local batch with ``"labels"`` ``[n, C]`` and ``"index"`` ``[n]``.
      ctx: :class:`~dlhash_jax.methods.LossContext`: ``ctx.bank`` holds the ``N`` training
        outputs (this step's rows included), ``ctx.discrete`` is ``{"B", "W", "objective"}``,
        ``ctx.hparams`` has ``mu``, ``nu``, ``eta``.

    Returns:
      ``(loss, {"likelihood", "quantization", "classification", "discrete_objective"})``:
      the likelihood against the bank, the mean ``‖u_i − b_i‖²`` and ``‖y_i − Wᵀb_i‖²`` over
      the batch, and the last discrete step's objective over the training split.
    """
    u = outputs["relaxed"]
    h = ctx.hparams
    num_items = ctx.bank.outputs.shape[0]
    pair_similarity = similarity.label_similarity(batch["labels"], ctx.bank.labels)
    likelihood = losses.pairwise_likelihood_loss(u, ctx.bank.outputs, pair_similarity)
    batch_codes = ctx.discrete["B"][batch["index"]]
    W = ctx.discrete["W"]
    code_terms = losses.discrete_classification_loss(
        batch_codes, u, batch["labels"], W, mu=h["mu"], nu=h["nu"], eta=h["eta"]
    )
    loss = likelihood + code_terms / num_items
    return loss, {
        "likelihood": likelihood,
        "quantization": losses.quantization_loss(u, batch_codes),
        "classification": losses.linear_classification_loss(batch_codes, batch["labels"], W),
        "discrete_objective": ctx.discrete["objective"],
    }


RECIPE = Recipe(
    name="dsdh",
    title="Deep supervised discrete hashing",
    citation=CITATION,
    taxonomy=Taxonomy("single", "pairs"),
    # A backbone and a linear hash layer: DSDH's outputs u are unbounded real numbers.
    make_model=functools.partial(hash_network, relaxation="none"),
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
    bank_output="relaxed",
    discrete=DiscreteUpdate(init=init_codes, update=update_codes),
)
