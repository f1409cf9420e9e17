"""Classic non-deep hashing baselines: LSH, PCAH, ITQ, spectral hashing and cross-modal CCA-ITQ.

Every results table needs a non-deep reference row; these are the ones the deep-hashing
literature reports. Each ``fit_*`` function is a pure function of the training inputs ``X``
(``[N, D]``, flattened) and returns a small fitted model (a ``NamedTuple`` of arrays, so a pytree)
whose ``encode(X)`` gives ±1 codes ``[N, L]``. The cross-modal baseline (:func:`fit_cca_itq`)
takes paired image and text features and encodes ``{"image": ..., "text": ...}`` dicts into one
shared Hamming space.
"""

from __future__ import annotations

import functools
import numbers
from typing import Mapping, NamedTuple

import jax
import jax.numpy as jnp

from dlhash_jax import conventions
from dlhash_jax.codes import sign


def _as_features(x, name: str = "X") -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape [N, D] (or [N, ...] to flatten), got {x.shape}.")
    x = x.reshape(x.shape[0], -1)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    return x


def _check_bits(bits: int, limit: int, what: str) -> None:
    if not 1 <= bits <= limit:
        raise ValueError(f"bits must be in [1, {limit}] ({what}), got {bits}.")


def _fitted_features(x, num_features: int, what: str) -> jax.Array:
    """``x`` as ``[N, D]`` features, checked against the ``D`` a model was fitted on."""
    x = _as_features(x)
    if x.shape[1] != num_features:
        raise ValueError(
            f"{what} have {x.shape[1]} features, but the hash was fitted on {num_features}; got "
            f"{what} of shape {x.shape}."
        )
    return x


def _principal_directions(x: jax.Array, count: int) -> tuple[jax.Array, jax.Array]:
    """Mean ``[D]`` and the top-``count`` principal directions ``[D, count]`` (largest first)."""
    mean = jnp.mean(x, axis=0)
    centred = x - mean
    cov = centred.T @ centred / x.shape[0]
    _, vecs = jnp.linalg.eigh(cov)
    return mean, vecs[:, ::-1][:, :count]


class LinearHash(NamedTuple):
    """A fitted linear hash ``b = sign((x - mean) W)`` (LSH, PCAH and ITQ are all of this form).

    Attributes:
      mean: ``[D]`` centring vector.
      projection: ``[D, L]`` projection matrix.
    """

    mean: jax.Array
    projection: jax.Array

    def encode(self, x: jax.typing.ArrayLike) -> jax.Array:
        """Codes ``[N, L]`` in {-1, +1} for inputs ``[N, D]`` (or ``[N, ...]``, flattened)."""
        x = _fitted_features(x, self.mean.shape[0], "inputs")
        return sign((x - self.mean) @ self.projection)


def fit_lsh(key: jax.Array, x: jax.typing.ArrayLike, bits: int) -> LinearHash:
    """Locality-sensitive hashing with random Gaussian hyperplanes through the data mean.

    Each bit is ``sign(w_k·(x - μ))`` with ``w_k ~ N(0, I)``. Centring on the training mean makes every
    bit balanced in expectation over the hyperplanes (for data symmetric about its mean).

    Args:
      key: PRNG key for the hyperplanes.
      x: ``[N, D]`` training inputs (used only for the mean).
      bits: code length ``L``.

    Returns:
      A :class:`LinearHash`.

    References:
      Charikar, "Similarity estimation techniques from rounding algorithms", STOC 2002;
      Datar et al., "Locality-sensitive hashing scheme based on p-stable distributions", SoCG 2004.
    """
    x = _as_features(x)
    if bits < 1:
        raise ValueError(f"bits must be >= 1, got {bits}.")
    projection = jax.random.normal(key, (x.shape[1], bits), x.dtype)
    return LinearHash(jnp.mean(x, axis=0), projection)


def fit_pcah(x: jax.typing.ArrayLike, bits: int) -> LinearHash:
    """PCA hashing: the sign of the top-``L`` principal projections of the centred data.

    Args:
      x: ``[N, D]`` training inputs.
      bits: code length ``L <= D``.

    Returns:
      A :class:`LinearHash` whose projection columns are the principal directions, largest
      variance first.

    References:
      Wang, Kumar, Chang, "Semi-supervised hashing for large-scale search", TPAMI 2012 (PCAH as the
      unsupervised baseline).
    """
    x = _as_features(x)
    _check_bits(bits, x.shape[1], "PCA gives at most one direction per input feature")
    mean, directions = _principal_directions(x, bits)
    return LinearHash(mean, directions)


def itq_rotation(
    v: jax.typing.ArrayLike, key: jax.Array, *, iterations: int = 50
) -> tuple[jax.Array, jax.Array]:
    """Iterative quantization: the rotation ``R`` minimising ``‖B − V R‖²_F`` over ±1 ``B``.

    Alternates ``B = sign(V R)`` and the orthogonal Procrustes step: with the SVD
    ``Vᵀ B = U Σ Wᵀ``, the best rotation is ``R = U Wᵀ``. Each half-step can only lower the
    objective, so the returned losses never increase.

    Args:
      v: ``[N, L]`` centred, PCA-projected data.
      key: PRNG key for the random orthogonal initial rotation.
      iterations: number of alternations.

    Returns:
      ``(R, losses)``: the ``[L, L]`` orthogonal rotation and ``[iterations]`` values of
      ``‖sign(V R) − V R‖²_F / N`` measured after each rotation update.

    References:
      Gong, Lazebnik, "Iterative quantization: a Procrustean approach to learning binary codes",
      CVPR 2011.
    """
    v = jnp.asarray(v)
    if v.ndim != 2:
        raise ValueError(f"v must have shape [N, L], got {v.shape}.")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}.")
    bits = v.shape[1]
    r0, _ = jnp.linalg.qr(jax.random.normal(key, (bits, bits), v.dtype))

    def step(r, _):
        b = sign(v @ r)
        u, _, wt = jnp.linalg.svd(v.T @ b)
        r = u @ wt
        projected = v @ r
        loss = jnp.sum((sign(projected) - projected) ** 2) / v.shape[0]
        return r, loss

    return jax.lax.scan(step, r0, None, length=iterations)


def fit_itq(
    key: jax.Array, x: jax.typing.ArrayLike, bits: int, *, iterations: int = 50
) -> LinearHash:
    """ITQ: PCA to ``L`` dimensions, then the rotation of :func:`itq_rotation`.

    Args:
      key: PRNG key for the initial rotation.
      x: ``[N, D]`` training inputs.
      bits: code length ``L <= D``.
      iterations: ITQ alternations (the paper uses 50).

    Returns:
      A :class:`LinearHash` with projection ``W_pca R``.

    References:
      Gong, Lazebnik, CVPR 2011.
    """
    x = _as_features(x)
    _check_bits(bits, x.shape[1], "ITQ rotates a PCA projection")
    mean, directions = _principal_directions(x, bits)
    rotation, _ = itq_rotation((x - mean) @ directions, key, iterations=iterations)
    return LinearHash(mean, directions @ rotation)


class SpectralHash(NamedTuple):
    """A fitted spectral hash: analytic 1-D Laplacian eigenfunctions along principal directions.

    Bit ``k`` thresholds ``cos(m_k π (p_{d_k} − lo_{d_k}) / (hi_{d_k} − lo_{d_k}))``, where ``p`` is the
    PCA projection, ``d_k`` the direction and ``m_k ≥ 1`` the mode of the bit.

    Attributes:
      mean: ``[D]`` centring vector.
      directions: ``[D, P]`` principal directions.
      lo: ``[P]`` minimum of each projection on the training data.
      hi: ``[P]`` maximum of each projection on the training data.
      dims: ``[L]`` int32 direction of each bit.
      modes: ``[L]`` int32 mode of each bit.
    """

    mean: jax.Array
    directions: jax.Array
    lo: jax.Array
    hi: jax.Array
    dims: jax.Array
    modes: jax.Array

    def encode(self, x: jax.typing.ArrayLike) -> jax.Array:
        """Codes ``[N, L]`` in {-1, +1} for inputs ``[N, D]`` (or ``[N, ...]``, flattened)."""
        x = _fitted_features(x, self.mean.shape[0], "inputs")
        proj = (x - self.mean) @ self.directions
        span = (self.hi - self.lo)[self.dims]
        phase = self.modes * jnp.pi * (proj[:, self.dims] - self.lo[self.dims]) / span
        return sign(jnp.cos(phase))


def fit_spectral_hashing(x: jax.typing.ArrayLike, bits: int) -> SpectralHash:
    """Spectral hashing with the uniform-box approximation of the data density.

    Projects on the top ``P = min(L, D)`` principal directions, fits a box ``[lo_d, hi_d]`` to each,
    and picks the ``L`` one-dimensional eigenfunctions ``cos(m π (p_d − lo_d)/(hi_d − lo_d))``,
    ``m ≥ 1``, with the smallest eigenvalues ``λ_{d,m} ∝ (m / (hi_d − lo_d))²`` (the paper's
    ``1 − exp(−ε²/2 |mπ/(b−a)|²)`` is monotone in the same quantity, so it selects the same modes).
    The paper writes the eigenfunction as ``sin(π/2 + mπ(x−a)/(b−a))``, which equals this cosine.
    Ties between equal eigenvalues go to the lower direction index, then the lower mode.

    Args:
      x: ``[N, D]`` training inputs.
      bits: code length ``L``.

    Returns:
      A :class:`SpectralHash`.

    References:
      Weiss, Torralba, Fergus, "Spectral hashing", NIPS 2008.
    """
    x = _as_features(x)
    if bits < 1:
        raise ValueError(f"bits must be >= 1, got {bits}.")
    num_dirs = min(bits, x.shape[1])
    mean, directions = _principal_directions(x, num_dirs)
    proj = (x - mean) @ directions
    lo = jnp.min(proj, axis=0)
    hi = jnp.max(proj, axis=0)
    span = jnp.maximum(hi - lo, jnp.finfo(x.dtype).tiny)
    # Every bit could come from one direction, so modes 1..L per direction cover all candidates.
    modes = jnp.arange(1, bits + 1)
    eigenvalues = (modes[None, :] / span[:, None]) ** 2
    order = jnp.argsort(eigenvalues.reshape(-1), stable=True)[:bits]
    dims, mode_index = jnp.divmod(order, bits)
    return SpectralHash(
        mean, directions, lo, lo + span, dims.astype(jnp.int32), (mode_index + 1).astype(jnp.int32)
    )


def _paired_features(x_image, x_text) -> tuple[jax.Array, jax.Array]:
    """Both modalities as ``[N, D_image]`` and ``[N, D_text]`` features of one float dtype."""
    x = _as_features(x_image, "x_image")
    y = _as_features(x_text, "x_text")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            "x_image and x_text must hold the same training items (row i of both is item i), got "
            f"shapes {x.shape} and {y.shape}."
        )
    dtype = jnp.result_type(x.dtype, y.dtype)
    return x.astype(dtype), y.astype(dtype)


def _ridge_inverse_sqrt(centred: jax.Array, reg: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(C + λI)^{-1/2}`` ``[D, D]`` and ``λ``; ``C = centredᵀ centred / N``, ``λ = reg tr(C) / D``."""
    cov = centred.T @ centred / centred.shape[0]
    ridge = reg * jnp.trace(cov) / cov.shape[0]
    values, vectors = jnp.linalg.eigh(cov + ridge * jnp.eye(cov.shape[0], dtype=cov.dtype))
    # Every eigenvalue of C + λI is at least λ, but for a large rank-deficient C (bag-of-tags
    # features, N < D) eigh's float32 rounding can land below λ, even below 0.
    values = jnp.maximum(values, ridge)
    return (vectors * values**-0.5) @ vectors.T, ridge


def _check_dim(dim: int, name: str, x: jax.Array, y: jax.Array) -> None:
    limit = min(x.shape[1], y.shape[1])
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or not 1 <= dim <= limit:
        raise ValueError(
            f"{name} must be in [1, {limit}] (CCA has at most min(D_image, D_text) canonical "
            f"pairs; got D_image={x.shape[1]}, D_text={y.shape[1]}), got {dim}."
        )


def _check_reg(reg: float) -> None:
    if not reg > 0:
        raise ValueError(f"reg must be positive (it keeps the whitening defined), got {reg}.")


def _check_variance(ridges: jax.Array, x: jax.Array, y: jax.Array) -> None:
    """Refuses a modality with no variance (a zero ridge), whose whitening is undefined."""
    for ridge, name, features in zip(ridges.tolist(), ("x_image", "x_text"), (x, y)):
        if not ridge > 0:
            raise ValueError(
                f"{name} has no variance (every training item has the same features), so it has "
                f"no direction to correlate; got {name} of shape {features.shape}."
            )


class CCAProjection(NamedTuple):
    """Fitted canonical correlation analysis: paired linear maps into one ``dim``-space.

    Column ``k`` of the two projections gives the ``k``-th pair of canonical variables
    ``u_k = (x − μ_x) w_x,k`` and ``v_k = (y − μ_y) w_y,k``: each has unit (regularised)
    variance, distinct ``k`` are uncorrelated, and ``corr(u_k, v_k)`` is the ``k``-th canonical
    correlation.

    Attributes:
      mean_image: ``[D_image]`` centring vector of the image features.
      mean_text: ``[D_text]`` centring vector of the text features.
      projection_image: ``[D_image, dim]`` canonical directions of the image features.
      projection_text: ``[D_text, dim]`` canonical directions of the text features.
      correlations: ``[dim]`` canonical correlations, descending, in [0, 1] (below 1 but for
        rounding, because of the ridge).
    """

    mean_image: jax.Array
    mean_text: jax.Array
    projection_image: jax.Array
    projection_text: jax.Array
    correlations: jax.Array

    def project_image(self, x: jax.typing.ArrayLike) -> jax.Array:
        """Canonical variables ``[N, dim]`` of image inputs ``[N, D_image]`` (or ``[N, ...]``)."""
        x = _fitted_features(x, self.mean_image.shape[0], "image inputs")
        return (x - self.mean_image) @ self.projection_image

    def project_text(self, y: jax.typing.ArrayLike) -> jax.Array:
        """Canonical variables ``[N, dim]`` of text inputs ``[N, D_text]``."""
        y = _fitted_features(y, self.mean_text.shape[0], "text inputs")
        return (y - self.mean_text) @ self.projection_text


def fit_cca(
    x_image: jax.typing.ArrayLike, x_text: jax.typing.ArrayLike, dim: int, *, reg: float = 1e-4
) -> CCAProjection:
    """Canonical correlation analysis with a ridge, by whitening and one SVD.

    With centred features ``X`` ``[N, D_x]`` and ``Y`` ``[N, D_y]``, covariances
    ``C_xx = XᵀX/N``, ``C_yy = YᵀY/N``, ``C_xy = XᵀY/N`` and the ridged
    ``C̃_xx = C_xx + reg · (tr C_xx / D_x) I`` (likewise ``C̃_yy``), CCA maximises
    ``w_xᵀ C_xy w_y`` subject to ``w_xᵀ C̃_xx w_x = w_yᵀ C̃_yy w_y = 1``, pair after uncorrelated
    pair. Substituting ``w = C̃^{-1/2} p`` turns this into the SVD of the whitened
    cross-covariance ``T = C̃_xx^{-1/2} C_xy C̃_yy^{-1/2} = P diag(ρ) Qᵀ``, so
    ``W_x = C̃_xx^{-1/2} P[:, :dim]``, ``W_y = C̃_yy^{-1/2} Q[:, :dim]`` and the canonical
    correlations are ``ρ`` (equivalently, ``ρ²`` are the eigenvalues of
    ``C̃_xx⁻¹ C_xy C̃_yy⁻¹ C_yx``). Then ``W_xᵀ C̃_xx W_x = W_yᵀ C̃_yy W_y = I`` and
    ``W_xᵀ C_xy W_y = diag(ρ)``.

    The ridge is relative: ``reg`` times the mean per-feature variance ``tr C / D``, so it does
    not depend on the scale of the features, and it keeps the whitening defined when features
    are collinear or constant, or outnumber the training items (bag-of-tags text usually is all
    three). It shrinks the canonical correlations below their unregularised values; when the
    features outnumber the training items a small ``reg`` still leaves correlations near 1 on
    them (CCA overfits), so raise it there.

    Args:
      x_image: ``[N, D_image]`` image features (``[N, ...]`` is flattened).
      x_text: ``[N, D_text]`` text features of the same ``N`` items (e.g. bags of tags).
      dim: number of canonical pairs, ``1 <= dim <= min(D_image, D_text)``.
      reg: positive relative ridge.

    Returns:
      A :class:`CCAProjection`.

    Raises:
      ValueError: inputs that are not ``[N, ...]``, different ``N`` in the two modalities, ``dim``
        out of range, ``reg`` not positive, or a modality with no variance.

    References:
      Hotelling, "Relations between two sets of variates", Biometrika 1936. The ridge is the
      regularised CCA of Vinod, "Canonical ridge and econometrics of joint production",
      J. Econometrics 1976; its scaling by the trace is ours.
    """
    x, y = _paired_features(x_image, x_text)
    _check_dim(dim, "dim", x, y)
    _check_reg(reg)
    cca, ridges = _cca(x, y, reg, dim=dim)
    _check_variance(ridges, x, y)
    return cca


# One compilation for the whole fit: eager, each of its few dozen small ops compiles on its own.
@functools.partial(jax.jit, static_argnames="dim")
def _cca(x: jax.Array, y: jax.Array, reg: float, *, dim: int) -> tuple[CCAProjection, jax.Array]:
    """:func:`fit_cca` on validated inputs; also returns the two ridges ``λ`` ``[2]``."""
    mean_x, mean_y = jnp.mean(x, axis=0), jnp.mean(y, axis=0)
    xc, yc = x - mean_x, y - mean_y
    whiten_x, ridge_x = _ridge_inverse_sqrt(xc, reg)
    whiten_y, ridge_y = _ridge_inverse_sqrt(yc, reg)
    cross = xc.T @ yc / x.shape[0]
    p, rho, qt = jnp.linalg.svd(whiten_x @ cross @ whiten_y, full_matrices=False)
    cca = CCAProjection(mean_x, mean_y, whiten_x @ p[:, :dim], whiten_y @ qt[:dim].T, rho[:dim])
    return cca, jnp.stack([ridge_x, ridge_y])


class CrossModalLinearHash(NamedTuple):
    """A fitted pair of linear hashes into one Hamming space, ``b = sign((x − μ) W)`` per modality.

    An image and a text are compared by the Hamming distance between their codes, in either
    direction (image query against text database, or the reverse).

    Attributes:
      mean_image: ``[D_image]`` centring vector of the image features.
      projection_image: ``[D_image, L]`` image projection.
      mean_text: ``[D_text]`` centring vector of the text features.
      projection_text: ``[D_text, L]`` text projection.
    """

    mean_image: jax.Array
    projection_image: jax.Array
    mean_text: jax.Array
    projection_text: jax.Array

    def encode_image(self, x: jax.typing.ArrayLike) -> jax.Array:
        """Codes ``[N, L]`` in {-1, +1} for image inputs ``[N, D_image]`` (or ``[N, ...]``)."""
        x = _fitted_features(x, self.mean_image.shape[0], "image inputs")
        return sign((x - self.mean_image) @ self.projection_image)

    def encode_text(self, y: jax.typing.ArrayLike) -> jax.Array:
        """Codes ``[N, L]`` in {-1, +1} for text inputs ``[N, D_text]``."""
        y = _fitted_features(y, self.mean_text.shape[0], "text inputs")
        return sign((y - self.mean_text) @ self.projection_text)

    def encode(self, inputs: Mapping[str, jax.typing.ArrayLike]) -> dict[str, jax.Array]:
        """Codes ``{"image": [N_image, L], "text": [N_text, L]}`` of an ``{"image", "text"}`` dict.

        The two entries may hold different numbers of items (e.g. image queries and a text
        database); each is encoded by its own modality's map.
        """
        if not isinstance(inputs, Mapping) or set(inputs) != set(conventions.MODALITIES):
            got = sorted(inputs) if isinstance(inputs, Mapping) else type(inputs).__name__
            raise ValueError(
                f"inputs must be a dict with exactly the keys {list(conventions.MODALITIES)}, got {got}."
            )
        return {
            "image": self.encode_image(inputs["image"]),
            "text": self.encode_text(inputs["text"]),
        }


def fit_cca_itq(
    key: jax.Array,
    x_image: jax.typing.ArrayLike,
    x_text: jax.typing.ArrayLike,
    bits: int,
    *,
    iterations: int = 50,
    reg: float = 1e-4,
) -> CrossModalLinearHash:
    """CCA-ITQ across modalities: CCA to ``L`` dimensions, then one ITQ rotation for both.

    :func:`fit_cca` gives ``L`` pairs of canonical directions; each pair is scaled by its
    canonical correlation (following Gong et al., so that weakly correlated directions weigh
    less when the rotation mixes them), and :func:`itq_rotation` learns one rotation ``R`` on the
    ``[2N, L]`` stack of the training items' scaled image and text projections. Both modalities
    thus quantize in the same rotated space: ``W_image = W_x diag(ρ) R``,
    ``W_text = W_y diag(ρ) R``.

    Gong et al. use CCA-ITQ with one view as features and the other as labels or tags, and
    quantize the feature view; fitting the single rotation on both views' projections, so that
    an image and its text land on the same code, is the cross-modal use that cross-modal hashing
    papers compare against, and its details here are ours.

    Args:
      key: PRNG key for the initial rotation.
      x_image: ``[N, D_image]`` training image features (``[N, ...]`` is flattened).
      x_text: ``[N, D_text]`` text features of the same items.
      bits: code length ``L <= min(D_image, D_text)``.
      iterations: ITQ alternations (the paper uses 50).
      reg: relative ridge of :func:`fit_cca`.

    Returns:
      A :class:`CrossModalLinearHash`.

    Raises:
      ValueError: as :func:`fit_cca`, ``bits`` out of range, or ``iterations < 1``.

    References:
      Hotelling, Biometrika 1936 (CCA). Gong, Lazebnik, Gordo, Perronnin, "Iterative
      quantization: a Procrustean approach to learning binary codes for large-scale image
      retrieval", TPAMI 2013 (CCA-ITQ).
    """
    x, y = _paired_features(x_image, x_text)
    _check_dim(bits, "bits", x, y)
    _check_reg(reg)
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}.")
    model, ridges = _cca_itq(key, x, y, reg, bits=bits, iterations=iterations)
    _check_variance(ridges, x, y)
    return model


@functools.partial(jax.jit, static_argnames=("bits", "iterations"))
def _cca_itq(key: jax.Array, x: jax.Array, y: jax.Array, reg: float, *, bits: int,
             iterations: int) -> tuple[CrossModalLinearHash, jax.Array]:
    """:func:`fit_cca_itq` on validated inputs; also returns the ridges of :func:`_cca`."""
    cca, ridges = _cca(x, y, reg, dim=bits)
    scale = cca.correlations
    stacked = jnp.concatenate([cca.project_image(x) * scale, cca.project_text(y) * scale])
    rotation, _ = itq_rotation(stacked, key, iterations=iterations)
    model = CrossModalLinearHash(
        cca.mean_image,
        (cca.projection_image * scale) @ rotation,
        cca.mean_text,
        (cca.projection_text * scale) @ rotation,
    )
    return model, ridges
