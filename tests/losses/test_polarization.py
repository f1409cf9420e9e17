import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlhash_jax import losses


def ref_polarization(a, y, targets, margin):
    """(1/N) Σ_i Σ_c y_ic Σ_k max(m − a_ik t_ck, 0), one sample, label and bit at a time."""
    total = 0.0
    for i in range(a.shape[0]):
        for c in range(y.shape[1]):
            if y[i, c] == 0:
                continue
            for k in range(a.shape[1]):
                total += y[i, c] * max(0.0, margin - a[i, k] * targets[c, k])
    return total / a.shape[0]


def _targets(rng, num_classes, num_bits):
    return np.where(rng.random((num_classes, num_bits)) < 0.5, -1.0, 1.0).astype(np.float32)


def _multi_hot(rng, n, num_classes):
    y = (rng.random((n, num_classes)) < 0.35).astype(np.float32)
    y[np.arange(n), rng.integers(0, num_classes, n)] = 1.0
    return y


_CACHE = {}


def _jit(transform=None, **static):
    key = (transform, tuple(sorted(static.items())))
    if key not in _CACHE:
        bound = functools.partial(losses.polarization_loss, **static)
        _CACHE[key] = jax.jit(bound if transform is None else transform(bound))
    return _CACHE[key]


def test_hand_computed():
    targets = np.array([[1.0, 1.0, 1.0], [1.0, -1.0, -1.0]], np.float32)
    a = np.array([[2.0, 0.5, -1.0], [0.0, -3.0, 0.5]], np.float32)
    y = np.array([[1, 0], [1, 1]], np.float32)
    # Sample 0, class 0: 0 + 0.5 + 2 = 2.5.
    # Sample 1, class 0: 1 + 4 + 0.5 = 5.5; class 1: 1 + 0 + 1.5 = 2.5.
    value = _jit(margin=1.0)(a, y, targets)
    assert float(value) == pytest.approx((2.5 + 5.5 + 2.5) / 2)


def test_single_label_is_the_hinge_against_the_class_target():
    rng = np.random.default_rng(0)
    targets = _targets(rng, 4, 6)
    a = rng.normal(size=(5, 6)).astype(np.float32)
    classes = np.array([0, 3, 1, 1, 2])
    expected = np.mean(np.sum(np.maximum(0.0, 0.5 - a * targets[classes]), axis=1))
    value = _jit(margin=0.5)(a, np.eye(4, dtype=np.float32)[classes], targets)
    np.testing.assert_allclose(float(value), expected, rtol=1e-6)


def test_matches_loop_reference_on_random_inputs():
    rng = np.random.default_rng(1)
    loss = _jit(margin=1.0)
    for n, num_bits, num_classes in [(6, 5, 4), (4, 8, 7)]:
        a = 2.0 * rng.normal(size=(n, num_bits)).astype(np.float32)
        y = _multi_hot(rng, n, num_classes)
        y[0] = 0.0  # an unlabelled sample costs nothing
        targets = _targets(rng, num_classes, num_bits)
        expected = ref_polarization(a.astype(float), y, targets, 1.0)
        np.testing.assert_allclose(float(loss(a, y, targets)), expected, rtol=1e-5)


def test_jit_equals_eager_and_vmap_equals_loop():
    rng = np.random.default_rng(2)
    batches = [(rng.normal(size=(5, 6)).astype(np.float32), _multi_hot(rng, 5, 3),
                _targets(rng, 3, 6)) for _ in range(3)]
    jitted = _jit(margin=1.0)
    looped = [float(jitted(*args)) for args in batches]
    eager = losses.polarization_loss(*batches[0], margin=1.0)
    np.testing.assert_allclose(float(eager), looped[0], rtol=1e-6)
    stacked = [np.stack(parts) for parts in zip(*batches)]
    np.testing.assert_allclose(np.asarray(_jit(jax.vmap, margin=1.0)(*stacked)), looped,
                               rtol=1e-5)
    np.testing.assert_allclose(
        looped, [ref_polarization(a.astype(float), y, t, 1.0) for a, y, t in batches], rtol=1e-5)


def test_gradients_match_finite_differences(x64):
    rng = np.random.default_rng(3)
    # Outputs near ±0.5, ±1.5, ±2.5: every hinge is active or inactive, none at its kink.
    a = rng.choice([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5], size=(4, 5)) + 0.05 * rng.normal(size=(4, 5))
    y = _multi_hot(rng, 4, 3).astype(np.float64)
    targets = _targets(rng, 3, 5).astype(np.float64)
    hinge_points = 1.0 - a[:, None, :] * targets[None]
    assert np.abs(hinge_points).min() > 0.05  # away from the kinks of the hinges
    # Order 1: the hinges make the loss piecewise linear.
    check_grads(jax.jit(lambda x: losses.polarization_loss(x, y, targets, margin=1.0)),
                (jnp.asarray(a),), order=1, modes=("rev",))


def test_outputs_past_the_margin_cost_nothing_and_get_no_gradient():
    targets = np.array([[1.0, -1.0, 1.0, -1.0]], np.float32)
    a = 1.5 * targets
    value, grad = jax.jit(jax.value_and_grad(
        functools.partial(losses.polarization_loss, margin=1.0)))(a, np.ones((1, 1)), targets)
    assert float(value) == 0.0 and np.all(np.asarray(grad) == 0.0)


def test_bad_shapes_raise_with_the_shapes():
    a, y, t = np.ones((3, 4)), np.eye(3, 2), np.ones((2, 4))
    with pytest.raises(ValueError, match=r"A must have shape \[N, L\], got shape \(4,\)"):
        losses.polarization_loss(a[0], y, t, margin=1.0)
    with pytest.raises(ValueError, match=r"Y must have shape \[N, C\], got shape \(3,\)"):
        losses.polarization_loss(a, y[:, 0], t, margin=1.0)
    with pytest.raises(ValueError, match=r"targets must have shape \[C, L\], got shape \(4,\)"):
        losses.polarization_loss(a, y, t[0], margin=1.0)
    with pytest.raises(ValueError, match=r"A and Y must have the same number of rows.*"
                                         r"\(3, 4\) and \(2, 2\)"):
        losses.polarization_loss(a, y[:2], t, margin=1.0)
    with pytest.raises(ValueError, match=r"targets must have shape \[C, L\] = \(2, 4\) for A of "
                                         r"shape \(3, 4\) and Y of shape \(3, 2\), got \(2, 5\)"):
        losses.polarization_loss(a, y, np.ones((2, 5)), margin=1.0)
