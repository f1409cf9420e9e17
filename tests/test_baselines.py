import jax
import numpy as np
import pytest
from sklearn.decomposition import PCA

from dlhash_jax import baselines


def _gaussian_data(n=400, d=12, seed=0):
    rng = np.random.default_rng(seed)
    scales = np.linspace(3.0, 0.5, d)
    return (rng.normal(size=(n, d)) * scales + 2.0).astype(np.float32)


def _equal_up_to_bit_flips(a, b):
    a, b = np.asarray(a), np.asarray(b)
    flips = np.where(np.mean(a == b, axis=0) >= 0.5, 1.0, -1.0)
    return np.array_equal(a, b * flips)


def test_itq_rotation_is_orthogonal_and_loss_never_increases():
    x = _gaussian_data()
    v = x - x.mean(0)
    v = v @ PCA(n_components=8, svd_solver="full").fit(x).components_.T
    rotation, losses = baselines.itq_rotation(v, jax.random.PRNGKey(1), iterations=30)
    np.testing.assert_allclose(np.asarray(rotation @ rotation.T), np.eye(8), atol=1e-5)
    losses = np.asarray(losses)
    assert np.all(np.diff(losses) <= 1e-4 * losses[:-1])
    assert losses[-1] < losses[0]


def test_itq_quantization_error_below_pca():
    x = _gaussian_data()
    pcah = baselines.fit_pcah(x, 8)
    itq = baselines.fit_itq(jax.random.PRNGKey(0), x, 8)

    def quantization_error(model):
        proj = (x - np.asarray(model.mean)) @ np.asarray(model.projection)
        return np.sum((np.sign(proj) - proj) ** 2)

    assert quantization_error(itq) < quantization_error(pcah)


def test_lsh_codes_balanced_in_expectation():
    x = _gaussian_data(n=300, d=6)
    means = []
    for seed in range(100):
        codes = baselines.fit_lsh(jax.random.PRNGKey(seed), x, 16).encode(x)
        means.append(np.asarray(codes).mean())
    assert abs(np.mean(means)) < 0.03
    assert set(np.unique(np.asarray(codes))) == {-1.0, 1.0}


def test_pcah_is_sign_of_top_principal_projections():
    x = _gaussian_data()
    pca = PCA(n_components=5, svd_solver="full").fit(x)
    expected = np.where(pca.transform(x) >= 0, 1.0, -1.0)
    codes = baselines.fit_pcah(x, 5).encode(x)
    assert _equal_up_to_bit_flips(codes, expected)


def test_spectral_hashing_matches_closed_form_on_uniform_box():
    rng = np.random.default_rng(0)
    widths = np.array([5.0, 2.0, 1.0])
    x = (rng.uniform(size=(2000, 3)) * widths).astype(np.float32)
    model = baselines.fit_spectral_hashing(x, 4)
    # Eigenvalues (m / width)²: 0.04, 0.16 (dir 0), 0.25 (dir 1), 0.36 (dir 0), then 0.64, 1, ...
    assert np.asarray(model.dims).tolist() == [0, 0, 1, 0]
    assert np.asarray(model.modes).tolist() == [1, 2, 1, 3]
    lo, hi = x.min(0), x.max(0)
    expected = np.stack(
        [np.cos(m * np.pi * (x[:, d] - lo[d]) / (hi[d] - lo[d])) for d, m in
         [(0, 1), (0, 2), (1, 1), (0, 3)]],
        axis=1,
    )
    expected = np.where(expected >= 0, 1.0, -1.0)
    codes = np.asarray(model.encode(x))
    # PCA may orient a direction either way; that flips the bits of odd modes.
    agreement = np.mean(codes == expected, axis=0)
    assert np.all((agreement > 0.99) | (agreement < 0.01))


def test_bad_inputs_raise_clear_errors():
    x = _gaussian_data(d=6)
    with pytest.raises(ValueError, match=r"bits must be in \[1, 6\]"):
        baselines.fit_pcah(x, 7)
    with pytest.raises(ValueError, match=r"bits must be in \[1, 6\]"):
        baselines.fit_itq(jax.random.PRNGKey(0), x, 8)
    with pytest.raises(ValueError, match=r"shape \[N, D\]"):
        baselines.fit_lsh(jax.random.PRNGKey(0), x[0], 4)
    model = baselines.fit_pcah(x, 4)
    with pytest.raises(ValueError, match=r"fitted on 6"):
        model.encode(x[:, :5])
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        baselines.itq_rotation(x[:, :4], jax.random.PRNGKey(0), iterations=0)
