"""BiHalf (Li & van Gemert, AAAI 2021): every bit splits the batch in half, codes whose cosine
similarities match those of the inputs' features.

Not in the survey; an unsupervised, single-sample method (§5.1.1). A bit carries the most
information (one bit of entropy) when it is +1 on half the items and −1 on the other half.
Instead of a balance term in the loss, BiHalf's hash layer enforces it: in the forward pass,
for each bit, the half of the mini-batch with the larger continuous values ``u`` gets +1 and
the other half −1 (the optimal transport of the batch's values onto the half-half
distribution); in the backward pass the gradient of the codes goes straight through, plus
``γ (U − B) / (N·L)``, the gradient of a penalty that pulls ``U`` towards its codes
(:func:`dlhash_jax.relaxations.bihalf_sign`). The objective on the codes is the
similarity-preserving one of unsupervised GreedyHash: the authors' image-hashing code
(liyunqianggyn/Deep-Unsupervised-Image-Hashing, ``ImageHashing/Cifar10_I.py`` and the others)
pairs the first half of each batch of ``N`` items with the second half and minimises

    (2/N) Σ_{i < N/2} (cos(b_i, b_{i+N/2}) − cos(x_i, x_{i+N/2}))²,     B = BiHalf(U),

with ``x`` the VGG-16 fc7 features of the images and ``γ = 6`` in the layer's backward pass.
No other term: the penalty lives in the layer's gradient. Test items are encoded with
``sgn(u)`` (the authors' ``compress``), as every recipe here is.

Mapping onto the catalogue: ``u`` is the ``"pre"`` output of ``HashHead(relaxation="none")``;
the loss applies :func:`dlhash_jax.relaxations.bihalf_sign` (``gamma=γ``) to the local batch,
since the split is a statistic of the batch, and
:func:`~dlhash_jax.losses.cosine_similarity_matching_loss` to its two halves
(:func:`~dlhash_jax.methods.greedyhash_unsupervised.halves`).

Deviations from the paper:

- Features: the paper's similarity target is the cosine of a pre-trained VGG-16's fc7
  features, and only a linear hash layer on them is trained. There is no pre-trained network
  for 8×8 digits (or the 28×28 MNIST digits of ``mnist5k``); the target here is the cosine of
  the inputs themselves, flattened and centred by their mean over the training split, as for
  unsupervised GreedyHash, whose objective this is
  (:func:`~dlhash_jax.methods.greedyhash_unsupervised.prepare`, ``center_features=True``), and
  the run config's backbone (an MLP on ``digits``, a ConvNet on ``mnist5k``) is trained from
  scratch with the hash layer. The balanced split leaves BiHalf nearly indifferent to the
  centring, which unsupervised GreedyHash needs on ``digits``: uncentred pixels give mAP
  0.757 / 0.759 / 0.750 (32 bits, seeds 0 / 1 / 2; ``center_features=False``), centred
  0.755 / 0.740 / 0.731.
- The split is over each device's share of the batch (one device in the shipped configs).
- A batch of odd size leaves its last item unpaired in the loss (the authors' code needs an
  even batch); the split gives ``⌊N/2⌋`` items +1, as the authors' ``int(N/2)``.
- γ's scale: the extra gradient is ``γ (U − B) / (N·L)`` as in the authors' code (``(U - B) /
  B.numel()``); the paper's text was not available to us to compare its printed form.
- Optimiser and schedule: the authors use SGD (momentum 0.9, weight decay 5e-4, learning rate
  1e-4 divided by 10 every 120 epochs on CIFAR-10, batch 32); the run config chooses (Adam
  1e-3).
"""

from __future__ import annotations

import functools
import types

from dlhash_jax import losses
from dlhash_jax import relaxations
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import hash_network
from dlhash_jax.methods.greedyhash_unsupervised import halves
from dlhash_jax.methods.greedyhash_unsupervised import prepare
from dlhash_jax.methods.greedyhash_unsupervised import target_features

CITATION = (
    "Yunqiang Li and Jan van Gemert, 'Deep unsupervised image hashing by maximizing bit "
    "entropy', AAAI 2021 (arXiv:2012.12334)."
)

# γ = 6: the authors' image-hashing code (ImageHashing/Cifar10_I.py, Cifar10_II.py,
# Flickr25k.py, Mscoco.py: `gamma = 6`, the backward `g + gamma * (U - B) / B.numel()`).
# center_features: ours, not the paper's, as in greedyhash_unsupervised (module docstring).
DEFAULT_HPARAMS = types.MappingProxyType({"gamma": 6.0, "center_features": True})


def loss_fn(outputs, batch, ctx):
    """Cosine matching of the BiHalf codes of the batch's two halves.

    Args:
      outputs: model outputs on the local batch; ``"pre"`` is ``U`` ``[B, L]``.
      batch: local batch; only ``"inputs"`` is read (the features of the target; no labels).
      ctx: :class:`~dlhash_jax.methods.LossContext`; ``ctx.hparams`` is ``{"gamma": γ,
        "center_features": ...}``, ``ctx.prepared`` the training mean of the inputs
        (:func:`~dlhash_jax.methods.greedyhash_unsupervised.prepare`).

    Returns:
      ``(loss, {"similarity": ..., "quantization": ...})``; ``quantization`` is
      ``mean (U − B)²``, the gap the layer's extra gradient closes (logged, not in the loss).
    """
    u = outputs["pre"]
    b = relaxations.bihalf_sign(u, gamma=ctx.hparams["gamma"])
    (b1, b2), (x1, x2) = halves(b), halves(target_features(batch["inputs"], ctx))
    similarity = losses.cosine_similarity_matching_loss(b1, b2, x1, x2)
    quantization = ((u - b) ** 2).mean()
    return similarity, {"similarity": similarity, "quantization": quantization}


RECIPE = Recipe(
    name="bihalf",
    title="Bi-half net",
    citation=CITATION,
    taxonomy=Taxonomy("none", "single"),
    # A backbone and a linear hash layer; the batch split is applied in the loss.
    make_model=functools.partial(hash_network, relaxation="none"),
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
    prepare=prepare,
)
