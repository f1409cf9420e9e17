"""cosine_margin_loss (OrthoHash): hand values, loop reference, gradients, jit/vmap, bad input."""

import doctest
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlhash_jax import losses
from dlhash_jax.losses import _cosine_margin


def ref_cosine_margin(a, c, y, scale, margin):
    """Item by item: log-softmax of s (cos − m y) against the label-smoothed target."""
    n, num_classes = y.shape
    total = 0.0
    for i in range(n):
        mass = sum(y[i])
        if mass == 0:
            continue
        norm_a = math.sqrt(sum(v * v for v in a[i]))
        logits = []
        for k in range(num_classes):
            norm_c = math.sqrt(sum(v * v for v in c[k]))
            cosine = sum(u * v for u, v in zip(a[i], c[k])) / (norm_a * norm_c)
            logits.append(scale * (cosine - margin * y[i, k]))
        top = max(logits)
        log_norm = top + math.log(sum(math.exp(z - top) for z in logits))
        total -= sum(y[i, k] / mass * (logits[k] - log_norm) for k in range(num_classes))
    return total / n


def _codes(rng, num_classes, bits):
    return np.where(rng.random((num_classes, bits)) < 0.5, -1.0, 1.0).astype(np.float32)


def _inputs(rng, n=6, bits=8, num_classes=4):
    a = rng.normal(size=(n, bits)).astype(np.float32)
    y = (rng.random((n, num_classes)) < 0.35).astype(np.float32)
    if n >= 3:
        y[0] = 0.0  # an unlabelled row
        y[1] = np.eye(num_classes)[1]  # a one-hot row
        y[2, :2] = 1.0  # a multi-hot row
    else:
        y[:] = np.eye(num_classes)[:n]
    return a, _codes(rng, num_classes, bits), y


_JITTED = jax.jit(losses.cosine_margin_loss, static_argnames=("scale", "margin"))


def test_hand_computed_eager_and_jit():
    codes = np.array([[1.0, 1.0], [1.0, -1.0]], np.float32)
    a = np.array([[2.0, 2.0], [1.0, 0.0], [0.0, -3.0]], np.float32)
    y = np.array([[1, 0], [1, 1], [0, 0]], np.float32)
    # Row 0: cosines (1, 0), logits 2 (1 − 0.5) = 1 and 0: −log σ(1) = log(1 + e⁻¹).
    # Row 1: cosines (1/√2, 1/√2), both labels: equal logits, target (½, ½): log 2.
    # Row 2: no label: 0, but it counts in the mean.
    expected = (math.log1p(math.exp(-1.0)) + math.log(2.0)) / 3
    for value in (
        losses.cosine_margin_loss(a, codes, y, scale=2.0, margin=0.5),
        _JITTED(a, codes, y, scale=2.0, margin=0.5),
        losses.cosine_margin_loss(a, codes, y.astype(np.int32), scale=2.0, margin=0.5),
    ):
        assert float(value) == pytest.approx(expected, rel=1e-6)
    assert ref_cosine_margin(a.astype(float), codes, y, 2.0, 0.5) == pytest.approx(expected)


def test_margin_raises_the_loss_and_scale_of_codes_does_not_matter():
    a, codes, y = _inputs(np.random.default_rng(1))
    plain = float(_JITTED(a, codes, y, scale=4.0, margin=0.0))
    assert float(_JITTED(a, codes, y, scale=4.0, margin=0.3)) > plain
    # Cosines ignore the norms of the outputs and of the codes.
    np.testing.assert_allclose(float(_JITTED(3.0 * a, 0.5 * codes, y, scale=4.0, margin=0.0)),
                               plain, rtol=1e-5)


@pytest.mark.parametrize("scale, margin", [(8.0, 0.2), (math.sqrt(32), 0.3), (1.0, 0.0)])
def test_matches_loop_reference(scale, margin):
    rng = np.random.default_rng(0)
    for n, bits, num_classes in [(6, 8, 4), (9, 16, 10), (1, 3, 2)]:
        a, codes, y = _inputs(rng, n, bits, num_classes)
        expected = ref_cosine_margin(a.astype(float), codes, y, scale, margin)
        value = _JITTED(a, codes, y, scale=scale, margin=margin)
        np.testing.assert_allclose(float(value), expected, rtol=1e-5)


def test_vmap_equals_loop():
    rng = np.random.default_rng(2)
    batches = [_inputs(rng) for _ in range(3)]
    stacked = [np.stack(parts) for parts in zip(*batches)]
    fn = lambda a, c, y: losses.cosine_margin_loss(a, c, y, scale=5.0, margin=0.2)  # noqa: E731
    mapped = jax.jit(jax.vmap(fn))(*stacked)
    looped = [float(jax.jit(fn)(*args)) for args in batches]
    np.testing.assert_allclose(np.asarray(mapped), looped, rtol=1e-5)


def test_traced_hyperparameters_equal_static_ones():
    a, codes, y = _inputs(np.random.default_rng(3))
    traced = jax.jit(
        lambda s, m: losses.cosine_margin_loss(a, codes, y, scale=s, margin=m)
    )(5.0, 0.25)
    np.testing.assert_allclose(float(traced), float(_JITTED(a, codes, y, scale=5.0, margin=0.25)),
                               rtol=1e-6)


def test_gradients_numerically(x64):
    a, codes, y = _inputs(np.random.default_rng(4))
    a, codes = jnp.asarray(a, jnp.float64), jnp.asarray(codes, jnp.float64)
    assert a.dtype == jnp.float64
    check_grads(
        jax.jit(lambda a, c: losses.cosine_margin_loss(a, c, y, scale=3.0, margin=0.2)),
        (a, codes), order=2, modes=("rev",),
    )


def test_finite_for_zero_rows_and_large_outputs():
    a, codes, y = _inputs(np.random.default_rng(5))
    a[3] = 0.0
    a[4] *= 1e6
    value, grad = jax.jit(jax.value_and_grad(
        lambda a: losses.cosine_margin_loss(a, codes, y, scale=64.0, margin=0.5)))(a)
    assert np.isfinite(float(value))
    assert np.isfinite(np.asarray(grad)).all()
    np.testing.assert_array_equal(np.asarray(grad)[3], 0.0)  # a zero row has cosine 0, no grad


def test_bad_input_raises_with_the_shapes():
    a, codes, y = np.ones((4, 8)), np.ones((3, 8)), np.ones((4, 3))
    with pytest.raises(ValueError, match=r"A must have shape \[N, L\], got shape \(8,\)"):
        losses.cosine_margin_loss(a[0], codes, y)
    with pytest.raises(ValueError, match=r"C must have shape \[K, L\], got shape \(3, 8, 1\)"):
        losses.cosine_margin_loss(a, codes[..., None], y)
    with pytest.raises(ValueError, match=r"A and C must have the same number of bits .*"
                                         r"\(4, 8\) and \(3, 6\)"):
        losses.cosine_margin_loss(a, np.ones((3, 6)), y)
    with pytest.raises(ValueError, match=r"Y must have shape \[N, K\] = \(4, 3\) for A of shape "
                                         r"\(4, 8\) and C of shape \(3, 8\), got \(4, 5\)"):
        losses.cosine_margin_loss(a, codes, np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"Y must have shape \[N, K\], got shape \(4,\)"):
        losses.cosine_margin_loss(a, codes, np.ones(4))
    for bad in (0.0, -1.0, True, "8"):
        with pytest.raises(ValueError, match=r"scale must be a positive real number, got"):
            losses.cosine_margin_loss(a, codes, y, scale=bad)
    with pytest.raises(ValueError, match=r"margin must be a real number >= 0, got -0.1"):
        losses.cosine_margin_loss(a, codes, y, margin=-0.1)
    with pytest.raises(ValueError, match=r"margin must be a scalar, got shape \(2,\)"):
        jax.jit(lambda m: losses.cosine_margin_loss(a, codes, y, margin=m))(jnp.ones(2))


def test_docstring_examples():
    failures, tried = doctest.testmod(_cosine_margin, extraglobs={"jnp": jnp})
    assert tried > 0 and failures == 0
