"""Constraints on the codes themselves: quantization, bit independence, balance, ±1 targets.

Survey §4.2.1-4.2.4, eq 2-9. These terms look only at the network outputs ``A`` (``[N, L]``, batch
first), never at labels, so they combine with any similarity or classification term. Each
returns the mean over the batch stated in its docstring, so its size does not grow with ``N``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlhash_jax import codes
from dlhash_jax.losses._validation import check_rank


def quantization_loss(A: jax.typing.ArrayLike, B: jax.typing.ArrayLike | None = None) -> jax.Array:
    """Quantization error between real outputs and their codes.

    ``(1/N) Σ_i ‖a_i − b_i‖²``, with ``B = stop_gradient(sgn(A))`` when no codes are given, so the
    gradient pulls each output towards its own sign and never moves the target.

    Survey eq 2 (§4.2.1), printed as ``‖A − B‖²_F``, which is ``N`` times this value; we take the
    mean over samples so the weight of the term does not depend on the batch size.

    References:
      Zhang et al., "Scalable discrete supervised multimedia hash learning with clustering",
      IEEE TCSVT 2017; also Liong et al., "Deep hashing for compact binary codes learning",
      CVPR 2015, and Jiang & Li, "Deep cross-modal hashing", CVPR 2017.

    Args:
      A: ``[N, L]`` real network outputs.
      B: optional ``[N, L]`` codes in {-1, +1} (e.g. discrete codes kept by an alternating
        optimiser); gradients flow into ``B`` when it is given.

    Returns:
      Float scalar.

    Raises:
      ValueError: if ``A`` is not ``[N, L]`` or ``B`` has a different shape.

    Examples:
      >>> float(quantization_loss(jnp.array([[0.5, -2.0]])))
      1.25
    """
    check_rank(A, 2, "A", "[N, L]")
    A = jnp.asarray(A)
    if B is None:
        B = jax.lax.stop_gradient(codes.sign(A))
    else:
        check_rank(B, 2, "B", "[N, L]")
        if jnp.shape(B) != A.shape:
            raise ValueError(
                f"A and B must have the same shape [N, L], got shapes {A.shape} and "
                f"{jnp.shape(B)}."
            )
    return jnp.sum((A - B) ** 2) / A.shape[0]


def decorrelation_loss(A: jax.typing.ArrayLike) -> jax.Array:
    """Bit independence: distance of the bits' second-moment matrix from the identity.

    ``‖(1/N) AᵀA − I_L‖²_F``. For ±1 codes the diagonal of ``(1/N) BᵀB`` is exactly 1, so the
    loss is the sum of squared correlations between distinct bits.

    Survey eq 3 (§4.2.2), printed as ``‖BBᵀ − I‖²_F`` in the ``L × N`` orientation, without the
    ``1/N``: since ``diag(BBᵀ) = N`` that form can never reach 0, so we normalise by ``N``. It is
    applied to the relaxed outputs ``A``; pass ``sign(A)`` to score discrete codes.

    References:
      Wang et al., "A survey on learning to hash", IEEE TPAMI 2017; Liong et al., "Deep hashing
      for compact binary codes learning", CVPR 2015 (the same constraint on the projection).

    Args:
      A: ``[N, L]`` real network outputs.

    Returns:
      Float scalar.

    Raises:
      ValueError: if ``A`` is not ``[N, L]``.

    Examples:
      >>> float(decorrelation_loss(jnp.array([[1.0, 1.0], [1.0, -1.0]])))
      0.0
    """
    check_rank(A, 2, "A", "[N, L]")
    A = jnp.asarray(A)
    second_moment = A.T @ A / A.shape[0]
    return jnp.sum((second_moment - jnp.eye(A.shape[1], dtype=second_moment.dtype)) ** 2)


def balance_loss(A: jax.typing.ArrayLike) -> jax.Array:
    """Bit balance: each bit should average to zero over the batch.

    ``Σ_k (mean_i A_ik)²``.

    Survey eq 6 (§4.2.3) is exactly this. Eq 4, ``‖B 1‖²`` (Jiang & Li), is ``N²`` times it; we
    use the mean so the weight of the term does not depend on the batch size.

    References:
      Zhao et al., "Deep semantic ranking based hashing for multi-label image retrieval",
      CVPR 2015 (eq 6); Jiang & Li, "Deep cross-modal hashing", CVPR 2017 (eq 4).

    Args:
      A: ``[N, L]`` real network outputs.

    Returns:
      Float scalar.

    Raises:
      ValueError: if ``A`` is not ``[N, L]``.

    Examples:
      >>> float(balance_loss(jnp.array([[1.0, 1.0], [1.0, -1.0]])))
      1.0
    """
    check_rank(A, 2, "A", "[N, L]")
    return jnp.sum(jnp.mean(jnp.asarray(A), axis=0) ** 2)


def variance_loss(A: jax.typing.ArrayLike) -> jax.Array:
    """Negative bit variance, to be minimised (i.e. the variance maximised).

    ``−(1/N) Σ_ij A_ij²``, the negative of ``(1/N) tr(AᵀA)``; for zero-mean bits (see
    :func:`balance_loss`) this is minus the total variance of the bits.

    Survey eq 5 (§4.2.3), printed as ``tr(AAᵀ)`` in the ``L × N`` orientation, to be maximised.
    The survey's text calls ``tr`` the rank; it is the trace. We negate it so that every term of
    the catalogue is minimised, and divide by ``N``. Unbounded below: pair it with a term that
    bounds the outputs (tanh, a hash constraint or a quantization loss).

    References:
      He Tao, "Research on image retrieval methods based on hashing and deep learning",
      thesis, UESTC 2018; Liong et al., "Deep hashing for compact binary codes learning",
      CVPR 2015.

    Args:
      A: ``[N, L]`` real network outputs.

    Returns:
      Float scalar (≤ 0).

    Raises:
      ValueError: if ``A`` is not ``[N, L]``.

    Examples:
      >>> float(variance_loss(jnp.array([[1.0, -2.0], [0.0, 1.0]])))
      -3.0
    """
    check_rank(A, 2, "A", "[N, L]")
    A = jnp.asarray(A)
    return -jnp.sum(A**2) / A.shape[0]


def hash_constraint_l1(A: jax.typing.ArrayLike) -> jax.Array:
    """L1 distance of every output's magnitude from 1.

    ``(1/N) Σ_i ‖ |a_i| − 1 ‖₁``.

    Survey eq 7 (§4.2.4), printed as a sum over samples (with a mismatched index ``j``); we take
    the mean. Eq 25 (§4.5) prints ``‖a_j − 1‖₁`` without the absolute value, which would push every
    bit to +1; the intended constraint is this one.

    References:
      Wang, Yu & Xiao, "Deep non-relaxation hashing based on point pair similarity", Acta
      Automatica Sinica 2019.

    Args:
      A: ``[N, L]`` real network outputs.

    Returns:
      Float scalar.

    Raises:
      ValueError: if ``A`` is not ``[N, L]``.

    Examples:
      >>> float(hash_constraint_l1(jnp.array([[0.5, -3.0]])))
      2.5
    """
    check_rank(A, 2, "A", "[N, L]")
    A = jnp.asarray(A)
    return jnp.sum(jnp.abs(jnp.abs(A) - 1)) / A.shape[0]


def hash_constraint_l2(A: jax.typing.ArrayLike) -> jax.Array:
    """Squared distance of every bit from the nearer of -1 and +1.

    ``(1/N) Σ_ij min((A_ij + 1)², (A_ij − 1)²)``, computed as the equal ``(|A_ij| − 1)²``.

    Survey eq 8 (§4.2.4) prints the min over whole vectors, ``min(‖a_j + 1‖², ‖a_j − 1‖²)``,
    which would only allow the two codes all -1 and all +1; the intent, a per-bit constraint, is
    what we compute, averaged over samples.

    References:
      Chen Zhao-jia, "Triplet-based deep hashing network for cross-modal retrieval", thesis,
      Xidian University 2018.

    Args:
      A: ``[N, L]`` real network outputs.

    Returns:
      Float scalar.

    Raises:
      ValueError: if ``A`` is not ``[N, L]``.

    Examples:
      >>> float(hash_constraint_l2(jnp.array([[0.5, -3.0]])))
      4.25
    """
    check_rank(A, 2, "A", "[N, L]")
    A = jnp.asarray(A)
    return jnp.sum((jnp.abs(A) - 1) ** 2) / A.shape[0]


def hash_constraint_clipped(A: jax.typing.ArrayLike) -> jax.Array:
    """Squared gap between 1 and the magnitude of every bit clipped to [-1, 1].

    ``(1/N) Σ_ij (1 − |clip(A_ij, −1, 1)|)²``. Outputs beyond ±1 cost nothing and get no gradient,
    unlike :func:`hash_constraint_l2`, which also pulls them back to ±1.

    Survey eq 9 (§4.2.4), printed for one sample as a sum over its bits; we average over samples.

    References:
      Guo, Zhang & Li, "Hash learning with convolutional neural networks for semantic based image
      retrieval", PAKDD 2016.

    Args:
      A: ``[N, L]`` real network outputs.

    Returns:
      Float scalar.

    Raises:
      ValueError: if ``A`` is not ``[N, L]``.

    Examples:
      >>> float(hash_constraint_clipped(jnp.array([[0.5, -3.0]])))
      0.25
    """
    check_rank(A, 2, "A", "[N, L]")
    A = jnp.asarray(A)
    return jnp.sum((1 - jnp.abs(jnp.clip(A, -1, 1))) ** 2) / A.shape[0]
