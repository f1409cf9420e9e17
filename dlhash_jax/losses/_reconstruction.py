"""Reconstruction error of an input from its code (survey §4.1, eq 1).

Unsupervised hashing networks (autoencoders, GANs) are trained so that the code keeps enough of the
input to rebuild it. :func:`linear_decoder` is the affine decoder the survey writes,
``X̂ = WB + c``; any other decoder (a flax module) can produce ``X_hat`` instead.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlhash_jax.losses._validation import check_rank


def reconstruction_loss(X: jax.typing.ArrayLike, X_hat: jax.typing.ArrayLike) -> jax.Array:
    """Mean squared reconstruction error per sample.

    ``(1/N) Σ_i ‖x_i − x̂_i‖²``, the squared norm taken over all non-batch axes, so images
    ``[N, H, W, C]`` work as they are.

    Survey eq 1 (§4.1), printed as ``‖X − WB − c‖²`` in the ``D × N`` orientation, which is ``N``
    times this value with ``X̂ = WB + c`` (see :func:`linear_decoder`). The printed subscript
    ``1×N`` is the all-ones matrix the bias is broadcast with; the norm is the Frobenius norm.

    References:
      Bai et al., "Deep learning compact binary codes for fingerprint indexing", Frontiers of
      Information Technology & Electronic Engineering 2018; Xia et al., "Unsupervised deep
      hashing for large-scale visual search", IPTA 2016.

    Args:
      X: ``[N, ...]`` inputs (``[N, D]`` for feature vectors).
      X_hat: reconstructions, the same shape as ``X``.

    Returns:
      Float scalar.

    Raises:
      ValueError: if ``X`` has no batch axis plus at least one feature axis, or ``X_hat`` has a
        different shape.

    Examples:
      >>> float(reconstruction_loss(jnp.array([[1.0, 2.0]]), jnp.array([[0.0, 4.0]])))
      5.0
    """
    if jnp.ndim(X) < 2:
        raise ValueError(f"X must have shape [N, D] or [N, ...], got shape {jnp.shape(X)}.")
    if jnp.shape(X_hat) != jnp.shape(X):
        raise ValueError(
            f"X and X_hat must have the same shape, got shapes {jnp.shape(X)} and "
            f"{jnp.shape(X_hat)}."
        )
    X = jnp.asarray(X)
    return jnp.sum((X - jnp.asarray(X_hat)) ** 2) / X.shape[0]


def linear_decoder(
    B: jax.typing.ArrayLike, W: jax.typing.ArrayLike, c: jax.typing.ArrayLike
) -> jax.Array:
    """Affine decoder from codes back to input space, ``X̂ = B W + c``.

    The survey's ``WB + c`` (eq 1) in our batch-first orientation: ``W`` maps ``L`` bits to ``D``
    features and the bias ``c`` is added to every row.

    Args:
      B: ``[N, L]`` codes (or relaxed outputs).
      W: ``[L, D]`` decoder weights.
      c: ``[D]`` bias.

    Returns:
      ``[N, D]`` reconstructions.

    Raises:
      ValueError: if the ranks are wrong or the ``L`` / ``D`` dimensions do not match.

    Examples:
      >>> linear_decoder(jnp.array([[1.0, -1.0]]), jnp.array([[1.0, 2.0], [3.0, 4.0]]),
      ...                jnp.array([0.5, 0.5]))
      Array([[-1.5, -1.5]], dtype=float32)
    """
    check_rank(B, 2, "B", "[N, L]")
    check_rank(W, 2, "W", "[L, D]")
    check_rank(c, 1, "c", "[D]")
    if jnp.shape(W)[0] != jnp.shape(B)[1] or jnp.shape(c)[0] != jnp.shape(W)[1]:
        raise ValueError(
            f"B [N, L], W [L, D] and c [D] must agree on L and D, got shapes {jnp.shape(B)}, "
            f"{jnp.shape(W)} and {jnp.shape(c)}."
        )
    return jnp.asarray(B) @ jnp.asarray(W) + jnp.asarray(c)
