"""GreedyHash's penalty: every output's magnitude pulled to 1 through an ℓp power (p = 3).

Not in the survey's catalogue; it generalises the element-wise hash constraints of survey eq 7/25
(``p = 1``, :func:`~dlhash_jax.losses.hash_constraint_l1`) and eq 8 (``p = 2``,
:func:`~dlhash_jax.losses.hash_constraint_l2`) to the power GreedyHash uses.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

from dlhash_jax.losses._validation import check_rank


def hash_constraint_lp(A: jax.typing.ArrayLike, *, p: float = 3.0) -> jax.Array:
    """ℓp distance of every output's magnitude from 1, raised to the p-th power.

    ``(1/N) Σ_ij | |A_ij| − 1 |^p``: the mean over samples of ``‖ |a_i| − 1 ‖_p^p``. With the
    default ``p = 3`` it is GreedyHash's penalty on the hash layer's real outputs ``h``, which
    keeps them near ±1 so that the ``sgn`` of the forward pass (trained with a straight-through
    gradient, :func:`dlhash_jax.relaxations.sign_ste`) stays close to the identity it pretends
    to be in the backward pass. ``p = 1`` equals :func:`hash_constraint_l1` (survey eq 7/25),
    ``p = 2`` :func:`hash_constraint_l2` (eq 8). For ``p > 1`` the term is differentiable at
    ``|A_ij| = 1``; like every element-wise constraint it has a kink at ``A_ij = 0``.

    GreedyHash writes the penalty as ``α ‖ |H| − 1 ‖_p^p`` with ``p = 3`` and its released code
    takes the mean over all ``N·L`` entries; ours is the mean over samples (the catalogue's
    convention, as in :func:`hash_constraint_l1`), so the code's ``α`` is ``α / L`` here.

    References:
      Su, Zhang, Han & Tian, "Greedy hash: towards fast optimization for accurate hash coding in
      CNN", NeurIPS 2018.

    Args:
      A: ``[N, L]`` real network outputs.
      p: the power, a real number ``≥ 1`` (keyword-only); a traced scalar is accepted
        unchecked.

    Returns:
      Float scalar (≥ 0).

    Raises:
      ValueError: if ``A`` is not ``[N, L]``, or ``p`` is not a real number ``≥ 1`` (or, traced,
        not a scalar).

    Examples:
      >>> float(hash_constraint_lp(jnp.array([[0.5, -3.0]])))
      8.125
      >>> float(hash_constraint_lp(jnp.array([[0.5, -3.0]]), p=1.0))
      2.5
    """
    # A traced p (a hyper-parameter passed through jit) is checked only for its shape.
    if isinstance(p, jax.Array):
        if jnp.ndim(p) != 0:
            raise ValueError(f"p must be a scalar, got shape {jnp.shape(p)}.")
    elif isinstance(p, bool) or not isinstance(p, numbers.Real) or not p >= 1:
        raise ValueError(f"p must be a real number >= 1, got {p!r}.")
    check_rank(A, 2, "A", "[N, L]")
    A = jnp.asarray(A, jnp.result_type(A, jnp.float32))
    return jnp.sum(jnp.abs(jnp.abs(A) - 1) ** p) / A.shape[0]
