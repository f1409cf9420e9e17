"""CSQ: central similarity quantization (Yuan et al., CVPR 2020).

Not in the survey (which appeared the same year); a single-sample method of the kind §5.2.1
and §5.3.1 describe, supervised by labels alone. Every class gets a fixed *hash centre*
(:func:`dlhash_jax.centers.hash_centers`: rows of a Hadamard matrix, mutually at Hamming distance
``L/2``), an item's centre is its class's centre or, for several labels, the sign of the sum of
its classes' centres (:func:`dlhash_jax.centers.label_centers`), and each relaxed code
``h_i = tanh(u_i)`` is pulled towards its centre ``c_i``:

    L = L_C + λ L_Q,
    L_C = −(1/(N L)) Σ_ik [c̃_ik log h̃_ik + (1 − c̃_ik) log(1 − h̃_ik)],
    L_Q = (1/(N L)) Σ_ik (|h_ik| − 1)²,      h̃ = (h + 1)/2,  c̃ = (c + 1)/2.

Mapping onto the catalogue: ``h̃ = (1 + tanh u)/2 = σ(2u)``, so ``L_C`` is
:func:`~dlhash_jax.losses.multilabel_bce_loss` of the logits ``2u`` against ``c̃``, divided by
``L`` (that loss sums over its columns, the paper's BCE takes their mean); this form never
evaluates ``log 0``. ``L_Q`` is :func:`~dlhash_jax.losses.hash_constraint_l2` (survey eq 8) of
``h`` divided by ``L``, for the same reason.

Deviations from the paper:

- Backbone: the paper fine-tunes ResNet-50 / AlexNet pre-trained on ImageNet (a smaller learning
  rate for the backbone than for the hash layer); we train the run config's backbone (an MLP on
  ``digits``, a small ConvNet on ``digits_mosaic``) from scratch with one learning rate.
- ``L_Q``: the paper smooths ``‖ |h| − 1 ‖₁`` with ``log cosh``; the authors' released code
  (whose λ we take) uses the squared form above, which is in the catalogue.
- Random centres (code lengths that are not a power of two, or more than ``2L`` classes): the
  paper samples Bernoulli(0.5) bits; we keep the best of 100 draws of balanced codes, close to
  the authors' tutorial (see :func:`~dlhash_jax.centers.hash_centers`). Centres and the
  tie-breaking code are drawn from the fixed seed ``CENTER_SEED``, independent of the run seed.
- The pairwise term of the authors' code (weight ``lambda1``) is off in every command they
  publish and is not part of CSQ's objective in the paper; it is left out.
- Optimiser and schedule: the run config chooses (Adam with a constant rate on ``digits``).
"""

from __future__ import annotations

import functools
import types

from dlhash_jax import centers
from dlhash_jax import losses
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import hash_network

CITATION = (
    "Li Yuan, Tao Wang, Xiaopeng Zhang, Francis E. H. Tay, Zequn Jie, Wei Liu and Jiashi Feng, "
    "'Central similarity quantization for efficient image and video retrieval', CVPR 2020 "
    "(arXiv:1908.00347)."
)

# λ = 0.05: the quantization weight of the authors' ResNet-50 commands, the backbone of the
# paper's image tables (yuanli2333/Hadamard-Matrix-for-hashing, README, `--lambda2 0.05`; their
# AlexNet commands use 1e-3 / 1e-4).
DEFAULT_HPARAMS = types.MappingProxyType({"lambda_q": 0.05})

# Seed of the random centres (used only off the Hadamard path) and of the tie-breaking code.
CENTER_SEED = 0


def item_centers(labels, bits: int):
    """The hash centre of every item of a batch: ``[B, C]`` labels → ``[B, bits]`` ±1 codes.

    The class centres and the tie-breaking code depend only on ``C``, ``bits`` and
    ``CENTER_SEED``: they are built on the host at trace time and enter the jitted step as
    constants.
    """
    num_classes = labels.shape[1]
    table = centers.hash_centers(num_classes, bits, seed=CENTER_SEED)
    tie_break = centers.tie_break_code(bits, seed=CENTER_SEED)
    return centers.label_centers(labels, table, tie_break)


def loss_fn(outputs, batch, ctx):
    """Central similarity (BCE to the item's hash centre) plus ``λ`` times quantization.

    Args:
      outputs: model outputs on the local batch: ``"pre"`` ``u`` and ``"relaxed"``
        ``h = tanh(u)``, both ``[B, L]``.
      batch: local batch with ``"labels"`` ``[B, C]``.
      ctx: :class:`~dlhash_jax.methods.LossContext`; ``ctx.hparams`` is ``{"lambda_q": λ}``.

    Returns:
      ``(loss, {"central": L_C, "quantization": L_Q})``.
    """
    pre, relaxed = outputs["pre"], outputs["relaxed"]
    bits = pre.shape[1]
    target = (item_centers(batch["labels"], bits) + 1.0) / 2.0
    # (1 + tanh u)/2 = sigmoid(2u): the BCE of the paper on logits 2u, averaged over bits.
    central = losses.multilabel_bce_loss(2.0 * pre, target) / bits
    quantization = losses.hash_constraint_l2(relaxed) / bits
    loss = central + ctx.hparams["lambda_q"] * quantization
    return loss, {"central": central, "quantization": quantization}


RECIPE = Recipe(
    name="csq",
    title="Central similarity quantization",
    citation=CITATION,
    taxonomy=Taxonomy("single", "single"),
    # A backbone and a tanh hash layer: CSQ's outputs h = tanh(u) lie in (-1, 1).
    make_model=functools.partial(hash_network, relaxation="tanh"),
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
)
