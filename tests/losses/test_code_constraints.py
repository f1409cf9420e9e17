import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlhash_jax import losses


def _sgn(x):
    return 1.0 if x >= 0 else -1.0


def ref_quantization(a, b=None):
    n, num_bits = a.shape
    total = 0.0
    for i in range(n):
        for k in range(num_bits):
            target = _sgn(a[i, k]) if b is None else b[i, k]
            total += (a[i, k] - target) ** 2
    return total / n


def ref_decorrelation(a):
    n, num_bits = a.shape
    total = 0.0
    for k in range(num_bits):
        for m in range(num_bits):
            moment = sum(a[i, k] * a[i, m] for i in range(n)) / n
            total += (moment - (1.0 if k == m else 0.0)) ** 2
    return total


def ref_balance(a):
    n, num_bits = a.shape
    return sum((sum(a[i, k] for i in range(n)) / n) ** 2 for k in range(num_bits))


def ref_variance(a):
    n, num_bits = a.shape
    return -sum(a[i, k] ** 2 for i in range(n) for k in range(num_bits)) / n


def ref_hash_l1(a):
    n, num_bits = a.shape
    return sum(abs(abs(a[i, k]) - 1) for i in range(n) for k in range(num_bits)) / n


def ref_hash_l2(a):
    n, num_bits = a.shape
    return (
        sum(min((a[i, k] + 1) ** 2, (a[i, k] - 1) ** 2) for i in range(n) for k in range(num_bits))
        / n
    )


def ref_hash_clipped(a):
    n, num_bits = a.shape
    total = 0.0
    for i in range(n):
        for k in range(num_bits):
            x = a[i, k]
            f = -1.0 if x <= -1 else (1.0 if x >= 1 else x)
            total += (1 - abs(f)) ** 2
    return total / n


CASES = [
    pytest.param(losses.quantization_loss, ref_quantization, id="quantization"),
    pytest.param(losses.decorrelation_loss, ref_decorrelation, id="decorrelation"),
    pytest.param(losses.balance_loss, ref_balance, id="balance"),
    pytest.param(losses.variance_loss, ref_variance, id="variance"),
    pytest.param(losses.hash_constraint_l1, ref_hash_l1, id="hash_l1"),
    pytest.param(losses.hash_constraint_l2, ref_hash_l2, id="hash_l2"),
    pytest.param(losses.hash_constraint_clipped, ref_hash_clipped, id="hash_clipped"),
]

HAND = np.array([[0.5, -2.0, 0.0], [-0.25, 1.0, 3.0]], np.float32)
# Worked by hand for HAND; sgn(0) = +1.
HAND_EXPECTED = {
    "quantization": (0.25 + 1.0 + 1.0 + 0.5625 + 0.0 + 4.0) / 2,
    # (1/N) AᵀA = [[0.15625, -0.625, -0.375], [-0.625, 2.5, 1.5], [-0.375, 1.5, 4.5]].
    "decorrelation": 0.84375**2 + 1.5**2 + 3.5**2 + 2 * (0.625**2 + 0.375**2 + 1.5**2),
    "balance": 0.125**2 + 0.5**2 + 1.5**2,
    "variance": -(0.25 + 4.0 + 0.0 + 0.0625 + 1.0 + 9.0) / 2,
    "hash_l1": (0.5 + 1.0 + 1.0 + 0.75 + 0.0 + 2.0) / 2,
    "hash_l2": (0.25 + 1.0 + 1.0 + 0.5625 + 0.0 + 4.0) / 2,
    "hash_clipped": (0.25 + 0.0 + 1.0 + 0.5625 + 0.0 + 0.0) / 2,
}


def _away_from_kinks(rng, shape):
    """Values whose magnitude avoids the kinks at 0 and 1 of the piecewise terms."""
    magnitude = np.where(
        rng.random(shape) < 0.5, rng.uniform(0.2, 0.8, shape), rng.uniform(1.2, 2.0, shape)
    )
    return magnitude * rng.choice([-1.0, 1.0], shape)


@pytest.mark.parametrize("fn, ref", CASES)
def test_hand_computed(fn, ref, request):
    name = request.node.callspec.id
    assert float(fn(HAND)) == pytest.approx(HAND_EXPECTED[name], rel=1e-6)
    assert ref(HAND.astype(np.float64)) == pytest.approx(HAND_EXPECTED[name], rel=1e-12)


@pytest.mark.parametrize("fn, ref", CASES)
def test_matches_loop_reference_and_jit(fn, ref):
    rng = np.random.default_rng(0)
    jitted = jax.jit(fn)
    for shape in [(1, 3), (7, 5), (16, 12)]:
        a = rng.normal(scale=1.5, size=shape).astype(np.float32)
        expected = ref(a.astype(np.float64))
        np.testing.assert_allclose(float(jitted(a)), expected, rtol=2e-5, atol=1e-5)
    np.testing.assert_allclose(float(fn(a)), float(jitted(a)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fn, ref", CASES)
def test_vmap_equals_loop(fn, ref):
    stacked = np.random.default_rng(1).normal(size=(3, 6, 4)).astype(np.float32)
    jitted = jax.jit(fn)
    batched = jax.jit(jax.vmap(fn))(stacked)
    np.testing.assert_allclose(np.asarray(batched), [float(jitted(a)) for a in stacked], rtol=1e-6)


@pytest.mark.parametrize("fn, ref", CASES)
def test_gradients_numerically(fn, ref, x64):
    a = jnp.asarray(_away_from_kinks(np.random.default_rng(2), (5, 4)))
    check_grads(jax.jit(fn), (a,), order=2, modes=["rev"])


@pytest.mark.parametrize("fn, ref", CASES)
def test_finite_for_large_outputs(fn, ref):
    a = np.random.default_rng(3).normal(scale=1e3, size=(8, 16)).astype(np.float32)
    value, grad = jax.jit(jax.value_and_grad(fn))(a)
    assert np.isfinite(float(value))
    assert np.all(np.isfinite(np.asarray(grad)))


@pytest.mark.parametrize("fn, ref", CASES)
def test_rejects_wrong_rank(fn, ref):
    with pytest.raises(ValueError, match=r"A must have shape \[N, L\], got shape \(6,\)"):
        fn(jnp.ones(6))
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 4\)"):
        fn(jnp.ones((2, 3, 4)))


def test_quantization_with_given_codes():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(6, 5))
    b = np.where(rng.random((6, 5)) < 0.5, -1.0, 1.0)
    value = losses.quantization_loss(a.astype(np.float32), b.astype(np.float32))
    np.testing.assert_allclose(float(value), ref_quantization(a, b), rtol=1e-5)
    stacked_a = rng.normal(size=(2, 4, 3)).astype(np.float32)
    stacked_b = np.sign(rng.normal(size=(2, 4, 3))).astype(np.float32)
    batched = jax.vmap(losses.quantization_loss)(stacked_a, stacked_b)
    np.testing.assert_allclose(
        np.asarray(batched), [ref_quantization(x, y) for x, y in zip(stacked_a, stacked_b)],
        rtol=1e-5,
    )


def test_quantization_gradients(x64):
    rng = np.random.default_rng(5)
    a = jnp.asarray(rng.normal(size=(4, 3)))
    b = jnp.asarray(np.where(rng.random((4, 3)) < 0.5, -1.0, 1.0))
    check_grads(jax.jit(losses.quantization_loss), (a, b), order=2, modes=["rev"])
    # The default target is held fixed: the gradient is 2 (a - sgn(a)) / N.
    grad = jax.grad(losses.quantization_loss)(a)
    np.testing.assert_allclose(np.asarray(grad), 2 * (a - np.where(a >= 0, 1.0, -1.0)) / 4)


def test_quantization_rejects_mismatched_codes():
    with pytest.raises(ValueError, match=r"shapes \(4, 3\) and \(4, 2\)"):
        losses.quantization_loss(jnp.ones((4, 3)), jnp.ones((4, 2)))
    with pytest.raises(ValueError, match=r"B must have shape \[N, L\], got shape \(3,\)"):
        losses.quantization_loss(jnp.ones((4, 3)), jnp.ones(3))


def test_zero_at_ideal_codes():
    # Rows of a 4x4 Hadamard matrix: ±1, balanced bits and orthogonal columns.
    hadamard = np.array(
        [[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]], np.float32
    )[:, 1:]
    for fn in [
        losses.quantization_loss,
        losses.balance_loss,
        losses.hash_constraint_l1,
        losses.hash_constraint_l2,
        losses.hash_constraint_clipped,
    ]:
        assert float(fn(hadamard)) == 0.0
    assert float(losses.decorrelation_loss(hadamard)) == pytest.approx(0.0, abs=1e-7)
    assert float(losses.variance_loss(hadamard)) == -3.0


def test_clipped_constraint_ignores_outputs_beyond_one():
    a = jnp.array([[1.5, -4.0, 0.5]])
    grad = jax.grad(losses.hash_constraint_clipped)(a)
    np.testing.assert_array_equal(np.asarray(grad), [[0.0, 0.0, -1.0]])
    grad_l2 = jax.grad(losses.hash_constraint_l2)(a)
    np.testing.assert_allclose(np.asarray(grad_l2), [[1.0, -6.0, -1.0]])
