"""ADSH's asymmetric objective: loop reference, hand value, gradients, jit/vmap and bad input."""

import doctest
import functools

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
from dlhash_jax.losses import _asymmetric


def ref_asymmetric(u, v, s, index, gamma, dissimilar):
    """[Σ_ij (u_iᵀv_j − L t_ij)² + γ Σ_i ‖v_{index_i} − u_i‖²] / (n·M), pair by pair."""
    n, num_bits = u.shape
    m = v.shape[0]
    pairs = 0.0
    for i in range(n):
        for j in range(m):
            inner = sum(u[i, k] * v[j, k] for k in range(num_bits))
            target = 1.0 if s[i, j] == 1 else dissimilar
            pairs += (inner - num_bits * target) ** 2
    quantization = sum(
        (v[index[i], k] - u[i, k]) ** 2 for i in range(n) for k in range(num_bits))
    return (pairs + gamma * quantization) / (n * m)


def _random(rng, n=4, m=7, num_bits=5, dtype=np.float32):
    u = np.tanh(rng.normal(size=(n, num_bits))).astype(dtype)
    v = rng.choice([-1.0, 1.0], (m, num_bits)).astype(dtype)
    s = (rng.random((n, m)) < 0.3).astype(dtype)
    index = rng.choice(m, n, replace=False).astype(np.int32)
    s[np.arange(n), index] = 1.0  # an item is similar to itself
    return u, v, s, index


def test_hand_computed():
    # HAND_A1 against HAND_A2 (pairwise_helpers): inner products [[4, -4, 0], [0, 0, 0]]; L = 4.
    # Targets with dissimilar = -1: [[4, -4, -4], [-4, 4, -4]] -> squared errors
    # [[0, 0, 16], [16, 16, 16]] = 64. Own codes: row 0 -> V row 0 (equal, 0); row 1 -> V row 2
    # (differs in bits 1 and 2 by 2 each: 8). γ = 3: (64 + 24) / 6.
    index = np.array([0, 2], np.int32)
    fn = jitted(losses.asymmetric_inner_product_loss, gamma=3.0)
    np.testing.assert_allclose(float(fn(HAND_A1, HAND_A2, HAND_S, index)), 88 / 6, rtol=1e-6)
    # dissimilar = 0: targets [[4, 0, 0], [0, 4, 0]] -> [[0, 16, 0], [0, 16, 0]] = 32.
    fn = jitted(losses.asymmetric_inner_product_loss, gamma=3.0, dissimilar=0.0)
    np.testing.assert_allclose(float(fn(HAND_A1, HAND_A2, HAND_S, index)), 56 / 6, rtol=1e-6)
    np.testing.assert_allclose(
        float(losses.asymmetric_inner_product_loss(HAND_A1, HAND_A2, HAND_S.astype(bool), index,
                                                   gamma=3.0)), 88 / 6, rtol=1e-6)


@pytest.mark.parametrize("gamma, dissimilar", [(200.0, -1.0), (0.5, -0.2), (0.0, 0.0)])
def test_matches_loop_reference(gamma, dissimilar):
    rng = np.random.default_rng(0)
    for n, m, num_bits in [(3, 5, 4), (4, 9, 6)]:
        u, v, s, index = _random(rng, n, m, num_bits)
        expected = ref_asymmetric(u.astype(float), v.astype(float), s, index, gamma, dissimilar)
        fn = jitted(losses.asymmetric_inner_product_loss, gamma=gamma, dissimilar=dissimilar)
        np.testing.assert_allclose(float(fn(u, v, s, index)), expected, rtol=2e-5)


def test_pair_part_is_the_inner_product_loss():
    u, v, s, index = _random(np.random.default_rng(1))
    for dissimilar in (-1.0, -0.25):
        value = losses.asymmetric_inner_product_loss(u, v, s, index, gamma=0.0,
                                                     dissimilar=dissimilar)
        np.testing.assert_allclose(
            float(value), float(losses.inner_product_loss(u, v, s, dissimilar=dissimilar)),
            rtol=1e-6)


def test_traced_dissimilar_target():
    u, v, s, index = _random(np.random.default_rng(2))
    fn = jax.jit(lambda r: losses.asymmetric_inner_product_loss(u, v, s, index, gamma=2.0,
                                                                dissimilar=r))
    expected = ref_asymmetric(u.astype(float), v.astype(float), s, index, 2.0, -0.125)
    np.testing.assert_allclose(float(fn(jnp.float32(-0.125))), expected, rtol=2e-5)


def test_vmap_over_batches_equals_loop():
    rng = np.random.default_rng(3)
    blocks = [_random(rng) for _ in range(3)]
    stacked = [np.stack(parts) for parts in zip(*blocks)]
    fn = jitted(losses.asymmetric_inner_product_loss, gamma=5.0)
    batched = jax.jit(jax.vmap(fn))(*stacked)
    np.testing.assert_allclose(np.asarray(batched), [float(fn(*b)) for b in blocks], rtol=1e-5)


def test_gradients_match_finite_differences(x64):
    u, v, s, index = _random(np.random.default_rng(4), dtype=np.float64)
    check_grads(
        jax.jit(lambda u, v: losses.asymmetric_inner_product_loss(u, v, s, index, gamma=3.0,
                                                                  dissimilar=-0.5)),
        (jnp.asarray(u), jnp.asarray(v)),
        order=2,
        modes=("rev",),
    )


def test_gradient_in_outputs_closed_form(x64):
    # The authors' dJ/da: 2 (a Vᵀ − c S) V + 2γ (a − V_Ω), divided by n·M.
    u, v, s, index = _random(np.random.default_rng(5), dtype=np.float64)
    n, num_bits = u.shape
    grad = jax.grad(losses.asymmetric_inner_product_loss)(u, v, s, index, gamma=200.0)
    target = 2 * s - 1
    expected = (2 * (u @ v.T - num_bits * target) @ v + 2 * 200.0 * (u - v[index])) / (
        n * v.shape[0])
    np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-12)


def test_bad_input():
    u, v, s, index = np.ones((4, 3)), np.ones((5, 3)), np.ones((4, 5)), np.arange(4)
    fn = functools.partial(losses.asymmetric_inner_product_loss, gamma=1.0)
    with pytest.raises(ValueError, match=r"U must have shape \[N, L\], got shape \(3,\)"):
        fn(u[0], v, s, index)
    with pytest.raises(ValueError, match=r"V must have shape \[M, L\], got shape \(5, 3, 1\)"):
        fn(u, v[..., None], s, index)
    with pytest.raises(ValueError, match=r"same number of bits.*\(4, 3\) and \(5, 2\)"):
        fn(u, v[:, :2], s, index)
    with pytest.raises(ValueError, match=r"S must have shape \[N, M\] = \(4, 5\).*got \(5, 4\)"):
        fn(u, v, s.T, index)
    with pytest.raises(ValueError, match=r"index must have shape \[n\] = \(4,\).*got shape "
                       r"\(3,\)"):
        fn(u, v, s, index[:3])
    with pytest.raises(ValueError, match=r"index must have shape \[n\].*got shape \(4, 1\)"):
        fn(u, v, s, index[:, None])
    with pytest.raises(ValueError, match=r"index must hold integers \(rows of V\), got dtype "
                       r"float"):
        fn(u, v, s, index.astype(np.float32))
    for name in ("gamma", "dissimilar"):
        kwargs = {"gamma": 1.0, name: None}
        with pytest.raises(ValueError, match=rf"{name} must be a real number, got None"):
            losses.asymmetric_inner_product_loss(u, v, s, index, **kwargs)
    with pytest.raises(ValueError, match=r"gamma must be a scalar, got shape \(2,\)"):
        jax.jit(lambda g: losses.asymmetric_inner_product_loss(u, v, s, index, gamma=g))(
            jnp.ones(2))


def test_docstring_examples():
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(
        _asymmetric.asymmetric_inner_product_loss, module=_asymmetric
    ):
        runner.run(test)
    assert runner.failures == 0 and runner.tries >= 3
