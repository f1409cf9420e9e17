"""Binary codes: sign, Hamming distances, and packing ±1 codes into ``uint32`` words.

Conventions (docs/design.md): codes ``B`` are ``[N, L]`` matrices with values in {-1, +1}, batch
first. For ±1 vectors ``b, b'`` of length ``L`` the Hamming distance is ``(L - b·b') / 2`` (survey
§2), so a whole ``[N, M]`` distance matrix is one matrix product. For a database of millions the codes are
packed 32 bits to a word and compared with XOR and population count.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

WORD_BITS = 32


def _check_matrix(x, name: str) -> None:
    if jnp.ndim(x) != 2:
        raise ValueError(f"{name} must be a 2-D [N, L] matrix, got shape {jnp.shape(x)}.")


def _check_same_bits(x1, x2, names: tuple[str, str]) -> None:
    _check_matrix(x1, names[0])
    _check_matrix(x2, names[1])
    if jnp.shape(x1)[1] != jnp.shape(x2)[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same number of bits (last axis), got shapes "
            f"{jnp.shape(x1)} and {jnp.shape(x2)}."
        )


def sign(x: jax.typing.ArrayLike) -> jax.Array:
    """Elementwise sign with ``sgn(0) = +1``, so every output is a valid code bit.

    ``jnp.sign`` maps 0 to 0, which is not a code value; hashing papers define sgn(0) = +1.

    Args:
      x: array of any shape, real or integer dtype.

    Returns:
      Array of the same shape and dtype as ``x`` with values in {-1, +1}.

    Examples:
      >>> sign(jnp.array([-2.0, 0.0, 3.0]))
      Array([-1.,  1.,  1.], dtype=float32)
    """
    x = jnp.asarray(x)
    return jnp.where(x >= 0, jnp.ones((), x.dtype), -jnp.ones((), x.dtype))


def check_codes(codes, name: str = "codes") -> np.ndarray:
    """Validates a code matrix on the host and returns it as a NumPy array.

    Used at the boundary of non-traced entry points (retrieval, metrics) so that a matrix of real
    outputs or 0/1 bits passed by mistake is refused instead of giving a silently wrong number.

    Args:
      codes: ``[N, L]`` array with values in {-1, +1}, any real or integer dtype.
      name: name used in error messages.

    Returns:
      ``codes`` as a NumPy array (unchanged values).

    Raises:
      ValueError: if ``codes`` is not 2-D, has no bits, or holds values other than -1 and +1.
    """
    arr = np.asarray(codes)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [N, L] matrix of ±1 codes, got shape {arr.shape}.")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one bit, got shape {arr.shape}.")
    # jnp.issubdtype also knows JAX's extra float types (bfloat16), which NumPy's does not.
    if arr.dtype == bool or not (
        jnp.issubdtype(arr.dtype, jnp.integer) or jnp.issubdtype(arr.dtype, jnp.floating)
    ):
        raise ValueError(f"{name} must be a real or integer ±1 matrix, got dtype {arr.dtype}.")
    bad = (arr != 1) & (arr != -1)
    if bad.any():
        example = arr[bad].flat[0]
        raise ValueError(
            f"{name} must hold only -1 and +1 values; found {int(bad.sum())} other entries "
            f"(e.g. {example!r}) in an array of shape {arr.shape}. Binarise real outputs with "
            "dlhash_jax.codes.sign, and map 0/1 bits with 2*b - 1."
        )
    return arr


def relaxed_hamming_distance(a1: jax.typing.ArrayLike, a2: jax.typing.ArrayLike) -> jax.Array:
    """Relaxed Hamming distance ``d_ij = (L - a_i·a'_j) / 2`` between real-valued outputs.

    Equals the Hamming distance when both inputs are ±1, and is differentiable everywhere, which
    is how the pairwise losses of the survey (§4.3) use it.

    Args:
      a1: ``[N, L]`` real network outputs.
      a2: ``[M, L]`` real network outputs.

    Returns:
      ``[N, M]`` float matrix.
    """
    _check_same_bits(a1, a2, ("a1", "a2"))
    a1 = jnp.asarray(a1)
    a2 = jnp.asarray(a2)
    num_bits = a1.shape[1]
    return 0.5 * (num_bits - a1 @ a2.T)


def hamming_distance(b1: jax.typing.ArrayLike, b2: jax.typing.ArrayLike) -> jax.Array:
    """Exact Hamming distance between ±1 codes, ``(L - b_i·b'_j) / 2``.

    Args:
      b1: ``[N, L]`` codes in {-1, +1}.
      b2: ``[M, L]`` codes in {-1, +1}.

    Returns:
      ``[N, M]`` ``int32`` matrix of distances in ``[0, L]``.

    Examples:
      >>> hamming_distance(jnp.array([[1, -1, 1]]), jnp.array([[1, 1, 1], [-1, 1, -1]]))
      Array([[1, 3]], dtype=int32)
    """
    _check_same_bits(b1, b2, ("b1", "b2"))
    # float32 products of ±1 are exact up to L = 2**24 bits.
    b1 = jnp.asarray(b1, jnp.float32)
    b2 = jnp.asarray(b2, jnp.float32)
    num_bits = b1.shape[1]
    return jnp.round(0.5 * (num_bits - b1 @ b2.T)).astype(jnp.int32)


def num_words(num_bits: int) -> int:
    """Number of ``uint32`` words that hold ``num_bits`` packed bits."""
    return -(-num_bits // WORD_BITS)


def pack_bits(bits: jax.typing.ArrayLike) -> jax.Array:
    """Packs a matrix of bits into ``uint32`` words, 32 bits a word, without checking values.

    Bit ``j`` of word ``w`` of row ``i`` is 1 exactly when ``bits[i, 32 w + j] > 0``, so ±1 codes
    (+1 is a set bit) and 0/1 multi-hot labels pack alike. When ``L`` is not a multiple of 32 the
    last word is padded with 0 bits, identical for every row, so they never contribute to a
    distance. This is the kernel of :func:`pack_codes` for callers that validated their input
    already or pack something other than codes; it works under ``jit``.

    Args:
      bits: ``[N, L]`` matrix of any real, integer or boolean dtype.

    Returns:
      ``[N, ceil(L / 32)]`` ``uint32`` matrix.

    Examples:
      >>> pack_bits(jnp.array([[1, 0, 1]]))
      Array([[5]], dtype=uint32)
    """
    _check_matrix(bits, "bits")
    bits = jnp.asarray(bits)
    n, num_bits = bits.shape
    words = num_words(num_bits)
    bits = (bits > 0).astype(jnp.uint32)
    bits = jnp.pad(bits, ((0, 0), (0, words * WORD_BITS - num_bits)))
    bits = bits.reshape(n, words, WORD_BITS)
    shifts = jnp.arange(WORD_BITS, dtype=jnp.uint32)
    # Bits are disjoint, so the sum of shifted bits is their bitwise OR.
    return jnp.sum(bits << shifts, axis=-1, dtype=jnp.uint32)


def pack_codes(codes: jax.typing.ArrayLike) -> jax.Array:
    """Packs ±1 codes into ``uint32`` words, 32 bits a word, refusing anything that is not ±1.

    Bit ``j`` of word ``w`` of row ``i`` is 1 exactly when ``codes[i, 32 w + j] == +1`` (the layout
    of :func:`pack_bits`). A concrete array is validated with :func:`check_codes` first, so NaN,
    infinities, 0/1 bits or real network outputs raise instead of packing silently (NaN would
    otherwise pack as -1). Under ``jit`` the values are not known; a traced array is packed
    without the check, with values ``> 0`` as +1.

    Args:
      codes: ``[N, L]`` codes in {-1, +1} (any real or integer dtype), ``L >= 1``.

    Returns:
      ``[N, ceil(L / 32)]`` ``uint32`` matrix.

    Raises:
      ValueError: if ``codes`` is not a 2-D matrix, or (concrete arrays) has no bits, a boolean or
        non-numeric dtype, or values other than -1 and +1.

    Examples:
      >>> pack_codes(jnp.array([[1, -1, 1]]))
      Array([[5]], dtype=uint32)
    """
    _check_matrix(codes, "codes")
    if not isinstance(codes, jax.core.Tracer):
        check_codes(codes, "codes")
    return pack_bits(codes)


def unpack_codes(packed: jax.typing.ArrayLike, num_bits: int, dtype=jnp.float32) -> jax.Array:
    """Inverse of :func:`pack_codes`.

    Args:
      packed: ``[N, W]`` ``uint32`` words, ``W == ceil(num_bits / 32)``.
      num_bits: the code length ``L``.
      dtype: dtype of the returned codes.

    Returns:
      ``[N, L]`` codes in {-1, +1} of the given dtype.
    """
    _check_matrix(packed, "packed")
    packed = jnp.asarray(packed)
    if packed.dtype != jnp.uint32:
        raise ValueError(f"packed must have dtype uint32, got {packed.dtype}.")
    if packed.shape[1] != num_words(num_bits):
        raise ValueError(
            f"packed has {packed.shape[1]} words per row, but {num_bits} bits need "
            f"{num_words(num_bits)}; got packed shape {packed.shape}."
        )
    shifts = jnp.arange(WORD_BITS, dtype=jnp.uint32)
    bits = (packed[:, :, None] >> shifts) & jnp.uint32(1)
    bits = bits.reshape(packed.shape[0], -1)[:, :num_bits]
    return jnp.where(bits == 1, 1, -1).astype(dtype)


def packed_hamming_distance(p1: jax.typing.ArrayLike, p2: jax.typing.ArrayLike) -> jax.Array:
    """Hamming distance between packed codes: population count of XOR, summed over words.

    Loops over the (few) words so the largest intermediate is ``[N, M]``, never ``[N, M, W]``.

    Args:
      p1: ``[N, W]`` ``uint32`` packed codes.
      p2: ``[M, W]`` ``uint32`` packed codes.

    Returns:
      ``[N, M]`` ``int32`` matrix of distances.
    """
    _check_matrix(p1, "p1")
    _check_matrix(p2, "p2")
    if jnp.shape(p1)[1] != jnp.shape(p2)[1]:
        raise ValueError(
            f"p1 and p2 must have the same number of packed words (last axis), got shapes "
            f"{jnp.shape(p1)} and {jnp.shape(p2)}."
        )
    p1 = jnp.asarray(p1)
    p2 = jnp.asarray(p2)
    if p1.dtype != jnp.uint32 or p2.dtype != jnp.uint32:
        raise ValueError(
            f"packed codes must have dtype uint32, got {p1.dtype} and {p2.dtype}; "
            "pack ±1 codes with dlhash_jax.codes.pack_codes."
        )
    dist = jnp.zeros((p1.shape[0], p2.shape[0]), jnp.int32)
    for w in range(p1.shape[1]):
        dist = dist + lax.population_count(p1[:, w, None] ^ p2[None, :, w]).astype(jnp.int32)
    return dist
