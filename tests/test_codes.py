"""Tests of dlhash_jax.codes against NumPy loops and hand-computed cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlhash_jax import codes

CODE_LENGTHS = (1, 7, 32, 33, 64, 100)


def _random_codes(rng, n, num_bits):
    return np.where(rng.random((n, num_bits)) < 0.5, -1, 1).astype(np.float32)


def _naive_pack(b):
    """Bit j of word w of row i is set iff b[i, 32 w + j] == +1; padding bits stay 0."""
    n, num_bits = b.shape
    words = -(-num_bits // 32)
    out = np.zeros((n, words), dtype=np.uint64)
    for i in range(n):
        for k in range(num_bits):
            if b[i, k] == 1:
                out[i, k // 32] += 1 << (k % 32)
    return out.astype(np.uint32)


def _naive_hamming(b1, b2):
    return np.array([[int(np.sum(x != y)) for y in b2] for x in b1])


def test_sign_maps_zero_to_plus_one_and_keeps_dtype():
    x = jnp.array([-2.5, -0.0, 0.0, 1e-30, 3.0], dtype=jnp.float32)
    out = codes.sign(x)
    np.testing.assert_array_equal(out, [-1.0, 1.0, 1.0, 1.0, 1.0])
    assert out.dtype == jnp.float32
    out_int = codes.sign(jnp.array([[-3, 0, 4]], dtype=jnp.int32))
    np.testing.assert_array_equal(out_int, [[-1, 1, 1]])
    assert out_int.dtype == jnp.int32


def test_sign_under_jit_and_vmap():
    x = jnp.array([[0.0, -1.0], [2.0, 0.0]])
    np.testing.assert_array_equal(jax.jit(jax.vmap(codes.sign))(x), [[1.0, -1.0], [1.0, 1.0]])


@pytest.mark.parametrize("num_bits", CODE_LENGTHS)
def test_pack_matches_naive_layout_and_round_trips(num_bits):
    rng = np.random.default_rng(num_bits)
    b = _random_codes(rng, 5, num_bits)
    packed = codes.pack_codes(b)
    assert packed.dtype == jnp.uint32
    assert packed.shape == (5, codes.num_words(num_bits)) == (5, -(-num_bits // 32))
    np.testing.assert_array_equal(np.asarray(packed), _naive_pack(b))
    unpacked = codes.unpack_codes(packed, num_bits)
    assert unpacked.dtype == jnp.float32
    np.testing.assert_array_equal(unpacked, b)
    np.testing.assert_array_equal(codes.unpack_codes(packed, num_bits, dtype=jnp.int8), b)


def test_pack_hand_computed_words():
    b = np.full((2, 33), -1)
    b[0, 0] = b[0, 2] = 1
    b[1, 31] = b[1, 32] = 1
    np.testing.assert_array_equal(codes.pack_codes(b), np.array([[5, 0], [2**31, 1]], np.uint32))


@pytest.mark.parametrize("num_bits", CODE_LENGTHS)
def test_distances_agree_with_naive_count(num_bits):
    rng = np.random.default_rng(100 + num_bits)
    b1 = _random_codes(rng, 4, num_bits)
    b2 = _random_codes(rng, 6, num_bits)
    b2[0] = b1[0]
    b2[1] = -b1[1]
    expected = _naive_hamming(b1, b2)
    exact = codes.hamming_distance(b1, b2)
    assert exact.dtype == jnp.int32
    np.testing.assert_array_equal(exact, expected)
    packed = codes.packed_hamming_distance(codes.pack_codes(b1), codes.pack_codes(b2))
    assert packed.dtype == jnp.int32
    np.testing.assert_array_equal(packed, expected)
    np.testing.assert_allclose(codes.relaxed_hamming_distance(b1, b2), expected, atol=1e-5)
    assert expected[0, 0] == 0 and expected[1, 1] == num_bits


def test_relaxed_distance_on_real_outputs_matches_loop():
    rng = np.random.default_rng(0)
    a1 = rng.normal(size=(3, 5)).astype(np.float32)
    a2 = rng.normal(size=(4, 5)).astype(np.float32)
    expected = np.array([[(5 - float(np.dot(x, y))) / 2 for y in a2] for x in a1])
    np.testing.assert_allclose(codes.relaxed_hamming_distance(a1, a2), expected, rtol=1e-5)


def test_hamming_distance_accepts_integer_codes():
    out = codes.hamming_distance(jnp.array([[1, -1, 1]]), jnp.array([[1, 1, 1], [-1, 1, -1]]))
    np.testing.assert_array_equal(out, [[1, 3]])


def test_check_codes_accepts_pm1_and_returns_numpy():
    arr = codes.check_codes(jnp.array([[1, -1], [-1, 1]], dtype=jnp.int8))
    assert isinstance(arr, np.ndarray)
    np.testing.assert_array_equal(arr, [[1, -1], [-1, 1]])
    codes.check_codes(np.array([[1.0, -1.0, 1.0]]))


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.array([[0, 1], [1, 0]]), r"only -1 and \+1 values; found 2 other entries"),
        (np.array([[0.3, -1.0]]), r"only -1 and \+1.*shape \(1, 2\)"),
        (np.array([[1.0, np.nan]]), r"only -1 and \+1"),
        (np.array([1, -1, 1]), r"2-D \[N, L\].*shape \(3,\)"),
        (np.ones((2, 2, 2)), r"2-D \[N, L\].*shape \(2, 2, 2\)"),
        (np.ones((3, 0)), r"at least one bit.*shape \(3, 0\)"),
        (np.array([[True, False]]), r"real or integer.*dtype bool"),
        (np.array([["1", "-1"]]), r"real or integer.*dtype <U2"),
    ],
)
def test_check_codes_refuses_invalid_codes(bad, match):
    with pytest.raises(ValueError, match=match):
        codes.check_codes(bad, name="query_codes")


def test_check_codes_names_the_argument():
    with pytest.raises(ValueError, match=r"^db_codes must"):
        codes.check_codes(np.zeros((1, 2)), name="db_codes")


def test_distance_shape_errors_name_shapes():
    with pytest.raises(ValueError, match=r"same number of bits.*\(2, 3\) and \(2, 4\)"):
        codes.hamming_distance(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"b1 must be a 2-D \[N, L\] matrix, got shape \(3,\)"):
        codes.hamming_distance(np.ones(3), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"a2 must be a 2-D.*shape \(1, 2, 3\)"):
        codes.relaxed_hamming_distance(np.ones((2, 3)), np.ones((1, 2, 3)))
    with pytest.raises(ValueError, match=r"same number of bits.*\(1, 3\) and \(1, 2\)"):
        codes.relaxed_hamming_distance(np.ones((1, 3)), np.ones((1, 2)))


def test_packing_errors_name_shapes_and_dtypes():
    with pytest.raises(ValueError, match=r"codes must be a 2-D.*shape \(4,\)"):
        codes.pack_codes(np.ones(4))
    packed = codes.pack_codes(np.ones((2, 40)))
    with pytest.raises(ValueError, match=r"2 words per row, but 70 bits need 3.*\(2, 2\)"):
        codes.unpack_codes(packed, 70)
    with pytest.raises(ValueError, match=r"dtype uint32, got int32"):
        codes.unpack_codes(packed.astype(jnp.int32), 40)
    with pytest.raises(ValueError, match=r"dtype uint32, got uint32 and int32"):
        codes.packed_hamming_distance(packed, packed.astype(jnp.int32))
    with pytest.raises(ValueError, match=r"\(2, 2\) and \(2, 1\)"):
        codes.packed_hamming_distance(packed, codes.pack_codes(np.ones((2, 3))))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 0.0, 0.5])
def test_pack_codes_refuses_non_finite_and_non_pm1_values(bad):
    b = np.ones((2, 5), np.float32)
    b[1, 3] = bad
    # NaN used to pack silently as -1 (and inf as +1), unlike every other entry point.
    for arr in (b, jnp.asarray(b)):
        with pytest.raises(ValueError, match=r"codes must hold only -1 and \+1 values; found 1"):
            codes.pack_codes(arr)
    with pytest.raises(ValueError, match=r"real or integer.*dtype bool"):
        codes.pack_codes(np.ones((2, 5), bool))


def test_pack_codes_under_jit_and_pack_bits_agree():
    rng = np.random.default_rng(7)
    b = _random_codes(rng, 4, 40)
    packed = codes.pack_codes(b)
    np.testing.assert_array_equal(jax.jit(codes.pack_codes)(b), packed)
    bits = (b > 0).astype(np.int8)
    np.testing.assert_array_equal(codes.pack_bits(bits), packed)
    np.testing.assert_array_equal(jax.jit(codes.pack_bits)(bits.astype(bool)), packed)
    # bfloat16 codes are codes too (NumPy's issubdtype does not know the type).
    bf16 = jnp.asarray(b, jnp.bfloat16)
    np.testing.assert_array_equal(codes.check_codes(bf16).astype(np.float32), b)
    np.testing.assert_array_equal(codes.pack_codes(bf16), packed)
    with pytest.raises(ValueError, match=r"bits must be a 2-D"):
        codes.pack_bits(np.ones(3))
