import jax
import numpy as np
import pytest
from sklearn.decomposition import PCA

from dlhash_jax import baselines, metrics


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


# ----------------------------------------------------------------------------------------------
# Cross-modal: CCA and CCA-ITQ.


def _paired_data(n=600, latent=3, d_image=10, d_text=7, noise=0.05, seed=0):
    """Images and texts that share a latent ``z``: x = z A + noise, y = z B + noise."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, latent))
    x = z @ rng.normal(size=(latent, d_image)) + noise * rng.normal(size=(n, d_image)) + 1.0
    y = z @ rng.normal(size=(latent, d_text)) + noise * rng.normal(size=(n, d_text)) - 2.0
    return x.astype(np.float32), y.astype(np.float32), z


def _ridged_covariances(x, y, reg):
    x = np.asarray(x, np.float64) - np.mean(x, 0)
    y = np.asarray(y, np.float64) - np.mean(y, 0)
    n = x.shape[0]
    cxx, cyy, cxy = x.T @ x / n, y.T @ y / n, x.T @ y / n
    cxx += reg * np.trace(cxx) / cxx.shape[0] * np.eye(cxx.shape[0])
    cyy += reg * np.trace(cyy) / cyy.shape[0] * np.eye(cyy.shape[0])
    return cxx, cyy, cxy


def test_cca_matches_eigen_solution_and_whitens():
    rng = np.random.default_rng(1)
    # Independent features with a few correlated pairs: correlations spread over (0, 1).
    x = rng.normal(size=(300, 6))
    y = 0.8 * x[:, :4] @ rng.normal(size=(4, 5)) + rng.normal(size=(300, 5))
    reg = 1e-2
    cca = baselines.fit_cca(x, y, 4, reg=reg)
    cxx, cyy, cxy = _ridged_covariances(x, y, reg)
    # ρ² are the eigenvalues of C̃_xx⁻¹ C_xy C̃_yy⁻¹ C_yx.
    eig = np.linalg.eigvals(np.linalg.solve(cxx, cxy) @ np.linalg.solve(cyy, cxy.T))
    expected = np.sqrt(np.sort(eig.real)[::-1][:4])
    rho = np.asarray(cca.correlations)
    np.testing.assert_allclose(rho, expected, rtol=1e-4)
    assert np.all(np.diff(rho) <= 0) and rho[-1] > 0.05
    wx = np.asarray(cca.projection_image, np.float64)
    wy = np.asarray(cca.projection_text, np.float64)
    np.testing.assert_allclose(wx.T @ cxx @ wx, np.eye(4), atol=1e-4)
    np.testing.assert_allclose(wy.T @ cyy @ wy, np.eye(4), atol=1e-4)
    np.testing.assert_allclose(wx.T @ cxy @ wy, np.diag(rho), atol=1e-4)
    # The canonical variables of the training items: unit variance (up to the ridge), pairwise
    # correlations ρ, uncorrelated otherwise.
    u, v = np.asarray(cca.project_image(x)), np.asarray(cca.project_text(y))
    np.testing.assert_allclose(u.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.cov(u.T, bias=True), np.eye(4), atol=reg * 2)
    np.testing.assert_allclose(u.T @ v / len(u), np.diag(rho), atol=1e-4)


def test_cca_whitens_rank_deficient_bags_of_tags():
    # More tags than items, and tags that never occur: the ridge keeps the whitening defined.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 30)).astype(np.float32)
    y = (rng.random((40, 60)) < 0.1).astype(np.int32)
    y[:, :5] = 0
    reg = 1e-3
    cca = baselines.fit_cca(x, y, 10, reg=reg)
    _, cyy, _ = _ridged_covariances(x, y, reg)
    wy = np.asarray(cca.projection_text, np.float64)
    assert np.isfinite(wy).all()
    np.testing.assert_allclose(wy.T @ cyy @ wy, np.eye(10), atol=1e-3)
    # A tag that never occurs carries no signal.
    np.testing.assert_allclose(wy[:5], 0.0, atol=1e-4 * np.abs(wy).max())


def test_cca_finds_a_shared_latent():
    x, y, z = _paired_data()
    cca = baselines.fit_cca(x, y, 5)
    rho = np.asarray(cca.correlations)
    assert np.all(rho[:3] > 0.99) and np.all(rho[3:] < 0.3)
    # The top canonical variables span the latent: regressing z on them leaves little residual.
    u = np.asarray(cca.project_image(x))[:, :3]
    z = z - z.mean(0)
    residual = z - u @ np.linalg.lstsq(u, z, rcond=None)[0]
    assert np.sum(residual**2) < 1e-3 * np.sum(z**2)


def test_cca_itq_codes_agree_across_modalities_with_one_rotation():
    x, y, _ = _paired_data(latent=8, d_image=12, d_text=10)
    bits = 8
    model = baselines.fit_cca_itq(jax.random.PRNGKey(0), x, y, bits)
    codes = model.encode({"image": x, "text": y})
    image, text = np.asarray(codes["image"]), np.asarray(codes["text"])
    assert image.shape == text.shape == (len(x), bits)
    assert set(np.unique(image)) | set(np.unique(text)) == {-1.0, 1.0}
    np.testing.assert_array_equal(image, np.asarray(model.encode_image(x)))
    np.testing.assert_array_equal(text, np.asarray(model.encode_text(y)))
    same_item = np.mean(image == text)
    shuffled = np.mean(image == text[np.random.default_rng(0).permutation(len(x))])
    assert same_item > 0.95 and abs(shuffled - 0.5) < 0.05
    # Image inputs [N, H, W] are flattened like the other baselines do.
    np.testing.assert_array_equal(np.asarray(model.encode_image(x.reshape(-1, 3, 4))), image)
    # Both projections are the correlation-scaled CCA directions times ONE orthogonal rotation.
    cca = baselines.fit_cca(x, y, bits)
    scale = np.asarray(cca.correlations)
    base_image = np.asarray(cca.projection_image) * scale
    base_text = np.asarray(cca.projection_text) * scale
    rotation = np.linalg.lstsq(base_image, np.asarray(model.projection_image), rcond=None)[0]
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(bits), atol=1e-3)
    np.testing.assert_allclose(base_text @ rotation, np.asarray(model.projection_text),
                               atol=1e-3 * np.abs(model.projection_text).max())
    # The rotation lowers the quantization error of the stacked projections below no rotation.
    stacked = np.concatenate([(x - cca.mean_image) @ base_image, (y - cca.mean_text) @ base_text])

    def quantization_error(v):
        return np.sum((np.where(v >= 0, 1.0, -1.0) - v) ** 2)

    assert quantization_error(stacked @ rotation) < quantization_error(stacked)


def test_cca_itq_cross_modal_retrieval_beats_chance():
    # Two classes whose latent means differ; texts are noisy bags of tags (0/1 ints).
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 400)
    z = rng.normal(size=(400, 4)) + 2.0 * labels[:, None]
    x = z @ rng.normal(size=(4, 16)) + 0.5 * rng.normal(size=(400, 16))
    y = (z @ rng.normal(size=(4, 12)) + rng.normal(size=(400, 12)) > 0).astype(np.int32)
    model = baselines.fit_cca_itq(jax.random.PRNGKey(1), x[:300], y[:300], 4)
    onehot = np.eye(2)[labels]
    query = model.encode({"image": x[300:], "text": y[300:]})
    database = model.encode({"image": x[:300], "text": y[:300]})
    result = metrics.cross_modal_map(query, database, onehot[300:], onehot[:300])
    assert result["image_to_text"] > 0.7 and result["text_to_image"] > 0.7
    # Chance: codes independent of the items.
    shuffled = {m: c[rng.permutation(300)] for m, c in database.items()}
    chance = metrics.cross_modal_map(query, shuffled, onehot[300:], onehot[:300])
    assert chance["image_to_text"] < 0.6 and chance["text_to_image"] < 0.6


def test_cross_modal_bad_inputs_raise_clear_errors():
    x, y, _ = _paired_data(n=50)
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match=r"dim must be in \[1, 7\].*D_image=10, D_text=7.*got 8"):
        baselines.fit_cca(x, y, 8)
    with pytest.raises(ValueError, match=r"dim must be in \[1, 7\].*got 2.5"):
        baselines.fit_cca(x, y, 2.5)
    with pytest.raises(ValueError, match=r"bits must be in \[1, 7\].*D_image=10, D_text=7"):
        baselines.fit_cca_itq(key, x, y, 8)
    with pytest.raises(ValueError, match=r"bits must be in \[1, 7\].*D_image=10, D_text=7"):
        baselines.fit_cca_itq(key, x, y, 0)
    with pytest.raises(ValueError, match=r"same training items.*\(50, 10\) and \(49, 7\)"):
        baselines.fit_cca_itq(key, x, y[:49], 4)
    with pytest.raises(ValueError, match=r"reg must be positive .*got 0"):
        baselines.fit_cca(x, y, 2, reg=0)
    with pytest.raises(ValueError, match=r"x_text has no variance"):
        baselines.fit_cca(x, np.ones_like(y), 2)
    with pytest.raises(ValueError, match=r"x_image must have shape \[N, D\]"):
        baselines.fit_cca(x[0], y, 2)
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        baselines.fit_cca_itq(key, x, y, 4, iterations=0)
    model = baselines.fit_cca_itq(key, x, y, 4, iterations=5)
    with pytest.raises(ValueError, match=r"text inputs have 10 features, but the hash was fitted "
                                         r"on 7"):
        model.encode_text(x)
    with pytest.raises(ValueError, match=r"exactly the keys \['image', 'text'\], got \['image'\]"):
        model.encode({"image": x})
