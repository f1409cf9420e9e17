"""DSDH's objective of the codes and the classifier: loop reference, hand value, gradients,
jit/vmap and bad input."""

import doctest
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from pairwise_helpers import jitted

from dlhash_jax import losses
from dlhash_jax.losses import _discrete_classification


def ref_discrete_classification(b, u, y, w, mu, nu, eta):
    """(μ Σ_i ‖y_i − Wᵀb_i‖² + ν ‖W‖² + η Σ_i ‖b_i − u_i‖²) / N, entry by entry."""
    n, num_bits = b.shape
    num_classes = y.shape[1]
    classification = 0.0
    quantization = 0.0
    for i in range(n):
        for c in range(num_classes):
            prediction = sum(w[k, c] * b[i, k] for k in range(num_bits))
            classification += (y[i, c] - prediction) ** 2
        for k in range(num_bits):
            quantization += (b[i, k] - u[i, k]) ** 2
    ridge = sum(w[k, c] ** 2 for k in range(num_bits) for c in range(num_classes))
    return (mu * classification + nu * ridge + eta * quantization) / n


def _random(rng, n=6, num_bits=5, num_classes=3, dtype=np.float32):
    b = rng.choice([-1.0, 1.0], (n, num_bits)).astype(dtype)
    u = rng.normal(size=(n, num_bits)).astype(dtype)
    y = np.eye(num_classes, dtype=dtype)[rng.integers(0, num_classes, n)]
    y[0, -1] = 1.0  # one multi-hot row
    w = rng.normal(size=(num_bits, num_classes)).astype(dtype)
    return b, u, y, w


def test_hand_computed():
    b = np.array([[1.0, -1.0], [1.0, 1.0]], np.float32)
    u = np.array([[0.5, -1.0], [2.0, 0.0]], np.float32)
    y = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    w = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
    # B W = [[1, -2], [1, 2]]: residuals (0, 2) and (-1, -1) -> 4 + 2 = 6. ‖W‖² = 5.
    # ‖B − U‖²: (0.25 + 0) + (1 + 1) = 2.25. μ = 2, ν = 0.4, η = 4 -> (12 + 2 + 9) / 2.
    expected = (2 * 6 + 0.4 * 5 + 4 * 2.25) / 2
    fn = jitted(losses.discrete_classification_loss, mu=2.0, nu=0.4, eta=4.0)
    np.testing.assert_allclose(float(fn(b, u, y, w)), expected, rtol=1e-6)
    np.testing.assert_allclose(
        float(losses.discrete_classification_loss(b, u, y, w, mu=2.0, nu=0.4, eta=4.0)),
        expected, rtol=1e-6)


@pytest.mark.parametrize("mu, nu, eta", [(1.0, 0.1, 55.0), (0.5, 2.0, 0.0)])
def test_matches_loop_reference(mu, nu, eta):
    rng = np.random.default_rng(0)
    for n, num_bits, num_classes in [(4, 3, 2), (7, 6, 4)]:
        b, u, y, w = _random(rng, n, num_bits, num_classes)
        expected = ref_discrete_classification(
            b.astype(float), u.astype(float), y, w.astype(float), mu, nu, eta)
        value = jitted(losses.discrete_classification_loss, mu=mu, nu=nu, eta=eta)(b, u, y, w)
        np.testing.assert_allclose(float(value), expected, rtol=2e-5)


def test_parts_are_the_catalogue_terms():
    b, u, y, w = _random(np.random.default_rng(1))
    total = losses.discrete_classification_loss(b, u, y, w, mu=3.0, nu=0.0, eta=2.0)
    expected = (3.0 * losses.linear_classification_loss(b, y, w)
                + 2.0 * losses.quantization_loss(u, b))
    np.testing.assert_allclose(float(total), float(expected), rtol=1e-6)


def test_vmap_over_batches_equals_loop():
    rng = np.random.default_rng(2)
    blocks = [_random(rng) for _ in range(3)]
    stacked = [np.stack(parts) for parts in zip(*blocks)]
    fn = jitted(losses.discrete_classification_loss, mu=1.0, nu=0.1, eta=5.0)
    batched = jax.jit(jax.vmap(fn))(*stacked)
    np.testing.assert_allclose(np.asarray(batched), [float(fn(*b)) for b in blocks], rtol=1e-5)


def test_gradients_match_finite_differences(x64):
    b, u, y, w = _random(np.random.default_rng(3), dtype=np.float64)
    check_grads(
        jax.jit(lambda b, u, w: losses.discrete_classification_loss(
            b, u, y, w, mu=1.5, nu=0.3, eta=2.0)),
        (jnp.asarray(b), jnp.asarray(u), jnp.asarray(w)),
        order=2,
        modes=("rev",),
    )


def test_gradient_in_outputs_is_the_quantization_pull(x64):
    b, u, y, w = _random(np.random.default_rng(4), dtype=np.float64)
    grad = jax.grad(losses.discrete_classification_loss, argnums=1)(
        b, u, y, w, mu=1.0, nu=0.1, eta=55.0)
    np.testing.assert_allclose(np.asarray(grad), 55.0 * 2 * (u - b) / b.shape[0], rtol=1e-12)


def test_bad_input():
    b, u, y, w = np.ones((4, 3)), np.ones((4, 3)), np.eye(2)[[0, 1, 0, 1]], np.ones((3, 2))
    fn = functools.partial(losses.discrete_classification_loss, mu=1.0, nu=1.0, eta=1.0)
    with pytest.raises(ValueError, match=r"B must have shape \[N, L\], got shape \(3,\)"):
        fn(b[0], u, y, w)
    with pytest.raises(ValueError, match=r"U must have shape \[N, L\], got shape \(4, 3, 1\)"):
        fn(b, u[..., None], y, w)
    with pytest.raises(ValueError, match=r"B and U must have the same shape.*\(4, 3\) and "
                       r"\(4, 2\)"):
        fn(b, u[:, :2], y, w)
    with pytest.raises(ValueError, match=r"same number of rows.*\(4, 3\) and \(3, 2\)"):
        fn(b, u, y[:3], w)
    with pytest.raises(ValueError, match=r"W must have shape \[L, C\] = \(3, 2\).*got \(2, 3\)"):
        fn(b, u, y, w.T)
    with pytest.raises(ValueError, match=r"Y must have shape \[N, C\], got shape \(4,\)"):
        fn(b, u, y[:, 0], w)
    for name in ("mu", "nu", "eta"):
        kwargs = {"mu": 1.0, "nu": 1.0, "eta": 1.0, name: "x"}
        with pytest.raises(ValueError, match=rf"{name} must be a real number, got 'x'"):
            losses.discrete_classification_loss(b, u, y, w, **kwargs)
    with pytest.raises(ValueError, match=r"eta must be a scalar, got shape \(2,\)"):
        jax.jit(lambda e: losses.discrete_classification_loss(b, u, y, w, mu=1.0, nu=1.0,
                                                              eta=e))(jnp.ones(2))


def test_docstring_examples():
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(
        _discrete_classification.discrete_classification_loss, module=_discrete_classification
    ):
        runner.run(test)
    assert runner.failures == 0 and runner.tries >= 2
