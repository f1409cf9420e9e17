"""Classic non-deep hashing baselines: LSH, PCAH, ITQ and spectral hashing.

Every results table needs a non-deep reference row; these are the four the deep-hashing
literature reports. Each ``fit_*`` function is a pure function of the training inputs ``X``
(``[N, D]``, flattened) and returns a small fitted model (a ``NamedTuple`` of arrays, so a pytree)
whose ``encode(X)`` gives ±1 codes ``[N, L]``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

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
        x = _as_features(x)
        if x.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"inputs have {x.shape[1]} features, but the hash was fitted on "
                f"{self.mean.shape[0]}; got inputs of shape {x.shape}."
            )
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
        x = _as_features(x)
        if x.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"inputs have {x.shape[1]} features, but the hash was fitted on "
                f"{self.mean.shape[0]}; got inputs of shape {x.shape}."
            )
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
