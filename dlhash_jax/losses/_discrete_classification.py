"""DSDH's objective of the discrete codes: a linear classifier of the codes and their distance to
the network's outputs.

Beyond the survey's catalogue (Deep supervised discrete hashing, NeurIPS 2017). Survey eq 22
(:func:`~dlhash_jax.losses.linear_classification_loss`) regresses the labels on the codes; DSDH
adds the classifier's ridge penalty and the quantization of eq 2 between the codes ``B``, which
are variables of their own, and the outputs ``U``. It is the objective of DSDH's discrete step
(SDH's objective with the network's outputs as the hash function): the W-step
(:func:`dlhash_jax.discrete.ridge_classifier`) and the B-step
(:func:`dlhash_jax.discrete.bitwise_code_update`) minimise it exactly over their block.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

from dlhash_jax.losses._validation import check_rank
from dlhash_jax.losses._validation import check_same_rows


def _check_real(value, name: str) -> None:
    """Raises ValueError unless a static ``value`` is a real number (a traced scalar passes)."""
    if isinstance(value, jax.Array):
        if jnp.ndim(value) != 0:
            raise ValueError(f"{name} must be a scalar, got shape {jnp.shape(value)}.")
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}.")


def discrete_classification_loss(
    B: jax.typing.ArrayLike,
    U: jax.typing.ArrayLike,
    Y: jax.typing.ArrayLike,
    W: jax.typing.ArrayLike,
    *,
    mu: float,
    nu: float,
    eta: float,
) -> jax.Array:
    """Classification of the codes by a linear classifier, its ridge penalty, and quantization.

    ``(1/N) [μ ‖Y − B W‖²_F + ν ‖W‖²_F + η ‖B − U‖²_F]``: the labels regressed on the codes
    (survey eq 22), the classifier's weight decay, and the squared distance of each code to the
    network's output for its item (survey eq 2). DSDH writes it in the ``L × N`` orientation as
    ``μ Σ_i ‖y_i − Wᵀ b_i‖² + ν ‖W‖²_F + η Σ_i ‖b_i − u_i‖²``; ours is that divided by ``N``,
    the number of rows given, so over the whole training set it is the paper's objective of
    ``(B, W)`` divided by ``N``. (The ridge penalty counts once per call: on a batch it weighs
    ``N_train / N`` times more than in the full objective; its gradient in ``U`` is 0.)
    Gradients flow into every argument; DSDH's network step differentiates it in ``U`` only
    (the codes and the classifier are fixed there).

    References:
      Li, Sun, He & Tan, "Deep supervised discrete hashing" (DSDH), NeurIPS 2017
      (arXiv:1705.10999); Shen, Shen, Liu & Shen, "Supervised discrete hashing", CVPR 2015.

    Args:
      B: ``[N, L]`` codes (usually ±1; any real matrix is accepted).
      U: ``[N, L]`` real network outputs of the same items.
      Y: ``[N, C]`` labels (one-hot or multi-hot).
      W: ``[L, C]`` classifier weights.
      mu: ``μ``, weight of the classification part.
      nu: ``ν``, weight of the ridge penalty.
      eta: ``η``, weight of the quantization part.

    Returns:
      Float scalar (≥ 0 for non-negative weights).

    Raises:
      ValueError: if ``B`` or ``U`` is not ``[N, L]``, ``Y`` is not ``[N, C]`` with the same
        ``N``, ``W`` is not ``[L, C]``, or a weight is not a real number (or, traced, not a
        scalar).

    Examples:
      >>> b = jnp.array([[1.0, -1.0]])
      >>> float(discrete_classification_loss(b, 0.5 * b, jnp.array([[1.0, 0.0]]), jnp.eye(2),
      ...                                    mu=1.0, nu=0.5, eta=2.0))
      3.0
    """
    for value, name in ((mu, "mu"), (nu, "nu"), (eta, "eta")):
        _check_real(value, name)
    check_rank(B, 2, "B", "[N, L]")
    check_rank(U, 2, "U", "[N, L]")
    check_rank(Y, 2, "Y", "[N, C]")
    check_rank(W, 2, "W", "[L, C]")
    if jnp.shape(U) != jnp.shape(B):
        raise ValueError(
            f"B and U must have the same shape [N, L], got shapes {jnp.shape(B)} and "
            f"{jnp.shape(U)}."
        )
    check_same_rows(B, Y, ("B", "Y"))
    expected = (jnp.shape(B)[1], jnp.shape(Y)[1])
    if tuple(jnp.shape(W)) != expected:
        raise ValueError(
            f"W must have shape [L, C] = {expected} for B of shape {jnp.shape(B)} and Y of "
            f"shape {jnp.shape(Y)}, got {jnp.shape(W)}."
        )
    dtype = jnp.result_type(B, U, W, jnp.float32)
    B, U, Y, W = (jnp.asarray(x, dtype) for x in (B, U, Y, W))
    classification = jnp.sum((Y - B @ W) ** 2)
    ridge = jnp.sum(W**2)
    quantization = jnp.sum((B - U) ** 2)
    return (mu * classification + nu * ridge + eta * quantization) / B.shape[0]
