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


def ref_inner_product(a1, a2, s, dissimilar=-1.0):
    n, num_bits = a1.shape
    m = a2.shape[0]
    total = 0.0
    for i in range(n):
        for j in range(m):
            target = 1.0 if s[i, j] == 1 else dissimilar
            dot = sum(a1[i, k] * a2[j, k] for k in range(num_bits))
            total += (num_bits * target - dot) ** 2
    return total / (n * m)


def _neg_log_sigmoid(t):
    # -log(1 / (1 + e^-t)), branching so that exp never overflows.
    return math.log1p(math.exp(-t)) if t >= 0 else -t + math.log1p(math.exp(t))


def ref_likelihood(a1, a2, s):
    n, m = s.shape
    total = 0.0
    for i in range(n):
        for j in range(m):
            theta = 0.5 * sum(a1[i, k] * a2[j, k] for k in range(a1.shape[1]))
            # p(s=1) = σ(θ) and p(s=0) = 1 - σ(θ) = σ(-θ).
            total += _neg_log_sigmoid(theta if s[i, j] == 1 else -theta)
    return total / (n * m)


def _sq_dist(u, v):
    return sum((x - y) ** 2 for x, y in zip(u, v))


def ref_between_within(a1, a2, s):
    similar, dissimilar = [], []
    for i in range(a1.shape[0]):
        for j in range(a2.shape[0]):
            (similar if s[i, j] == 1 else dissimilar).append(_sq_dist(a1[i], a2[j]))
    within = sum(similar) / len(similar) if similar else 0.0
    between = sum(dissimilar) / len(dissimilar) if dissimilar else 0.0
    return within - between


def ref_contrastive(a1, a2, s, margin, distance="l1"):
    n, m = s.shape
    total = 0.0
    for i in range(n):
        for j in range(m):
            if distance == "l1":
                d = sum(abs(x - y) for x, y in zip(a1[i], a2[j]))
            else:
                d = _sq_dist(a1[i], a2[j])
            total += d if s[i, j] == 1 else max(0.0, margin - d)
    return total / (n * m)


CASES = [
    pytest.param(losses.inner_product_loss, ref_inner_product, {}, id="inner"),
    pytest.param(losses.pairwise_likelihood_loss, ref_likelihood, {}, id="likelihood"),
    pytest.param(losses.between_within_loss, ref_between_within, {}, id="between_within"),
    pytest.param(losses.contrastive_loss, ref_contrastive, {"margin": 3.0}, id="contrastive_l1"),
    pytest.param(
        losses.contrastive_loss,
        ref_contrastive,
        {"margin": 3.0, "distance": "squared_l2"},
        id="contrastive_sq",
    ),
]

def _random_block(rng, n, m, num_bits, dtype=np.float32):
    a1 = rng.normal(size=(n, num_bits)).astype(dtype)
    a2 = rng.normal(size=(m, num_bits)).astype(dtype)
    s = (rng.random((n, m)) < 0.4).astype(dtype)
    s[0, 0], s[-1, -1] = 1.0, 0.0  # both kinds of pair present
    return a1, a2, s


# On the hand-made block (pairwise_helpers): L1 distances [[0, 8, 4], [4, 4, 4]]; squared L2
# distances are 2 × L1 (entries differ by 0 or 2).


@pytest.mark.parametrize(
    "fn, kwargs, expected",
    [
        # targets L·t = [[4, -4, -4], [-4, 4, -4]]; residuals [[0, 0, -4], [-4, 4, -4]] -> 64 / 6.
        (losses.inner_product_loss, {}, 64.0 / 6.0),
        # targets [[4, 0, 0], [0, 4, 0]]; residuals [[0, 4, 0], [0, 4, 0]] -> 32 / 6.
        (losses.inner_product_loss, {"dissimilar": 0.0}, 32.0 / 6.0),
        # θ = [[2, -2, 0], [0, 0, 0]]: softplus(2) - 2 + softplus(-2) + 4 log 2 (s=1 at θ=0 too).
        (
            losses.pairwise_likelihood_loss,
            {},
            (math.log1p(math.exp(-2.0)) * 2 + 4 * math.log(2.0)) / 6.0,
        ),
        # similar squared distances {0, 8}, dissimilar {16, 8, 8, 8}: 4 - 10.
        (losses.between_within_loss, {}, -6.0),
        # similar L1 {0, 4}; dissimilar hinge of m=5 on {8, 4, 4, 4}: 0 + 1 + 1 + 1 -> 7 / 6.
        (losses.contrastive_loss, {"margin": 5.0}, 7.0 / 6.0),
        # similar squared {0, 8}; dissimilar hinge of m=10 on {16, 8, 8, 8}: 2 + 2 + 2 -> 14 / 6.
        (losses.contrastive_loss, {"margin": 10.0, "distance": "squared_l2"}, 14.0 / 6.0),
    ],
)
def test_hand_computed_eager_jit_and_bool_similarity(fn, kwargs, expected):
    eager = fn(HAND_A1, HAND_A2, HAND_S, **kwargs)
    compiled = jitted(fn, **kwargs)(HAND_A1, HAND_A2, HAND_S)
    from_bool = fn(HAND_A1, HAND_A2, HAND_S.astype(bool), **kwargs)
    for value in (eager, compiled, from_bool):
        np.testing.assert_allclose(float(value), expected, rtol=1e-6)


@pytest.mark.parametrize("fn, ref, kwargs", CASES)
def test_matches_loop_reference(fn, ref, kwargs):
    rng = np.random.default_rng(1)
    for n, m, num_bits in [(3, 5, 4), (4, 3, 6)]:
        a1, a2, s = _random_block(rng, n, m, num_bits)
        expected = ref(a1.astype(float), a2.astype(float), s, **kwargs)
        value = jitted(fn, **kwargs)(a1, a2, s)
        np.testing.assert_allclose(float(value), expected, rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("fn, ref, kwargs", CASES)
def test_vmap_over_batches_equals_loop(fn, ref, kwargs):
    rng = np.random.default_rng(3)
    blocks = [_random_block(rng, 4, 3, 6) for _ in range(3)]
    stacked = [np.stack(parts) for parts in zip(*blocks)]
    batched = jax.jit(jax.vmap(jitted(fn, **kwargs)))(*stacked)
    looped = [float(jitted(fn, **kwargs)(*block)) for block in blocks]
    np.testing.assert_allclose(np.asarray(batched), looped, rtol=1e-5)


@pytest.mark.parametrize(
    "fn, kwargs, order",
    [
        (losses.inner_product_loss, {}, 2),
        (losses.pairwise_likelihood_loss, {}, 2),
        (losses.between_within_loss, {}, 2),
        # Piecewise: margin 6 lies away from every distance of this block (asserted below).
        (losses.contrastive_loss, {"margin": 6.0}, 1),
        (losses.contrastive_loss, {"margin": 6.0, "distance": "squared_l2"}, 1),
    ],
)
def test_gradients_match_finite_differences(x64, fn, kwargs, order):
    a1, a2, s = _random_block(np.random.default_rng(7), 3, 4, 5, dtype=np.float64)
    if "margin" in kwargs:
        l1 = np.abs(a1[:, None, :] - a2[None, :, :])
        squared = np.sum((a1[:, None, :] - a2[None, :, :]) ** 2, axis=-1)
        assert l1.min() > 0.05
        assert np.abs(l1.sum(-1) - 6.0).min() > 0.2 and np.abs(squared - 6.0).min() > 0.2
    # Reverse mode only (JAX derives it from the JVP); jit so the many evaluations of the
    # finite differences reuse one compiled program.
    check_grads(
        jax.jit(lambda x1, x2: fn(x1, x2, s, **kwargs)),
        (jnp.asarray(a1), jnp.asarray(a2)),
        order=order,
        modes=("rev",),
    )


@pytest.mark.parametrize("fn, ref, kwargs", CASES)
def test_finite_for_large_outputs_and_one_sided_batches(fn, ref, kwargs):
    rng = np.random.default_rng(5)
    a1, a2, mixed = _random_block(rng, 4, 3, 6)
    big1, big2 = 1e3 * np.sign(a1), 1e3 * a2
    grad_fn = jax.jit(jax.value_and_grad(functools.partial(fn, **kwargs), (0, 1)))
    for s in (np.zeros((4, 3), np.float32), np.ones((4, 3), np.float32), mixed):
        for x1, x2 in ((a1, a2), (big1, big2)):
            value, grads = grad_fn(x1, x2, s)
            assert np.isfinite(float(value))
            assert all(np.isfinite(np.asarray(g)).all() for g in grads)
            expected = ref(x1.astype(float), x2.astype(float), s, **kwargs)
            np.testing.assert_allclose(float(value), expected, rtol=1e-4, atol=1e-4)


def test_between_within_with_one_sided_batch_keeps_only_that_part():
    a = np.array([[0.0, 0.0], [3.0, 4.0]], np.float32)
    # All pairs similar: mean of {0, 25, 25, 0}; all dissimilar: minus the same mean.
    loss = jitted(losses.between_within_loss)
    assert float(loss(a, a, np.ones((2, 2), np.float32))) == pytest.approx(12.5)
    assert float(loss(a, a, np.zeros((2, 2), np.float32))) == pytest.approx(-12.5)


def test_contrastive_squared_l2_never_builds_a_pair_by_bit_tensor():
    n, m, num_bits = 5, 7, 3
    args = (jnp.ones((n, num_bits)), jnp.ones((m, num_bits)), jnp.ones((n, m)))

    def intermediate_shapes(distance):
        fn = lambda x1, x2, sim: losses.contrastive_loss(x1, x2, sim, margin=1.0, distance=distance)
        jaxpr = jax.make_jaxpr(jax.grad(fn, (0, 1)))(*args)
        return {tuple(v.aval.shape) for eqn in jaxpr.eqns for v in eqn.outvars}

    assert (n, m, num_bits) not in intermediate_shapes("squared_l2")
    # The L1 path does broadcast, which is what makes this check meaningful.
    assert (n, m, num_bits) in intermediate_shapes("l1")


@pytest.mark.parametrize(
    "fn, kwargs",
    [
        (losses.inner_product_loss, {}),
        (losses.pairwise_likelihood_loss, {}),
        (losses.between_within_loss, {}),
        (losses.contrastive_loss, {"margin": 1.0}),
    ],
)
def test_bad_shapes_raise_with_the_shapes(fn, kwargs):
    a1, a2, s = np.ones((4, 3)), np.ones((5, 3)), np.ones((4, 5))
    with pytest.raises(ValueError, match=r"A1 must have shape \[N, L\], got shape \(4, 3, 1\)"):
        fn(a1[..., None], a2, s, **kwargs)
    with pytest.raises(ValueError, match=r"A2 must have shape \[M, L\], got shape \(3,\)"):
        fn(a1, a2[0], s, **kwargs)
    with pytest.raises(ValueError, match=r"same number of bits.*\(4, 3\) and \(5, 2\)"):
        fn(a1, a2[:, :2], s, **kwargs)
    with pytest.raises(ValueError, match=r"S must have shape \[N, M\] = \(4, 5\).*got \(5, 4\)"):
        fn(a1, a2, s.T, **kwargs)


def test_contrastive_rejects_unknown_distance():
    with pytest.raises(ValueError, match=r"distance must be one of .*'l2'"):
        losses.contrastive_loss(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 2)), margin=1.0,
                                distance="l2")
