"""Parameter regularisation and sparsity constraints (survey §4.2.5-4.2.6, eq 10-12)."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from dlhash_jax.losses._validation import check_rank


def weight_norm(params: Any, *, squared: bool = False) -> jax.Array:
    """Sum of the Frobenius norms of every weight matrix (kernel) of a model.

    ``Σ_W ‖W‖_F`` over the leaves of ``params`` with ``ndim ≥ 2`` (dense and convolution kernels,
    embeddings); biases and normalisation scales (``ndim ≤ 1``) are left out, as is usual for
    weight decay. With ``squared=True`` it is ``Σ_W ‖W‖²_F``, the L2 weight decay.

    The norm of an all-zero kernel has no derivative; its gradient here is 0 (a subgradient)
    instead of NaN.

    Survey eq 10 (§4.2.5), ``‖W‖_F``, written for one matrix; we sum over all kernels.

    References:
      Bai et al., "Deep learning compact binary codes for fingerprint indexing", Frontiers of
      Information Technology & Electronic Engineering 2018.

    Args:
      params: a pytree of arrays, e.g. flax ``variables["params"]``.
      squared: sum squared norms instead of norms.

    Returns:
      Float scalar; 0.0 when ``params`` holds no kernel.

    Examples:
      >>> float(weight_norm({"kernel": jnp.array([[3.0], [4.0]]), "bias": jnp.ones(2)}))
      5.0
    """
    total = jnp.zeros((), jnp.float32)
    for leaf in jax.tree_util.tree_leaves(params):
        if jnp.ndim(leaf) < 2:
            continue
        sq = jnp.sum(jnp.square(jnp.asarray(leaf)))
        if squared:
            total = total + sq
        else:
            # sqrt has an infinite slope at 0; evaluate it away from 0 so the unused branch of the
            # where cannot turn the gradient of a zero kernel into NaN.
            positive = sq > 0
            total = total + jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1)), 0)
    return total


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _clip_straight_through(x, eps: float):
    """``clip(x, eps, 1 - eps)`` whose derivative is 1 everywhere, also where it clips."""
    return jnp.clip(x, eps, 1 - eps)


@_clip_straight_through.defjvp
def _clip_straight_through_jvp(eps, primals, tangents):
    (x,), (dx,) = primals, tangents
    return _clip_straight_through(x, eps), dx


def _check_unit_interval(value, name: str) -> None:
    """Raises ValueError unless ``value`` is a scalar in [0, 1] (traced: shape only)."""
    if jnp.ndim(value) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {jnp.shape(value)}.")
    try:
        concrete = float(value)
    except jax.errors.ConcretizationTypeError:
        return
    if not 0 <= concrete <= 1:
        raise ValueError(f"{name} must lie in [0, 1], got {concrete}.")


def kl_sparsity_loss(H: jax.typing.ArrayLike, *, rho: float) -> jax.Array:
    """KL sparsity penalty on the mean activation of every hidden unit.

    With ``ρ̂_j = mean_i H_ij``,
    ``Σ_j ρ log(ρ/ρ̂_j) + (1−ρ) log((1−ρ)/(1−ρ̂_j))``, the KL divergence between Bernoulli(ρ) and
    Bernoulli(ρ̂_j), summed over units. ``0·log 0`` is taken as 0, so ``rho`` may be 0 or 1.

    ``ρ̂_j`` is clipped to ``[ε, 1−ε]`` (``ε`` the machine epsilon of the dtype) so a unit whose
    activations all saturate at 0 or 1 gives a finite value; the gradient passes through the clip
    unchanged (straight-through), so such a unit is still pushed back towards ``ρ`` with a finite
    gradient instead of a zero one.

    Survey eq 11 (§4.2.6); the print drops the second ``log``:
    ``(1−ρ) (1−ρ)/(1−ρ̂)`` should read ``(1−ρ) log((1−ρ)/(1−ρ̂))``.

    References:
      Ou et al., "Image hashing retrieval method based on deep self-learning", Computer
      Engineering & Science 2015 (after the sparse autoencoder of Ng, CS294A notes 2011).

    Args:
      H: ``[N, s]`` activations in (0, 1), e.g. ``sigmoid`` outputs of a hidden layer.
      rho: target mean activation in [0, 1], usually close to 0.

    Returns:
      Float scalar (≥ 0).

    Raises:
      ValueError: if ``H`` is not ``[N, s]``, ``rho`` is not a scalar, or a concrete ``rho`` lies
        outside [0, 1].

    Examples:
      >>> round(float(kl_sparsity_loss(jnp.array([[0.5], [0.5]]), rho=0.5)), 6)
      0.0
    """
    check_rank(H, 2, "H", "[N, s]")
    _check_unit_interval(rho, "rho")
    H = jnp.asarray(H)
    H = H.astype(jnp.result_type(H.dtype, float))
    eps = jnp.finfo(H.dtype).eps
    rho = jnp.asarray(rho, H.dtype)
    rho_hat = _clip_straight_through(jnp.mean(H, axis=0), float(eps))
    # xlogy keeps rho * log(rho) at 0 for rho = 0 (and likewise for 1 - rho).
    kl = (
        jax.scipy.special.xlogy(rho, rho)
        - rho * jnp.log(rho_hat)
        + jax.scipy.special.xlogy(1 - rho, 1 - rho)
        - (1 - rho) * jnp.log1p(-rho_hat)
    )
    return jnp.sum(kl)


def l1_sparsity_loss(A: jax.typing.ArrayLike) -> jax.Array:
    """L1 sparsity penalty on the outputs.

    ``(1/N) Σ_i ‖a_i‖₁``.

    Survey eq 12 (§4.2.6), ``α ‖b_i‖₁`` for one sample's code; we average over samples and leave
    the weight ``α`` to the caller, like every other term. It is applied to the relaxed outputs,
    since the L1 norm of a ±1 code is the constant ``L``.

    References:
      Masci et al., "Sparse similarity-preserving hashing", arXiv:1312.5479 (ICLR 2014).

    Args:
      A: ``[N, L]`` real network outputs.

    Returns:
      Float scalar (≥ 0).

    Raises:
      ValueError: if ``A`` is not ``[N, L]``.

    Examples:
      >>> float(l1_sparsity_loss(jnp.array([[0.5, -2.0], [0.0, 1.5]])))
      2.0
    """
    check_rank(A, 2, "A", "[N, L]")
    A = jnp.asarray(A)
    return jnp.sum(jnp.abs(A)) / A.shape[0]
