"""Reference codes and brute-force Hamming ranking shared by the retrieval and engine tests."""

import numpy as np


def tied_codes(rng, n, num_bits, num_bases=6, flip=0.05, dtype=None):
    """±1 codes drawn around a few base codes, so many distances tie (and some rows repeat)."""
    values = np.array([-1, 1]) if dtype is None else np.array([-1, 1], dtype)
    bases = rng.choice(values, size=(num_bases, num_bits))
    codes = bases[rng.integers(num_bases, size=n)]
    return np.where(rng.random((n, num_bits)) < flip, -codes, codes)


def brute_distances(query_codes, db_codes):
    """``[Q, N]`` Hamming distances from the ±1 inner products, in int64."""
    num_bits = query_codes.shape[1]
    return (num_bits - query_codes.astype(np.int64) @ db_codes.T.astype(np.int64)) // 2


def brute_topk(query_codes, db_codes, k):
    """``(distances, indices)`` of the k nearest, ties by database index (a stable sort)."""
    dist = brute_distances(query_codes, db_codes)
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, order, axis=1), order
