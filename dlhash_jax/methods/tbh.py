"""TBH: auto-encoding twin-bottleneck hashing (Shen et al., CVPR 2020).

Not in the survey; an unsupervised, single-sample method (§5.1.1, no labels), an auto-encoder
with two bottlenecks. The encoder maps an input ``x`` (flattened) through a hidden layer
``h = ReLU(W₁ f(x))`` to two heads: the *binary bottleneck*, logits ``z = W_b h`` binarised
to ``b = 1[σ(z) > ε] ∈ {0, 1}^L``, and the *continuous bottleneck*
``c = σ(W_c h) ∈ (0, 1)^{512}``. The twin bottleneck connects them through a graph built from
the codes of the batch: the adjacency

    A_ij = (1 − d_H(b_i, b_j)/L)^{1.4}          (self-connected: A_ii = 1)

and one graph convolution ``g = σ(D^{−1/2} A D^{−1/2} c W_g)``, ``D = diag(Σ_j A_ij)``, so
what the decoder receives about an item is mixed with the items whose codes are close. The
decoder ``x̂ = ReLU(W₄ ReLU(W₃ g))`` reconstructs the input. Two discriminators, one dense
layer each, regularise the bottlenecks as in a Wasserstein auto-encoder: ``D₁`` tells the
codes ``b`` from ``Bernoulli(0.5)`` samples, ``D₂`` tells ``g`` from ``U(0, 1)`` samples.
The encoder, the graph convolution and the decoder (the "actor") minimise

    ½ Σ_i ‖x_i − x̂_i‖² − adv(D₁) − adv(D₂),

the discriminators (the "critic") minimise ``adv(D₁) + adv(D₂)``, with ``adv`` the
discriminator's binary cross-entropy (:func:`~dlhash_jax.losses.adversarial_loss`). The binary
layer back-propagates with the distributional derivative ``∂b/∂z := σ(z)(1 − σ(z))``
(:func:`dlhash_jax.methods.jmlh.stochastic_binary`, the same authors' layer), so the
reconstruction error reaches the encoder through the graph the codes build, and the codes are
learned to be the graph under which the continuous features best reconstruct the batch. At
test time the code is the binary bottleneck alone, ``sgn(z)`` (the bits with ``σ(z) ≥ 0.5``).

One loss for a minimax game. The training loop has one loss and one optimizer; the recipe
feeds each discriminator its generated input through
:func:`~dlhash_jax.relaxations.gradient_reversal` (identity forward, negated derivative
backward) and minimises

    ½ Σ_i ‖x_i − x̂_i‖² + adv(D₁(b_rev)) + adv(D₂(g_rev)).

The discriminators' parameters see only the ``adv`` terms, with their own sign: the critic's
gradient. Every other parameter reaches the ``adv`` terms only through ``b`` and ``g``, where
the reversal flips the sign: the actor's gradient of ``rec − adv₁ − adv₂``. The test
``test_one_loss_gives_the_actor_and_the_critic_their_own_gradients`` checks it parameter by
parameter against the two losses differentiated separately. The authors step the two groups
with two Adam optimizers of the same settings; Adam is element-wise (each parameter's moments
and step depend on its own gradients only, and its step count is the training step), so one
Adam over both groups takes exactly their steps. What breaks that equivalence is a transform
that mixes parameters: the library's optimizer (``dlhash_jax.train.make_optimizer``) does so
only with ``optimizer.grad_clip_norm > 0`` (``optax.clip_by_global_norm`` over all
parameters), which is off by default and in the configs. Its weight decay, learning-rate
schedules and ``optimizer.backbone_lr_multiplier`` (another rate for the parameters under the
``backbone`` submodule, an ``optax.multi_transform`` of per-parameter rules) are element-wise
and step-based, so they keep it (the authors use none of them: constant Adam 1e-4 for both).
The logged ``loss`` is this sum, neither player's objective; the three terms are logged apart.

Mapping onto the library: ``A`` is :func:`dlhash_jax.similarity.hamming_affinity` (``p =
1.4``) of the codes on the ±1 scale, ``D^{−1/2} A D^{−1/2}`` is
:func:`dlhash_jax.similarity.normalized_adjacency` (``ε = 1e-8`` on the degrees), the
reconstruction is ``(B/2) ·`` :func:`~dlhash_jax.losses.reconstruction_loss` with ``B`` the
global batch size (:func:`dlhash_jax.methods.dh.global_batch_size`), which is the authors'
``tf.nn.l2_loss``, half the *sum* of squared errors over the batch, on any number of devices.
The random samples of the discriminators (and ``ε`` when sampled) come from the training
step's ``"dropout"`` RNG stream, which the step folds from the state's key, the step number
and the device: a run is deterministic and a resumed run draws what an uninterrupted one did.
Several devices: each device builds the graph over its own share of the batch (``B/D``
items) and draws its own samples, as data-parallel training of a batch-graph model does; the
gradients are averaged as for every recipe, and the reconstruction's weight ``B/2`` keeps the
authors' balance between the summed reconstruction and the averaged adversarial terms.

Codes on the library's scale: the paper's bits are ``{0, 1}``; the discriminator ``D₁`` reads
them so (its real samples are ``{0, 1}`` Bernoulli vectors), the graph reads ``2b − 1``
(the Hamming distance is the same), and the outputs are ±1: ``"relaxed"`` is ``2b − 1`` in
training and ``sgn(z)`` in evaluation, ``"pre"`` is ``z``.

Where the paper's text was not available to us (only its abstract and introduction were),
the architecture, the objective and the defaults follow the authors' released code, read line
by line (ymcidence/TBH, ``model/tbh.py``, ``layer/*.py``, ``train/tbh_train.py``).

Deviations from the paper and the authors' code:

- Inputs and backbone: the authors encode fixed 4,096-d VGG-16 fc7 features of CIFAR-10; the
  encoder here is the run config's backbone (trained from scratch) followed by the paper's
  ``Dense(1024) → ReLU`` and heads, and the decoder reconstructs the flattened input
  (images in ``[0, 1]`` or feature vectors; the decoder's final ReLU, the authors', cannot
  produce negative values, which suits their ReLU features and our images, not standardised
  features). On ``digits`` the config uses no hidden backbone layer, so the encoder is the
  authors' on the raw pixels (``experiments/configs/tbh.py``); on ``mnist5k`` the protocol's
  ConvNet (8-16 channels), validation mAP 0.410 against 0.386 for the authors' encoder on
  the 784 raw pixels (seed 0, 32 bits, batch 100, Adam 1e-3; LSH 0.281, ITQ 0.441).
- ``ε``: the authors' code fixes ``ε = 0.5`` in training (``layer/encodec.py``, where the
  line drawing ``ε ~ U(0, 1)`` is commented out), which makes the training codes
  deterministic; the paper's stochastic binary layer draws ``ε ~ U(0, 1)`` (as the same
  authors' JMLH, :mod:`.jmlh`). ``sample_threshold=False`` (the default) is the code's,
  ``True`` the paper's.
- Adjacency gradient: the authors' ``|·|`` inside the distance has derivative 0 at 0 in
  TensorFlow, so pairs of equal codes pass no gradient through the graph;
  :func:`~dlhash_jax.similarity.hamming_affinity` reproduces that explicitly (JAX's ``abs``
  has derivative 1 at 0).
- Numerics: the authors' discriminators output ``σ`` and Keras clips it to ``[1e-7,
  1 − 1e-7]`` before the log; ours give logits and :func:`~dlhash_jax.losses.adversarial_loss`
  uses ``softplus`` (equal while ``|logit| < 16.1``). Keras's Adam has ``ε = 1e-7``, optax's
  ``1e-8``.
- Initialisation: flax's ``Dense`` (LeCun-normal kernels) where Keras's draws Glorot-uniform
  ones; both start the biases at 0.
- At ``σ(z) = ε`` exactly the authors' bit is ``(sgn(0) + 1)/2 = 0.5``; ours is 0 in
  training and, at test time (``z = 0``), 1 (``sgn(0) = +1``, the library's convention).
- Training length, rate and batch: the configs' (chosen on the validation split), not the
  authors' 100,000 steps of batch 400 at Adam 1e-4, which a run of about a minute on a CPU
  cannot take. Validation mAP on ``digits`` (seed 0, 32 bits; LSH 0.485, ITQ 0.642 on the
  same split): batch 400, 1,000 steps at Adam 1e-4 / 3e-4 / 1e-3 / 3e-3: 0.522 (still
  rising) / 0.626 / 0.591 / 0.607; batch 100 at 1e-3: 0.651 after 2,000 steps (the config),
  0.674 after 4,000 (82 s of CPU time instead of 50); batch 100 at 3e-4: 0.577; batch 100 at
  3e-3 gives every item one code (0.110, chance, throughout); batch 50 at 1e-3 does so at
  first (0.110 at step 300) and reaches 0.626 after 3,000 steps.
  ``ε ~ U(0, 1)`` instead of 0.5: 0.649 (batch 100) and 0.583 (batch 400), no better, so
  the default keeps the authors' code. A hidden backbone layer of 256 before the encoder
  (batch 400, 1e-3): 0.588 against 0.591 without.

Measured (test mAP over the whole database, 32 bits, ``experiments/configs/tbh.py``):
``digits`` 0.654 / 0.608 / 0.598 for seeds 0 / 1 / 2 after 1,400 steps (0.654 / 0.625 / 0.615
after 2,000), above LSH (0.467 / 0.459 / 0.515) and near ITQ (0.654 / 0.631 / 0.671); ``mnist5k`` 0.410 for seed 0 (LSH 0.284, ITQ 0.433). The
codes group items: the best ``digits`` checkpoint of seed 0 gives the 500 training items 186
distinct codes.
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
from dlhash_jax import similarity
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import build_backbone
from dlhash_jax.methods.dh import global_batch_size
from dlhash_jax.methods.jmlh import stochastic_binary

CITATION = (
    "Yuming Shen, Jie Qin, Jiaxin Chen, Mengyang Yu, Li Liu, Fan Zhu, Fumin Shen and Ling Shao, "
    "'Auto-encoding twin-bottleneck hashing', CVPR 2020 (arXiv:2002.11930)."
)

# The authors' code (ymcidence/TBH): hidden_dim = middle_dim = 1024 and continuous_dim =
# cbn_dim = 512 (model/tbh.py, run_tbh.py: `train('cifar10', 32, 512, 400)`), power 1.4
# (layer/twin_bottleneck.py: `tf.pow(1 - normalized_dist, 1.4)`), ε = 0.5 in training
# (layer/encodec.py; sample_threshold=True draws ε ~ U(0, 1) as the paper does).
DEFAULT_HPARAMS = types.MappingProxyType(
    {"hidden_dim": 1024, "continuous_dim": 512, "power": 1.4, "sample_threshold": False}
)

# Top-level parameter groups of the discriminators ("critic"); every other group is the actor's.
CRITIC = ("code_discriminator", "continuous_discriminator")


class TBHNetwork(nn.Module):
    """TBH's encoder, twin bottleneck, decoder and two discriminators.

    Training (``train=True``, needs ``rngs={"dropout": key}``): the encoder gives ``z`` and
    the continuous bottleneck ``c``; the codes ``b = 1[σ(z) > ε]`` (``ε = 0.5``, or
    ``U(0, 1)`` with ``sample_threshold``) build the batch graph; its graph convolution of
    ``c`` is decoded to the reconstruction; each discriminator scores a batch of prior samples
    (``Bernoulli(0.5)`` codes, ``U(0, 1)`` features, drawn from the ``"dropout"`` stream) and
    the network's own ``b`` or ``g``, the latter through
    :func:`~dlhash_jax.relaxations.gradient_reversal`. Evaluation: the code ``sgn(z)``; every
    parameter is still created at ``init`` (which runs in evaluation mode).

    Attributes:
      backbone: module called as ``backbone(x, train=...)`` returning ``[B, D]``.
      bits: code length ``L``.
      hidden_dim: width of the encoder's and decoder's hidden layers (the authors' 1024).
      continuous_dim: width of the continuous bottleneck and of the graph convolution (512).
      power: exponent ``p`` of the adjacency ``(1 − d_H/L)^p`` (1.4).
      sample_threshold: draw ``ε ~ U(0, 1)`` in training (the paper); ``False`` fixes
        ``ε = 0.5`` (the authors' code).

    Call:
      ``x``: ``[B, ...]`` float inputs (images or feature vectors; the decoder reconstructs
      them flattened); ``train``: training mode; ``beta``: ignored (accepted so the training
      loop can pass it).

    Returns:
      Evaluation: ``{"pre": z, "relaxed": sgn(z), "features": [B, D]}``. Training, with
      ``"relaxed"`` the training code ``2b − 1``, in addition ``"reconstruction"``
      ``[B, prod(...)]`` and the discriminators' logits, each ``[B, 1]``:
      ``"code_real_logits"``, ``"code_fake_logits"``, ``"continuous_real_logits"``,
      ``"continuous_fake_logits"``.

    With ``mutable=["intermediates"]`` a training call also returns the prior samples it
    drew, ``"code_prior"`` ``[B, L]`` and ``"continuous_prior"`` ``[B, continuous_dim]``.

    Raises:
      ValueError: if ``x`` has no axis besides the batch.
    """

    backbone: nn.Module
    bits: int
    hidden_dim: int = 1024
    continuous_dim: int = 512
    power: float = 1.4
    sample_threshold: bool = False

    @nn.compact
    def __call__(
        self, x: jax.typing.ArrayLike, *, train: bool, beta: jax.typing.ArrayLike = 1.0
    ) -> dict[str, jax.Array]:
        del beta
        if np.ndim(x) < 2:
            raise ValueError(f"TBH expects inputs [B, ...], got shape {np.shape(x)}.")
        features = self.backbone(x, train=train)
        hidden = nn.relu(nn.Dense(self.hidden_dim, name="encoder_hidden")(features))
        z = nn.Dense(self.bits, name="hash")(hidden)
        continuous = nn.sigmoid(nn.Dense(self.continuous_dim, name="continuous")(hidden))
        outputs = {"pre": z, "relaxed": codes.sign(z), "features": features}
        if not train and not self.is_initializing():
            return outputs
        # At init (evaluation mode) the training branch still runs once, so that the decoder,
        # the graph convolution and the discriminators get their parameters.
        # Initialisation may be given a "params" key alone; its samples are discarded.
        key = self.make_rng("dropout" if train else "params")
        code_key, continuous_key, threshold_key = jax.random.split(key, 3)
        if train and self.sample_threshold:
            threshold = jax.random.uniform(threshold_key, z.shape, z.dtype)
        else:
            threshold = jnp.full(z.shape, 0.5, z.dtype)
        b = stochastic_binary(z, threshold)
        adjacency = similarity.hamming_affinity(2 * b - 1, power=self.power)
        propagate = similarity.normalized_adjacency(adjacency)
        convolved = nn.sigmoid(
            propagate @ nn.Dense(self.continuous_dim, name="graph_convolution")(continuous)
        )
        decoded = nn.relu(nn.Dense(self.hidden_dim, name="decoder_hidden")(convolved))
        flat_size = int(np.prod(np.shape(x)[1:]))
        reconstruction = nn.relu(nn.Dense(flat_size, name="decoder_output")(decoded))

        code_discriminator = nn.Dense(1, name="code_discriminator")
        continuous_discriminator = nn.Dense(1, name="continuous_discriminator")
        real_codes = jax.random.bernoulli(code_key, 0.5, b.shape).astype(b.dtype)
        real_continuous = jax.random.uniform(continuous_key, convolved.shape, convolved.dtype)
        if train:
            # Kept only when "intermediates" is mutable (a test or an inspection; the training
            # step's apply leaves it immutable, which makes sow a no-op).
            self.sow("intermediates", "code_prior", real_codes)
            self.sow("intermediates", "continuous_prior", real_continuous)
        training = {
            "pre": z,
            "relaxed": 2 * b - 1,
            "features": features,
            "reconstruction": reconstruction,
            "code_real_logits": code_discriminator(real_codes),
            "code_fake_logits": code_discriminator(relaxations.gradient_reversal(b)),
            "continuous_real_logits": continuous_discriminator(real_continuous),
            "continuous_fake_logits": continuous_discriminator(
                relaxations.gradient_reversal(convolved)
            ),
        }
        return training if train else outputs


def make_model(config, num_classes):
    """The run config's backbone and TBH's layers, sized by ``config.hparams``."""
    del num_classes  # Unsupervised: no classifier.
    hparams = {**DEFAULT_HPARAMS, **config.hparams.to_dict()}
    return TBHNetwork(
        build_backbone(config.model),
        config.bits,
        hidden_dim=hparams["hidden_dim"],
        continuous_dim=hparams["continuous_dim"],
        power=hparams["power"],
        sample_threshold=hparams["sample_threshold"],
    )


def loss_fn(outputs, batch, ctx):
    """Half the summed squared reconstruction error plus both discriminators' cross-entropy.

    With the generated inputs of the discriminators reversed in the model, the gradient of
    this one loss is the critic's for the discriminators and the actor's (reconstruction minus
    the adversarial terms) for every other parameter (module docstring).

    Args:
      outputs: model outputs on the local batch in training: ``"reconstruction"``
        ``[B, prod(...)]`` and the four ``[B, 1]`` discriminator logits.
      batch: local batch; ``"inputs"`` ``[B, ...]`` is the reconstruction target (labels are
        not read).
      ctx: :class:`~dlhash_jax.methods.LossContext` (its hyper-parameters shape the model
        only).

    Returns:
      ``(loss, {"reconstruction": ..., "adversarial_code": ...,
      "adversarial_continuous": ...})``; ``"reconstruction"`` is the authors' ``½ Σ`` over
      the global batch as each device estimates it.
    """
    del ctx
    inputs = jnp.asarray(batch["inputs"])
    target = inputs.reshape(inputs.shape[0], -1)
    # reconstruction_loss is a mean over items; B/2 of it is the authors' ½ Σ over the global
    # batch, so the devices' average gradient is the single-device one.
    reconstruction = global_batch_size(target.shape[0]) / 2 * losses.reconstruction_loss(
        target, outputs["reconstruction"]
    )
    adversarial_code = losses.adversarial_loss(
        outputs["code_real_logits"], outputs["code_fake_logits"]
    )
    adversarial_continuous = losses.adversarial_loss(
        outputs["continuous_real_logits"], outputs["continuous_fake_logits"]
    )
    loss = reconstruction + adversarial_code + adversarial_continuous
    return loss, {
        "reconstruction": reconstruction,
        "adversarial_code": adversarial_code,
        "adversarial_continuous": adversarial_continuous,
    }


RECIPE = Recipe(
    name="tbh",
    title="Auto-encoding twin-bottleneck hashing",
    citation=CITATION,
    taxonomy=Taxonomy("none", "single"),
    make_model=make_model,
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
)
