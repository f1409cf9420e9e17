"""DHN's smooth quantization: every output's magnitude pulled to 1 through ``log cosh``.

Not in the survey's catalogue; it is the smooth surrogate DHN puts in place of the element-wise
L1 hash constraint of survey eq 7/25 (:func:`~dlhash_jax.losses.hash_constraint_l1`), whose
kink at ``|A_ij| = 1`` the authors avoid because ``log cosh x ≈ |x|`` for large ``|x|`` and
``≈ x² / 2`` near 0.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from dlhash_jax.losses._validation import check_rank


def _log_cosh(x: jax.Array) -> jax.Array:
    """``log cosh x = |x| + log(1 + e^{−2|x|}) − log 2``, finite for every ``x`` (no overflow)."""
    magnitude = jnp.abs(x)
    return magnitude + jax.nn.softplus(-2.0 * magnitude) - math.log(2.0)


def log_cosh_quantization_loss(A: jax.typing.ArrayLike) -> jax.Array:
    """Smooth distance of every output's magnitude from 1.

    ``(1/N) Σ_ij log cosh(|A_ij| − 1)``: the mean over samples of the sum over bits. It is 0 at
    ±1 codes, grows like ``(|A_ij| − 1)² / 2`` near them and like ``| |A_ij| − 1 | − log 2``
    far from them. Computed as ``|x| + softplus(−2|x|) − log 2``, which never overflows where
    ``cosh`` would (``|x|`` above about 89 in float32). Like every element-wise constraint it
    has a kink at ``A_ij = 0``; it is smooth at ``|A_ij| = 1``.

    DHN writes the term as the sum ``Σ_i Σ_k log cosh(|z_ik| − 1)`` over the ``N`` images and
    ``K`` bits; ours is that sum divided by ``N``. Beyond the survey: it is DHN's smooth
    replacement for the L1 constraint of survey eq 7/25 (:func:`hash_constraint_l1`).

    References:
      Zhu, Long, Wang & Cao, "Deep hashing network for efficient similarity retrieval" (DHN),
      AAAI 2016.

    Args:
      A: ``[N, L]`` real network outputs.

    Returns:
      Float scalar (≥ 0).

    Raises:
      ValueError: if ``A`` is not ``[N, L]``.

    Examples:
      >>> float(log_cosh_quantization_loss(jnp.array([[1.0, -1.0]])))
      0.0
      >>> round(float(log_cosh_quantization_loss(jnp.array([[0.0, 2.0]]))), 6)
      0.867562
    """
    check_rank(A, 2, "A", "[N, L]")
    A = jnp.asarray(A, jnp.result_type(A, jnp.float32))
    return jnp.sum(_log_cosh(jnp.abs(A) - 1.0)) / A.shape[0]
