"""Tests of dlhash_jax.relaxations against closed forms, hand-computed values and HashNet's loop."""

import doctest
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlhash_jax import relaxations

# Chosen to cover 0, the clipping boundary |x| = 1 (inclusive) and both sides of it.
POINTS = np.array([[-3.0, -1.0, -0.4, 0.0], [0.25, 1.0, 1.5, -1.0001]], dtype=np.float32)
INSIDE_CLIP = np.array([[0, 1, 1, 1], [1, 1, 0, 0]], dtype=np.float32)
EXPECTED_SIGN = np.array([[-1, -1, -1, 1], [1, 1, 1, -1]], dtype=np.float32)


def test_sign_ste_forward_is_exact_sign():
    for clipped in (False, True):
        out = relaxations.sign_ste(POINTS, clipped=clipped)
        assert out.dtype == jnp.float32
        np.testing.assert_array_equal(out, EXPECTED_SIGN)
    tiny = jnp.array([1e-7, -1e-7, 0.3, -0.7])
    np.testing.assert_array_equal(jax.jit(relaxations.sign_ste)(tiny), [1.0, -1.0, 1.0, -1.0])


@pytest.mark.parametrize("clipped", [False, True])
def test_sign_ste_gradients(clipped):
    weights = np.arange(1.0, 9.0, dtype=np.float32).reshape(2, 4)
    mask = INSIDE_CLIP if clipped else np.ones_like(POINTS)

    def objective(x):
        return jnp.sum(weights * relaxations.sign_ste(x, clipped=clipped))

    grad = jax.jit(jax.grad(objective))(POINTS)
    np.testing.assert_array_equal(grad, weights * mask)
    per_row = jax.vmap(jax.grad(lambda r, w: jnp.sum(w * relaxations.sign_ste(r, clipped=clipped))))
    np.testing.assert_array_equal(per_row(POINTS, weights), weights * mask)
    primal, tangent = jax.jvp(
        lambda x: relaxations.sign_ste(x, clipped=clipped), (POINTS,), (weights,)
    )
    np.testing.assert_array_equal(primal, EXPECTED_SIGN)
    np.testing.assert_array_equal(tangent, weights * mask)


def test_scaled_tanh_matches_logistic_form_of_eq23():
    x = np.linspace(-2.0, 2.0, 9)
    for beta in (0.5, 1.0, 3.0):
        expected = (1 - np.exp(-2 * beta * x)) / (1 + np.exp(-2 * beta * x))
        np.testing.assert_allclose(relaxations.scaled_tanh(x, beta), expected, atol=1e-6)
    # The survey's printed (1 - e^{-βx}) / (1 + e^{-βx}) is the same curve at β/2.
    printed = (1 - np.exp(-3.0 * x)) / (1 + np.exp(-3.0 * x))
    np.testing.assert_allclose(relaxations.scaled_tanh(x, 1.5), printed, atol=1e-6)


def test_scaled_tanh_approaches_sign_as_beta_grows():
    x = jnp.array([-1.0, -0.05, 0.05, 0.3, 2.0])
    gaps = [
        float(jnp.max(jnp.abs(relaxations.scaled_tanh(x, beta) - jnp.sign(x))))
        for beta in (1, 10, 100, 1000)
    ]
    assert all(later < earlier for earlier, later in zip(gaps, gaps[1:]))
    assert gaps[-1] < 1e-6
    assert float(relaxations.scaled_tanh(0.0, 1e6)) == 0.0


def test_scaled_tanh_traced_beta_and_gradient(x64):
    x = jnp.array([[-0.7, 0.2, 1.3]], dtype=jnp.float64)
    beta = jnp.asarray(2.5, jnp.float64)
    out = jax.jit(relaxations.scaled_tanh)(x, beta)
    np.testing.assert_allclose(out, np.tanh(2.5 * np.asarray(x)), rtol=1e-12)
    grad = jax.grad(lambda v: jnp.sum(relaxations.scaled_tanh(v, beta)))(x)
    np.testing.assert_allclose(grad, 2.5 * (1 - np.tanh(2.5 * np.asarray(x)) ** 2), rtol=1e-12)
    check_grads(relaxations.scaled_tanh, (x, beta), order=2, modes=("rev",))


@pytest.mark.parametrize("beta", [0.0, -1.0])
def test_scaled_tanh_rejects_non_positive_beta(beta):
    with pytest.raises(ValueError, match=rf"beta must be positive, got {beta}"):
        relaxations.scaled_tanh(jnp.ones(3), beta)


def test_continuation_schedule_default_values():
    schedule = relaxations.continuation_schedule()
    expected = {
        0: 1.0,
        1: 1.0,
        199: 1.0,
        200: math.sqrt(2.0),
        399: math.sqrt(2.0),
        400: math.sqrt(3.0),
        1000: math.sqrt(6.0),
        10_000: math.sqrt(51.0),
        -5: 1.0,
    }
    for step, value in expected.items():
        assert float(schedule(step)) == pytest.approx(value, rel=1e-6), step
    assert float(schedule(250.0)) == pytest.approx(math.sqrt(2.0), rel=1e-6)


def test_continuation_schedule_custom_values():
    schedule = relaxations.continuation_schedule(
        init_value=2.0, gamma=0.1, power=1.0, step_size=10
    )
    # step 25 -> stage start 20 -> 2 * (1 + 0.1 * 20) = 6.
    np.testing.assert_allclose(schedule(jnp.array([0, 9, 10, 25])), [2.0, 2.0, 4.0, 6.0], rtol=1e-6)
    constant = relaxations.continuation_schedule(init_value=3.0, gamma=0.0)
    assert float(constant(12345)) == pytest.approx(3.0)


def test_continuation_schedule_matches_hashnet_reference_loop():
    init_scale, gamma, power, step_size = 1.0, 0.005, 0.5, 200
    reference, scale = [], init_scale
    for iter_num in range(1, 1001):
        if iter_num % step_size == 0:
            scale = init_scale * (1.0 + gamma * iter_num) ** power
        reference.append(scale)
    schedule = relaxations.continuation_schedule(init_scale, gamma, power, step_size)
    np.testing.assert_allclose(schedule(np.arange(1, 1001)), reference, rtol=1e-6)


def test_continuation_schedule_under_jit_compiles_once():
    schedule = relaxations.continuation_schedule()
    traces = []

    @jax.jit
    def beta_at(step):
        traces.append(step)
        return schedule(step)

    values = [float(beta_at(jnp.int32(s))) for s in (0, 200, 400, 600)]
    np.testing.assert_allclose(values, [1.0, math.sqrt(2), math.sqrt(3), 2.0], rtol=1e-6)
    assert len(traces) == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"init_value": 0.0}, r"init_value must be positive, got 0.0"),
        ({"gamma": -0.1}, r"gamma must be non-negative, got -0.1"),
        ({"step_size": 0}, r"step_size must be a positive integer, got 0"),
        ({"step_size": 2.5}, r"step_size must be a positive integer, got 2.5"),
        ({"step_size": True}, r"step_size must be a positive integer, got True"),
        ({"power": "0.5"}, r"power must be a real number, got '0.5'"),
    ],
)
def test_continuation_schedule_rejects_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        relaxations.continuation_schedule(**kwargs)


def ref_bihalf(u):
    """Per column, rank the rows by value (largest first, ties by row): the first ⌊N/2⌋ get +1."""
    n, bits = u.shape
    b = -np.ones((n, bits))
    for k in range(bits):
        ranked = sorted(range(n), key=lambda i: (-u[i, k], i))
        for i in ranked[: n // 2]:
            b[i, k] = 1.0
    return b


@pytest.mark.parametrize("shape", [(2, 1), (5, 3), (8, 6), (33, 4)])
def test_bihalf_sign_forward_matches_loop_and_halves_every_bit(shape):
    u = np.random.default_rng(sum(shape)).normal(size=shape).astype(np.float32)
    out = jax.jit(relaxations.bihalf_sign)(u)
    assert out.dtype == jnp.float32 and out.shape == shape
    np.testing.assert_array_equal(out, ref_bihalf(u))
    np.testing.assert_array_equal(np.sum(np.asarray(out) > 0, axis=0), shape[0] // 2)
    # The split is by rank, not by sign: shifting a column leaves its codes unchanged.
    np.testing.assert_array_equal(relaxations.bihalf_sign(u + 10.0), out)


def test_bihalf_sign_hand_cases_and_ties():
    u = np.array([[0.3, -2.0], [0.1, 5.0], [0.7, 1.0], [0.2, 0.0]], np.float32)
    expected = [[1, -1], [-1, 1], [1, 1], [-1, -1]]
    np.testing.assert_array_equal(relaxations.bihalf_sign(u), expected)
    # A constant column: the earlier rows get +1. An odd batch: ⌊5/2⌋ = 2 items get +1.
    np.testing.assert_array_equal(relaxations.bihalf_sign(np.zeros((4, 1))), [[1], [1], [-1], [-1]])
    odd = np.array([[3.0], [1.0], [2.0], [5.0], [4.0]])
    np.testing.assert_array_equal(relaxations.bihalf_sign(odd), [[-1], [-1], [-1], [1], [1]])


@pytest.mark.parametrize("gamma", [0.0, 1.0, 6.0])
def test_bihalf_sign_gradient_is_straight_through_plus_quantization_pull(gamma):
    rng = np.random.default_rng(7)
    u = rng.normal(size=(6, 4)).astype(np.float32)
    weights = rng.normal(size=(6, 4)).astype(np.float32)
    codes = ref_bihalf(u)

    def objective(x):
        return jnp.sum(weights * relaxations.bihalf_sign(x, gamma=gamma))

    grad = jax.jit(jax.grad(objective))(u)
    np.testing.assert_allclose(grad, weights + gamma * (u - codes) / u.size, rtol=1e-6, atol=1e-7)


def test_bihalf_sign_gradient_equals_penalised_straight_through_surrogate(x64):
    # The custom backward is the gradient of <G, U> + (γ / 2NL) ‖U − B‖² with B held fixed.
    rng = np.random.default_rng(8)
    u = jnp.asarray(rng.normal(size=(7, 5)))
    weights = jnp.asarray(rng.normal(size=(7, 5)))
    gamma = 3.5

    def loss_of_codes(b):
        return jnp.sum(jnp.tanh(weights * b)) + jnp.sum(b[:3] * b[4:])

    def surrogate(x):
        b = jax.lax.stop_gradient(relaxations.bihalf_sign(x))
        straight = x + jax.lax.stop_gradient(b - x)
        return loss_of_codes(straight) + gamma / (2 * x.size) * jnp.sum((x - b) ** 2)

    grad = jax.grad(lambda x: loss_of_codes(relaxations.bihalf_sign(x, gamma=gamma)))(u)
    assert grad.dtype == jnp.float64
    np.testing.assert_allclose(grad, jax.grad(surrogate)(u), rtol=1e-12)


def test_bihalf_sign_pull_is_added_once_per_backward_pass():
    u = np.array([[0.5, -0.2], [-1.5, 0.4], [2.0, 0.0]], np.float32)
    codes = ref_bihalf(u)

    def used_twice(x):
        b = relaxations.bihalf_sign(x, gamma=6.0)
        return jnp.sum(b) + 2.0 * jnp.sum(b)

    grad = jax.grad(used_twice)(u)
    np.testing.assert_allclose(grad, 3.0 + 6.0 * (u - codes) / u.size, rtol=1e-6)


def test_bihalf_sign_traced_gamma_and_vmap():
    rng = np.random.default_rng(9)
    u = rng.normal(size=(3, 6, 4)).astype(np.float32)
    weights = rng.normal(size=(6, 4)).astype(np.float32)

    def grad_fn(x, gamma):
        return jax.grad(lambda y: jnp.sum(weights * relaxations.bihalf_sign(y, gamma=gamma)))(x)

    traced = jax.jit(grad_fn)(u[0], jnp.float32(2.0))
    np.testing.assert_allclose(traced, grad_fn(u[0], 2.0), rtol=1e-6)
    codes = jax.jit(jax.vmap(relaxations.bihalf_sign))(u)
    np.testing.assert_array_equal(codes, [ref_bihalf(x) for x in u])
    grads = jax.jit(jax.vmap(grad_fn, in_axes=(0, None)))(u, jnp.float32(2.0))
    np.testing.assert_allclose(grads, [grad_fn(x, 2.0) for x in u], rtol=1e-6)
    # The gradient with respect to γ itself is zero (it is a constant of the layer).
    d_gamma = jax.grad(
        lambda g: jnp.sum(weights * relaxations.bihalf_sign(u[0], gamma=g))
    )(jnp.float32(1.0))
    assert float(d_gamma) == 0.0


def test_bihalf_sign_dtypes(x64):
    u64 = jnp.asarray(np.random.default_rng(10).normal(size=(4, 3)))
    assert relaxations.bihalf_sign(u64).dtype == jnp.float64
    assert jax.grad(lambda x: relaxations.bihalf_sign(x).sum())(u64).dtype == jnp.float64
    ints = relaxations.bihalf_sign(np.array([[3, 1], [0, 2]]))
    assert ints.dtype == jnp.float32
    np.testing.assert_array_equal(ints, [[1, -1], [-1, 1]])


def test_bihalf_sign_rejects_bad_input():
    with pytest.raises(ValueError, match=r"u must have shape \[N, L\], got shape \(4,\)"):
        relaxations.bihalf_sign(jnp.ones(4))
    with pytest.raises(ValueError, match=r"u must have shape \[N, L\], got shape \(2, 3, 4\)"):
        relaxations.bihalf_sign(jnp.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"at least 2 rows to split in half, got shape \(1, 3\)"):
        relaxations.bihalf_sign(jnp.ones((1, 3)))
    for bad in (-1.0, True, "6", None):
        with pytest.raises(ValueError, match=r"gamma must be a non-negative real number, got"):
            relaxations.bihalf_sign(jnp.ones((2, 3)), gamma=bad)
    with pytest.raises(ValueError, match=r"gamma must be a scalar, got shape \(2,\)"):
        jax.jit(lambda g: relaxations.bihalf_sign(jnp.ones((2, 3)), gamma=g))(jnp.ones(2))


def test_bihalf_sign_docstring_examples():
    runner = doctest.DocTestRunner()
    finder = doctest.DocTestFinder()
    for test in finder.find(relaxations.bihalf_sign, globs={"jax": jax, "jnp": jnp,
                                                           "bihalf_sign": relaxations.bihalf_sign}):
        runner.run(test)
    assert runner.failures == 0 and runner.tries >= 2


# --- gradient_reversal ----------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.0, -2.0])
def test_gradient_reversal_is_the_identity_with_a_negated_derivative(scale):
    x = jnp.asarray(POINTS)
    weights = np.arange(1.0, 9.0, dtype=np.float32).reshape(2, 4)
    out = jax.jit(lambda x: relaxations.gradient_reversal(x, scale=scale))(x)
    np.testing.assert_array_equal(out, POINTS)
    grad = jax.jit(jax.grad(lambda x: jnp.sum(weights * relaxations.gradient_reversal(
        x, scale=scale))))(x)
    np.testing.assert_array_equal(grad, -scale * weights)
    primal, tangent = jax.jvp(lambda x: relaxations.gradient_reversal(x, scale=scale), (x,),
                              (weights,))
    np.testing.assert_array_equal(primal, POINTS)
    np.testing.assert_array_equal(tangent, -scale * weights)
    per_row = jax.vmap(jax.grad(lambda r, w: jnp.sum(w * relaxations.gradient_reversal(
        r, scale=scale))))(x, weights)
    np.testing.assert_array_equal(per_row, -scale * weights)


def test_gradient_reversal_splits_a_minimax_into_one_loss(x64):
    # loss(θ, φ) = g(θ) + h(φ, x(θ)): through the reversal φ descends h and θ descends g − h,
    # which check_grads verifies against finite differences of those two objectives.
    def g(theta):
        return jnp.sum(theta**2)

    def h(phi, x):
        return jnp.sum(jnp.sin(phi * x))

    def one_loss(theta, phi):
        return g(theta) + h(phi, relaxations.gradient_reversal(jnp.tanh(theta)))

    theta, phi = jnp.array([0.3, -1.2, 0.7]), jnp.array([1.5, 0.4, -0.8])
    grad_theta, grad_phi = jax.grad(one_loss, argnums=(0, 1))(theta, phi)
    actor = jax.grad(lambda t: g(t) - h(phi, jnp.tanh(t)))(theta)
    critic = jax.grad(lambda p: h(p, jnp.tanh(theta)))(phi)
    np.testing.assert_allclose(grad_theta, actor, rtol=1e-12)
    np.testing.assert_allclose(grad_phi, critic, rtol=1e-12)
    # Two reversals of scales 2 and 1/2 multiply the derivative by (−2)(−1/2) = 1, so the
    # composition's derivatives (forward and reverse) must match finite differences.
    def twice(x):
        inner = relaxations.gradient_reversal(jnp.tanh(x), scale=2.0)
        return relaxations.gradient_reversal(inner**3, scale=0.5)

    check_grads(twice, (theta,), order=1, modes=("fwd", "rev"))


def test_gradient_reversal_traced_scale_and_dtypes(x64):
    x = jnp.array([1.0, -2.0])
    grad = jax.jit(jax.grad(lambda x, s: jnp.sum(relaxations.gradient_reversal(x, scale=s))))(
        x, 0.25)
    np.testing.assert_array_equal(grad, [-0.25, -0.25])
    # No derivative reaches the scale: the value does not depend on it.
    assert float(jax.grad(lambda s: jnp.sum(relaxations.gradient_reversal(x, scale=s)))(2.0)) == 0
    assert relaxations.gradient_reversal(x).dtype == jnp.float64


def test_gradient_reversal_casts_integers_to_float():
    out = relaxations.gradient_reversal(np.array([1, 2], np.int32))
    assert out.dtype == jnp.float32
    np.testing.assert_array_equal(out, [1.0, 2.0])


def test_gradient_reversal_rejects_bad_scale():
    for bad in (float("inf"), float("nan"), True, "1", None):
        with pytest.raises(ValueError, match=r"scale must be a finite real number, got"):
            relaxations.gradient_reversal(jnp.ones(3), scale=bad)
    with pytest.raises(ValueError, match=r"scale must be a scalar, got shape \(2,\)"):
        jax.jit(lambda s: relaxations.gradient_reversal(jnp.ones(3), scale=s))(jnp.ones(2))


def test_gradient_reversal_docstring_examples():
    runner = doctest.DocTestRunner()
    finder = doctest.DocTestFinder()
    for test in finder.find(relaxations.gradient_reversal, globs={
            "jax": jax, "jnp": jnp, "gradient_reversal": relaxations.gradient_reversal}):
        runner.run(test)
    assert runner.failures == 0 and runner.tries >= 2
