"""ADSH's asymmetric objective: query outputs against database codes learned as variables.

Beyond the survey's catalogue (Asymmetric deep supervised hashing, AAAI 2018). Survey eq 14
(:func:`~dlhash_jax.losses.inner_product_loss`) regresses inner products of two sets of outputs
onto the similarity; ADSH puts the network's outputs on one side only, the sampled query items,
and binary codes of the whole database on the other, and ties each query item to its own
database code with a quantization term. The network is trained on it with the codes fixed; the
codes are updated bit by bit with the outputs fixed
(:func:`dlhash_jax.discrete.bitwise_code_update`).
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

from dlhash_jax.losses._pairwise import _float_operands
from dlhash_jax.losses._validation import check_pair_block


def _check_real(value, name: str) -> None:
    """Raises ValueError unless a static ``value`` is a real number (a traced scalar passes)."""
    if isinstance(value, jax.Array):
        if jnp.ndim(value) != 0:
            raise ValueError(f"{name} must be a scalar, got shape {jnp.shape(value)}.")
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}.")


def asymmetric_inner_product_loss(
    U: jax.typing.ArrayLike,
    V: jax.typing.ArrayLike,
    S: jax.typing.ArrayLike,
    index: jax.typing.ArrayLike,
    *,
    gamma: float,
    dissimilar: float = -1.0,
) -> jax.Array:
    """Inner products of query outputs and database codes regressed onto ``L`` times the labels.

    With ``n`` query outputs ``u_i`` (a sample ``Ω`` of the database), ``M`` database codes
    ``v_j`` (the whole database ``Γ``) and ``L`` bits:

        (1/(n·M)) [Σ_{i,j} (u_iᵀ v_j − L t_ij)² + γ Σ_i ‖v_{index_i} − u_i‖²],

    with target ``t_ij = 1`` for a similar pair and ``t_ij = dissimilar`` otherwise
    (``t = dissimilar + (1 − dissimilar) S``). The second sum ties each query output to the
    database code of its own item, row ``index_i`` of ``V`` (the sampled items are database
    items). ADSH's eq 3 is the bracket, with ``S_ij ∈ {−1, +1}`` (``dissimilar=-1``); we divide
    by ``n·M`` as the authors' code does. (Their code softens the dissimilar target to
    ``−r``, ``r`` = similar pairs / dissimilar pairs; pass ``dissimilar=-r`` for it.) The
    first sum is ``n·M`` times :func:`~dlhash_jax.losses.inner_product_loss` of ``(U, V)``.
    Gradients flow into ``U`` and ``V``; ADSH differentiates in ``U`` only.

    References:
      Jiang & Li, "Asymmetric deep supervised hashing" (ADSH), AAAI 2018 (arXiv:1707.08325).

    Args:
      U: ``[n, L]`` real network outputs of the query items (``tanh`` in ADSH).
      V: ``[M, L]`` database codes (usually ±1).
      S: ``[n, M]`` similarity of the query items to the database items, 1 for similar pairs
        and 0 otherwise (any real, int or bool dtype).
      index: ``[n]`` integer rows of ``V`` holding the query items' own codes (in range; under
        ``jit`` an index out of range is clamped, not reported).
      gamma: ``γ``, weight of the quantization sum.
      dissimilar: target inner product of a dissimilar pair, in units of ``L``.

    Returns:
      Float scalar (≥ 0 for ``γ ≥ 0``).

    Raises:
      ValueError: if the shapes are not ``[n, L]``, ``[M, L]`` and ``[n, M]``, ``index`` is not
        ``[n]`` integers, or ``gamma`` or ``dissimilar`` is not a real number (or, traced, not a
        scalar).

    Examples:
      >>> v = jnp.array([[1.0, 1.0], [-1.0, -1.0]])
      >>> float(asymmetric_inner_product_loss(v, v, jnp.eye(2), jnp.array([0, 1]), gamma=1.0))
      0.0
      >>> float(asymmetric_inner_product_loss(0.5 * v, v, jnp.eye(2), jnp.array([0, 1]),
      ...                                     gamma=4.0))
      2.0
    """
    _check_real(gamma, "gamma")
    _check_real(dissimilar, "dissimilar")
    check_pair_block(U, V, S, ("U", "V", "S"))
    if jnp.ndim(index) != 1 or jnp.shape(index)[0] != jnp.shape(U)[0]:
        raise ValueError(
            f"index must have shape [n] = ({jnp.shape(U)[0]},) for U of shape {jnp.shape(U)}, "
            f"got shape {jnp.shape(index)}."
        )
    if not jnp.issubdtype(jnp.result_type(index), jnp.integer):
        raise ValueError(
            f"index must hold integers (rows of V), got dtype {jnp.result_type(index)}."
        )
    U, V, S = _float_operands(U, V, S)
    num_bits = U.shape[1]
    target = dissimilar + (1.0 - dissimilar) * S
    pairs = jnp.sum((U @ V.T - num_bits * target) ** 2)
    quantization = jnp.sum((V[jnp.asarray(index)] - U) ** 2)
    return (pairs + gamma * quantization) / (U.shape[0] * V.shape[0])
