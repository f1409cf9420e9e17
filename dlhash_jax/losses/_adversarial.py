"""The adversarial regulariser of generative hashing: a discriminator's binary cross-entropy.

Not in the survey's catalogue. Auto-encoding hashing methods in the Wasserstein auto-encoder
family (TBH, Shen et al., CVPR 2020) shape the distribution of a latent code by adversarial
regularisation: a discriminator ``D`` is trained to tell samples of the prior ("real") from the
codes the encoder produces ("fake"), and the encoder is trained to fool it. Both players share
one objective, the discriminator's binary cross-entropy, which the discriminator minimises and
the encoder maximises (Goodfellow et al.'s minimax form).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _check_logits(real_logits, fake_logits) -> None:
    """``[N]`` and ``[M]``, or ``[N, K]`` and ``[M, K]``, with N, M ≥ 1."""
    real_shape, fake_shape = jnp.shape(real_logits), jnp.shape(fake_logits)
    for name, shape, rows in (("real_logits", real_shape, "N"), ("fake_logits", fake_shape, "M")):
        if len(shape) not in (1, 2):
            raise ValueError(
                f"{name} must have shape [{rows}] or [{rows}, K] (one logit per sample, or K per "
                f"sample), got shape {shape}."
            )
        if shape[0] == 0:
            raise ValueError(f"{name} must hold at least one sample, got shape {shape}.")
    if len(real_shape) != len(fake_shape) or real_shape[1:] != fake_shape[1:]:
        raise ValueError(
            "real_logits and fake_logits must both be [N] and [M], or [N, K] and [M, K] with the "
            f"same K, got shapes {real_shape} and {fake_shape}."
        )


def adversarial_loss(
    real_logits: jax.typing.ArrayLike, fake_logits: jax.typing.ArrayLike
) -> jax.Array:
    """A discriminator's binary cross-entropy: real samples labelled 1, generated samples 0.

    With ``r`` the discriminator's logits on samples of the prior and ``f`` its logits on the
    codes the network generates (``D(x) = σ(logit)``),

        mean_i −log σ(r_i) + mean_j −log(1 − σ(f_j))
          = mean_i softplus(−r_i) + mean_j softplus(f_j),

    each mean over all entries of its argument (``N`` real and ``M`` generated samples may
    differ; with ``K`` outputs per sample, over all ``N·K`` entries, as Keras's
    ``binary_crossentropy`` followed by ``reduce_mean``). It is ``2 log 2`` when the
    discriminator cannot tell (all logits 0) and tends to 0 as it separates the two sets.
    Computed from the logits with ``softplus``, so it is exact and finite, with a finite
    gradient, for any logits: the discriminator outputs no probability that a ``log`` could
    round to ``log 0``.

    The discriminator minimises this term; the generator maximises it (the minimax game). A
    training step with one loss and one optimizer gets both from ``loss = … + adversarial_loss(
    r, D(gradient_reversal(fake)))``: the discriminator's parameters receive the gradient of the
    term, and everything that produced ``fake`` receives its negative
    (:func:`dlhash_jax.relaxations.gradient_reversal`).

    TBH (Shen et al., CVPR 2020) regularises both of its bottlenecks so: the binary codes
    against ``Bernoulli(0.5)`` samples and the graph-convolved continuous features against
    ``U(0, 1)`` samples, each with its own one-layer discriminator. The authors' code
    (ymcidence/TBH, ``train/tbh_train.py``, ``adv_loss``) takes sigmoid outputs and Keras's
    ``binary_crossentropy``, which clips the probabilities to ``[1e-7, 1 − 1e-7]``: the same
    value while every ``|logit| < 16.1``, and beyond that their loss saturates at
    ``−log 1e-7`` with zero gradient where this one keeps growing linearly.

    References:
      Goodfellow et al., "Generative adversarial nets", NeurIPS 2014; Shen, Qin, Chen, Yu,
      Liu, Zhu, Shen & Shao, "Auto-encoding twin-bottleneck hashing", CVPR 2020
      (arXiv:2002.11930).

    Args:
      real_logits: ``[N]`` or ``[N, K]`` discriminator logits on samples of the prior.
      fake_logits: ``[M]`` or ``[M, K]`` discriminator logits on generated samples (the same
        rank and ``K``).

    Returns:
      Float scalar (> 0).

    Raises:
      ValueError: if either argument is not ``[N]`` or ``[N, K]`` with at least one row, or
        their ranks or ``K`` differ.

    Examples:
      >>> # A discriminator that cannot tell the two sets apart: 2 log 2.
      >>> round(float(adversarial_loss(jnp.zeros(3), jnp.zeros(5))), 6)
      1.386294
      >>> # softplus(−2) + softplus(−1) = 0.126928 + 0.313262.
      >>> round(float(adversarial_loss(jnp.array([[2.0]]), jnp.array([[-1.0]]))), 6)
      0.44019
    """
    _check_logits(real_logits, fake_logits)
    dtype = jnp.result_type(real_logits, fake_logits, jnp.float32)
    real = jnp.asarray(real_logits, dtype)
    fake = jnp.asarray(fake_logits, dtype)
    # −log σ(r) = softplus(−r) and −log(1 − σ(f)) = softplus(f): no probability is rounded.
    return jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))
