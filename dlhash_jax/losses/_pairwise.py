"""Pairwise similarity preservation: one matrix expression over the ``[N, M]`` pair block.

Survey §4.3.2, eq 14-17 and 24. Every term takes two sets of real network outputs, ``A1``
(``[N, L]``, the batch) and ``A2`` (``[M, L]``: the batch itself, a memory bank of the training
set, or the other modality), and a similarity matrix ``S`` (``[N, M]``, 1 for a similar pair and
0 otherwise, e.g. ``similarity.label_similarity(Y1, Y2)``). Each returns the mean over the pairs
its docstring states, so its weight does not depend on ``N`` or ``M``. When ``A2`` is ``A1`` (or
a memory bank that holds the batch) the block includes the pairs ``(i, i)``; they count in the
mean like any other pair, as similar pairs when ``S`` comes from labels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from dlhash_jax.losses._validation import check_pair_block

_DISTANCES = ("l1", "squared_l2")


def _float_operands(A1, A2, S) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Casts all three to one float dtype (``S`` often arrives as bool or int)."""
    dtype = jnp.result_type(A1, A2, jnp.float32)
    return jnp.asarray(A1, dtype), jnp.asarray(A2, dtype), jnp.asarray(S, dtype)


def _squared_l2_block(A1: jax.Array, A2: jax.Array) -> jax.Array:
    """``[N, M]`` matrix of ``‖a_i − a'_j‖²`` from norms and the Gram matrix.

    Never forms the ``[N, M, L]`` differences, so a batch can be paired with a memory bank of the
    whole training set. The Gram matrix is taken at the highest matmul precision because the
    subtraction cancels for near pairs (exactly the similar ones), and reduced-precision matmuls
    (TF32 on GPUs, bf16 passes on TPUs) would turn that into noise; rounding can still leave a
    tiny negative, hence the clamp.
    """
    gram = jnp.matmul(A1, A2.T, precision=lax.Precision.HIGHEST)
    squared = jnp.sum(A1**2, axis=1)[:, None] + jnp.sum(A2**2, axis=1)[None, :] - 2.0 * gram
    return jnp.maximum(squared, 0.0)


def _guarded_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
    """``Σ w v / Σ w``, and 0 (with a zero gradient) when the weights sum to 0."""
    total = jnp.sum(weights)
    return jnp.sum(weights * values) / jnp.where(total > 0, total, 1.0)


def inner_product_loss(
    A1: jax.typing.ArrayLike,
    A2: jax.typing.ArrayLike,
    S: jax.typing.ArrayLike,
    *,
    dissimilar: float = -1.0,
) -> jax.Array:
    """Code inner products regressed onto scaled similarity targets.

    ``mean_ij (L·t_ij − a_i·a'_j)²`` over all ``N·M`` pairs, with target ``t_ij = 1`` for a
    similar pair and ``t_ij = dissimilar`` otherwise, i.e. ``t = dissimilar + (1 − dissimilar) S``.
    For ±1 codes ``b·b' = L − 2 d_H(b, b')``, so the default ``dissimilar=-1`` asks similar codes
    to be equal and dissimilar codes to be complementary.

    Survey eq 14 (§4.3.2), printed as ``‖L S − B Bᵀ‖²_F`` with ``S ∈ {0, 1}`` in the ``L × N``
    orientation: that is ``N·M`` times this loss with ``dissimilar=0``, which asks dissimilar codes
    to be orthogonal (Hamming distance ``L/2``). The default follows the ±1 targets of KSH (Liu
    et al., "Supervised hashing with kernels", CVPR 2012) that the discrete supervised methods
    build on; pass ``dissimilar=0.0`` for the printed form. We take the mean instead of the sum
    and apply the term to the relaxed outputs ``A``.

    References:
      Zhang et al., "Scalable discrete supervised multimedia hash learning with clustering",
      IEEE TCSVT 2017.

    Args:
      A1: ``[N, L]`` real network outputs.
      A2: ``[M, L]`` real network outputs (may be ``A1``).
      S: ``[N, M]`` similarity, 1 for similar pairs and 0 otherwise (any real, int or bool dtype).
      dissimilar: target inner product of a dissimilar pair, in units of ``L``.

    Returns:
      Float scalar (≥ 0).

    Raises:
      ValueError: if the shapes are not ``[N, L]``, ``[M, L]`` and ``[N, M]``.

    Examples:
      >>> a = jnp.array([[1.0, 1.0], [-1.0, -1.0]])
      >>> float(inner_product_loss(a, a, jnp.eye(2)))
      0.0
      >>> float(inner_product_loss(a, a, jnp.eye(2), dissimilar=0.0))
      2.0
    """
    check_pair_block(A1, A2, S)
    A1, A2, S = _float_operands(A1, A2, S)
    num_bits = A1.shape[1]
    target = dissimilar + (1.0 - dissimilar) * S
    return jnp.mean((num_bits * target - A1 @ A2.T) ** 2)


def pairwise_likelihood_loss(
    A1: jax.typing.ArrayLike, A2: jax.typing.ArrayLike, S: jax.typing.ArrayLike
) -> jax.Array:
    """Negative log-likelihood of the pairwise labels under a logistic model of code similarity.

    With ``θ_ij = ½ a_i·a'_j`` and ``p(s_ij = 1) = σ(θ_ij)``, the loss is
    ``mean_ij [softplus(θ_ij) − s_ij θ_ij]`` over all ``N·M`` pairs, which is
    ``−mean_ij log p(s_ij | A)``. ``softplus`` keeps it finite for any ``|θ|``, where the printed
    ``log(1 + exp θ)`` overflows once ``θ`` exceeds about 88 in float32.

    Survey eq 15 (§4.3.2), printed as the sum over pairs with ``Ω_ij = ½ B_iᵀB_j`` on the codes;
    eq 24 (§4.5) is the relaxation that puts the real outputs in place of the codes, which is
    what we compute. We take the mean instead of the sum so the weight of the term does not
    depend on ``N·M``.

    References:
      Li, Wang & Kang, "Feature learning based deep supervised hashing with pairwise labels"
      (DPSH), IJCAI 2016 (arXiv:1511.03855); Jiang & Li, "Deep cross-modal hashing" (DCMH),
      CVPR 2017.

    Args:
      A1: ``[N, L]`` real network outputs.
      A2: ``[M, L]`` real network outputs (may be ``A1``, a memory bank, or the other modality).
      S: ``[N, M]`` similarity, 1 for similar pairs and 0 otherwise (any real, int or bool dtype).

    Returns:
      Float scalar (≥ 0 for ``S ∈ {0, 1}``).

    Raises:
      ValueError: if the shapes are not ``[N, L]``, ``[M, L]`` and ``[N, M]``.

    Examples:
      >>> round(float(pairwise_likelihood_loss(jnp.zeros((1, 4)), jnp.zeros((1, 4)),
      ...                                      jnp.ones((1, 1)))), 6)
      0.693147
    """
    check_pair_block(A1, A2, S)
    A1, A2, S = _float_operands(A1, A2, S)
    theta = 0.5 * (A1 @ A2.T)
    return jnp.mean(jax.nn.softplus(theta) - S * theta)


def between_within_loss(
    A1: jax.typing.ArrayLike, A2: jax.typing.ArrayLike, S: jax.typing.ArrayLike
) -> jax.Array:
    """Within-class scatter minus between-class scatter of the outputs.

    ``mean_{s_ij=1} ‖a_i − a'_j‖² − mean_{s_ij=0} ‖a_i − a'_j‖²``. Each mean is over its own set
    of pairs, and a set with no pair in the batch contributes 0 (no NaN, zero gradient), so a
    batch with only similar or only dissimilar pairs still gives a finite value. Squared
    distances come from norms and the Gram matrix, never from ``[N, M, L]`` differences.
    Fractional ``S`` weights each pair by ``s`` in the first mean and ``1 − s`` in the second.

    Survey eq 16 (§4.3.2) writes the objective as ``tr(Σ_B − Σ_W)`` with ``Σ_B`` the mean over
    dissimilar pairs and ``Σ_W`` the mean over similar pairs, to be *maximised*; we flip the sign
    so that, like every other term, it is minimised.

    The term is unbounded below (pushing dissimilar outputs apart never stops); combine it with
    a bounded relaxation (``tanh``) or the code constraints, as Liong et al. do.

    References:
      Liong, Lu, Wang, Moulin & Zhou, "Deep hashing for compact binary codes learning",
      CVPR 2015 (supervised DH, SDH).

    Args:
      A1: ``[N, L]`` real network outputs.
      A2: ``[M, L]`` real network outputs (may be ``A1``).
      S: ``[N, M]`` similarity, 1 for similar pairs and 0 otherwise (any real, int or bool dtype).

    Returns:
      Float scalar.

    Raises:
      ValueError: if the shapes are not ``[N, L]``, ``[M, L]`` and ``[N, M]``.

    Examples:
      >>> a = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
      >>> s = jnp.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]])
      >>> float(between_within_loss(a, a, s))
      -2.0
    """
    check_pair_block(A1, A2, S)
    A1, A2, S = _float_operands(A1, A2, S)
    squared = _squared_l2_block(A1, A2)
    return _guarded_mean(squared, S) - _guarded_mean(squared, 1.0 - S)


def contrastive_loss(
    A1: jax.typing.ArrayLike,
    A2: jax.typing.ArrayLike,
    S: jax.typing.ArrayLike,
    *,
    margin: float,
    distance: str = "l1",
) -> jax.Array:
    """Contrastive loss: pull similar pairs together, push dissimilar ones beyond a margin.

    ``mean_ij [s_ij D_ij + (1 − s_ij) max(0, m − D_ij)]`` over all ``N·M`` pairs, where ``D`` is

    - ``"l1"``: ``‖a_i − a'_j‖₁``, as printed in the survey. This has no matrix-product form, so
      it broadcasts an ``[N, M, L]`` intermediate (``4·N·M·L`` bytes in float32, kept for the
      backward pass); pair a batch with a large memory bank in chunks, or use ``"squared_l2"``.
    - ``"squared_l2"``: ``‖a_i − a'_j‖²``, computed from norms and the Gram matrix
      (``‖a‖² + ‖a'‖² − 2 a·a'``, clamped at 0), so memory is ``O(N·M)``. For ±1 codes it is
      ``4 d_H``.

    DSH (Liu et al.) writes its loss per pair as ``½ s D + ½ (1 − s) max(m − D, 0)`` with the
    squared L2 distance and ``m = 2L``, plus the regulariser ``α (‖|a_i| − 1‖₁ + ‖|a_j| − 1‖₁)``.
    Its similarity part is ``0.5 * contrastive_loss(A1, A2, S, margin=2 * L,
    distance="squared_l2")`` (our mean in place of DSH's sum over pairs); the regulariser is
    ``hash_constraint_l1`` (survey eq 7, 25).

    Survey eq 17 (§4.3.2), printed for one pair with the L1 distance of the codes ``B``; we
    apply it to the relaxed outputs ``A`` and average over the pair block.

    References:
      Zhong, Shao & Liu, "Hand dorsal vein recognition based on deep hash network", PRCV 2018;
      Liu, Wang, Shan & Chen, "Deep supervised hashing for fast image retrieval" (DSH),
      CVPR 2016; Hadsell, Chopra & LeCun, "Dimensionality reduction by learning an invariant
      mapping", CVPR 2006 (the contrastive form).

    Args:
      A1: ``[N, L]`` real network outputs.
      A2: ``[M, L]`` real network outputs (may be ``A1`` or a memory bank).
      S: ``[N, M]`` similarity, 1 for similar pairs and 0 otherwise (any real, int or bool dtype).
      margin: ``m``, the distance beyond which a dissimilar pair costs nothing (same units as
        the chosen distance).
      distance: ``"l1"`` or ``"squared_l2"``.

    Returns:
      Float scalar (≥ 0 for ``S ∈ {0, 1}``).

    Raises:
      ValueError: if the shapes are not ``[N, L]``, ``[M, L]`` and ``[N, M]``, or ``distance``
        is not one of the two names.

    Examples:
      >>> a = jnp.array([[1.0, 1.0]])
      >>> b = jnp.array([[1.0, -1.0]])
      >>> float(contrastive_loss(a, b, jnp.ones((1, 1)), margin=4.0))
      2.0
      >>> float(contrastive_loss(a, b, jnp.zeros((1, 1)), margin=5.0, distance="squared_l2"))
      1.0
    """
    if distance not in _DISTANCES:
        raise ValueError(f"distance must be one of {_DISTANCES}, got {distance!r}.")
    check_pair_block(A1, A2, S)
    A1, A2, S = _float_operands(A1, A2, S)
    if distance == "l1":
        dist = jnp.sum(jnp.abs(A1[:, None, :] - A2[None, :, :]), axis=-1)
    else:
        dist = _squared_l2_block(A1, A2)
    return jnp.mean(S * dist + (1.0 - S) * jax.nn.relu(margin - dist))
