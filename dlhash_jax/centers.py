"""Hash centres: fixed, mutually distant target codes, one per class (CSQ).

Central similarity quantization (Yuan et al., CVPR 2020) gives every class a *hash centre*, a
code of ``L`` bits, and trains each item's output towards the centre of its labels instead of
pairing items. Centres work when they are far apart: the rows of a Hadamard matrix are at
Hamming distance exactly ``L/2`` from each other, as far as ``L`` codes can all be from each
other, and their negations add ``L`` more at distance ``L/2`` (``L`` from their own row).

- :func:`hadamard_matrix`: Sylvester's construction, ``±1`` of order a power of two.
- :func:`hash_centers`: CSQ's Algorithm 1, Hadamard rows when they suffice, else random
  balanced codes.
- :func:`tie_break_code` and :func:`label_centers`: the centre of a multi-hot label, the sign of
  the sum of its classes' centres with ties broken by one fixed random code.

Centres are built once on the host (NumPy, deterministic in their arguments and ``seed``);
:func:`label_centers` maps a batch of labels to centres inside a jitted loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# Independent random streams drawn from one seed.
_CENTER_STREAM = 0
_TIE_STREAM = 1


def _check_positive_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def hadamard_matrix(n: int) -> np.ndarray:
    """The Sylvester Hadamard matrix of order ``n``: ``H_1 = [1]``, ``H_2k = [[H, H], [H, −H]]``.

    Its rows are mutually orthogonal ±1 vectors (``H Hᵀ = n I``), so any two rows differ in
    exactly ``n/2`` positions; row 0 is all ones.

    Args:
      n: the order, a power of two.

    Returns:
      ``[n, n]`` float32 array with values in {-1, +1}.

    Raises:
      ValueError: if ``n`` is not a positive power of two.

    Examples:
      >>> hadamard_matrix(2)
      array([[ 1.,  1.],
             [ 1., -1.]], dtype=float32)
    """
    _check_positive_int(n, "n")
    if not _is_power_of_two(int(n)):
        raise ValueError(f"Sylvester's construction needs a power of two, got n={n}.")
    matrix = np.ones((1, 1), np.float32)
    while matrix.shape[0] < n:
        matrix = np.block([[matrix, matrix], [matrix, -matrix]])
    return matrix


def _pairwise_hamming(centers: np.ndarray) -> np.ndarray:
    bits = centers.shape[1]
    return (bits - centers @ centers.T) / 2


def hash_centers(num_classes: int, bits: int, *, seed: int = 0, num_draws: int = 100) -> np.ndarray:
    """One hash centre per class, as CSQ's Algorithm 1 builds them.

    - ``bits`` a power of two and ``num_classes ≤ 2·bits``: the first ``num_classes`` rows of
      ``[H; −H]`` with ``H = hadamard_matrix(bits)``. Any two centres are at Hamming distance
      ``bits/2``, except a row and its negation (``bits``), which only occur beyond ``bits``
      classes.
    - otherwise: random codes. The paper samples every bit from Bernoulli(0.5); its authors'
      released code draws *balanced* codes (``⌊bits/2⌋`` bits −1, the others +1) and redraws
      until the minimum pairwise distance is large enough. We draw ``num_draws`` sets of
      balanced codes from ``seed`` and keep the set with the largest minimum pairwise Hamming
      distance (then the largest mean), which always ends and is deterministic.

    Args:
      num_classes: ``C``, the number of centres.
      bits: ``L``, the code length.
      seed: seed of the random centres (unused on the Hadamard path).
      num_draws: candidate sets tried on the random path.

    Returns:
      ``[C, L]`` float32 array with values in {-1, +1}.

    Raises:
      ValueError: if ``num_classes``, ``bits`` or ``num_draws`` is not a positive integer.

    Examples:
      >>> hash_centers(3, 4)
      array([[ 1.,  1.,  1.,  1.],
             [ 1., -1.,  1., -1.],
             [ 1.,  1., -1., -1.]], dtype=float32)
    """
    _check_positive_int(num_classes, "num_classes")
    _check_positive_int(bits, "bits")
    _check_positive_int(num_draws, "num_draws")
    if _is_power_of_two(int(bits)) and num_classes <= 2 * bits:
        hadamard = hadamard_matrix(bits)
        return np.concatenate([hadamard, -hadamard])[:num_classes]
    rng = np.random.default_rng([seed, _CENTER_STREAM])
    balanced = np.where(np.arange(bits) < bits // 2, -1.0, 1.0).astype(np.float32)
    best, best_key = None, None
    off_diagonal = ~np.eye(num_classes, dtype=bool)
    for _ in range(num_draws):
        candidate = rng.permuted(np.broadcast_to(balanced, (num_classes, bits)), axis=1)
        distances = _pairwise_hamming(candidate)[off_diagonal]
        key = (distances.min(), distances.mean()) if distances.size else (bits, bits)
        if best_key is None or key > best_key:
            best, best_key = candidate, key
    return best.astype(np.float32)


def tie_break_code(bits: int, *, seed: int = 0) -> np.ndarray:
    """A fixed random code for the bits where a multi-label centre's vote is tied.

    CSQ's authors draw one uniform random ±1 vector at the start of training and use its bit
    wherever the sum of an item's class centres is 0 (see :func:`label_centers`).

    Args:
      bits: ``L``.
      seed: the seed; an independent stream from the one :func:`hash_centers` uses.

    Returns:
      ``[L]`` float32 array with values in {-1, +1}.

    Examples:
      >>> tie_break_code(6).shape
      (6,)
    """
    _check_positive_int(bits, "bits")
    rng = np.random.default_rng([seed, _TIE_STREAM])
    return np.where(rng.random(bits) < 0.5, -1.0, 1.0).astype(np.float32)


def label_centers(
    Y: jax.typing.ArrayLike, centers: jax.typing.ArrayLike, tie_break: jax.typing.ArrayLike
) -> jax.Array:
    """The hash centre of each item: its class's centre, or for several labels their majority.

    ``c_i = sgn(Σ_{k ∈ labels(i)} centers_k)`` bit by bit, with ``tie_break`` where the sum is 0
    (CSQ's centroid of the label centres; a one-hot label gets its class's centre unchanged, and
    an item without labels gets ``tie_break``). The sign of the sum is the sign of the mean the
    paper writes.

    Args:
      Y: ``[N, C]`` multi-hot labels.
      centers: ``[C, L]`` ±1 class centres (:func:`hash_centers`).
      tie_break: ``[L]`` ±1 code (:func:`tie_break_code`).

    Returns:
      ``[N, L]`` array with values in {-1, +1}, in the float dtype of the inputs.

    Raises:
      ValueError: if ``Y`` is not ``[N, C]``, ``centers`` not ``[C, L]`` with the same ``C``, or
        ``tie_break`` not ``[L]``.

    Examples:
      >>> centers = jnp.array([[1.0, 1.0, -1.0], [1.0, -1.0, 1.0]])
      >>> label_centers(jnp.array([[0, 1], [1, 1]]), centers, jnp.array([-1.0, -1.0, -1.0]))
      Array([[ 1., -1.,  1.],
             [ 1., -1., -1.]], dtype=float32)
    """
    if jnp.ndim(Y) != 2 or jnp.ndim(centers) != 2 or jnp.shape(Y)[1] != jnp.shape(centers)[0]:
        raise ValueError(
            f"Y must be [N, C] and centers [C, L] with the same C, got shapes {jnp.shape(Y)} "
            f"and {jnp.shape(centers)}."
        )
    if jnp.shape(tie_break) != (jnp.shape(centers)[1],):
        raise ValueError(
            f"tie_break must be [L] = ({jnp.shape(centers)[1]},) for centers of shape "
            f"{jnp.shape(centers)}, got {jnp.shape(tie_break)}."
        )
    dtype = jnp.result_type(centers, tie_break, jnp.float32)
    votes = jnp.asarray(Y, dtype) @ jnp.asarray(centers, dtype)
    tie_break = jnp.asarray(tie_break, dtype)
    return jnp.where(votes > 0, 1.0, jnp.where(votes < 0, -1.0, tie_break)).astype(dtype)
