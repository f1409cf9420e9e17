import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlhash_jax import losses


def _log_softmax_row(z):
    top = max(z)
    log_norm = top + math.log(sum(math.exp(v - top) for v in z))
    return [v - log_norm for v in z]


def _neg_log_sigmoid(t):
    # -log(1 / (1 + e^-t)), branching so that exp never overflows.
    return math.log1p(math.exp(-t)) if t >= 0 else -t + math.log1p(math.exp(t))


def ref_softmax(logits, labels):
    total = 0.0
    for z, y in zip(logits, labels):
        mass = sum(y)
        if mass > 0:
            total -= sum(q / mass * lp for q, lp in zip(y, _log_softmax_row(z)))
    return total / len(logits)


def ref_bce(logits, y):
    total = 0.0
    for z_row, y_row in zip(logits, y):
        for z, t in zip(z_row, y_row):
            total += t * _neg_log_sigmoid(z) + (1 - t) * _neg_log_sigmoid(-z)
    return total / len(logits)


def ref_linear(b, y, w):
    n, num_bits = b.shape
    total = 0.0
    for i in range(n):
        for c in range(y.shape[1]):
            total += (y[i, c] - sum(b[i, k] * w[k, c] for k in range(num_bits))) ** 2
    return total / n


def ref_hinge(logits, labels, margin):
    total = 0.0
    for z, y in zip(logits, labels):
        true = int(np.argmax(y))
        log_p = _log_softmax_row(z)
        rivals = [math.exp(lp) for c, lp in enumerate(log_p) if c != true]
        if not rivals or math.exp(log_p[true]) >= max(rivals) + margin:
            continue
        total -= log_p[true]
    return total / len(logits)


CASES = {
    "softmax": (losses.softmax_loss, ref_softmax, {}),
    "bce": (losses.multilabel_bce_loss, ref_bce, {}),
    "hinge": (losses.hinge_softmax_loss, ref_hinge, {"margin": 0.2}),
}

# Compiling dominates the run time: tests reuse these jitted functions and shared shapes.
_CACHE = {}


def _jit(fn, transform=None, **static):
    key = (fn, transform, tuple(sorted(static.items())))
    if key not in _CACHE:
        bound = functools.partial(fn, **static)
        _CACHE[key] = jax.jit(bound if transform is None else transform(bound))
    return _CACHE[key]


def _one_hot(rng, n, num_classes):
    return np.eye(num_classes, dtype=np.float32)[rng.integers(0, num_classes, n)]


def _inputs(rng, n, num_classes, name):
    logits = (2.0 * rng.normal(size=(n, num_classes))).astype(np.float32)
    if name == "hinge":
        return logits, _one_hot(rng, n, num_classes)
    labels = (rng.random((n, num_classes)) < 0.4).astype(np.float32)
    labels[0] = 0.0  # an unlabelled row
    labels[1, :2] = 1.0  # a multi-hot row
    return logits, labels


# softmax(log p) = p: every row has class probabilities (0.25, 0.75).
LOG_P = np.log(np.array([[0.25, 0.75]] * 3, np.float32))
# σ(0) = 0.5 and σ(log 3) = 0.75.
SIGMOID_LOGITS = np.array([[0.0, math.log(3.0)]] * 3, np.float32)


@pytest.mark.parametrize(
    "name, logits, labels, expected",
    [
        # Rows: one-hot -> -log .75; multi-hot -> uniform target; unlabelled -> 0.
        (
            "softmax",
            LOG_P,
            [[0, 1], [1, 1], [0, 0]],
            (-math.log(0.75) - 0.5 * (math.log(0.25) + math.log(0.75))) / 3,
        ),
        # Rows: -log .5 - log .25; -log .5 - log .75; -log .5 - log .75.
        (
            "bce",
            SIGMOID_LOGITS,
            [[1, 0], [0, 1], [0, 1]],
            (-3 * math.log(0.5) - math.log(0.25) - 2 * math.log(0.75)) / 3,
        ),
        # Margin 0.2: class 1 wins by 0.5 (no cost); class 0 loses, costing -log .25, twice.
        ("hinge", LOG_P, [[0, 1], [1, 0], [1, 0]], -2 * math.log(0.25) / 3),
    ],
)
def test_hand_computed_eager_jit_and_integer_labels(name, logits, labels, expected):
    fn, _, static = CASES[name]
    labels = np.array(labels, np.float32)
    values = (
        fn(logits, labels, **static),
        _jit(fn, **static)(logits, labels),
        fn(logits, labels.astype(np.int32), **static),
    )
    for value in values:
        np.testing.assert_allclose(float(value), expected, rtol=1e-6)


def test_linear_classification_hand_computed_eager_and_jit():
    b = np.array([[1.0, -1.0], [1.0, 1.0]], np.float32)
    y = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
    w = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]], np.float32)
    # B W = [[1, -1, 2], [1, 1, 2]]; residuals [[0, 1, -2], [-1, 0, -2]] -> 10 over 2 samples.
    for value in (losses.linear_classification_loss(b, y, w),
                  _jit(losses.linear_classification_loss)(b, y, w)):
        assert float(value) == pytest.approx(5.0)


def test_hinge_single_class_always_meets_the_margin():
    value = _jit(losses.hinge_softmax_loss, margin=0.5)(
        np.array([[3.0], [-2.0]], np.float32), np.ones((2, 1), np.float32)
    )
    assert float(value) == 0.0


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_loop_reference(name):
    fn, ref, static = CASES[name]
    rng = np.random.default_rng(0)
    for n, num_classes in [(4, 3), (6, 5)]:
        logits, labels = _inputs(rng, n, num_classes, name)
        expected = ref(logits.astype(float), labels, **static)
        value = _jit(fn, **static)(logits, labels)
        np.testing.assert_allclose(float(value), expected, rtol=1e-5)


def test_linear_classification_matches_loop_reference():
    rng = np.random.default_rng(1)
    for n, num_bits, num_classes in [(3, 4, 2), (5, 3, 6)]:
        b = np.sign(rng.normal(size=(n, num_bits))).astype(np.float32)
        y = _one_hot(rng, n, num_classes)
        w = rng.normal(size=(num_bits, num_classes)).astype(np.float32)
        value = _jit(losses.linear_classification_loss)(b, y, w)
        np.testing.assert_allclose(float(value), ref_linear(b, y, w.astype(float)), rtol=1e-5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_vmap_over_batches_equals_loop(name):
    fn, _, static = CASES[name]
    rng = np.random.default_rng(2)
    batches = [_inputs(rng, 6, 5, name) for _ in range(3)]
    stacked = [np.stack(parts) for parts in zip(*batches)]
    mapped = _jit(fn, jax.vmap, **static)(*stacked)
    looped = [float(_jit(fn, **static)(*args)) for args in batches]
    np.testing.assert_allclose(np.asarray(mapped), looped, rtol=1e-5)


def test_linear_classification_vmap_over_batches_equals_loop():
    rng = np.random.default_rng(3)
    b, y, w = rng.normal(size=(3, 5, 3)), rng.random((3, 5, 6)), rng.normal(size=(3, 3, 6))
    b, y, w = (x.astype(np.float32) for x in (b, y, w))
    mapped = _jit(losses.linear_classification_loss, jax.vmap)(b, y, w)
    looped = [float(_jit(losses.linear_classification_loss)(*args)) for args in zip(b, y, w)]
    np.testing.assert_allclose(np.asarray(mapped), looped, rtol=1e-5)


def test_smooth_terms_gradients_match_finite_differences(x64):
    rng = np.random.default_rng(4)
    logits, labels = _inputs(rng, 4, 3, "softmax")
    logits = jnp.asarray(logits, jnp.float64)
    # Reverse mode only (JAX derives it from the JVP); jit so the finite differences reuse one
    # compiled program each.
    for fn in (losses.softmax_loss, losses.multilabel_bce_loss):
        check_grads(jax.jit(lambda z: fn(z, labels)), (logits,), order=2, modes=("rev",))
    b, w = rng.normal(size=(4, 3)), rng.normal(size=(3, 5))
    y = _one_hot(rng, 4, 5)
    # A quadratic: its Hessian is constant, so order 1 checks all there is to check cheaply.
    check_grads(jax.jit(lambda x, v: losses.linear_classification_loss(x, y, v)),
                (jnp.asarray(b), jnp.asarray(w)), order=1, modes=("rev",))


def test_hinge_gradient_matches_finite_differences_away_from_the_threshold(x64):
    logits = np.array(
        [[3.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.5, 0.0], [1.0, 0.5, 0.0, -1.0], [0.2, 0.1, 0.3, 0.4]]
    )
    labels = np.eye(4)[[0, 1, 2, 0]]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    true = labels.argmax(1)
    gaps = np.array([p[i, true[i]] - np.delete(p[i], true[i]).max() - 0.2 for i in range(4)])
    # Both sides of the threshold occur, and no sample is within 0.05 of it.
    assert np.abs(gaps).min() > 0.05 and (gaps > 0).any() and (gaps < 0).any()
    check_grads(jax.jit(lambda z: losses.hinge_softmax_loss(z, labels, margin=0.2)),
                (jnp.asarray(logits),), order=1, modes=("rev",))


@pytest.mark.parametrize("name", sorted(CASES))
def test_finite_and_correct_for_large_logits(name):
    fn, ref, static = CASES[name]
    logits, labels = _inputs(np.random.default_rng(6), 6, 5, name)
    logits = 1e3 * np.sign(logits)
    logits[2] = 0.0
    logits[2, 1] = -1e3  # one class far below the rest
    value, grad = _jit(fn, jax.value_and_grad, **static)(logits, labels)
    np.testing.assert_allclose(float(value), ref(logits.astype(float), labels, **static),
                               rtol=1e-5)
    assert np.isfinite(np.asarray(grad)).all()


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_shapes_raise_with_the_shapes(name):
    fn, _, static = CASES[name]
    labels_name = "Y" if name == "bce" else "labels"
    logits = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"logits must have shape \[N, C\], got shape \(3,\)"):
        fn(logits[0], np.zeros((3,)), **static)
    with pytest.raises(ValueError, match=rf"{labels_name} must have shape \[N, C\], got shape "
                                         r"\(4,\)"):
        fn(logits, np.zeros((4,)), **static)
    # A class index beyond the logits' classes shows up as a fourth label column.
    with pytest.raises(ValueError, match=rf"{labels_name} must have the shape of logits, "
                                         r"\[N, C\] = \(4, 3\), got \(4, 4\)"):
        fn(logits, np.eye(4, dtype=np.float32), **static)
    with pytest.raises(ValueError, match=r"= \(4, 3\), got \(5, 3\)"):
        fn(logits, np.zeros((5, 3)), **static)


def test_linear_classification_bad_shapes_raise_with_the_shapes():
    b, y, w = np.ones((4, 3)), np.ones((4, 2)), np.ones((3, 2))
    with pytest.raises(ValueError, match=r"B and Y must have the same number of rows.*"
                                         r"\(4, 3\) and \(5, 2\)"):
        losses.linear_classification_loss(b, np.ones((5, 2)), w)
    with pytest.raises(ValueError, match=r"W must have shape \[L, C\] = \(3, 2\).*got \(2, 3\)"):
        losses.linear_classification_loss(b, y, w.T)
    with pytest.raises(ValueError, match=r"B must have shape \[N, L\], got shape \(3,\)"):
        losses.linear_classification_loss(b[0], y, w)
    with pytest.raises(ValueError, match=r"W must have shape \[L, C\], got shape \(3, 2, 1\)"):
        losses.linear_classification_loss(b, y, w[..., None])
