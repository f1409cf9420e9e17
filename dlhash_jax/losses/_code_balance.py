"""DBDH's balance term: every code should hold as many +1 as −1 bits.

Beyond the survey's catalogue (Deep balanced discrete hashing, Neurocomputing 2020). The bit
balance of survey eq 4/6 (:func:`~dlhash_jax.losses.balance_loss`) asks each *bit* to average to
zero over the samples of a batch; this term asks each *code* to average to zero over its bits,
a per-sample constraint that needs no batch statistics.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

from dlhash_jax.losses._validation import check_rank


def _check_power(p) -> None:
    """Raises ValueError unless ``p`` is a real number ``≥ 1`` (a traced ``p``: a scalar)."""
    if isinstance(p, jax.Array):
        if jnp.ndim(p) != 0:
            raise ValueError(f"p must be a scalar, got shape {jnp.shape(p)}.")
    elif isinstance(p, bool) or not isinstance(p, numbers.Real) or not p >= 1:
        raise ValueError(f"p must be a real number >= 1, got {p!r}.")


def code_balance_loss(A: jax.typing.ArrayLike, *, p: float = 2.0) -> jax.Array:
    """Code balance: the mean of each code's bits, raised to the p-th power, averaged over codes.

    ``(1/N) Σ_i |mean_k A_ik|^p``: 0 when every code ``a_i`` has as many positive as negative
    entries of the same size (for ±1 codes, ``L/2`` bits of each sign), largest for a constant
    code. With ``p = 2`` it is ``balance_loss(Aᵀ) / N``, the bit balance of survey eq 6 applied
    across the bits of each code instead of across the samples of each bit. ``p = 2`` is smooth;
    ``p = 1`` has a kink where a code's mean is 0.

    DBDH's term, as its common re-implementation computes it (swuxyj/DeepHash-pytorch, DBDH.py:
    the mean over samples of ``|mean over bits|^p``, ``p ∈ {1, 2}``, default 2). Beyond the
    survey.

    References:
      Xiangtao Zheng, Yichao Zhang & Xiaoqiang Lu, "Deep balanced discrete hashing for image
      retrieval" (DBDH), Neurocomputing 2020.

    Args:
      A: ``[N, L]`` codes or real network outputs.
      p: the power, a real number ``≥ 1`` (keyword-only); a traced scalar is accepted
        unchecked.

    Returns:
      Float scalar (≥ 0).

    Raises:
      ValueError: if ``A`` is not ``[N, L]``, or ``p`` is not a real number ``≥ 1`` (or,
        traced, not a scalar).

    Examples:
      >>> float(code_balance_loss(jnp.array([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, 1.0, -1.0]])))
      0.125
      >>> float(code_balance_loss(jnp.array([[1.0, 1.0], [-1.0, 1.0]]), p=1.0))
      0.5
    """
    _check_power(p)
    check_rank(A, 2, "A", "[N, L]")
    A = jnp.asarray(A, jnp.result_type(A, jnp.float32))
    return jnp.mean(jnp.abs(jnp.mean(A, axis=1)) ** p)
