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
``λ / B``. On ``D`` devices each holds ``B / D`` rows and the loss still divides by ``B``
(:func:`global_batch_size`), so the averaged gradient is the single-device one (dividing by the
local ``B / D`` weighted the variance and weight terms ``D`` times more: parameters 6e-3 apart
after 10 steps on 2 devices). The loss reaches the weights as ``ctx.params`` (the recipe
contract's loss context), the parameters being differentiated.

What collapses, and why. On ``digits`` the paper's network on the raw pixels gave every input
the same code (mAP 0.103 at 16, 32 and 64 bits, seeds 0 / 1 / 2: chance). Two causes, found in
turn:

1. The inputs' common positive mean, as in SDH (:mod:`.sdh` has the measurements on this same
   network): each unit's pre-activation ``w·x + c`` has a part ``w·μ + c`` shared by all items,
   and quantization and variance, which only ask every output to saturate, are satisfied
   fastest by that shared part, so every bit takes one sign for all items. Even without hidden
   layers (a single ``tanh`` layer, 1,000 steps) the raw pixels end in one code for all 500
   training items (validation mAP 0.110 from step 100; test 0.226, seed 0, from the step-20
   checkpoint). The fix, shared with SDH: the network sees standardised inputs
   (:class:`~dlhash_jax.methods._standardize.StandardizedInputs`, a ``BatchNorm`` without
   scale or offset; ReLU backbones also get standardised features before the hash layer).
2. With standardised inputs and hidden ``tanh`` layers the codes still merge, more slowly: the
   objective scores each bit alone, ``(h − sgn h)² − (λ1/B) h²`` (``−h² − 2|h| + 1`` at the
   paper's ``λ1/B = 2``), lowest at ``|h| = 1`` whichever items share a sign, so the hidden
   layers saturate and send many inputs to the same hidden pattern. With the protocol's widths
   256-256 and 200 steps the best validation checkpoint is the first one (step 20) in 8 of the
   9 runs at 16, 32 and 64 bits (seeds 0-2), 10 to 57 distinct codes of the 500 training items
   remain at the end, and at 32 bits, seed 0, validation mAP falls from 0.534 at step 20 to
   0.434 at step 200. A single ``tanh`` layer ``h = tanh(W x + c)`` cannot merge
   inputs that way: on centred inputs it saturates by turning each projection ``w`` towards
   a direction along which the items spread (the gradient of ``Σ_i |w·x_i|`` is
   ``Σ_i sgn(w·x_i) x_i``), and its validation mAP rises throughout training (0.541 at step 20
   to 0.626 at step 1,000, seed 0; 329-364 distinct codes). The digits config therefore uses
   no hidden layer (``model.features = ()``): the paper's terms and weights on DH's ``tanh``
   hash layer, with standardised inputs.

Measured at 32 bits (test mAP of the best validation checkpoint, seed 0 unless three seeds
0 / 1 / 2 are given; Adam 1e-3, batch 50, 300 steps unless stated; LSH 0.467 / 0.459 / 0.515,
ITQ 0.654 / 0.631 / 0.670, ``experiment.evaluate_baseline`` for the same seeds):

    raw pixels, widths 256-256, 200 steps (the paper's network)    0.103 / 0.103 / 0.103
    raw pixels, no hidden layer, 1,000 steps                        0.226 (one code)
    standardised, 256-256, 200 steps                               0.529 / 0.421 / 0.562
      (16 bits 0.458 / 0.410 / 0.488; 64 bits 0.531 / 0.525 / 0.554, under LSH's 0.59)
    standardised, 512-512 (SDH's widths), 1,000 steps              0.526 (best at step 20)
    standardised, 64                                               0.536 (best at step 20)
    standardised, 256-256, hidden features standardised too        0.543 (best at step 20)
    standardised, 256-256, Adam 1e-4                               0.540 (best at step 60)
    standardised, 256-256, N = the training-set size (λ / 500)     0.553 (best at step 20)
    standardised, 256-256, SGD 0.01 / 0.1 / 1                      0.426 / 0.457 / 0.477
    standardised, 48-48 started from each layer's principal
      directions (our reading of the paper's Algorithm 1)          0.441 (15 codes at the end)
    standardised, 64-64, λ2 = 100 instead of 0.001                 0.612 (falls after step 200)
    standardised, no hidden layer, 300 steps                       0.611 / 0.572 / 0.591
    standardised, no hidden layer, 1,000 steps (the config)        0.628 / 0.611 / 0.619
      (16 bits 0.572 / 0.537 / 0.490, LSH 0.403 / 0.404 / 0.377;
       64 bits 0.643 / 0.638 / 0.657, LSH 0.602 / 0.581 / 0.587)

Deviations from the paper:

- the paper's inputs are hand-crafted features (GIST of CIFAR-10 images, MNIST pixels, SIFT);
  here they are the protocol's (8×8 digits, flattened), standardised per input element (above);
  non-MLP backbones (``convnet``, ``resnet``) keep their ReLU layers and get their features
  standardised before the ``tanh`` hash layer: only the MLP is all-``tanh`` as in DH;
- on ``digits`` no hidden layer (the config; above); the recipe builds any widths;
- ``weight_norm`` covers kernels only: the biases ``c^m`` of ``J4`` are not penalised;
- mini-batch Adam instead of full-batch gradient descent, and ``N`` is the global batch size
  (above).
"""

from __future__ import annotations

import math
import types

import jax
import jax.numpy as jnp
from jax import lax

from dlhash_jax import losses
from dlhash_jax import models
from dlhash_jax.methods._recipe import AXIS_NAME
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import build_backbone
from dlhash_jax.methods._standardize import StandardizedFeatures
from dlhash_jax.methods._standardize import StandardizedInputs

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


def global_batch_size(local_size: int) -> int:
    """The number of items of the global batch, from a device's share of it.

    Inside the replicated training step (``pmap`` or ``shard_map`` over ``AXIS_NAME``) each of
    the ``D`` devices sees ``local_size = B / D`` items: this returns ``D · local_size = B``, a
    static int. Outside a mapped axis (a plain ``jit``, a custom loop) the batch is all there is
    and ``local_size`` is returned.
    """
    try:
        num_devices = lax.axis_size(AXIS_NAME)
    except NameError:  # No mapped device axis is bound: one device holds the whole batch.
        num_devices = 1
    return num_devices * local_size


def tanh_network(config, num_classes=None):
    """DH's network as the paper has it: ``tanh`` after every layer, the hash layer included.

    With ``model.backbone == "mlp"`` the hidden layers are ``tanh`` (DH); other backbones are
    built as configured (ReLU). :func:`make_model` runs it on standardised inputs.
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


def make_model(config, num_classes):
    """DH's network (:func:`tanh_network`) on standardised inputs (DH's and SDH's model).

    ``StandardizedInputs(network)`` (:mod:`._standardize`): every input element at zero mean and
    unit variance over the batch in training, over the running averages in evaluation. With
    ``model.backbone == "mlp"`` the network is DH's all-``tanh`` MLP; the ReLU backbones
    (``convnet``, ``resnet``) also get their features standardised before the ``tanh`` hash
    layer (:class:`~dlhash_jax.methods._standardize.StandardizedFeatures`).
    """
    if config.model.backbone == "mlp":
        network = tanh_network(config, num_classes)
    else:
        network = models.HashNetwork(
            StandardizedFeatures(build_backbone(config.model)),
            models.HashHead(config.bits, relaxation="tanh"),
        )
    return StandardizedInputs(network)


def loss_fn(outputs, batch, ctx):
    """``2J/B`` of DH on the batch: quantization, variance, weight orthogonality and decay.

    ``B`` is the global batch size (:func:`global_batch_size`): on ``D`` devices each device's
    loss weighs its terms as one device's loss on the whole batch does, so the averaged
    gradient of the replicated step is the single-device gradient.

    Args:
      outputs: model outputs on the local batch: ``"relaxed"`` is ``h`` ``[b, L]`` (``tanh``).
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
    num_items = global_batch_size(h.shape[0])
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
