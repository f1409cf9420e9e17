"""DCH's Cauchy terms: hand values, loops written with the paper's weights, gradients, jit/vmap,
degenerate inputs and bad input."""

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
from dlhash_jax.losses import _hamming_space


def _distance(u, v):
    """DCH's normalised Hamming distance (L/2)(1 - cos(u, v)), written out."""
    dot = sum(x * y for x, y in zip(u, v))
    norms = math.sqrt(sum(x * x for x in u)) * math.sqrt(sum(y * y for y in v))
    return 0.5 * len(u) * (1.0 - dot / norms)


def ref_cauchy(a1, a2, s, gamma, balanced=True):
    """Σ_ij w_ij ℓ_ij / |S| with the paper's w_ij = |S|/|S_1| (similar), |S|/|S_0| (dissimilar)."""
    pairs = []
    for i in range(a1.shape[0]):
        for j in range(a2.shape[0]):
            d = _distance(a1[i], a2[j])
            if s[i, j] == 1:
                # -log p with p = γ / (γ + d).
                pairs.append((1, -math.log(gamma / (gamma + d))))
            else:
                pairs.append((0, -math.log(1.0 - gamma / (gamma + d))))
    total_pairs = len(pairs)
    num_similar = sum(similar for similar, _ in pairs)
    num_dissimilar = total_pairs - num_similar
    total = 0.0
    for similar, value in pairs:
        if balanced:
            weight = total_pairs / (num_similar if similar else num_dissimilar)
        else:
            weight = 1.0
        total += weight * value
    return total / total_pairs


def ref_cauchy_quantization(a, gamma):
    total = 0.0
    for row in a:
        d = _distance([abs(x) for x in row], [1.0] * len(row))
        total += math.log(1.0 + d / gamma)
    return total / a.shape[0]


def _random_block(rng, n, m, num_bits, dtype=np.float32):
    a1 = rng.normal(size=(n, num_bits)).astype(dtype)
    a2 = rng.normal(size=(m, num_bits)).astype(dtype)
    s = (rng.random((n, m)) < 0.4).astype(dtype)
    s[0, 0], s[-1, -1] = 1.0, 0.0  # both kinds of pair present
    return a1, a2, s


# The hand-made block (pairwise_helpers) has Hamming distances [[0, 4, 2], [2, 2, 2]].


@pytest.mark.parametrize(
    "balanced, expected",
    [
        # γ = 2: similar log(1 + d/2) on d = {0, 2}: {0, log 2}; dissimilar log(1 + 2/d) on
        # d = {4, 2, 2, 2}: {log 1.5, log 2, log 2, log 2}.
        (True, math.log(2.0) / 2 + (math.log(1.5) + 3 * math.log(2.0)) / 4),
        (False, (4 * math.log(2.0) + math.log(1.5)) / 6),
    ],
)
def test_cross_entropy_hand_computed_eager_jit_bool_and_scale(balanced, expected):
    fn = losses.cauchy_cross_entropy_loss
    values = [
        fn(HAND_A1, HAND_A2, HAND_S, gamma=2.0, balanced=balanced),
        jitted(fn, gamma=2.0, balanced=balanced)(HAND_A1, HAND_A2, HAND_S),
        fn(HAND_A1, HAND_A2, HAND_S.astype(bool), gamma=2.0, balanced=balanced),
        # The distance depends on directions only.
        fn(0.3 * HAND_A1, 5.0 * HAND_A2, HAND_S, gamma=2.0, balanced=balanced),
    ]
    for value in values:
        np.testing.assert_allclose(float(value), expected, rtol=1e-6)
    assert ref_cauchy(HAND_A1.astype(float), HAND_A2.astype(float), HAND_S, 2.0,
                      balanced) == pytest.approx(expected, rel=1e-12)


def test_quantization_hand_computed():
    a = np.array([[1.0, 0.0], [2.0, -2.0], [0.5, -0.5]], np.float32)
    # cos(|a_0|, 1) = 1/√2, so d = 1 - 1/√2; rows 1 and 2 are multiples of codes: d = 0.
    expected = math.log1p(1.0 - 1.0 / math.sqrt(2.0)) / 3
    for value in (losses.cauchy_quantization_loss(a, gamma=1.0),
                  jitted(losses.cauchy_quantization_loss, gamma=1.0)(a)):
        np.testing.assert_allclose(float(value), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("balanced", [True, False])
@pytest.mark.parametrize("gamma", [1.0, 20.0])
def test_cross_entropy_matches_loop_reference(balanced, gamma):
    rng = np.random.default_rng(1)
    fn = jitted(losses.cauchy_cross_entropy_loss, gamma=gamma, balanced=balanced)
    for n, m, num_bits in [(3, 5, 4), (4, 3, 6)]:
        a1, a2, s = _random_block(rng, n, m, num_bits)
        expected = ref_cauchy(a1.astype(float), a2.astype(float), s, gamma, balanced)
        np.testing.assert_allclose(float(fn(a1, a2, s)), expected, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("gamma", [0.5, 20.0])
def test_quantization_matches_loop_reference(gamma):
    rng = np.random.default_rng(2)
    for shape in [(1, 3), (7, 5), (16, 12)]:
        a = rng.normal(size=shape).astype(np.float32)
        expected = ref_cauchy_quantization(a.astype(float), gamma)
        value = jitted(losses.cauchy_quantization_loss, gamma=gamma)(a)
        np.testing.assert_allclose(float(value), expected, rtol=2e-5, atol=1e-6)


def test_vmap_over_batches_equals_loop():
    rng = np.random.default_rng(3)
    blocks = [_random_block(rng, 4, 3, 6) for _ in range(3)]
    stacked = [np.stack(parts) for parts in zip(*blocks)]
    cross_entropy = jitted(losses.cauchy_cross_entropy_loss, gamma=2.0)
    batched = jax.jit(jax.vmap(cross_entropy))(*stacked)
    np.testing.assert_allclose(np.asarray(batched), [float(cross_entropy(*b)) for b in blocks],
                               rtol=1e-5)
    quantization = jitted(losses.cauchy_quantization_loss, gamma=2.0)
    batched = jax.jit(jax.vmap(quantization))(stacked[0])
    np.testing.assert_allclose(np.asarray(batched), [float(quantization(b[0])) for b in blocks],
                               rtol=1e-5)


@pytest.mark.parametrize("balanced", [True, False])
def test_cross_entropy_gradients_match_finite_differences(x64, balanced):
    a1, a2, s = _random_block(np.random.default_rng(7), 3, 4, 5, dtype=np.float64)
    check_grads(
        jax.jit(lambda x1, x2: losses.cauchy_cross_entropy_loss(x1, x2, s, gamma=2.0,
                                                                balanced=balanced)),
        (jnp.asarray(a1), jnp.asarray(a2)),
        order=2,
        modes=("rev",),
    )


def test_quantization_gradients_match_finite_differences(x64):
    # Magnitudes away from 0, where |a| has its kink.
    rng = np.random.default_rng(8)
    a = rng.uniform(0.2, 2.0, (4, 5)) * rng.choice([-1.0, 1.0], (4, 5))
    check_grads(jax.jit(lambda x: losses.cauchy_quantization_loss(x, gamma=3.0)),
                (jnp.asarray(a),), order=2, modes=("rev",))


def test_one_sided_batches_keep_only_their_part():
    a1, a2, _ = _random_block(np.random.default_rng(4), 4, 3, 6)
    fn = jitted(losses.cauchy_cross_entropy_loss, gamma=2.0)
    grad_fn = jax.jit(jax.grad(fn, (0, 1)))
    unbalanced = jitted(losses.cauchy_cross_entropy_loss, gamma=2.0, balanced=False)
    for s in (np.zeros((4, 3), np.float32), np.ones((4, 3), np.float32)):
        # With one kind of pair the balanced loss is that kind's mean: the unbalanced loss.
        np.testing.assert_allclose(float(fn(a1, a2, s)), float(unbalanced(a1, a2, s)), rtol=1e-6)
        np.testing.assert_allclose(float(fn(a1, a2, s)),
                                   ref_cauchy(a1.astype(float), a2.astype(float), s, 2.0),
                                   rtol=2e-5)
        assert all(np.isfinite(np.asarray(g)).all() for g in grad_fn(a1, a2, s))


def test_batch_with_itself_zero_rows_and_collapsed_dissimilar_pairs_are_finite():
    h = np.tanh(np.random.default_rng(5).normal(size=(6, 8))).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]]
    s = labels @ labels.T
    fn = jax.jit(jax.value_and_grad(
        lambda x: losses.cauchy_cross_entropy_loss(x, x, s, gamma=20.0)))
    value, grad = fn(h)
    # The diagonal pairs (i, i) are similar at distance 0: they add 0 to the similar mean.
    expected = ref_cauchy(h.astype(float), h.astype(float), s, 20.0)
    np.testing.assert_allclose(float(value), expected, rtol=2e-5, atol=1e-6)
    assert np.isfinite(np.asarray(grad)).all()
    # A zero row and a dissimilar pair with equal directions: finite value and gradient.
    degenerate = h.copy()
    degenerate[0] = 0.0
    degenerate[1] = 2.0 * degenerate[2]
    value, grad = fn(degenerate)
    assert np.isfinite(float(value)) and np.isfinite(np.asarray(grad)).all()
    quantization = jax.jit(jax.value_and_grad(
        lambda x: losses.cauchy_quantization_loss(x, gamma=2.0)))
    value, grad = quantization(degenerate)
    assert np.isfinite(float(value)) and np.isfinite(np.asarray(grad)).all()


def test_bad_shapes_raise_with_the_shapes():
    a1, a2, s = np.ones((4, 3)), np.ones((5, 3)), np.ones((4, 5))
    fn = functools.partial(losses.cauchy_cross_entropy_loss, gamma=1.0)
    with pytest.raises(ValueError, match=r"A1 must have shape \[N, L\], got shape \(4, 3, 1\)"):
        fn(a1[..., None], a2, s)
    with pytest.raises(ValueError, match=r"A2 must have shape \[M, L\], got shape \(3,\)"):
        fn(a1, a2[0], s)
    with pytest.raises(ValueError, match=r"same number of bits.*\(4, 3\) and \(5, 2\)"):
        fn(a1, a2[:, :2], s)
    with pytest.raises(ValueError, match=r"S must have shape \[N, M\] = \(4, 5\).*got \(5, 4\)"):
        fn(a1, a2, s.T)
    with pytest.raises(ValueError, match=r"A must have shape \[N, L\], got shape \(3,\)"):
        losses.cauchy_quantization_loss(np.ones(3), gamma=1.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, True, "20"])
def test_bad_gamma_is_refused(bad):
    a = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"gamma must be a positive number, got"):
        losses.cauchy_cross_entropy_loss(a, a, np.ones((2, 2)), gamma=bad)
    with pytest.raises(ValueError, match=r"gamma must be a positive number, got"):
        losses.cauchy_quantization_loss(a, gamma=bad)


def test_traced_gamma_equals_static_gamma_and_must_be_scalar():
    a1, a2, s = _random_block(np.random.default_rng(6), 3, 4, 5)
    traced = jax.jit(lambda g: losses.cauchy_cross_entropy_loss(a1, a2, s, gamma=g))(2.0)
    np.testing.assert_allclose(float(traced),
                               float(losses.cauchy_cross_entropy_loss(a1, a2, s, gamma=2)),
                               rtol=1e-6)
    with pytest.raises(ValueError, match=r"gamma must be a scalar, got shape \(2,\)"):
        jax.jit(lambda g: losses.cauchy_quantization_loss(a1, gamma=g))(jnp.ones(2))


def test_docstring_examples():
    runner = doctest.DocTestRunner()
    finder = doctest.DocTestFinder()
    for fn in (_hamming_space.cauchy_cross_entropy_loss, _hamming_space.cauchy_quantization_loss):
        for test in finder.find(fn, module=_hamming_space):
            runner.run(test)
    assert runner.failures == 0 and runner.tries >= 3
