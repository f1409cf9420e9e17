"""Shared by the tests of pairwise loss terms: a cache of jitted terms and a hand-made block."""

import functools

import jax
import numpy as np

# Compiling dominates the run time, so the tests reuse one jitted function per term and
# keyword arguments.
_JITTED = {}


def jitted(fn, **kwargs):
    """``jax.jit(functools.partial(fn, **kwargs))``, compiled once per (term, arguments)."""
    key = (fn, tuple(sorted(kwargs.items())))
    if key not in _JITTED:
        _JITTED[key] = jax.jit(functools.partial(fn, **kwargs))
    return _JITTED[key]


# Two codes against three: A2 = [A1 row 0, its complement, a code orthogonal to both rows].
# Inner products A1 A2ᵀ = [[4, -4, 0], [0, 0, 0]]; Hamming distances [[0, 4, 2], [2, 2, 2]];
# S marks (0, 0) and (1, 1) similar.
HAND_A1 = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, -1.0]], np.float32)
HAND_A2 = np.array(
    [[1.0, 1.0, 1.0, 1.0], [-1.0, -1.0, -1.0, -1.0], [1.0, 1.0, -1.0, -1.0]], np.float32
)
HAND_S = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
