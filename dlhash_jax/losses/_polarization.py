"""Polarization: every output bit pushed past a margin on the side of its class's target bit (DPN).

DPN (Fan, Ng, Ju, Zhang & Chan, IJCAI 2020) gives every class a fixed ±1 *target vector* and asks
each bit of a sample's output to lie beyond the margin on the target's side: ``a_k t_k ≥ m``. A bit
that does costs nothing, so the outputs are driven away from 0 ("polarized") and the code is the
target's, with no quantization term. A multi-label sample is pulled towards the target of each
of its labels. The target vectors are the method's choice (DPN: random, one per class; CSQ's hash
centres, :mod:`dlhash_jax.centers`, also fit).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlhash_jax.losses._validation import check_rank, check_same_rows


def polarization_loss(
    A: jax.typing.ArrayLike,
    Y: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    *,
    margin: float,
) -> jax.Array:
    """Hinge of every bit against the target bits of the sample's labels.

    ``(1/N) Σ_i Σ_c Y_ic Σ_k max(m − a_ik t_ck, 0)``: for a single-label sample of class ``c``
    (one-hot ``Y``) the sum over bits of ``max(m − a_ik t_ck, 0)``; a multi-label sample adds the
    hinges against the targets of all its labels, so a bit on which its labels' targets agree is
    polarized towards them, and a bit on which they split evenly is free in ``[−m, m]`` and pushed
    back into it beyond. A sample without labels costs nothing. Memory ``O(N·C·L)``.

    DPN's polarization loss (Fan et al.) is ``Σ_k max(m − v_k t_k, 0)`` per sample against its
    class's target vector; the sum over a multi-label sample's labels (weighted by ``Y``) and the
    mean over samples follow the authors' released code (kamwoh/DPN,
    ``scripts/train_hashing.py``). The term is not in the survey.

    References:
      Fan, Ng, Ju, Zhang & Chan, "Deep polarized network for supervised learning of accurate
      binary hashing codes" (DPN), IJCAI 2020.

    Args:
      A: ``[N, L]`` real network outputs (DPN: the linear hash layer, unbounded).
      Y: ``[N, C]`` multi-hot labels (one-hot for single-label data), or non-negative weights.
      targets: ``[C, L]`` target vectors, one per class, with values in {−1, +1}.
      margin: ``m``, how far past 0 on the target's side each bit must lie.

    Returns:
      Float scalar (≥ 0 for non-negative ``Y``).

    Raises:
      ValueError: if ``A`` is not ``[N, L]``, ``Y`` not ``[N, C]`` with the same ``N``, or
        ``targets`` not ``[C, L]`` with the ``C`` of ``Y`` and the ``L`` of ``A``.

    Examples:
      >>> a = jnp.array([[2.0, 0.5, -1.0]])
      >>> t = jnp.array([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]])
      >>> float(polarization_loss(a, jnp.array([[1, 0]]), t, margin=1.0))  # 0 + 0.5 + 2
      2.5
    """
    check_rank(A, 2, "A", "[N, L]")
    check_rank(Y, 2, "Y", "[N, C]")
    check_rank(targets, 2, "targets", "[C, L]")
    check_same_rows(A, Y, ("A", "Y"))
    expected = (jnp.shape(Y)[1], jnp.shape(A)[1])
    if tuple(jnp.shape(targets)) != expected:
        raise ValueError(
            f"targets must have shape [C, L] = {expected} for A of shape {jnp.shape(A)} and Y of "
            f"shape {jnp.shape(Y)}, got {jnp.shape(targets)}."
        )
    dtype = jnp.result_type(A, targets, jnp.float32)
    A, Y, targets = (jnp.asarray(x, dtype) for x in (A, Y, targets))
    hinge = jax.nn.relu(margin - A[:, None, :] * targets[None, :, :])  # [N, C, L]
    return jnp.sum(Y[:, :, None] * hinge) / A.shape[0]
