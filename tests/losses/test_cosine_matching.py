"""cosine_similarity_matching_loss (unsupervised GreedyHash, BiHalf): loop reference, hand value,
Hamming form, gradients, zero rows, jit/vmap and bad input."""

import doctest
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from pairwise_helpers import jitted

from dlhash_jax import losses
from dlhash_jax.losses import _cosine_matching


def _cos(u, v):
    dot = sum(a * b for a, b in zip(u, v))
    norm_u = math.sqrt(sum(a * a for a in u))
    norm_v = math.sqrt(sum(b * b for b in v))
    return dot / (norm_u * norm_v)


def ref_matching(a1, a2, x1, x2):
    """(1/N) Σ_i (cos(a1_i, a2_i) − cos(x1_i, x2_i))², as torch's mse_loss of two cosines."""
    n = len(a1)
    return sum((_cos(a1[i], a2[i]) - _cos(x1[i], x2[i])) ** 2 for i in range(n)) / n


def _inputs(rng, n, bits, dim, dtype=np.float32):
    a1, a2 = (rng.normal(size=(n, bits)).astype(dtype) for _ in range(2))
    x1, x2 = (rng.uniform(0.0, 1.0, size=(n, dim)).astype(dtype) for _ in range(2))
    return a1, a2, x1, x2


def test_hand_computed_eager_and_jit():
    b1 = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, -1.0]], np.float32)
    b2 = np.array([[1.0, 1.0, 1.0, -1.0], [-1.0, 1.0, -1.0, 1.0]], np.float32)
    x1 = np.array([[1.0, 0.0], [3.0, 4.0]], np.float32)
    x2 = np.array([[0.0, 3.0], [3.0, 4.0]], np.float32)
    # Pair 0: code cosine 2/4, feature cosine 0. Pair 1: complementary codes (−1), equal
    # features (+1): gap 2.
    expected = (0.5**2 + 2.0**2) / 2
    fn = losses.cosine_similarity_matching_loss
    for value in (fn(b1, b2, x1, x2), jitted(fn)(b1, b2, x1, x2)):
        assert float(value) == pytest.approx(expected, rel=1e-6)
    assert ref_matching(b1, b2, x1, x2) == pytest.approx(expected, rel=1e-12)


def test_matches_loop_reference():
    rng = np.random.default_rng(0)
    for n, bits, dim in [(1, 3, 2), (4, 8, 5), (9, 16, 64)]:
        a1, a2, x1, x2 = _inputs(rng, n, bits, dim)
        expected = ref_matching(*(x.astype(np.float64) for x in (a1, a2, x1, x2)))
        value = jitted(losses.cosine_similarity_matching_loss)(a1, a2, x1, x2)
        np.testing.assert_allclose(float(value), expected, rtol=2e-5, atol=1e-7)


def test_codes_cosine_is_one_minus_twice_the_normalised_hamming_distance():
    rng = np.random.default_rng(1)
    bits = 12
    b1, b2 = (rng.choice([-1.0, 1.0], (6, bits)).astype(np.float32) for _ in range(2))
    x1, x2 = _inputs(rng, 6, bits, 7)[2:]
    hamming = np.sum(b1 != b2, axis=1)
    target = np.sum(x1 * x2, 1) / (np.linalg.norm(x1, axis=1) * np.linalg.norm(x2, axis=1))
    expected = np.mean((1 - 2 * hamming / bits - target) ** 2)
    value = losses.cosine_similarity_matching_loss(b1, b2, x1, x2)
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)


def test_zero_when_cosines_agree_and_scale_invariant():
    rng = np.random.default_rng(2)
    a1, a2, _, _ = _inputs(rng, 5, 6, 6)
    # The codes are their own features, rescaled row by row: the cosines agree exactly.
    scale = rng.uniform(0.5, 3.0, (5, 1)).astype(np.float32)
    value = losses.cosine_similarity_matching_loss(a1, a2, a1 * scale, 2.0 * a2)
    assert float(value) == pytest.approx(0.0, abs=1e-12)


def test_vmap_over_batches_equals_loop():
    rng = np.random.default_rng(3)
    stacked = [np.stack(parts) for parts in zip(*(_inputs(rng, 4, 6, 5) for _ in range(3)))]
    fn = jitted(losses.cosine_similarity_matching_loss)
    batched = jax.jit(jax.vmap(losses.cosine_similarity_matching_loss))(*stacked)
    expected = [float(fn(*(part[k] for part in stacked))) for k in range(3)]
    np.testing.assert_allclose(np.asarray(batched), expected, rtol=1e-6)


def test_gradients_match_finite_differences(x64):
    rng = np.random.default_rng(4)
    args = tuple(jnp.asarray(x) for x in _inputs(rng, 4, 5, 3, np.float64))
    assert args[0].dtype == jnp.float64
    check_grads(jax.jit(losses.cosine_similarity_matching_loss), args, order=2, modes=("rev",))


def test_gradient_closed_form_for_the_codes(x64):
    rng = np.random.default_rng(5)
    a1, a2, x1, x2 = _inputs(rng, 3, 4, 6, np.float64)
    grad = jax.grad(losses.cosine_similarity_matching_loss)(a1, a2, x1, x2)
    # d cos(u, v)/du = v / (|u||v|) − cos(u, v) u / |u|², times 2 (c − t) / N.
    norm1, norm2 = np.linalg.norm(a1, axis=1), np.linalg.norm(a2, axis=1)
    cos = np.sum(a1 * a2, 1) / (norm1 * norm2)
    target = np.sum(x1 * x2, 1) / (np.linalg.norm(x1, axis=1) * np.linalg.norm(x2, axis=1))
    dcos = a2 / (norm1 * norm2)[:, None] - (cos / norm1**2)[:, None] * a1
    expected = (2 * (cos - target) / 3)[:, None] * dcos
    np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-10)


def test_zero_rows_give_cosine_zero_and_finite_gradients():
    a1 = np.array([[1.0, -1.0], [0.0, 0.0]], np.float32)
    a2 = np.array([[1.0, 1.0], [1.0, 1.0]], np.float32)
    x1 = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]], np.float32)
    x2 = np.array([[1.0, 0.0, 0.0], [2.0, 1.0, 2.0]], np.float32)
    fn = jax.jit(jax.value_and_grad(losses.cosine_similarity_matching_loss, (0, 1, 2, 3)))
    value, grads = fn(a1, a2, x1, x2)
    # Pair 0: code cosine 0, feature cosine 0 (zero row). Pair 1: 0 against 8/9.
    assert float(value) == pytest.approx((8 / 9) ** 2 / 2, rel=1e-6)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)
    extreme = [x * 1e15 for x in (a1, a2, x1, x2)]
    value, grads = fn(*extreme)
    assert np.isfinite(float(value))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)


def test_integer_features_are_promoted():
    b = np.array([[1.0, -1.0, 1.0]], np.float32)
    x1, x2 = np.array([[1, 0]]), np.array([[1, 1]])
    value = losses.cosine_similarity_matching_loss(b, b, x1, x2)
    assert value.dtype == jnp.float32
    assert float(value) == pytest.approx((1 - 1 / math.sqrt(2)) ** 2, rel=1e-6)


def test_bad_input():
    a, x = np.ones((4, 3)), np.ones((4, 5))
    fn = losses.cosine_similarity_matching_loss
    with pytest.raises(ValueError, match=r"A1 must have shape \[N, L\], got shape \(3,\)"):
        fn(a[0], a, x, x)
    with pytest.raises(ValueError, match=r"A2 must have shape \[N, L\], got shape \(4, 3, 1\)"):
        fn(a, a[..., None], x, x)
    with pytest.raises(ValueError, match=r"X1 must have shape \[N, D\], got shape \(5,\)"):
        fn(a, a, x[0], x)
    with pytest.raises(ValueError, match=r"X2 must have shape \[N, D\], got shape \(4, 5, 1\)"):
        fn(a, a, x, x[..., None])
    with pytest.raises(ValueError, match=r"A1 and A2 must have the same shape .*\(4, 3\) and "
                                         r"\(3, 3\)"):
        fn(a, a[:3], x, x)
    with pytest.raises(ValueError, match=r"X1 and X2 must have the same shape .*\(4, 5\) and "
                                         r"\(4, 2\)"):
        fn(a, a, x, x[:, :2])
    with pytest.raises(ValueError, match=r"same number of rows \(pairs\), got shapes A1 "
                                         r"\(4, 3\) and X1 \(2, 5\)"):
        fn(a, a, x[:2], x[:2])


def test_docstring_examples():
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(
        _cosine_matching.cosine_similarity_matching_loss, module=_cosine_matching
    ):
        runner.run(test)
    assert runner.failures == 0 and runner.tries >= 1
