"""Exact block updates of discrete hashing: the closed-form classifier and bit-wise code updates.

Methods that keep binary codes of the training items as variables of their own (SDH, DSDH's
``B``, ADSH's database codes ``V``) alternate between the network and these variables; the
non-gradient steps over the variables are here, as pure functions that work under ``jit``:

- :func:`ridge_classifier`: ``W = argmin_W ‖Y − B W‖²_F + λ ‖W‖²_F`` in closed form
  (SDH's and DSDH's W-step);
- :func:`bitwise_code_update`: discrete cyclic coordinate descent (DCC, Shen et al. 2015) over
  ``B ∈ {−1, +1}^{N×L}`` for every objective of the form
  ``tr(B G Bᵀ) − 2 tr(Bᵀ P)`` (``G`` symmetric ``[L, L]``), one bit (column) at a time, each
  bit set to its exact minimiser given the others; DSDH's B-step (``G = W Wᵀ``) and ADSH's
  V-step (``G = Uᵀ U``) are both of this form;
- :func:`bitwise_objective`: that objective, for checks and logs.

Every update minimises its objective exactly over the block it changes, so alternating them
never increases the objective (tests/test_discrete.py checks this against brute force).
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
from jax import lax

from dlhash_jax import codes


def _check_matrix(x, name: str, layout: str) -> None:
    if jnp.ndim(x) != 2:
        raise ValueError(f"{name} must have shape {layout}, got shape {jnp.shape(x)}.")


def _check_bitwise_operands(B, G, P) -> None:
    _check_matrix(B, "B", "[N, L]")
    _check_matrix(G, "G", "[L, L]")
    _check_matrix(P, "P", "[N, L]")
    num_bits = jnp.shape(B)[1]
    if tuple(jnp.shape(G)) != (num_bits, num_bits):
        raise ValueError(
            f"G must have shape [L, L] = {(num_bits, num_bits)} for B of shape {jnp.shape(B)}, "
            f"got {jnp.shape(G)}."
        )
    if jnp.shape(P) != jnp.shape(B):
        raise ValueError(
            f"P must have the shape of B, [N, L] = {jnp.shape(B)}, got {jnp.shape(P)}."
        )


def ridge_classifier(B: jax.typing.ArrayLike, Y: jax.typing.ArrayLike, *, reg) -> jax.Array:
    """The linear classifier of the codes that minimises ``‖Y − B W‖²_F + reg · ‖W‖²_F``.

    ``W = (Bᵀ B + reg · I)⁻¹ Bᵀ Y``, through a linear solve of the ``[L, L]`` system. SDH (Shen
    et al. 2015) and DSDH (Li et al. 2017) take this W-step with ``reg = ν / μ``; the paper
    writes ``W = (B Bᵀ + (ν/μ) I)⁻¹ B Yᵀ`` in the ``L × N`` orientation.

    Args:
      B: ``[N, L]`` codes (any real matrix).
      Y: ``[N, C]`` labels.
      reg: the ridge weight, a real number ``> 0`` (a traced scalar is accepted).

    Returns:
      ``[L, C]`` float weights ``W``.

    Raises:
      ValueError: if ``B`` is not ``[N, L]``, ``Y`` is not ``[N, C]`` with the same ``N``, or a
        static ``reg`` is not a positive real number.

    Examples:
      >>> b = jnp.array([[1.0, 1.0], [1.0, -1.0]])
      >>> ridge_classifier(b, jnp.eye(2), reg=2.0)
      Array([[ 0.25,  0.25],
             [ 0.25, -0.25]], dtype=float32)
    """
    _check_matrix(B, "B", "[N, L]")
    _check_matrix(Y, "Y", "[N, C]")
    if jnp.shape(B)[0] != jnp.shape(Y)[0]:
        raise ValueError(
            f"B and Y must have the same number of rows (items), got shapes {jnp.shape(B)} and "
            f"{jnp.shape(Y)}."
        )
    if not isinstance(reg, jax.Array) and (
        isinstance(reg, bool) or not isinstance(reg, numbers.Real) or not reg > 0
    ):
        raise ValueError(f"reg must be a positive real number, got {reg!r}.")
    dtype = jnp.result_type(B, Y, jnp.float32)
    B, Y = jnp.asarray(B, dtype), jnp.asarray(Y, dtype)
    gram = jnp.matmul(B.T, B, precision=lax.Precision.HIGHEST)
    system = gram + reg * jnp.eye(B.shape[1], dtype=dtype)
    return jnp.linalg.solve(system, jnp.matmul(B.T, Y, precision=lax.Precision.HIGHEST))


def bitwise_objective(
    B: jax.typing.ArrayLike, G: jax.typing.ArrayLike, P: jax.typing.ArrayLike
) -> jax.Array:
    """``tr(B G Bᵀ) − 2 tr(Bᵀ P)``, the objective :func:`bitwise_code_update` decreases.

    Args:
      B: ``[N, L]`` codes.
      G: ``[L, L]`` symmetric matrix.
      P: ``[N, L]`` linear coefficients.

    Returns:
      Float scalar.

    Raises:
      ValueError: for shapes other than ``[N, L]``, ``[L, L]``, ``[N, L]``.

    Examples:
      >>> float(bitwise_objective(jnp.ones((1, 2)), jnp.eye(2), jnp.ones((1, 2))))
      -2.0
    """
    _check_bitwise_operands(B, G, P)
    dtype = jnp.result_type(B, G, P, jnp.float32)
    B, G, P = (jnp.asarray(x, dtype) for x in (B, G, P))
    return jnp.sum((B @ G) * B) - 2.0 * jnp.sum(B * P)


def bitwise_code_update(
    B: jax.typing.ArrayLike, G: jax.typing.ArrayLike, P: jax.typing.ArrayLike, *, sweeps: int = 1
) -> jax.Array:
    """Discrete cyclic coordinate descent: each bit of ``B`` set to its exact minimiser in turn.

    Minimises ``f(B) = tr(B G Bᵀ) − 2 tr(Bᵀ P)`` over ``B ∈ {−1, +1}^{N×L}`` one column at a
    time, ``k = 0, …, L − 1``, the other columns fixed. With ``b_k`` column ``k`` and ``B̂, Ĝ``
    the matrices without bit ``k``, ``f = 2 b_kᵀ (B̂ Ĝ_{·k} − p_k) + const`` (``b_kᵀ b_k = N``
    is constant), so the minimiser is

        b_k = sgn(p_k − B̂ Ĝ_{·k}) = sgn(p_k − B G_{·k} + G_kk b_k),

    every row at once (``sgn(0) = +1``). Each bit update is exact, so ``f`` never increases;
    ``sweeps`` passes over all bits are taken (SDH's DCC repeats sweeps until ``B`` settles).
    ``B`` may start anywhere (zeros too: a zero bit counts as absent until its turn).

    Instances: SDH / DSDH's B-step ``min_B μ‖Y − B W‖² + η‖B − U‖²`` has ``G = W Wᵀ`` and
    ``P = Y Wᵀ + (η/μ) U``; ADSH's V-step ``min_V ‖U Vᵀ − c S‖² + γ ‖V_Ω − U‖²`` has
    ``G = Uᵀ U`` and ``P = c Sᵀ U + γ Ū`` (paper eq 9-10, with ``Q = −2P``).

    References:
      Shen, Shen, Liu & Shen, "Supervised discrete hashing", CVPR 2015 (DCC); Li, Sun, He & Tan,
      "Deep supervised discrete hashing", NeurIPS 2017; Jiang & Li, "Asymmetric deep supervised
      hashing", AAAI 2018.

    Args:
      B: ``[N, L]`` starting codes.
      G: ``[L, L]`` symmetric matrix (only ``G_{·k}`` is read for bit ``k``).
      P: ``[N, L]`` linear coefficients.
      sweeps: number of passes over the ``L`` bits (a positive Python int).

    Returns:
      ``[N, L]`` codes in {−1, +1}, the dtype of the operands (float32 at least).

    Raises:
      ValueError: for shapes other than ``[N, L]``, ``[L, L]``, ``[N, L]``, or ``sweeps`` not a
        positive int.

    Examples:
      >>> bitwise_code_update(jnp.zeros((1, 2)), jnp.eye(2), jnp.array([[0.5, -2.0]]))
      Array([[ 1., -1.]], dtype=float32)
    """
    _check_bitwise_operands(B, G, P)
    if isinstance(sweeps, bool) or not isinstance(sweeps, int) or sweeps < 1:
        raise ValueError(f"sweeps must be a positive integer, got {sweeps!r}.")
    dtype = jnp.result_type(B, G, P, jnp.float32)
    B, G, P = (jnp.asarray(x, dtype) for x in (B, G, P))
    num_bits = B.shape[1]

    def update_bit(step, codes_now):
        k = step % num_bits
        column = lax.dynamic_index_in_dim(G, k, axis=1, keepdims=False)
        current = lax.dynamic_index_in_dim(codes_now, k, axis=1, keepdims=False)
        field = lax.dynamic_index_in_dim(P, k, axis=1, keepdims=False)
        field = field - codes_now @ column + column[k] * current
        new = codes.sign(field)
        return lax.dynamic_update_index_in_dim(codes_now, new, k, axis=1)

    return lax.fori_loop(0, sweeps * num_bits, update_bit, B)
