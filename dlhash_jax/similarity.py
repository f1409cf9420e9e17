"""Similarity between items: from labels, from input-space distances, from kNN graphs, and
from the Hamming distance of codes (with the normalised adjacency a graph convolution reads).

Survey §4.3.1 (input-space similarity, for unlabelled data) and the label relations that the
supervised terms of §4.3.2 and the evaluation protocol use. Batch first: labels ``Y`` are
multi-hot ``[N, C]`` (single-label data is one-hot), features ``X`` are ``[N, D]``, and every
result is an ``[N, M]`` matrix between the rows of two sets, built from one matrix product rather
than an ``[N, M, C]`` or ``[N, M, D]`` tensor.
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
from jax import lax


def _check_matrix(x, name: str, layout: str) -> None:
    if jnp.ndim(x) != 2:
        raise ValueError(f"{name} must have shape {layout}, got shape {jnp.shape(x)}.")


def _check_same_width(x1, x2, names: tuple[str, str], what: str) -> None:
    if jnp.shape(x1)[1] != jnp.shape(x2)[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same number of {what} (last axis), got "
            f"shapes {jnp.shape(x1)} and {jnp.shape(x2)}."
        )


def _as_float(x: jax.typing.ArrayLike) -> jax.Array:
    """Casts to a float dtype of at least 32 bits (labels may come as bool or int)."""
    x = jnp.asarray(x)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _check_labels(Y1, Y2) -> tuple[jax.Array, jax.Array]:
    _check_matrix(Y1, "Y1", "[N, C]")
    _check_matrix(Y2, "Y2", "[M, C]")
    _check_same_width(Y1, Y2, ("Y1", "Y2"), "classes")
    return _as_float(Y1), _as_float(Y2)


def common_labels(Y1: jax.typing.ArrayLike, Y2: jax.typing.ArrayLike) -> jax.Array:
    """Number of labels each pair shares: ``R = Y1 Y2ᵀ``.

    The graded relevance of multi-label retrieval (NDCG, ACG, the ranking terms of survey eq 19
    and 27): ``R_ij = |labels(i) ∩ labels(j)|``. For one-hot labels it equals
    :func:`label_similarity`.

    Args:
      Y1: ``[N, C]`` multi-hot labels (0/1, any real, integer or bool dtype).
      Y2: ``[M, C]`` multi-hot labels.

    Returns:
      ``[N, M]`` float matrix of non-negative integer values (float32, or float64 for float64
      input), so it enters losses without a cast.

    Raises:
      ValueError: if either input is not 2-D or their numbers of classes differ.

    Examples:
      >>> common_labels(jnp.array([[1, 1, 0]]), jnp.array([[1, 1, 1], [0, 0, 1]]))
      Array([[2., 0.]], dtype=float32)
    """
    Y1, Y2 = _check_labels(Y1, Y2)
    return Y1 @ Y2.T


def label_similarity(Y1: jax.typing.ArrayLike, Y2: jax.typing.ArrayLike) -> jax.Array:
    """Pairwise similarity from labels: ``S_ij = 1`` iff items i and j share at least one label.

    The ``S ∈ {0, 1}`` of the pairwise terms (survey eq 14-17, 24) and the relevance of the
    evaluation protocol. For single-label (one-hot) data it is "same class".

    Args:
      Y1: ``[N, C]`` multi-hot labels (non-negative values, any real, integer or bool dtype).
      Y2: ``[M, C]`` multi-hot labels.

    Returns:
      ``[N, M]`` float matrix with values in {0, 1} (float32, or float64 for float64 input).
      A row of all-zero labels is similar to nothing, itself included.

    Raises:
      ValueError: if either input is not 2-D or their numbers of classes differ.

    Examples:
      >>> label_similarity(jnp.array([[1, 1, 0]]), jnp.array([[1, 1, 1], [0, 0, 1]]))
      Array([[1., 0.]], dtype=float32)
    """
    R = common_labels(Y1, Y2)
    return (R > 0).astype(R.dtype)


def gaussian_affinity(
    X: jax.typing.ArrayLike,
    sigma: jax.typing.ArrayLike,
    *,
    X2: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """Heat-kernel affinity ``r_ij = exp(−‖x_i − x_j‖² / (2σ²))``.

    The weight matrix ``R`` of the Laplacian term (survey eq 13, :func:`graph_laplacian`),
    defined exactly as printed under eq 13. The survey calls ``r_ij`` "the distance" between the
    samples; it is a similarity in (0, 1], equal to 1 for identical samples.

    Squared distances come from the Gram matrix, ``‖x‖² + ‖x'‖² − 2 x·x'``, computed after
    subtracting the mean of ``X`` from both sets (distances do not change, cancellation does)
    at the highest matmul precision, and clamped at 0; with ``X2=None`` the diagonal is exactly 1.

    References:
      Bai et al., "Deep learning compact binary codes for fingerprint indexing", Frontiers of
      Information Technology & Electronic Engineering 2018 (survey ref [38]).

    Args:
      X: ``[N, D]`` features.
      sigma: positive bandwidth, a scalar (may be traced).
      X2: optional ``[M, D]`` second set; defaults to ``X`` (the ``[N, N]`` graph of a batch).

    Returns:
      ``[N, M]`` float matrix with values in ``[0, 1]``.

    Raises:
      ValueError: if ``X`` or ``X2`` is not 2-D, their feature sizes differ, ``sigma`` is not a
        scalar, or ``sigma`` is a Python number that is not positive.

    Examples:
      >>> gaussian_affinity(jnp.array([[0.0, 0.0], [3.0, 4.0]]), 5.0)
      Array([[1.        , 0.60653067],
             [0.60653067, 1.        ]], dtype=float32)
    """
    _check_matrix(X, "X", "[N, D]")
    if X2 is not None:
        _check_matrix(X2, "X2", "[M, D]")
        _check_same_width(X, X2, ("X", "X2"), "features")
    if jnp.ndim(sigma) != 0:
        raise ValueError(f"sigma must be a scalar, got shape {jnp.shape(sigma)}.")
    if isinstance(sigma, numbers.Real) and not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}.")
    X = _as_float(X)
    mean = jnp.mean(X, axis=0)
    X1c = X - mean
    X2c = X1c if X2 is None else _as_float(X2) - mean
    gram = jnp.matmul(X1c, X2c.T, precision=lax.Precision.HIGHEST)
    sq_dist = jnp.sum(X1c**2, axis=1)[:, None] + jnp.sum(X2c**2, axis=1)[None, :] - 2.0 * gram
    sq_dist = jnp.maximum(sq_dist, 0.0)
    if X2 is None:
        sq_dist = jnp.where(jnp.eye(X.shape[0], dtype=bool), 0.0, sq_dist)
    return jnp.exp(-sq_dist / (2.0 * jnp.asarray(sigma, sq_dist.dtype) ** 2))


def graph_laplacian(R: jax.typing.ArrayLike) -> jax.Array:
    """Unnormalised graph Laplacian ``L = D − R`` with ``D = diag(Σ_j R_ij)``.

    Used by the similarity-preserving term of survey eq 13, ``tr(A L Aᵀ)`` in the survey's
    ``L × N`` orientation, which for symmetric ``R`` equals ``½ Σ_ij R_ij ‖a_i − a_j‖²``.
    The survey sums ``R`` over the first index (column sums); we use row sums. They agree for the
    symmetric ``R`` eq 13 is defined with (:func:`gaussian_affinity`); for a non-symmetric ``R``
    the rows of ``L`` sum to zero.

    References:
      Bai et al., "Deep learning compact binary codes for fingerprint indexing", 2018 (survey
      ref [38]); Belkin & Niyogi, "Laplacian eigenmaps", NeurIPS 2001.

    Args:
      R: ``[N, N]`` non-negative affinity matrix.

    Returns:
      ``[N, N]`` matrix of the dtype of ``R``.

    Raises:
      ValueError: if ``R`` is not a square matrix.

    Examples:
      >>> graph_laplacian(jnp.array([[0.0, 2.0], [2.0, 0.0]]))
      Array([[ 2., -2.],
             [-2.,  2.]], dtype=float32)
    """
    _check_matrix(R, "R", "[N, N]")
    R = jnp.asarray(R)
    if R.shape[0] != R.shape[1]:
        raise ValueError(f"R must be a square [N, N] matrix, got shape {R.shape}.")
    return jnp.diag(jnp.sum(R, axis=1)) - R


def _check_power(power) -> None:
    """Raises ValueError unless ``power`` is a finite real ≥ 1; traced: a scalar."""
    if isinstance(power, jax.Array):
        if jnp.ndim(power) != 0:
            raise ValueError(f"power must be a scalar, got shape {jnp.shape(power)}.")
        return
    if (
        isinstance(power, bool)
        or not isinstance(power, numbers.Real)
        or not math.isfinite(power)
        or not power >= 1
    ):
        raise ValueError(f"power must be a finite real number >= 1, got {power!r}.")


def hamming_affinity(
    B1: jax.typing.ArrayLike,
    B2: jax.typing.ArrayLike | None = None,
    *,
    power: jax.typing.ArrayLike,
) -> jax.Array:
    """Affinity of binary codes from their Hamming distance: ``A_ij = (1 − d_H(b_i, b'_j)/L)^p``.

    ``1`` for equal codes, ``0`` for opposite ones; ``p > 1`` lowers the affinity of distant
    codes faster than that of near ones. The distance is computed from one matrix product,
    ``d_ij = (L − b_iᵀ b'_j)/2``, exact for ±1 codes and the bilinear extension of the
    Hamming distance to ``[−1, 1]^L``, so relaxed codes and the straight-through codes of a
    training step (whose gradient is that of this extension) go in as they are.

    Derivatives: where ``d_ij = 0`` exactly (the diagonal of ``B2=None``, and any two equal
    codes) the distance is held constant, so no gradient flows through those entries; elsewhere
    ``∂A_ij/∂b_i = p (1 − d_ij/L)^{p−1} b'_j / (2L)``. This is the gradient of TBH's authors'
    code, which computes the distance of ``{0, 1}`` codes as ``|b (b' − 1)ᵀ + (b − 1) b'ᵀ|``
    and whose ``|·|`` has derivative 0 at 0; it also keeps a code's affinity to itself the
    constant it is. With ``B2=None`` the diagonal is exactly 1 (every node of the graph is
    connected to itself, as TBH's graph convolution requires), whatever the values.

    TBH (Shen et al., CVPR 2020) builds its code-driven graph over a batch with ``p = 1.4``
    (the authors' code, ymcidence/TBH ``layer/twin_bottleneck.py``); the graph convolution then
    reads it through :func:`normalized_adjacency`. The affinity is a similarity between the
    rows of two sets like :func:`gaussian_affinity`, here in code space, and it changes as the
    codes are learned.

    References:
      Shen, Qin, Chen, Yu, Liu, Zhu, Shen & Shao, "Auto-encoding twin-bottleneck hashing",
      CVPR 2020 (arXiv:2002.11930).

    Args:
      B1: ``[N, L]`` codes in {−1, +1} (or relaxed codes in ``[−1, 1]``).
      B2: optional ``[M, L]`` second set; defaults to ``B1`` (the ``[N, N]`` graph of a batch,
        self-connected).
      power: ``p ≥ 1``, finite (keyword-only); a traced scalar is accepted unchecked. Below 1
        the derivative at ``d = L`` (opposite codes) would be infinite.

    Returns:
      ``[N, M]`` float matrix with values in ``[0, 1]`` for inputs in ``[−1, 1]`` (float32, or
      float64 for float64 input).

    Raises:
      ValueError: if ``B1`` or ``B2`` is not 2-D, their code lengths differ, ``L = 0``, or
        ``power`` is not a finite real number ≥ 1 (or, traced, not a scalar).

    Examples:
      >>> b = jnp.array([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, -1.0, -1.0], [-1.0, -1.0, -1.0, -1.0]])
      >>> hamming_affinity(b, power=1.0)
      Array([[1. , 0.5, 0. ],
             [0.5, 1. , 0.5],
             [0. , 0.5, 1. ]], dtype=float32)
    """
    _check_matrix(B1, "B1", "[N, L]")
    if B2 is not None:
        _check_matrix(B2, "B2", "[M, L]")
        _check_same_width(B1, B2, ("B1", "B2"), "bits")
    if jnp.shape(B1)[1] == 0:
        raise ValueError(f"B1 must have at least one bit, got shape {jnp.shape(B1)}.")
    _check_power(power)
    B1 = _as_float(B1)
    B2 = B1 if B2 is None else _as_float(B2)
    bits = B1.shape[1]
    inner = jnp.matmul(B1, B2.T, precision=lax.Precision.HIGHEST)
    distance = (bits - inner) / 2
    # Equal codes: no derivative through their distance (the authors' |·| at 0; a code's
    # distance to itself is 0 whatever the code).
    distance = jnp.where(distance == 0, lax.stop_gradient(distance), distance)
    # Inputs outside [−1, 1] could push the base below 0, where a fractional power is NaN.
    base = jnp.maximum(1 - distance / bits, 0)
    affinity = base ** jnp.asarray(power, base.dtype)
    if B2 is B1:
        affinity = jnp.where(jnp.eye(B1.shape[0], dtype=bool), 1.0, affinity)
    return affinity.astype(B1.dtype)


def normalized_adjacency(A: jax.typing.ArrayLike, *, eps: float = 1e-8) -> jax.Array:
    """Symmetrically normalised adjacency ``D^{−1/2} A D^{−1/2}``, ``D = diag(Σ_j A_ij + ε)``.

    The propagation matrix of a graph convolution (Kipf & Welling): entry ``(i, j)`` is
    ``A_ij / √((d_i + ε)(d_j + ε))`` with ``d_i`` the row sums (degrees); for a
    self-connected ``A`` (non-zero diagonal, e.g. :func:`hamming_affinity` of a batch), the
    renormalised ``Ã`` of the GCN paper. ``ε`` keeps an isolated node (a zero row) at 0
    instead of ``0/0``; TBH's authors' code adds ``1e-8`` to the degrees, the default.

    Differentiable in ``A``, degrees included (a graph built from learned codes passes its
    gradient on through both).

    References:
      Kipf & Welling, "Semi-supervised classification with graph convolutional networks",
      ICLR 2017; Shen et al., "Auto-encoding twin-bottleneck hashing", CVPR 2020 (the
      authors' ``GCNLayer.graph_laplacian``, which despite its name computes this matrix).

    Args:
      A: ``[N, N]`` non-negative affinity matrix.
      eps: ``ε ≥ 0`` added to every degree (keyword-only), finite.

    Returns:
      ``[N, N]`` matrix of the dtype of ``A`` (float32 for integer input); symmetric when
      ``A`` is.

    Raises:
      ValueError: if ``A`` is not a square matrix, or ``eps`` is not a finite real ≥ 0.

    Examples:
      >>> # Degrees 4 and 1: A_ij / √(d_i d_j).
      >>> normalized_adjacency(jnp.array([[3.0, 1.0], [1.0, 0.0]]), eps=0.0)
      Array([[0.75, 0.5 ],
             [0.5 , 0.  ]], dtype=float32)
    """
    _check_matrix(A, "A", "[N, N]")
    if jnp.shape(A)[0] != jnp.shape(A)[1]:
        raise ValueError(f"A must be a square [N, N] matrix, got shape {jnp.shape(A)}.")
    if (
        isinstance(eps, bool)
        or not isinstance(eps, numbers.Real)
        or not math.isfinite(eps)
        or not eps >= 0
    ):
        raise ValueError(f"eps must be a finite real number >= 0, got {eps!r}.")
    A = _as_float(A)
    inv_sqrt = lax.rsqrt(jnp.sum(A, axis=1) + jnp.asarray(eps, A.dtype))
    return inv_sqrt[:, None] * A * inv_sqrt[None, :]


def _check_k(k, name: str, low: int, n: int) -> None:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {k!r}.")
    if not low <= k <= n - 1:
        raise ValueError(
            f"{name} must be in [{low}, N - 1] = [{low}, {n - 1}] for X with N = {n} rows, "
            f"got {name} = {k}."
        )


def knn_graph_similarity(
    X: jax.typing.ArrayLike, k1: int, k2: int, *, symmetric: bool = False
) -> jax.Array:
    """Pairwise ±1 similarity from a two-hop cosine k-nearest-neighbour graph.

    ``S_ij = +1`` when ``x_j`` is one of the ``k1`` nearest neighbours of ``x_i``, or one of
    the ``k1`` nearest neighbours of one of the ``k2`` nearest neighbours of ``x_i``; otherwise
    ``S_ij = −1``. Nearness is cosine similarity; an item is never its own neighbour; ties are
    broken towards the lower index (``lax.top_k``); a zero feature vector has cosine 0 to
    everything. The ``k2`` neighbours themselves are not added unless they are among the ``k1``
    nearest (always the case when ``k2 <= k1``). ``k2 = 0`` gives the plain ``k1``-NN graph.

    Diagonal: ``S_ii = +1`` (an item is similar to itself), rather than whatever the two-hop rule
    happens to give. Symmetry: the rule is directional, so ``S`` is not symmetric in general;
    ``symmetric=True`` returns ``max(S, Sᵀ)`` (similar when either item reaches the other).

    Survey §4.3.1 2): the first kNN pass gives ``S_1``, a second pass over the ``K_2`` nearest
    neighbours extends it, and ``S`` is +1 where ``(S_1)_ij = 1`` or ``x_j`` is a ``K_1``-NN of
    a ``K_2``-NN of ``x_i``. The graph is not differentiable: build it once from fixed features
    (e.g. a pretrained backbone) and use it as the target of a pairwise term.

    References:
      He Tao, "Research on image retrieval methods based on hashing and deep learning",
      PhD thesis, University of Electronic Science and Technology of China, 2018 (survey ref
      [65]).

    Args:
      X: ``[N, D]`` features.
      k1: number of nearest neighbours of each item and of each of its ``k2`` neighbours; an
        integer in ``[1, N − 1]``.
      k2: number of nearest neighbours whose own ``k1`` neighbours are added; an integer in
        ``[0, N − 1]``.
      symmetric: return ``max(S, Sᵀ)``.

    Returns:
      ``[N, N]`` float matrix with values in {−1, +1} (float32, or float64 for float64 input).

    Raises:
      ValueError: if ``X`` is not 2-D or ``k1``/``k2`` are not integers in range.

    Examples:
      >>> X = jnp.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
      >>> knn_graph_similarity(X, 1, 0)
      Array([[ 1.,  1., -1., -1.],
             [ 1.,  1., -1., -1.],
             [-1., -1.,  1.,  1.],
             [-1., -1.,  1.,  1.]], dtype=float32)
    """
    _check_matrix(X, "X", "[N, D]")
    n = jnp.shape(X)[0]
    _check_k(k1, "k1", 1, n)
    _check_k(k2, "k2", 0, n)
    X = _as_float(X)
    norms = jnp.linalg.norm(X, axis=1, keepdims=True)
    # Zero rows would divide by zero; they keep norm 0 and so cosine 0 to everything.
    unit = X / jnp.where(norms > 0, norms, 1.0)
    cosine = jnp.matmul(unit, unit.T, precision=lax.Precision.HIGHEST)
    eye = jnp.eye(n, dtype=bool)
    cosine = jnp.where(eye, -jnp.inf, cosine)
    _, neighbours = lax.top_k(cosine, max(k1, k2))
    rows = jnp.arange(n)[:, None]
    direct = jnp.zeros((n, n), bool).at[rows, neighbours[:, :k1]].set(True)

    def add_hop(t, reached):
        return reached | direct[neighbours[:, t]]

    # One [N, N] gather per hop keeps memory at O(N²) instead of an [N, k2, N] tensor.
    reached = lax.fori_loop(0, k2, add_hop, direct | eye)
    if symmetric:
        reached = reached | reached.T
    return jnp.where(reached, 1.0, -1.0).astype(X.dtype)
