"""Inputs of every metric: switches and cutoffs checked, codes and labels validated and packed."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dlhash_jax import codes
from dlhash_jax import conventions
from dlhash_jax import hamming
from dlhash_jax._checks import check_choice, is_int


def check_switches(ties, zero_relevant, normalize="retrieved", seed=0) -> None:
    """Raises ValueError unless the switches are known values and ``seed`` an integer."""
    check_choice(ties, conventions.TIES, "ties")
    check_choice(zero_relevant, conventions.ZERO_RELEVANT, "zero_relevant")
    check_choice(normalize, conventions.NORMALIZE, "normalize")
    if not is_int(seed):
        raise ValueError(f"seed must be an integer, got {seed!r}.")


def check_cutoff(k, num_db: int, name: str = "k") -> int:
    """``int(k)`` for an integer cutoff in ``[1, num_db]``; ValueError otherwise."""
    if not is_int(k):
        raise ValueError(f"{name} must be a positive integer, got {k!r}.")
    if not 1 <= k <= num_db:
        raise ValueError(
            f"{name} must be between 1 and the database size {num_db}, got {k}."
        )
    return int(k)


def _check_labels(labels, name: str, num_rows: int, codes_name: str) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [N, C] multi-hot matrix, got shape {arr.shape}.")
    if arr.shape[0] != num_rows:
        raise ValueError(
            f"{name} has {arr.shape[0]} rows but {codes_name} has {num_rows}; got {name} shape "
            f"{arr.shape}."
        )
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one class, got shape {arr.shape}.")
    if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.number)):
        raise ValueError(f"{name} must be a numeric 0/1 matrix, got dtype {arr.dtype}.")
    if ((arr != 0) & (arr != 1)).any():
        raise ValueError(
            f"{name} must be multi-hot (only 0 and 1 values; one-hot for single-label data), "
            f"got values {np.unique(arr)[:5]} in an array of shape {arr.shape}."
        )
    return arr.astype(np.int8)


class Prepared(NamedTuple):
    """Validated, packed inputs of one evaluation."""

    query_codes: np.ndarray  # uint32 [Q, W] packed query codes (host)
    db_codes: jax.Array  # uint32 [N, W] packed database codes (device)
    query_labels: np.ndarray  # int32 [Q] class ids, or uint32 [Q, Wc] packed multi-hot labels
    db_labels: jax.Array  # int32 [N] or uint32 [N, Wc] (device)
    single_label: bool
    num_bits: int
    num_db: int
    max_grade: int  # largest possible number of shared labels (at least 1)


def prepare(query_codes, db_codes, query_labels, db_labels, *, ties: str, seed: int) -> Prepared:
    """Checks codes ``[Q, L]``, ``[N, L]`` and labels ``[Q, C]``, ``[N, C]`` and packs them.

    Under ``ties="random"`` the database is shuffled here, once, with ``seed``.
    """
    q_codes = codes.check_codes(query_codes, "query_codes")
    d_codes = codes.check_codes(db_codes, "db_codes")
    if q_codes.shape[0] == 0:
        raise ValueError(f"query_codes must hold at least one query, got shape {q_codes.shape}.")
    if d_codes.shape[0] == 0:
        raise ValueError(f"db_codes must hold at least one item, got shape {d_codes.shape}.")
    if q_codes.shape[1] != d_codes.shape[1]:
        raise ValueError(
            "query_codes and db_codes must have the same number of bits, got shapes "
            f"{q_codes.shape} and {d_codes.shape}."
        )
    q_labels = _check_labels(query_labels, "query_labels", q_codes.shape[0], "query_codes")
    d_labels = _check_labels(db_labels, "db_labels", d_codes.shape[0], "db_codes")
    if q_labels.shape[1] != d_labels.shape[1]:
        raise ValueError(
            "query_labels and db_labels must have the same number of classes, got shapes "
            f"{q_labels.shape} and {d_labels.shape}."
        )
    if ties == "random":
        perm = np.random.default_rng(seed).permutation(d_codes.shape[0])
        d_codes, d_labels = d_codes[perm], d_labels[perm]
    q_count, d_count = q_labels.sum(1), d_labels.sum(1)
    single_label = bool((q_count == 1).all() and (d_count == 1).all())
    if single_label:
        # Comparing class ids is cheaper than popcounts over label words when C is large.
        q_lab = np.argmax(q_labels, axis=1).astype(np.int32)
        d_lab = jnp.asarray(np.argmax(d_labels, axis=1).astype(np.int32))
        max_grade = 1
    else:
        q_lab = hamming.pack(q_labels)
        d_lab = jnp.asarray(hamming.pack(d_labels))
        max_grade = max(1, int(min(q_count.max(), d_count.max())))
    return Prepared(
        query_codes=hamming.pack(q_codes),
        db_codes=jnp.asarray(hamming.pack(d_codes)),
        query_labels=q_lab,
        db_labels=d_lab,
        single_label=single_label,
        num_bits=q_codes.shape[1],
        num_db=d_codes.shape[0],
        max_grade=max_grade,
    )
