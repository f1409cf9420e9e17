"""DFH's terms: a pairwise likelihood with a margin, and the Fisher objective of class centres.

Beyond the survey's catalogue (Deep Fisher Hashing, BMVC 2019). The first term widens the
logistic model of survey eq 15 with a margin that pushes similar pairs to a larger inner product
and dissimilar pairs to a smaller one than the plain likelihood asks for; the second scores
relaxed class centres the way Fisher's discriminant scores a projection: codes close to their
class's centre (within-class), centres far from each other (between-class), centres near ±1.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

from dlhash_jax.losses._pairwise import _float_operands
from dlhash_jax.losses._validation import check_pair_block
from dlhash_jax.losses._validation import check_rank
from dlhash_jax.losses._validation import check_same_bits
from dlhash_jax.losses._validation import check_same_rows


def _check_real(value, name: str) -> None:
    """Raises ValueError unless a static ``value`` is a real number (a traced scalar passes)."""
    if isinstance(value, jax.Array):
        if jnp.ndim(value) != 0:
            raise ValueError(f"{name} must be a scalar, got shape {jnp.shape(value)}.")
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}.")


def margin_likelihood_loss(
    A1: jax.typing.ArrayLike,
    A2: jax.typing.ArrayLike,
    S: jax.typing.ArrayLike,
    *,
    margin: float,
) -> jax.Array:
    """Negative log-likelihood of the pairwise labels with a margin on the inner products.

    With ``θ_ij = ½ a_i·a'_j``, a similar pair is scored by ``σ(θ_ij − m)`` and a dissimilar pair
    by ``1 − σ(θ_ij + m)``, so the loss is

        mean_ij [s_ij softplus(m − θ_ij) + (1 − s_ij) softplus(θ_ij + m)]

    over all ``N·M`` pairs. For codes ``θ = L/2 − d_H``, so a margin ``m`` asks similar pairs to
    be within ``L/2 − m`` bits and dissimilar ones beyond ``L/2 + m`` bits before their loss
    flattens. ``softplus`` keeps every value finite (DFH's code clamps ``θ`` to [−100, 50]
    before ``log(1 + exp(·))`` instead). With ``margin=0`` this is
    :func:`~dlhash_jax.losses.pairwise_likelihood_loss` (survey eq 15/24); the margin is beyond
    the survey. Fractional ``S`` mixes the two parts of a pair by ``s`` and ``1 − s``.

    DFH writes the sum over pairs; the authors' code takes the mean, as we do. When ``A2`` is
    ``A1`` (or a memory bank that holds the batch) the pairs ``(i, i)`` count like any other.

    References:
      Li, Pei, Zha & van Gemert, "Push for quantization: deep Fisher hashing" (DFH), BMVC 2019
      (arXiv:1909.00206).

    Args:
      A1: ``[N, L]`` real network outputs.
      A2: ``[M, L]`` real network outputs (may be ``A1`` or a memory bank).
      S: ``[N, M]`` similarity, 1 for similar pairs and 0 otherwise (any real, int or bool dtype).
      margin: ``m``, in units of ``θ`` (half an inner product); usually ``≥ 0``. A traced scalar
        is accepted unchecked.

    Returns:
      Float scalar (≥ 0).

    Raises:
      ValueError: if the shapes are not ``[N, L]``, ``[M, L]`` and ``[N, M]``, or ``margin`` is
        not a real number (or, traced, not a scalar).

    Examples:
      >>> z = jnp.zeros((1, 4))
      >>> round(float(margin_likelihood_loss(z, z, jnp.ones((1, 1)), margin=0.0)), 6)
      0.693147
      >>> round(float(margin_likelihood_loss(z, z, jnp.zeros((1, 1)), margin=1.0)), 6)
      1.313262
    """
    _check_real(margin, "margin")
    check_pair_block(A1, A2, S)
    A1, A2, S = _float_operands(A1, A2, S)
    theta = 0.5 * (A1 @ A2.T)
    similar = jax.nn.softplus(margin - theta)
    dissimilar = jax.nn.softplus(theta + margin)
    return jnp.mean(S * similar + (1.0 - S) * dissimilar)


def fisher_center_loss(
    V: jax.typing.ArrayLike,
    Y: jax.typing.ArrayLike,
    B: jax.typing.ArrayLike,
    *,
    nu: float,
    eta: float,
) -> jax.Array:
    """Fisher objective of relaxed class centres: within-class, between-class, quantization.

    For centres ``V`` (``[C, L]``, row ``c`` the centre of class ``c``), labels ``Y`` and codes
    ``B`` of ``N`` items:

        (1/(N·L)) ‖Y V − B‖²_F + ν (1/C²) ‖V Vᵀ − L (2I − 11ᵀ)‖²_F + η (1/(C·L)) ‖V − sgn V‖²_F.

    The first part (within-class) asks each code to equal its label's centre (the sum of its
    labels' centres for multi-hot rows); the second (between-class) asks each centre to have
    squared norm ``L`` and inner product ``−L`` with every other centre, i.e. to be as far from
    the others as a code can be; the third pulls the relaxed centres to ±1 (``sgn`` carries no
    gradient; ``sgn(0) = 0`` as in the authors' code). Each part is a mean over its entries, as
    in the authors' code (``.mean()`` of each squared difference).

    The within-class part is computed from ``YᵀY`` (``[C, C]``) and ``YᵀB`` (``[C, L]``) as
    ``tr(Vᵀ YᵀY V) − 2 tr(Vᵀ YᵀB) + ‖B‖²``, so minimising over ``V`` in a loop (DFH's C-step)
    costs ``O(C²L)`` per evaluation, whatever ``N`` is, once those products are formed. For a
    small residual this sum cancels; it is clamped at 0.

    Beyond the survey. DFH minimises it over ``V`` by gradient descent (its C-step) and uses
    ``sgn(V)`` as the binary class centres that push each item's code (its B-step).

    References:
      Li, Pei, Zha & van Gemert, "Push for quantization: deep Fisher hashing" (DFH), BMVC 2019
      (arXiv:1909.00206).

    Args:
      V: ``[C, L]`` relaxed class centres.
      Y: ``[N, C]`` multi-hot labels.
      B: ``[N, L]`` codes (usually ±1) of the same ``N`` items.
      nu: ``ν``, weight of the between-class part.
      eta: ``η``, weight of the centres' quantization part.

    Returns:
      Float scalar (≥ 0).

    Raises:
      ValueError: if the shapes are not ``[C, L]``, ``[N, C]`` and ``[N, L]`` with matching
        ``C``, ``L`` and ``N``, or ``nu`` or ``eta`` is not a real number.

    Examples:
      >>> V = jnp.array([[1.0, 1.0], [-1.0, -1.0]])
      >>> Y = jnp.eye(2)
      >>> float(fisher_center_loss(V, Y, V, nu=1.0, eta=1.0))
      0.0
    """
    _check_real(nu, "nu")
    _check_real(eta, "eta")
    check_rank(V, 2, "V", "[C, L]")
    check_rank(Y, 2, "Y", "[N, C]")
    check_rank(B, 2, "B", "[N, L]")
    check_same_rows(Y, B, ("Y", "B"))
    check_same_bits(V, B, ("V", "B"))
    if jnp.shape(Y)[1] != jnp.shape(V)[0]:
        raise ValueError(
            f"Y must have one column per row of V (class), got shapes {jnp.shape(Y)} and "
            f"{jnp.shape(V)}."
        )
    dtype = jnp.result_type(V, B, jnp.float32)
    V, Y, B = (jnp.asarray(x, dtype) for x in (V, Y, B))
    num_items, num_bits = B.shape
    num_classes = V.shape[0]
    gram = Y.T @ Y
    label_codes = Y.T @ B
    within = jnp.sum(V * (gram @ V)) - 2.0 * jnp.sum(V * label_codes) + jnp.sum(B**2)
    within = jnp.maximum(within, 0.0) / (num_items * num_bits)
    target = num_bits * (2.0 * jnp.eye(num_classes, dtype=dtype) - 1.0)
    between = jnp.mean((V @ V.T - target) ** 2)
    quantization = jnp.mean((V - jax.lax.stop_gradient(jnp.sign(V))) ** 2)
    return within + nu * between + eta * quantization
