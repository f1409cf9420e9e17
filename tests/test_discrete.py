"""The discrete block updates: the ridge classifier against its normal equations, and discrete
cyclic coordinate descent against brute force over every value of the bit it updates."""

import doctest
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlhash_jax import discrete


def _objective(B, G, P):
    """tr(B G Bᵀ) − 2 tr(Bᵀ P), summed entry by entry."""
    n, num_bits = B.shape
    value = 0.0
    for i in range(n):
        for k in range(num_bits):
            for m in range(num_bits):
                value += B[i, k] * G[k, m] * B[i, m]
            value -= 2.0 * B[i, k] * P[i, k]
    return value


def _problem(rng, n=5, num_bits=4):
    A = rng.normal(size=(7, num_bits))
    G = A.T @ A  # symmetric positive semi-definite, as W Wᵀ and Uᵀ U are
    P = rng.normal(size=(n, num_bits)) * 3.0
    B = rng.choice([-1.0, 1.0], (n, num_bits))
    return B, G, P


def _best_column(B, G, P, k):
    """The value of column k that minimises the objective, by trying all 2^n columns."""
    best, best_value = None, np.inf
    for column in itertools.product([-1.0, 1.0], repeat=B.shape[0]):
        trial = B.copy()
        trial[:, k] = column
        value = _objective(trial, G, P)
        if value < best_value - 1e-9:
            best, best_value = trial[:, k].copy(), value
    return best, best_value


def test_objective_matches_loop():
    B, G, P = _problem(np.random.default_rng(0))
    np.testing.assert_allclose(float(discrete.bitwise_objective(B, G, P)), _objective(B, G, P),
                               rtol=1e-5)


def test_one_sweep_sets_each_bit_to_its_brute_force_minimiser_in_turn():
    rng = np.random.default_rng(2)
    for trial in range(4):
        B, G, P = _problem(rng, n=6, num_bits=5)
        expected = B.copy()
        values = [_objective(expected, G, P)]
        for k in range(B.shape[1]):
            column, best_value = _best_column(expected, G, P, k)
            expected[:, k] = column
            values.append(best_value)
        swept = np.array(jax.jit(discrete.bitwise_code_update)(B, G, P))
        np.testing.assert_array_equal(swept, expected, err_msg=f"trial {trial}")
        assert all(b <= a + 1e-9 for a, b in zip(values, values[1:])), values
        assert _objective(swept, G, P) == pytest.approx(values[-1], rel=1e-6)


def test_sweeps_never_increase_the_objective_and_reach_a_fixed_point():
    rng = np.random.default_rng(3)
    B, G, P = _problem(rng, n=8, num_bits=6)
    values = [_objective(B, G, P)]
    current = B
    for _ in range(5):
        current = np.array(discrete.bitwise_code_update(current, G, P))
        values.append(_objective(current, G, P))
    assert all(b <= a + 1e-6 for a, b in zip(values, values[1:])), values
    np.testing.assert_array_equal(
        discrete.bitwise_code_update(B, G, P, sweeps=5), current)
    settled = discrete.bitwise_code_update(current, G, P)
    np.testing.assert_array_equal(settled, discrete.bitwise_code_update(settled, G, P))
    assert set(np.unique(current)) <= {-1.0, 1.0}


def test_start_from_zeros_counts_unset_bits_as_absent():
    # G = I: the bits do not interact, so each bit is sgn(p_k) whatever the start.
    P = np.array([[0.5, -2.0, 0.0], [-1.0, 3.0, -0.1]], np.float32)
    codes = discrete.bitwise_code_update(np.zeros((2, 3), np.float32), np.eye(3), P)
    np.testing.assert_array_equal(codes, [[1.0, -1.0, 1.0], [-1.0, 1.0, -1.0]])
    # G with an off-diagonal coupling: bit 1 sees bit 0 set, bit 0 saw bit 1 at zero.
    G = np.array([[1.0, 2.0], [2.0, 1.0]], np.float32)
    codes = discrete.bitwise_code_update(np.zeros((1, 2), np.float32), G, np.array([[1.0, 1.0]]))
    # bit 0: sgn(1 − 0) = +1; bit 1: sgn(1 − 2·(+1)) = −1.
    np.testing.assert_array_equal(codes, [[1.0, -1.0]])


def test_ridge_classifier_solves_the_normal_equations(x64):
    rng = np.random.default_rng(4)
    B = rng.choice([-1.0, 1.0], (20, 6))
    Y = np.eye(3)[rng.integers(0, 3, 20)]
    W = np.asarray(discrete.ridge_classifier(B, Y, reg=0.7))
    np.testing.assert_allclose(W, np.linalg.solve(B.T @ B + 0.7 * np.eye(6), B.T @ Y), rtol=1e-10)
    # The gradient of ‖Y − BW‖² + reg ‖W‖² vanishes at W, and any step away costs more.
    grad = -2 * B.T @ (Y - B @ W) + 2 * 0.7 * W

    def cost(w):
        return np.sum((Y - B @ w) ** 2) + 0.7 * np.sum(w**2)

    np.testing.assert_allclose(grad, 0.0, atol=1e-10)
    for _ in range(5):
        assert cost(W) < cost(W + 1e-3 * rng.normal(size=W.shape))


def test_vmap_over_problems_equals_loop():
    rng = np.random.default_rng(5)
    problems = [_problem(rng) for _ in range(3)]
    stacked = [np.stack(parts).astype(np.float32) for parts in zip(*problems)]
    batched = jax.jit(jax.vmap(discrete.bitwise_code_update))(*stacked)
    for b, problem in zip(batched, problems):
        np.testing.assert_array_equal(b, discrete.bitwise_code_update(*problem))
    Bs, Ys = stacked[0], np.stack([np.eye(2, dtype=np.float32)[[0, 1, 1, 0, 1]]] * 3)
    ridge = jax.jit(jax.vmap(lambda b, y: discrete.ridge_classifier(b, y, reg=1.0)))(Bs, Ys)
    for w, b, y in zip(ridge, Bs, Ys):
        np.testing.assert_allclose(w, discrete.ridge_classifier(b, y, reg=1.0), rtol=1e-5)


def test_bad_input():
    B, G, P = np.ones((4, 3)), np.eye(3), np.ones((4, 3))
    with pytest.raises(ValueError, match=r"B must have shape \[N, L\], got shape \(3,\)"):
        discrete.bitwise_code_update(B[0], G, P)
    with pytest.raises(ValueError, match=r"G must have shape \[L, L\] = \(3, 3\).*got \(2, 2\)"):
        discrete.bitwise_code_update(B, np.eye(2), P)
    with pytest.raises(ValueError, match=r"P must have the shape of B.*\(4, 3\), got \(4, 2\)"):
        discrete.bitwise_code_update(B, G, P[:, :2])
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match=r"sweeps must be a positive integer, got"):
            discrete.bitwise_code_update(B, G, P, sweeps=bad)
    with pytest.raises(ValueError, match=r"G must have shape \[L, L\], got shape \(3,\)"):
        discrete.bitwise_objective(B, G[0], P)
    Y = np.eye(2)[[0, 1, 0, 1]]
    with pytest.raises(ValueError, match=r"same number of rows.*\(4, 3\) and \(3, 2\)"):
        discrete.ridge_classifier(B, Y[:3], reg=1.0)
    with pytest.raises(ValueError, match=r"Y must have shape \[N, C\], got shape \(4,\)"):
        discrete.ridge_classifier(B, Y[:, 0], reg=1.0)
    for bad in (0.0, -1.0, "1", None):
        with pytest.raises(ValueError, match=r"reg must be a positive real number, got"):
            discrete.ridge_classifier(B, Y, reg=bad)
    # A traced weight is accepted.
    jax.jit(lambda r: discrete.ridge_classifier(B, Y, reg=r))(jnp.float32(0.5))


def test_docstring_examples():
    runner = doctest.DocTestRunner()
    finder = doctest.DocTestFinder()
    for fn in (discrete.ridge_classifier, discrete.bitwise_objective,
               discrete.bitwise_code_update):
        for test in finder.find(fn, module=discrete):
            runner.run(test)
    assert runner.failures == 0 and runner.tries >= 3
