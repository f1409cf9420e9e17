"""DH: deep hashing (Erin Liong, Lu, Wang, Moulin & Zhou, CVPR 2015).

Survey §5.1.1 (no labels, single sample). A fully connected network with ``tanh`` in every layer
maps an input to ``h ∈ (−1, 1)^L``; the code is ``b = sgn(h)``. DH asks for codes that lose little
to quantization, spread the bits (variance) and are independent (orthogonal projections), with
small weights. Over the ``N`` training items, with the layers' weight matrices ``W^m`` and biases
``c^m``:

    J = ½ ‖B − H‖²_F − (λ1 / 2N) tr(H Hᵀ) + (λ2 / 2) Σ_m ‖W^m W^mᵀ − I‖²_F
        + (λ3 / 2) Σ_m (‖W^m‖²_F + ‖c^m‖²),

``B = sgn(H)`` held fixed in each update (the paper alternates). In catalogue terms, ``2J / N`` is

    quantization_loss(h) + (λ1/N) variance_loss(h) + (λ2/N) Σ_m ‖W^m W^mᵀ − I‖²_F
        + (λ3/N) weight_norm(params, squared=True)

(eq 2, eq 5, and eq 10 squared). The orthogonality term is on the weights, not on the codes: for a
flax kernel ``K = W^mᵀ`` of shape ``[d_in, d_out]``, ``W^m W^mᵀ = KᵀK``, which is
``decorrelation_loss`` (eq 3, ``‖(1/n) AᵀA − I‖²``) of ``√d_in · K``.

The paper optimises the whole training set at once, so its ``N`` is the training-set size; we
train on mini-batches of the same objective, and its ``N`` is the global batch size ``B`` (as in
public re-implementations), so each term's weight relative to the others is the paper's
``λ / B``. The loss reaches the weights as ``ctx.params`` (the recipe contract's loss context), the
parameters being differentiated.

Deviations from the paper:

- the paper's inputs are hand-crafted features (GIST of CIFAR-10 images, MNIST pixels, SIFT);
  here they are the protocol's (8×8 digits, flattened), and non-MLP backbones (``convnet``,
  ``resnet``) keep their ReLU layers: only the MLP is all-``tanh`` as in DH;
- ``weight_norm`` covers kernels only: the biases ``c^m`` of ``J4`` are not penalised;
- mini-batch Adam instead of full-batch gradient descent, and ``N`` is the batch size (above).

On ``digits`` this objective destroys the codes: every input ends with the same code (mAP 0.10,
chance level) within 20-300 steps, from 0.33 for the untrained network. Nothing in it prefers a
code that differs between inputs: quantization and the second moment ``tr(HHᵀ)/N`` are both
lowest when every output is saturated, and on inputs with a common non-zero mean (pixels in
``[0, 1]``) the shared sign of a bit wins. Tried at 32 bits (seed 0), all collapsing: Adam
learning rates 1e-3, 1e-4, 1e-5; ``N`` the training-set size (λ1/500) instead of the batch;
hidden widths (256, 256) and (64,); λ1 = 0. On mean-centred inputs (a diagnostic, not this
recipe) the codes survive at validation mAP 0.49, about LSH's.
"""

from __future__ import annotations

import math
import types

import jax
import jax.numpy as jnp

from dlhash_jax import losses
from dlhash_jax import models
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import build_backbone

CITATION = (
    "Venice Erin Liong, Jiwen Lu, Gang Wang, Pierre Moulin and Jie Zhou, 'Deep hashing for compact "
    "binary codes learning', CVPR 2015."
)

# λ1 = 100 (variance), λ2 = 0.001 (orthogonality), λ3 = 0.001 (weight decay): the values the
# paper sets for all its experiments.
DEFAULT_HPARAMS = types.MappingProxyType(
    {"lambda_variance": 100.0, "lambda_orthogonality": 0.001, "lambda_weight": 0.001}
)


def kernels(params) -> list[jax.Array]:
    """The 2-D weight matrices (dense kernels ``[d_in, d_out]``) of a parameter pytree."""
    return [leaf for leaf in jax.tree_util.tree_leaves(params) if jnp.ndim(leaf) == 2]


def orthogonality(params) -> jax.Array:
    """``Σ_m ‖W^m W^mᵀ − I‖²_F`` over the dense kernels, via ``decorrelation_loss``.

    A flax kernel ``K`` ``[d_in, d_out]`` is ``W^mᵀ``, so ``W^m W^mᵀ = KᵀK``, and
    ``decorrelation_loss(√d_in · K) = ‖KᵀK − I‖²_F``.
    """
    return sum(
        losses.decorrelation_loss(math.sqrt(kernel.shape[0]) * kernel)
        for kernel in kernels(params)
    )


def make_model(config, num_classes):
    """DH's network: ``tanh`` after every layer, the hash layer included.

    With ``model.backbone == "mlp"`` the hidden layers are ``tanh`` (DH); other backbones are
    built as configured.
    """
    del num_classes
    model_config = config.model
    if model_config.backbone == "mlp":
        backbone = models.MLP(
            features=tuple(model_config.features),
            activation=jnp.tanh,
            dropout_rate=model_config.dropout_rate,
        )
    else:
        backbone = build_backbone(model_config)
    head = models.HashHead(config.bits, relaxation="tanh")
    return models.HashNetwork(backbone, head)


def loss_fn(outputs, batch, ctx):
    """``2J/B`` of DH on the batch: quantization, variance, weight orthogonality and decay.

    Args:
      outputs: model outputs on the local batch: ``"relaxed"`` is ``h`` ``[B, L]`` (``tanh``).
      batch: unused (DH reads no labels).
      ctx: :class:`~dlhash_jax.methods.LossContext`: ``ctx.params`` the network's parameters
        (their dense kernels enter the orthogonality and weight terms); ``ctx.hparams`` is
        ``{"lambda_variance": λ1, "lambda_orthogonality": λ2, "lambda_weight": λ3}``.

    Returns:
      ``(loss, {"quantization": ..., "variance": ..., "orthogonality": ..., "weight": ...})``.
    """
    del batch
    h = outputs["relaxed"]
    params = ctx.params
    num_items = h.shape[0]
    quantization = losses.quantization_loss(h)
    variance = losses.variance_loss(h)
    orthogonal = orthogonality(params)
    weight = losses.weight_norm(params, squared=True)
    loss = (
        quantization
        + ctx.hparams["lambda_variance"] / num_items * variance
        + ctx.hparams["lambda_orthogonality"] / num_items * orthogonal
        + ctx.hparams["lambda_weight"] / num_items * weight
    )
    return loss, {
        "quantization": quantization,
        "variance": variance,
        "orthogonality": orthogonal,
        "weight": weight,
    }


RECIPE = Recipe(
    name="dh",
    title="Deep hashing",
    citation=CITATION,
    taxonomy=Taxonomy("none", "single"),
    make_model=make_model,
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
)
