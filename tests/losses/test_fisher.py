"""DFH's terms: the margin likelihood and the Fisher objective of class centres against loops,
hand values, gradients, jit/vmap and bad input."""

import doctest
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from pairwise_helpers import HAND_A1
from pairwise_helpers import HAND_A2
from pairwise_helpers import HAND_S
from pairwise_helpers import jitted

from dlhash_jax import losses
from dlhash_jax.losses import _fisher


def _softplus(t):
    # log(1 + e^t), branching so that exp never overflows.
    return t + math.log1p(math.exp(-t)) if t > 0 else math.log1p(math.exp(t))


def _neg_log_sigmoid(t):
    # -log(1 / (1 + e^-t)), branching so that exp never overflows.
    return math.log1p(math.exp(-t)) if t >= 0 else -t + math.log1p(math.exp(t))


def ref_margin_likelihood(a1, a2, s, margin):
    n, m = s.shape
    total = 0.0
    for i in range(n):
        for j in range(m):
            theta = 0.5 * sum(a1[i, k] * a2[j, k] for k in range(a1.shape[1]))
            if s[i, j] == 1:
                total += _neg_log_sigmoid(theta - margin)  # p = σ(θ - m)
            else:
                total += _neg_log_sigmoid(-(theta + margin))  # p = 1 - σ(θ + m) = σ(-θ - m)
    return total / (n * m)


def ref_fisher(v, y, b, nu, eta):
    num_classes, num_bits = v.shape
    num_items = b.shape[0]
    within = 0.0
    for i in range(num_items):
        for k in range(num_bits):
            center = sum(y[i, c] * v[c, k] for c in range(num_classes))
            within += (center - b[i, k]) ** 2
    between = 0.0
    for c in range(num_classes):
        for d in range(num_classes):
            inner = sum(v[c, k] * v[d, k] for k in range(num_bits))
            target = num_bits if c == d else -num_bits
            between += (inner - target) ** 2
    quantization = sum(
        (v[c, k] - np.sign(v[c, k])) ** 2 for c in range(num_classes) for k in range(num_bits)
    )
    return (within / (num_items * num_bits) + nu * between / num_classes**2
            + eta * quantization / (num_classes * num_bits))


def _random_block(rng, n, m, num_bits, dtype=np.float32):
    a1 = rng.normal(size=(n, num_bits)).astype(dtype)
    a2 = rng.normal(size=(m, num_bits)).astype(dtype)
    s = (rng.random((n, m)) < 0.4).astype(dtype)
    s[0, 0], s[-1, -1] = 1.0, 0.0
    return a1, a2, s


def _random_centers(rng, num_items, num_classes, num_bits, dtype=np.float32):
    v = (rng.uniform(0.2, 1.8, (num_classes, num_bits))
         * rng.choice([-1.0, 1.0], (num_classes, num_bits))).astype(dtype)
    y = np.eye(num_classes, dtype=dtype)[rng.integers(0, num_classes, num_items)]
    y[0, -1] = 1.0  # one multi-hot row
    b = rng.choice([-1.0, 1.0], (num_items, num_bits)).astype(dtype)
    return v, y, b


# On the hand-made block (pairwise_helpers): θ = ½ A1 A2ᵀ = [[2, -2, 0], [0, 0, 0]].


def test_margin_likelihood_hand_computed_eager_jit_and_bool():
    # m = 1: similar softplus(1 - θ) on θ = {2, 0}; dissimilar softplus(θ + 1) on {-2, 0, 0, 0}.
    expected = (2 * _softplus(-1.0) + 4 * _softplus(1.0)) / 6
    fn = losses.margin_likelihood_loss
    for value in (fn(HAND_A1, HAND_A2, HAND_S, margin=1.0),
                  jitted(fn, margin=1.0)(HAND_A1, HAND_A2, HAND_S),
                  fn(HAND_A1, HAND_A2, HAND_S.astype(bool), margin=1.0)):
        np.testing.assert_allclose(float(value), expected, rtol=1e-6)


def test_fisher_hand_computed():
    v = np.array([[1.0, 0.5], [-1.0, 2.0]], np.float32)
    y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], np.float32)
    b = np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]], np.float32)
    # within: residuals (0, -0.5), (0, 1), (0, 1.5) -> 3.5 / 6. between: V Vᵀ = [[1.25, 0],
    # [0, 5]] against 2 (2I - 11ᵀ) -> (0.5625 + 4 + 4 + 9) / 4. quantization: (0.25 + 1) / 4.
    expected = 3.5 / 6 + 0.5 * 17.5625 / 4 + 2.0 * 1.25 / 4
    for value in (losses.fisher_center_loss(v, y, b, nu=0.5, eta=2.0),
                  jitted(losses.fisher_center_loss, nu=0.5, eta=2.0)(v, y, b)):
        np.testing.assert_allclose(float(value), expected, rtol=1e-6)
    assert ref_fisher(v.astype(float), y, b, 0.5, 2.0) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("margin", [0.0, 0.5, 3.0])
def test_margin_likelihood_matches_loop_reference(margin):
    rng = np.random.default_rng(1)
    for n, m, num_bits in [(3, 5, 4), (4, 3, 6)]:
        a1, a2, s = _random_block(rng, n, m, num_bits)
        expected = ref_margin_likelihood(a1.astype(float), a2.astype(float), s, margin)
        value = jitted(losses.margin_likelihood_loss, margin=margin)(a1, a2, s)
        np.testing.assert_allclose(float(value), expected, rtol=2e-5, atol=1e-6)


def test_zero_margin_is_the_pairwise_likelihood():
    a1, a2, s = _random_block(np.random.default_rng(2), 5, 7, 6)
    np.testing.assert_allclose(
        float(losses.margin_likelihood_loss(a1, a2, s, margin=0.0)),
        float(losses.pairwise_likelihood_loss(a1, a2, s)),
        rtol=1e-6,
    )


def test_fisher_matches_loop_reference():
    rng = np.random.default_rng(3)
    for num_items, num_classes, num_bits in [(5, 2, 3), (9, 4, 6)]:
        v, y, b = _random_centers(rng, num_items, num_classes, num_bits)
        for nu, eta in [(1.0, 1.0), (0.1, 3.0)]:
            expected = ref_fisher(v.astype(float), y, b, nu, eta)
            value = jitted(losses.fisher_center_loss, nu=nu, eta=eta)(v, y, b)
            np.testing.assert_allclose(float(value), expected, rtol=2e-5)


def test_vmap_over_batches_equals_loop():
    rng = np.random.default_rng(4)
    blocks = [_random_block(rng, 4, 3, 6) for _ in range(3)]
    stacked = [np.stack(parts) for parts in zip(*blocks)]
    likelihood = jitted(losses.margin_likelihood_loss, margin=2.0)
    batched = jax.jit(jax.vmap(likelihood))(*stacked)
    np.testing.assert_allclose(np.asarray(batched), [float(likelihood(*b)) for b in blocks],
                               rtol=1e-5)
    centers = [_random_centers(rng, 6, 3, 4) for _ in range(3)]
    stacked = [np.stack(parts) for parts in zip(*centers)]
    fisher = jitted(losses.fisher_center_loss, nu=1.0, eta=1.0)
    batched = jax.jit(jax.vmap(fisher))(*stacked)
    np.testing.assert_allclose(np.asarray(batched), [float(fisher(*c)) for c in centers],
                               rtol=1e-5)


def test_margin_likelihood_gradients_match_finite_differences(x64):
    a1, a2, s = _random_block(np.random.default_rng(7), 3, 4, 5, dtype=np.float64)
    check_grads(
        jax.jit(lambda x1, x2: losses.margin_likelihood_loss(x1, x2, s, margin=1.5)),
        (jnp.asarray(a1), jnp.asarray(a2)),
        order=2,
        modes=("rev",),
    )


def test_fisher_gradients_match_finite_differences(x64):
    # Centre entries away from 0 (sgn's jump), codes as the real matrix they may be.
    v, y, b = _random_centers(np.random.default_rng(8), 7, 3, 4, dtype=np.float64)
    check_grads(
        jax.jit(lambda v, b: losses.fisher_center_loss(v, y, b, nu=0.5, eta=2.0)),
        (jnp.asarray(v), jnp.asarray(b)),
        order=2,
        modes=("rev",),
    )


def test_fisher_gradient_in_centres_closed_form(x64):
    v, y, b = _random_centers(np.random.default_rng(9), 8, 3, 5, dtype=np.float64)
    grad = jax.grad(losses.fisher_center_loss)(jnp.asarray(v), y, b, nu=0.5, eta=2.0)
    num_items, num_bits = b.shape
    num_classes = v.shape[0]
    target = num_bits * (2 * np.eye(num_classes) - 1)
    expected = (2 * y.T @ (y @ v - b) / (num_items * num_bits)
                + 0.5 * 4 * (v @ v.T - target) @ v / num_classes**2
                + 2.0 * 2 * (v - np.sign(v)) / (num_classes * num_bits))
    np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-10)


def test_margin_likelihood_finite_for_large_outputs():
    a1, a2, mixed = _random_block(np.random.default_rng(5), 4, 3, 6)
    grad_fn = jax.jit(jax.value_and_grad(
        functools.partial(losses.margin_likelihood_loss, margin=3.0), (0, 1)))
    for s in (np.zeros((4, 3), np.float32), np.ones((4, 3), np.float32), mixed):
        for x1, x2 in ((a1, a2), (1e3 * np.sign(a1), 1e3 * a2)):
            value, grads = grad_fn(x1, x2, s)
            assert np.isfinite(float(value))
            assert all(np.isfinite(np.asarray(g)).all() for g in grads)
            expected = ref_margin_likelihood(x1.astype(float), x2.astype(float), s, 3.0)
            np.testing.assert_allclose(float(value), expected, rtol=1e-4, atol=1e-4)


def test_margin_likelihood_bad_input():
    a1, a2, s = np.ones((4, 3)), np.ones((5, 3)), np.ones((4, 5))
    fn = functools.partial(losses.margin_likelihood_loss, margin=1.0)
    with pytest.raises(ValueError, match=r"A1 must have shape \[N, L\], got shape \(4, 3, 1\)"):
        fn(a1[..., None], a2, s)
    with pytest.raises(ValueError, match=r"A2 must have shape \[M, L\], got shape \(3,\)"):
        fn(a1, a2[0], s)
    with pytest.raises(ValueError, match=r"same number of bits.*\(4, 3\) and \(5, 2\)"):
        fn(a1, a2[:, :2], s)
    with pytest.raises(ValueError, match=r"S must have shape \[N, M\] = \(4, 5\).*got \(5, 4\)"):
        fn(a1, a2, s.T)
    for bad in (True, "1", None):
        with pytest.raises(ValueError, match=r"margin must be a real number, got"):
            losses.margin_likelihood_loss(a1, a2, s, margin=bad)
    with pytest.raises(ValueError, match=r"margin must be a scalar, got shape \(2,\)"):
        jax.jit(lambda m: losses.margin_likelihood_loss(a1, a2, s, margin=m))(jnp.ones(2))


def test_fisher_bad_input():
    v, y, b = np.ones((3, 4)), np.eye(3)[[0, 1, 2, 0, 1]], np.ones((5, 4))
    fn = functools.partial(losses.fisher_center_loss, nu=1.0, eta=1.0)
    with pytest.raises(ValueError, match=r"V must have shape \[C, L\], got shape \(4,\)"):
        fn(v[0], y, b)
    with pytest.raises(ValueError, match=r"Y must have shape \[N, C\], got shape \(5, 3, 1\)"):
        fn(v, y[..., None], b)
    with pytest.raises(ValueError, match=r"B must have shape \[N, L\], got shape \(4,\)"):
        fn(v, y, b[0])
    with pytest.raises(ValueError, match=r"same number of rows.*\(5, 3\) and \(4, 4\)"):
        fn(v, y, b[:4])
    with pytest.raises(ValueError, match=r"same number of bits.*\(3, 4\) and \(5, 2\)"):
        fn(v, y, b[:, :2])
    with pytest.raises(ValueError, match=r"one column per row of V.*\(5, 3\) and \(2, 4\)"):
        fn(v[:2], y, b)
    with pytest.raises(ValueError, match=r"nu must be a real number, got 'x'"):
        losses.fisher_center_loss(v, y, b, nu="x", eta=1.0)
    with pytest.raises(ValueError, match=r"eta must be a real number, got None"):
        losses.fisher_center_loss(v, y, b, nu=1.0, eta=None)


def test_docstring_examples():
    runner = doctest.DocTestRunner()
    finder = doctest.DocTestFinder()
    for fn in (_fisher.margin_likelihood_loss, _fisher.fisher_center_loss):
        for test in finder.find(fn, module=_fisher):
            runner.run(test)
    assert runner.failures == 0 and runner.tries >= 4
