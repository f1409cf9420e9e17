"""UH-BDNN: unsupervised hashing with a binary deep neural network (Do, Doan & Cheung, ECCV 2016).

No labels, single samples (survey §5.1's family of DH). A network of ``n`` layers whose
layer ``n − 1`` outputs ``H ∈ R^{N×L}`` and is constrained to the binary codes ``B``: the last
layer reconstructs the input from the codes, ``X̂ = B W + c``. The paper's objective over the
``m = N`` training items, in our orientation (``X``: ``[N, D]``, ``B``, ``H``: ``[N, L]``, the
decoder ``W``: ``[L, D]``, ``c``: ``[D]``; ``W^l`` the other layers' weight matrices) is

    J = 1/(2m) ‖X − B W − 1cᵀ‖² + (λ1/2) Σ_l ‖W^l‖² + λ2/(2m) ‖H − B‖²
        + (λ3/2) ‖(1/m) HᵀH − I‖² + λ4/(2m) ‖Hᵀ1‖²,     B ∈ {−1, +1}^{N×L},

reconstruction, weight decay (the decoder's ``W`` included, biases not), the binary
constraint ``H = B`` relaxed to a penalty, independence (decorrelated bits) and balance
(every bit half +1, half −1). It is minimised by alternation: the network with ``B`` fixed
(L-BFGS in the paper), then ``B`` with the network fixed by discrete cyclic coordinate descent
(DCC, bit by bit, each bit the exact minimiser given the others) of
``‖X − 1cᵀ − B W‖² + λ2 ‖H − B‖²``; the codes of an item (train or query) are ``sgn(h)``.

How it maps onto the catalogue and the recipe contract:

- ``J`` on a batch of ``n`` rows is ``½ reconstruction_loss(X, linear_decoder(B, W, c))
  + (λ1/2) (weight_norm(params, squared=True) + ‖W‖²) + (λ2/2) quantization_loss(H, B)
  + (λ3/2) decorrelation_loss(H) + (λ4 N/2) balance_loss(H)`` (survey eq 1, 10 squared, 2, 3
  and 4/6; ``λ4/(2m) ‖Hᵀ1‖² = (λ4 m/2) Σ_k (mean_i H_ik)²``); with ``n = N`` it is ``J``
  exactly. No new catalogue term is needed.
- The reconstruction reads the codes, not ``H``, so it depends on the decoder ``(W, c)`` and
  ``B`` only: for fixed ``B`` the decoder's part of ``J`` is a ridge regression, solved in closed
  form (``W = (B̃ᵀB̃ + mλ1 I)⁻¹ B̃ᵀX̃`` on centred ``B̃``, ``X̃``, ``c = x̄ − b̄ W``;
  :func:`fit_decoder`), the exact minimiser the authors' L-BFGS approaches. ``B``, ``W`` and
  ``c`` are the recipe's discrete variables (``Recipe.discrete``): the network (the encoder) is
  trained by gradient on the terms that depend on it, with ``B`` of the batch rows read from
  ``ctx.discrete``, and every ``epochs_per_update`` epochs the B-step (DCC,
  :func:`dlhash_jax.discrete.bitwise_code_update` with ``G = W Wᵀ``,
  ``P = (X − 1cᵀ) Wᵀ + λ2 H``, started from zeros with ``dcc_sweeps`` sweeps, as the authors'
  ``learn_B.m``) and then the decoder step run on the whole training split, ``H`` read from the
  memory bank of the outputs (``bank_output="relaxed"``).
- Initialisation, as the authors' ``learn_all.m``: ``B`` is the ITQ code of the training
  inputs (:func:`dlhash_jax.baselines.fit_itq`, computed in :func:`prepare`), the decoder is
  fitted to it, and the first period of training (``epochs_per_update`` epochs) is their
  pre-training of the network with those codes fixed: the update at step 0 keeps them.

Paper defaults (the authors' code, github.com/dzungdoan6/uh-bdnn, ``runHash.m``):
``λ1 = 1e-5``, ``λ2 = 5e-2``, ``λ3 = 1e-2``, ``λ4 = 5e-7``; hidden layers sigmoid, the code
layer ``n − 1`` linear (``deepNNCost.m``), widths 90-30 for 16 bits, 120-50 for 32 (set by the
config); 10 DCC sweeps per B-step (``learn_B.m``); inputs rescaled to ``[0, 1]``
(``rescale_0_1.m``; ``digits`` already is).

On ``digits`` (32 bits, the authors' settings, ``experiments/configs/uh_bdnn.py``) the codes
learn: mAP 0.675 / 0.679 / 0.710 for seeds 0 / 1 / 2, above LSH (0.467 / 0.459 / 0.515) and ITQ
(0.654 / 0.631 / 0.670). The objective falls through the alternation, but there the B-steps do
not improve retrieval over a network that keeps regressing ITQ's codes (no B-step after the
start: 0.713 / 0.674 / 0.721); the config lists the periods measured.

Deviations from the paper:

- Mini-batch Adam for a number of epochs between B-steps (``epochs_per_update``, our choice)
  instead of 400 full-batch L-BFGS iterations; the authors' up to 20 alternations, stopped
  when validation mAP stops improving, become the training length and the loop's selection of
  the best validation checkpoint.
- The decoder is solved in closed form instead of trained with the encoder (the same
  minimiser, since no other term depends on it).
- The independence and balance terms are statistics of the device's batch (``n`` rows) rather
  than of the training set; on ``D`` devices each device uses its ``n / D`` rows (the
  replicated step's rule for batch statistics).
- ``H`` in the B-step is the bank, each row the output of the last step that saw the item
  (within the last epoch), rather than a fresh pass over the training split.
- The authors initialise the encoder's layers from the principal directions of each layer's
  input (``initializeParameters.m``); ours start from flax's default initialisers.
"""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dlhash_jax import baselines
from dlhash_jax import discrete
from dlhash_jax import losses
from dlhash_jax import models
from dlhash_jax.methods._recipe import DiscreteUpdate
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import build_backbone

CITATION = (
    "Thanh-Toan Do, Anh-Dzung Doan and Ngai-Man Cheung, 'Learning to hash with binary deep "
    "neural network', ECCV 2016 (arXiv:1607.05140; code github.com/dzungdoan6/uh-bdnn)."
)

# λ1 (weight decay) = 1e-5, λ2 (binary constraint) = 5e-2, λ3 (independence) = 1e-2,
# λ4 (balance) = 0.5e-6: the authors' runHash.m. dcc_sweeps = 10: learn_B.m's loop.
# epochs_per_update: epochs of network training between two B-steps (ours; the authors run
# 400 L-BFGS iterations).
DEFAULT_HPARAMS = types.MappingProxyType(
    {
        "lambda_weight": 1e-5,
        "lambda_binary": 5e-2,
        "lambda_independence": 1e-2,
        "lambda_balance": 5e-7,
        "dcc_sweeps": 10,
        "epochs_per_update": 10,
    }
)


def make_model(config, num_classes):
    """UH-BDNN's encoder: sigmoid hidden layers and a linear code layer (``H``, ``[B, L]``).

    With ``model.backbone == "mlp"`` the hidden layers (``model.features``) are sigmoid, as in
    the authors' code; other backbones are built as configured. The decoder ``X̂ = B W + c`` is
    not part of the network: it reads the codes ``B`` and is solved in closed form with them
    (the recipe's discrete variables).
    """
    del num_classes  # Unsupervised: no classifier.
    model_config = config.model
    if model_config.backbone == "mlp":
        backbone = models.MLP(
            features=tuple(model_config.features),
            activation=jax.nn.sigmoid,
            dropout_rate=model_config.dropout_rate,
        )
    else:
        backbone = build_backbone(model_config)
    return models.HashNetwork(backbone, models.HashHead(config.bits, relaxation="none"))


def prepare(train_split, config) -> dict[str, np.ndarray]:
    """The flattened training inputs ``X`` and their ITQ codes, the codes ``B`` start from.

    Args:
      train_split: the training split; ``inputs`` ``[N, ...]`` (flattened to ``[N, D]``).
      config: the resolved run config (``bits``, ``seed``: the key of ITQ's initial rotation).

    Returns:
      ``{"inputs": float32 [N, D], "itq_codes": float32 [N, L]}``.

    Raises:
      ValueError: if ``bits`` exceeds ``D`` (ITQ rotates ``L`` principal directions).
    """
    inputs = np.asarray(train_split.inputs, np.float32)
    flat = inputs.reshape(inputs.shape[0], -1)
    itq = baselines.fit_itq(jax.random.key(config.seed), flat, int(config.bits))
    return {"inputs": flat, "itq_codes": np.asarray(itq.encode(flat), np.float32)}


def fit_decoder(X, B, *, lambda_weight):
    """The decoder ``(W, c)`` minimising ``1/(2m) ‖X − B W − 1cᵀ‖² + (λ1/2) ‖W‖²``.

    Ridge regression of the inputs on the codes with an unpenalised offset: with ``B̃ = B −
    1b̄ᵀ`` and ``X̃ = X − 1x̄ᵀ``, ``W = (B̃ᵀB̃ + mλ1 I)⁻¹ B̃ᵀX̃``
    (:func:`dlhash_jax.discrete.ridge_classifier` with ``reg = mλ1``) and ``c = x̄ − b̄ W``.

    Args:
      X: ``[m, D]`` inputs.
      B: ``[m, L]`` codes.
      lambda_weight: ``λ1 > 0``.

    Returns:
      ``(W [L, D], c [D])``.
    """
    B_mean, X_mean = jnp.mean(B, axis=0), jnp.mean(X, axis=0)
    W = discrete.ridge_classifier(B - B_mean, X - X_mean, reg=B.shape[0] * lambda_weight)
    return W, X_mean - B_mean @ W


def discrete_objective(X, B, H, W, c, *, lambda_weight, lambda_binary):
    """The part of ``J`` the discrete step changes, over the training split (for the log).

    ``½ reconstruction_loss(X, B W + c) + (λ1/2) ‖W‖² + (λ2/2) quantization_loss(H, B)``.
    """
    return (
        0.5 * losses.reconstruction_loss(X, losses.linear_decoder(B, W, c))
        + 0.5 * lambda_weight * jnp.sum(W**2)
        + 0.5 * lambda_binary * losses.quantization_loss(H, B)
    )


def solve_codes(X, H, W, c, *, lambda_weight, lambda_binary, sweeps):
    """UH-BDNN's discrete step: the B-step by DCC, then the decoder for the new codes.

    ``B = argmin ‖X − 1cᵀ − B W‖² + λ2 ‖H − B‖²`` over ``{−1, +1}^{N×L}`` bit by bit
    (``G = W Wᵀ``, ``P = (X − 1cᵀ) Wᵀ + λ2 H``), from zeros with ``sweeps`` sweeps as the
    authors' ``learn_B.m``; then ``(W, c) = fit_decoder(X, B)``.

    Args:
      X: ``[N, D]`` training inputs.
      H: ``[N, L]`` network outputs of the same items.
      W, c: the current decoder, ``[L, D]`` and ``[D]``.
      lambda_weight, lambda_binary: ``λ1``, ``λ2``.
      sweeps: DCC sweeps over the bits.

    Returns:
      ``{"codes": B, "decoder": W, "offset": c, "objective": scalar}`` (see
      :func:`discrete_objective`).
    """
    P = (X - c) @ W.T + lambda_binary * H
    B = discrete.bitwise_code_update(jnp.zeros_like(H), W @ W.T, P, sweeps=sweeps)
    W, c = fit_decoder(X, B, lambda_weight=lambda_weight)
    objective = discrete_objective(
        X, B, H, W, c, lambda_weight=lambda_weight, lambda_binary=lambda_binary
    )
    return {"codes": B, "decoder": W, "offset": c, "objective": objective}


def init_codes(ctx):
    """``B`` = the ITQ codes of :func:`prepare`, the decoder fitted to them.

    ``objective`` (:func:`discrete_objective`) uses the bank of the untrained network as ``H``.
    """
    X, B = ctx.prepared["inputs"], ctx.prepared["itq_codes"]
    h = ctx.hparams
    W, c = fit_decoder(X, B, lambda_weight=h["lambda_weight"])
    objective = discrete_objective(
        X, B, ctx.bank.outputs, W, c,
        lambda_weight=h["lambda_weight"], lambda_binary=h["lambda_binary"],
    )
    return {"codes": B, "decoder": W, "offset": c, "objective": objective}


def update_codes(variables, ctx):
    """The discrete step from the bank (:func:`solve_codes`); at step 0 the ITQ codes stay.

    The first ``epochs_per_update`` epochs train the network towards the codes it was
    initialised with (the authors' pre-training); every later update is a B-step.
    """
    h = ctx.hparams

    def solve():
        return solve_codes(
            ctx.prepared["inputs"],
            ctx.bank.outputs,
            variables["decoder"],
            variables["offset"],
            lambda_weight=h["lambda_weight"],
            lambda_binary=h["lambda_binary"],
            sweeps=int(h["dcc_sweeps"]),
        )

    return lax.cond(ctx.step == 0, lambda: variables, solve)


def loss_fn(outputs, batch, ctx):
    """The paper's ``J`` on the batch rows (see the module docstring).

    Args:
      outputs: model outputs on the local batch: ``"relaxed"`` is ``H`` ``[n, L]`` (linear).
      batch: local batch with ``"inputs"`` and ``"index"`` ``[n]`` (no labels are read).
      ctx: :class:`~dlhash_jax.methods.LossContext`: ``ctx.params`` the encoder's parameters
        (weight decay), ``ctx.discrete`` ``{"codes", "decoder", "offset", "objective"}``,
        ``ctx.hparams`` the keys of ``DEFAULT_HPARAMS``.

    Returns:
      ``(loss, terms)`` with the unweighted ``"reconstruction"`` (``reconstruction_loss``,
      no gradient: it reads the codes), ``"binary"`` (``quantization_loss(H, B)``),
      ``"independence"``, ``"balance"``, ``"weight"`` (encoder and decoder) and
      ``"discrete_objective"`` (:func:`discrete_objective` of the last discrete step).
    """
    H = outputs["relaxed"]
    h = ctx.hparams
    variables = ctx.discrete
    num_items = variables["codes"].shape[0]
    codes = jnp.asarray(variables["codes"])[batch["index"]]
    inputs = jnp.reshape(batch["inputs"], (H.shape[0], -1))
    reconstruction = losses.reconstruction_loss(
        inputs, losses.linear_decoder(codes, variables["decoder"], variables["offset"])
    )
    weight = losses.weight_norm(ctx.params, squared=True) + jnp.sum(variables["decoder"] ** 2)
    binary = losses.quantization_loss(H, codes)
    independence = losses.decorrelation_loss(H)
    balance = losses.balance_loss(H)
    loss = 0.5 * (
        reconstruction
        + h["lambda_weight"] * weight
        + h["lambda_binary"] * binary
        + h["lambda_independence"] * independence
        + h["lambda_balance"] * num_items * balance
    )
    return loss, {
        "reconstruction": reconstruction,
        "binary": binary,
        "independence": independence,
        "balance": balance,
        "weight": weight,
        "discrete_objective": variables["objective"],
    }


def _every(hparams):
    return int(hparams["epochs_per_update"])


RECIPE = Recipe(
    name="uh_bdnn",
    title="Unsupervised hashing with binary deep neural network",
    citation=CITATION,
    taxonomy=Taxonomy("none", "single"),
    make_model=make_model,
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
    prepare=prepare,
    bank_output="relaxed",
    discrete=DiscreteUpdate(init=init_codes, update=update_codes, every_epochs=_every),
)
