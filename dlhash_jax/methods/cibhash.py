"""CIBHash: unsupervised hashing with a contrastive information bottleneck (Qiu et al., IJCAI 2021).

Not in the survey; an unsupervised, single-sample method (§5.1.1, no labels). Every training
image ``x_i`` is augmented twice, ``v_i¹`` and ``v_i²``; the network gives logits ``z`` and bit
probabilities ``q = σ(z)`` for each view, and the codes are *sampled* from them by the
probabilistic binary layer, ``b = sgn(q − u)`` with ``u ~ U(0, 1)`` per bit (so each bit is +1
with probability ``q``), back-propagated with the straight-through estimator ``∂b/∂q := 1``.
The objective over a batch of N images is

    L = NT-Xent_τ(b¹, b²)
        + β · (1/2N) Σ_i [KL(p(b | v_i¹) ‖ p(b | v_i²)) + KL(p(b | v_i²) ‖ p(b | v_i¹))],

the contrastive loss between the two views' codes (each view must pick its partner out of the
``2N − 1`` other views by cosine similarity of codes, i.e. by Hamming distance) plus ``β``
times the symmetrised KL divergence between the two views' bit distributions, the multi-view
information-bottleneck bound on what the code keeps of the view beyond the image. No labels
are read. At test time the code is ``sgn(z)`` (the bits with ``q ≥ 0.5``).

Mapping onto the catalogue: the first term is :func:`~dlhash_jax.losses.nt_xent_loss` of the
sampled ±1 codes with ``temperature = τ``; the second is
:func:`~dlhash_jax.losses.symmetric_bernoulli_kl_loss` of the two views' logits (with the
authors' stop-gradient on each KL's target). The views come from
:mod:`dlhash_jax.data.augment` (:func:`~dlhash_jax.data.augment.two_views`: random resized crop,
shift, Gaussian noise), drawn inside the model from the training step's ``"dropout"`` RNG
stream, as are the sampling thresholds ``u``: the step folds that key from the state's key,
the step number and the device, so the views and codes of a step are the same in a resumed run
as in an uninterrupted one. :class:`CIBHashNetwork` encodes both views in one pass of the
backbone over ``2B`` images; in evaluation it encodes the inputs as they are.

Where the paper's text was not available to us (only its abstract and introduction were), the
formulas and defaults follow the authors' released code (qiuzx2/CIBHash, ``model/CIBHash.py``
and ``model/base_model.py``), whose loss is ``NtXentLoss(z_i, z_j) + weight · (KL(i‖j) +
KL(j‖i))/2`` with the target of each KL detached.

Deviations from the paper and the authors' code:

- Views: the authors augment natural images (random resized crop of 50–100 % of the area,
  flips, colour jitter, grey-scaling, Gaussian blur, at 224×224). Flips and colour changes do
  not suit grey digits, so our views are a random resized crop (the same area range by
  default, aspect ratio kept), a shift of at most ``max_shift`` pixels and Gaussian noise of
  ``noise_std`` clipped to [0, 1]; these three strengths are ours, hyper-parameters of the
  recipe chosen on the validation split of ``digits`` (``DEFAULT_HPARAMS``): the crop and the
  noise, no extra shift (the crop's random position already moves the digit; an extra shift
  lowered validation mAP on ``digits`` and on ``mnist5k``).
- Backbone: the authors train two layers (4096 → 1024 → ReLU → L) on a frozen ImageNet VGG-16;
  we train the run config's backbone from scratch with a linear hash layer on its features.
- Sampling: the authors' code thresholds ``σ(z)`` at 0.5 in training too (deterministic
  codes); we sample ``u ~ U(0, 1)`` as the paper's probabilistic binary layer describes
  (``sample_codes=True``; ``False`` is the authors' threshold). The straight-through gradient
  is the same (identity from the code to ``σ(z)``). Sampled codes of an untrained network are
  noise (``q ≈ 0.5``), so the loss first sits at ``log(2B − 1)``, every code alike, and
  validation mAP falls for a few hundred steps before it rises; the threshold avoids that
  start but ends at the same place (``digits``, seed 0, 4,900 steps: validation mAP 0.835
  sampled, 0.834 thresholded; test mAP 0.821 and 0.827).
- Numerics: the authors add ``1e-8`` inside their logs; we compute the KL from the logits
  (``log σ(±z)``), exact and finite.
- ``sgn(0) = +1`` (the library's convention) where the authors' ``torch.sign`` gives 0 at
  ``σ(z) = 0.5`` exactly.
"""

from __future__ import annotations

import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlhash_jax import codes
from dlhash_jax import losses
from dlhash_jax import relaxations
from dlhash_jax.data import augment
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import build_backbone

CITATION = (
    "Zexuan Qiu, Qinliang Su, Zijing Ou, Jianxing Yu and Changyou Chen, 'Unsupervised hashing "
    "with contrastive information bottleneck', IJCAI 2021 (arXiv:2105.06138)."
)

# temperature τ = 0.3 and β = 0.001: the defaults of the authors' released code (qiuzx2/CIBHash,
# model/CIBHash.py: `--temperature 0.3`, `--weight 0.001`; its search grid is τ ∈ {0.2, 0.3,
# 0.4}, β ∈ {1e-5 … 5e-3}). The view strengths are ours (module docstring), chosen by the best
# validation mAP on `digits`, seed 0, 32 bits, 700 epochs of batch 64:
# - noise of standard deviation 0.3 on [0, 1] intensities: 0.835, against 0.826 (0.2) and 0.777
#   (0.1); with a 1-pixel shift 0.655 (0), 0.717 (0.1), 0.751 (0.2);
# - crops of 50–100 % of the area, the authors' RandomResizedCrop(scale=(0.5, 1.0)): 0.835,
#   against 0.832 for 70–100 % (noise 0.3); 0.768 (30 %), 0.777 (50 %), 0.783 (70 %) and 0.591
#   without crops (noise 0.1);
# - no extra shift: the crop's random position already moves the digit, and a shift of at most 1
#   pixel lowered validation mAP (0.717 against 0.777, noise 0.1); on `mnist5k` (seed 0, 3,000
#   steps, noise 0.3) a shift of at most 3 pixels gave validation mAP 0.450 against 0.494.
# sample_codes: the paper's Bernoulli sampling (False: the authors' code's threshold at 0.5).
DEFAULT_HPARAMS = types.MappingProxyType(
    {"temperature": 0.3, "beta": 0.001, "max_shift": 0, "min_area": 0.5, "noise_std": 0.3,
     "sample_codes": True}
)


def stochastic_sign(logits: jax.Array, threshold: jax.Array) -> jax.Array:
    """CIBHash's probabilistic binary layer: ``b = sgn(σ(z) − u)``, ``∂b/∂σ(z) := 1``.

    The forward value is the ±1 code, +1 exactly when ``σ(z) ≥ u`` (so with ``u ~ U(0, 1)``
    each bit is +1 with probability ``σ(z)``; with ``u = 0.5`` it is ``sgn(z)``). The backward
    pass is the straight-through estimator of :func:`dlhash_jax.relaxations.sign_ste` applied
    to ``σ(z) − u``: the gradient reaching ``b`` reaches ``σ(z)`` unchanged, hence ``z``
    multiplied by ``σ'(z)``. No gradient reaches ``threshold``.

    Args:
      logits: ``z``, any shape.
      threshold: ``u`` of the same shape.

    Returns:
      ``b`` in {−1, +1}, the dtype of ``logits``.
    """
    return relaxations.sign_ste(jax.nn.sigmoid(logits) - jax.lax.stop_gradient(threshold))


class CIBHashNetwork(nn.Module):
    """A backbone and a linear hash layer; in training, two augmented views and sampled codes.

    Training (``train=True``, needs ``rngs={"dropout": key}``): one key from the ``"dropout"``
    stream makes two views of the batch (:func:`dlhash_jax.data.augment.two_views`), the
    backbone and ``Dense(L)`` encode both (``2B`` rows in one pass), and a second key draws the
    thresholds ``u`` of :func:`stochastic_sign` (unless ``sample_codes`` is off). Evaluation:
    ``z = Dense(L)(backbone(x))``, code ``sgn(z)``.

    Attributes:
      backbone: module called as ``backbone(x, train=...)`` returning ``[B, D]``.
      bits: code length ``L``.
      max_shift, min_area, noise_std: strengths of the views (see :mod:`dlhash_jax.data.augment`).
      sample_codes: sample ``u ~ U(0, 1)`` (the paper); ``False`` thresholds at ``u = 0.5`` in
        training too (the authors' code).

    Call:
      ``x``: ``[B, H, W, C]`` float images; ``train``: training mode; ``beta``: ignored
      (accepted so the training loop can pass it).

    Returns:
      Evaluation: ``{"pre": z, "relaxed": sgn(z), "features": [B, D]}``. Training, in addition
      ``"view_pre"``: ``[2, B, L]`` logits of the two views and ``"view_codes"``: ``[2, B, L]``
      their sampled ±1 codes; ``"pre"``, ``"relaxed"`` and ``"features"`` are the first view's.

    Raises:
      ValueError: in training, if ``x`` is not a float NHWC batch.
    """

    backbone: nn.Module
    bits: int
    max_shift: int = 0
    min_area: float = 0.5
    noise_std: float = 0.3
    sample_codes: bool = True

    @nn.compact
    def __call__(
        self, x: jax.typing.ArrayLike, *, train: bool, beta: jax.typing.ArrayLike = 1.0
    ) -> dict[str, jax.Array]:
        del beta
        hash_layer = nn.Dense(self.bits, name="hash")
        if not train:
            features = self.backbone(x, train=False)
            z = hash_layer(features)
            return {"pre": z, "relaxed": codes.sign(z), "features": features}
        if np.ndim(x) != 4:
            raise ValueError(
                "CIBHash trains on two augmented views of image inputs [B, H, W, C], got shape "
                f"{np.shape(x)}; use an image protocol (digits, mnist5k, ...)."
            )
        batch = np.shape(x)[0]
        view_key, sample_key = jax.random.split(self.make_rng("dropout"))
        views = augment.two_views(
            view_key,
            x,
            max_shift=self.max_shift,
            min_area=self.min_area,
            noise_std=self.noise_std,
        )
        features = self.backbone(jnp.concatenate(views, axis=0), train=True)
        z = hash_layer(features)
        if self.sample_codes:
            threshold = jax.random.uniform(sample_key, z.shape, z.dtype)
        else:
            threshold = jnp.full(z.shape, 0.5, z.dtype)
        b = stochastic_sign(z, threshold)
        view_pre = z.reshape(2, batch, self.bits)
        view_codes = b.reshape(2, batch, self.bits)
        return {
            "pre": view_pre[0],
            "relaxed": view_codes[0],
            "features": features[:batch],
            "view_pre": view_pre,
            "view_codes": view_codes,
        }


def make_model(config, num_classes):
    """The run config's backbone and a hash layer, with the view strengths of ``config.hparams``."""
    del num_classes  # Unsupervised: no classifier.
    hparams = {**DEFAULT_HPARAMS, **config.hparams.to_dict()}
    return CIBHashNetwork(
        build_backbone(config.model),
        config.bits,
        max_shift=hparams["max_shift"],
        min_area=hparams["min_area"],
        noise_std=hparams["noise_std"],
        sample_codes=hparams["sample_codes"],
    )


def loss_fn(outputs, batch, ctx):
    """NT-Xent between the two views' sampled codes plus ``β`` times their symmetrised KL.

    Args:
      outputs: model outputs on the local batch in training: ``"view_codes"`` and
        ``"view_pre"``, each ``[2, B, L]``.
      batch: local batch (not read: no labels).
      ctx: :class:`~dlhash_jax.methods.LossContext`; ``ctx.hparams`` holds ``"temperature"``
        ``τ`` and ``"beta"`` ``β`` (and the view strengths, which the model reads).

    Returns:
      ``(loss, {"contrastive": ..., "kl": ...})``.
    """
    del batch
    view_codes, view_pre = outputs["view_codes"], outputs["view_pre"]
    contrastive = losses.nt_xent_loss(
        view_codes[0], view_codes[1], temperature=ctx.hparams["temperature"]
    )
    kl = losses.symmetric_bernoulli_kl_loss(view_pre[0], view_pre[1])
    loss = contrastive + ctx.hparams["beta"] * kl
    return loss, {"contrastive": contrastive, "kl": kl}


RECIPE = Recipe(
    name="cibhash",
    title="Unsupervised hashing with contrastive information bottleneck",
    citation=CITATION,
    taxonomy=Taxonomy("none", "single"),
    make_model=make_model,
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
)
