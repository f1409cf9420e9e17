"""JMLH's prior term: the KL divergence of each stochastic bit's Bernoulli to a fixed Bernoulli.

Not in the survey's catalogue. Survey eq 11 (:func:`~dlhash_jax.losses.kl_sparsity_loss`) compares
the *batch mean* activation of each unit with a target rate; this term compares every sample's own
bit distribution ``Bernoulli(σ(z_ij))`` with the prior, the variational upper bound on the
information a stochastic code keeps about its input (the compression side of the information
bottleneck).
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

from dlhash_jax.losses._validation import check_rank


def _check_prior(prior) -> None:
    """Raises ValueError unless ``prior`` is a real number in (0, 1); traced: a scalar."""
    if isinstance(prior, jax.Array):
        if jnp.ndim(prior) != 0:
            raise ValueError(f"prior must be a scalar, got shape {jnp.shape(prior)}.")
        return
    if isinstance(prior, bool) or not isinstance(prior, numbers.Real) or not 0 < prior < 1:
        raise ValueError(f"prior must be a real number in (0, 1), got {prior!r}.")


def bernoulli_kl_loss(Z: jax.typing.ArrayLike, *, prior: float = 0.5) -> jax.Array:
    """KL divergence of the bits' Bernoulli distributions to ``Bernoulli(prior)``, per sample.

    With ``q_ij = σ(Z_ij)`` the probability that bit ``j`` of sample ``i`` is 1,

        (1/N) Σ_ij [q_ij log(q_ij / p) + (1 − q_ij) log((1 − q_ij) / (1 − p))],

    the sum over bits of ``KL(Bernoulli(q_ij) ‖ Bernoulli(p))``, averaged over samples. It is 0
    when every bit is a fair coin (``Z = 0`` for ``p = 0.5``) and grows as the bits become
    certain. Computed from the logits with ``log σ(z)`` and ``log σ(−z)``, so it stays finite and
    has a finite gradient for any ``Z`` (no ``log 0``).

    JMLH (Shen et al., ICCV Workshops 2019) adds ``λ`` times this term, with ``p = 0.5``, to the
    classification loss of its stochastic binary codes: it bounds the mutual information between
    the code and the input from above, so together they form a variational information
    bottleneck. The authors' code takes the same reduction (a sum over bits, a mean over
    samples).

    References:
      Shen, Qin, Chen, Liu, Zhu & Shen, "Embarrassingly simple binary representation learning",
      ICCV Workshops 2019 (arXiv:1908.09573); Alemi et al., "Deep variational information
      bottleneck", ICLR 2017.

    Args:
      Z: ``[N, L]`` logits of the bits' probabilities of being 1 (``q = σ(Z)``).
      prior: ``p``, the prior probability of a 1, in ``(0, 1)`` (keyword-only); a traced scalar
        is accepted unchecked.

    Returns:
      Float scalar (≥ 0).

    Raises:
      ValueError: if ``Z`` is not ``[N, L]`` or ``prior`` is not a real number in ``(0, 1)`` (or,
        traced, not a scalar).

    Examples:
      >>> float(bernoulli_kl_loss(jnp.zeros((3, 4))))
      0.0
      >>> round(float(bernoulli_kl_loss(jnp.array([[jnp.log(3.0)]]))), 6)  # q = 0.75
      0.130812
    """
    _check_prior(prior)
    check_rank(Z, 2, "Z", "[N, L]")
    Z = jnp.asarray(Z, jnp.result_type(Z, jnp.float32))
    q = jax.nn.sigmoid(Z)
    prior = jnp.asarray(prior, Z.dtype)
    # q log q + (1 − q) log(1 − q), with log q = log σ(z) and log(1 − q) = log σ(−z).
    negative_entropy = q * jax.nn.log_sigmoid(Z) + (1 - q) * jax.nn.log_sigmoid(-Z)
    cross = q * jnp.log(prior) + (1 - q) * jnp.log1p(-prior)
    return jnp.sum(negative_entropy - cross) / Z.shape[0]
