"""mutual_information_loss (MIHash): hand values, the authors' forward pass as a loop, gradients,
jit/vmap, bad input."""

import doctest
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlhash_jax import losses
from dlhash_jax.losses import _mutual_information


def _entropy(p):
    return -sum(v * math.log2(v) for v in p if v > 0)


def ref_mutual_information(a1, a2, s, valid, num_bins):
    """The authors' mi_forward.m, query by query and bin by bin (their (c − Δ, c + Δ] pulses)."""
    n, bits = a1.shape
    m = a2.shape[0]
    width = bits / num_bins
    centers = [k * width for k in range(num_bins + 1)]
    total = 0.0
    for i in range(n):
        pos = [0.0] * len(centers)
        neg = [0.0] * len(centers)
        n_pos = n_neg = 0
        for j in range(m):
            if not valid[i, j]:
                continue
            d = (bits - sum(a1[i, k] * a2[j, k] for k in range(bits))) / 2
            hist = pos if s[i, j] else neg
            if s[i, j]:
                n_pos += 1
            else:
                n_neg += 1
            for b, c in enumerate(centers):
                if c - width < d <= c + width:
                    hist[b] += 1 - abs(d - c) / width
        count = n_pos + n_neg
        if count == 0:
            continue
        p_d = [(u + v) / count for u, v in zip(pos, neg)]
        h_pos = _entropy([u / n_pos for u in pos]) if n_pos else 0.0
        h_neg = _entropy([v / n_neg for v in neg]) if n_neg else 0.0
        total += _entropy(p_d) - n_pos / count * h_pos - n_neg / count * h_neg
    return -total / n


def _inputs(rng, n=7, m=9, bits=8, num_classes=3, self_pairs=False):
    a1 = np.tanh(rng.normal(scale=1.5, size=(n, bits))).astype(np.float32)
    y1 = np.eye(num_classes)[rng.integers(0, num_classes, n)]
    if self_pairs:
        a2, y2 = a1, y1
        valid = 1.0 - np.eye(n, dtype=np.float32)
    else:
        a2 = np.tanh(rng.normal(scale=1.5, size=(m, bits))).astype(np.float32)
        y2 = np.eye(num_classes)[rng.integers(0, num_classes, m)]
        valid = (rng.random((n, m)) < 0.8).astype(np.float32)
    s = (y1 @ y2.T > 0).astype(np.float32)
    return a1, a2, s, valid


_JITTED = jax.jit(losses.mutual_information_loss, static_argnames=("num_bins",))


def test_hand_computed_eager_and_jit():
    a = np.array([[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0]], np.float32)
    s = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]], np.float32)
    valid = 1.0 - np.eye(3, dtype=np.float32)
    # Queries 0 and 1: one neighbour at d = 0, one non-neighbour at d = 2: p(D) = (½, 0, ½), both
    # conditionals certain: 1 bit each. Query 2 has no neighbour: 0 bits. Loss −2/3.
    for value in (
        losses.mutual_information_loss(a, a, s, valid, num_bins=2),
        _JITTED(a, a, s, valid, num_bins=2),
    ):
        assert float(value) == pytest.approx(-2 / 3, rel=1e-6)
    # A distance between two bin centres splits between them (Δ = 1, centres 0, 1, 2): the
    # neighbour at d = 0.5 gives p(D|+) = (½, ½, 0), the non-neighbour at d = 1.5 gives
    # p(D|−) = (0, ½, ½), so p(D) = (¼, ½, ¼): I = 1.5 − ½ · 1 − ½ · 1 = ½ bit.
    query = np.array([[1.0, 1.0]], np.float32)
    database = np.array([[1.0, 0.0], [-0.5, -0.5]], np.float32)
    value = losses.mutual_information_loss(query, database, np.array([[1.0, 0.0]]), num_bins=2)
    assert float(value) == pytest.approx(-0.5, rel=1e-6)


def test_no_information_without_both_kinds_of_pairs():
    rng = np.random.default_rng(1)
    a1, a2, _, valid = _inputs(rng)
    for s in (np.ones_like(valid), np.zeros_like(valid)):
        assert float(_JITTED(a1, a2, s, valid, num_bins=4)) == 0.0
    # No valid pair at all: 0 and a zero gradient, not NaN.
    value, grad = jax.value_and_grad(
        lambda a: losses.mutual_information_loss(a, a2, np.ones_like(valid), np.zeros_like(valid),
                                                 num_bins=4))(a1)
    assert float(value) == 0.0 and np.all(np.asarray(grad) == 0.0)


@pytest.mark.parametrize("num_bins", [1, 4, 12, 32])
@pytest.mark.parametrize("self_pairs", [False, True])
def test_matches_the_authors_forward_pass(num_bins, self_pairs):
    rng = np.random.default_rng(num_bins)
    for n, m, bits in [(7, 9, 8), (5, 5, 16)]:
        a1, a2, s, valid = _inputs(rng, n, m, bits, self_pairs=self_pairs)
        expected = ref_mutual_information(a1.astype(float), a2.astype(float), s, valid, num_bins)
        value = _JITTED(a1, a2, s, valid, num_bins=num_bins)
        np.testing.assert_allclose(float(value), expected, rtol=1e-5, atol=1e-6)
        assert -1.0 <= float(value) <= 0.0


def test_default_valid_is_every_pair():
    a1, a2, s, _ = _inputs(np.random.default_rng(2))
    np.testing.assert_allclose(float(_JITTED(a1, a2, s, num_bins=4)),
                               float(_JITTED(a1, a2, s, np.ones_like(s), num_bins=4)), rtol=1e-6)


def test_vmap_equals_loop():
    rng = np.random.default_rng(3)
    batches = [_inputs(rng) for _ in range(3)]
    stacked = [np.stack(parts) for parts in zip(*batches)]

    def fn(a1, a2, s, valid):
        return losses.mutual_information_loss(a1, a2, s, valid, num_bins=6)

    mapped = jax.jit(jax.vmap(fn))(*stacked)
    looped = [float(jax.jit(fn)(*args)) for args in batches]
    np.testing.assert_allclose(np.asarray(mapped), looped, rtol=1e-5, atol=1e-7)


def test_gradients_numerically_away_from_the_kernel_kinks(x64):
    rng = np.random.default_rng(4)
    a1, a2, s, valid = _inputs(rng, 5, 6, 8)
    num_bins = 4
    width = 8 / num_bins
    distance = (8 - a1.astype(float) @ a2.astype(float).T) / 2
    # The triangular kernels bend at multiples of Δ: keep every distance at least 0.01 away.
    assert np.min(np.abs(distance / width - np.round(distance / width))) * width > 0.01
    a1, a2 = jnp.asarray(a1, jnp.float64), jnp.asarray(a2, jnp.float64)
    check_grads(
        jax.jit(lambda x, y: losses.mutual_information_loss(x, y, s, valid, num_bins=num_bins)),
        (a1, a2), order=1, modes=("rev",),
    )


def test_a_step_against_the_gradient_raises_the_information():
    a1, _, s, valid = _inputs(np.random.default_rng(5), 8, 8, 16, self_pairs=True)
    loss = jax.jit(lambda a: losses.mutual_information_loss(a, a, s, valid, num_bins=8))
    grad = jax.grad(loss)(a1)
    assert float(loss(a1 - 0.05 * grad)) < float(loss(a1))


def test_bad_input_raises_with_the_shapes():
    a1, a2, s = np.zeros((4, 8)), np.zeros((5, 8)), np.zeros((4, 5))
    with pytest.raises(ValueError, match=r"A1 must have shape \[N, L\], got shape \(8,\)"):
        losses.mutual_information_loss(a1[0], a2, s, num_bins=4)
    with pytest.raises(ValueError, match=r"A1 and A2 must have the same number of bits .*"
                                         r"\(4, 8\) and \(5, 6\)"):
        losses.mutual_information_loss(a1, np.zeros((5, 6)), s, num_bins=4)
    with pytest.raises(ValueError, match=r"S must have shape \[N, M\] = \(4, 5\) .* got \(5, 4\)"):
        losses.mutual_information_loss(a1, a2, s.T, num_bins=4)
    with pytest.raises(ValueError, match=r"valid must have the shape of S, \[N, M\] = \(4, 5\), "
                                         r"got \(4, 4\)"):
        losses.mutual_information_loss(a1, a2, s, np.ones((4, 4)), num_bins=4)
    for bad in (0, -2, 2.5, True, None):
        with pytest.raises(ValueError, match=r"num_bins must be a positive integer, got"):
            losses.mutual_information_loss(a1, a2, s, num_bins=bad)


def test_docstring_examples():
    failures, tried = doctest.testmod(_mutual_information, extraglobs={"jnp": jnp})
    assert tried > 0 and failures == 0
