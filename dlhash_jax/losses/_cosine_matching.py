"""Cosine-similarity matching: the codes of a pair as similar as the pair's features.

Beyond the survey's catalogue. The unsupervised objective of GreedyHash (Su et al., NeurIPS
2018) and of BiHalf (Li & van Gemert, AAAI 2021): without labels, the similarity the codes must
preserve is the cosine similarity of fixed features of the inputs (in the papers, a pre-trained
VGG-16's fc7 activations), and the loss is the squared gap between the cosine of two items'
codes and the cosine of their features.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlhash_jax.losses._validation import check_rank

# Smallest norm a row is divided by: a zero row has cosine 0 with anything and a finite gradient
# (the bound of torch.nn.functional.cosine_similarity, which the papers' code calls).
_EPS = 1e-8


def _row_cosines(x1: jax.Array, x2: jax.Array) -> jax.Array:
    """``cos(x1_i, x2_i)`` for every row ``i``, each norm bounded below by ``_EPS``."""
    # sqrt(max(‖x‖², ε²)) rather than max(‖x‖, ε): the gradient of ‖x‖ at x = 0 is NaN.
    norm1 = jnp.sqrt(jnp.maximum(jnp.sum(x1 * x1, axis=1), _EPS**2))
    norm2 = jnp.sqrt(jnp.maximum(jnp.sum(x2 * x2, axis=1), _EPS**2))
    return jnp.sum(x1 * x2, axis=1) / (norm1 * norm2)


def cosine_similarity_matching_loss(
    A1: jax.typing.ArrayLike,
    A2: jax.typing.ArrayLike,
    X1: jax.typing.ArrayLike,
    X2: jax.typing.ArrayLike,
) -> jax.Array:
    """Mean squared gap between the cosine of paired codes and the cosine of their features.

    Row ``i`` of ``A1`` is paired with row ``i`` of ``A2`` (and ``X1`` with ``X2``): the loss is

        (1/N) Σ_i (cos(a1_i, a2_i) − cos(x1_i, x2_i))²,    cos(u, v) = u·v / (‖u‖ ‖v‖),

    over the ``N`` pairs, the codes' cosine pulled to the features'. For ±1 codes of ``L`` bits
    ``cos(b, b') = 1 − 2 d_H(b, b') / L``: the target fixes each pair's Hamming distance. Norms
    are bounded below by ``1e-8`` (a zero row has cosine 0 with anything, and a finite
    gradient). The features are usually data (no gradient needed), but the term is
    differentiable in all four arguments.

    GreedyHash's unsupervised objective and BiHalf's use it with ``A = B``, the binary codes of
    the forward pass (``sgn(h)`` with a straight-through gradient, or the batch-median split of
    :func:`dlhash_jax.relaxations.bihalf_sign`), and the authors' code pairs the first half of
    each mini-batch with the second half (``torch.nn.functional.mse_loss`` of the two cosine
    vectors: this mean). No survey equation: it is the unsupervised counterpart of the
    pairwise inner-product term (eq 14), with the feature cosine as a real-valued target.

    References:
      Shupeng Su, Chao Zhang, Kai Han & Yonghong Tian, "Greedy hash: towards fast optimization
      for accurate hash coding in CNN", NeurIPS 2018; Yunqiang Li & Jan van Gemert, "Deep
      unsupervised image hashing by maximizing bit entropy", AAAI 2021.

    Args:
      A1: ``[N, L]`` codes or outputs of the first item of each pair.
      A2: ``[N, L]`` codes or outputs of the second item.
      X1: ``[N, D]`` features of the first items.
      X2: ``[N, D]`` features of the second items.

    Returns:
      Float scalar in ``[0, 4]``.

    Raises:
      ValueError: if an argument is not a matrix, ``A1`` and ``A2`` (or ``X1`` and ``X2``)
        differ in shape, or the codes and the features do not have the same number of rows.

    Examples:
      >>> b1 = jnp.array([[1.0, 1.0, 1.0, 1.0]])
      >>> b2 = jnp.array([[1.0, 1.0, 1.0, -1.0]])  # cos(b1, b2) = 1/2
      >>> x1, x2 = jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 3.0]])  # cos = 0
      >>> float(cosine_similarity_matching_loss(b1, b2, x1, x2))
      0.25
    """
    check_rank(A1, 2, "A1", "[N, L]")
    check_rank(A2, 2, "A2", "[N, L]")
    check_rank(X1, 2, "X1", "[N, D]")
    check_rank(X2, 2, "X2", "[N, D]")
    if jnp.shape(A1) != jnp.shape(A2):
        raise ValueError(
            f"A1 and A2 must have the same shape [N, L] (row i of each is a pair), got shapes "
            f"{jnp.shape(A1)} and {jnp.shape(A2)}."
        )
    if jnp.shape(X1) != jnp.shape(X2):
        raise ValueError(
            f"X1 and X2 must have the same shape [N, D] (row i of each is a pair), got shapes "
            f"{jnp.shape(X1)} and {jnp.shape(X2)}."
        )
    if jnp.shape(A1)[0] != jnp.shape(X1)[0]:
        raise ValueError(
            f"the codes and the features must have the same number of rows (pairs), got shapes "
            f"A1 {jnp.shape(A1)} and X1 {jnp.shape(X1)}."
        )
    dtype = jnp.result_type(A1, A2, X1, X2, jnp.float32)
    A1, A2, X1, X2 = (jnp.asarray(x, dtype) for x in (A1, A2, X1, X2))
    return jnp.mean((_row_cosines(A1, A2) - _row_cosines(X1, X2)) ** 2)
