"""Trace-time shape checks shared by the loss modules.

They read only static shapes, so under ``jit`` they cost nothing and fail before XLA sees the
computation, with a message that names the shapes that were passed.
"""

from __future__ import annotations

import jax.numpy as jnp


def check_rank(x, rank: int, name: str, layout: str) -> None:
    """Raises ValueError unless ``x`` has ``rank`` axes; ``layout`` reads like ``"[N, L]"``."""
    if jnp.ndim(x) != rank:
        raise ValueError(f"{name} must have shape {layout}, got shape {jnp.shape(x)}.")


def check_same_bits(a1, a2, names: tuple[str, str]) -> None:
    """Raises ValueError unless two ``[N, L]`` / ``[M, L]`` matrices have the same ``L``."""
    if jnp.shape(a1)[-1] != jnp.shape(a2)[-1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same number of bits (last axis), got "
            f"shapes {jnp.shape(a1)} and {jnp.shape(a2)}."
        )


def check_same_rows(a, b, names: tuple[str, str]) -> None:
    """Raises ValueError unless ``a`` and ``b`` have the same leading dimension."""
    if jnp.shape(a)[0] != jnp.shape(b)[0]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same number of rows (samples), got "
            f"shapes {jnp.shape(a)} and {jnp.shape(b)}."
        )


def check_pair_block(a1, a2, s, names: tuple[str, str, str] = ("A1", "A2", "S")) -> None:
    """Checks ``a1: [N, L]``, ``a2: [M, L]`` and a pairwise matrix ``s: [N, M]``."""
    check_rank(a1, 2, names[0], "[N, L]")
    check_rank(a2, 2, names[1], "[M, L]")
    check_rank(s, 2, names[2], "[N, M]")
    check_same_bits(a1, a2, names[:2])
    expected = (jnp.shape(a1)[0], jnp.shape(a2)[0])
    if tuple(jnp.shape(s)) != expected:
        raise ValueError(
            f"{names[2]} must have shape [N, M] = {expected} for {names[0]} of shape "
            f"{jnp.shape(a1)} and {names[1]} of shape {jnp.shape(a2)}, got {jnp.shape(s)}."
        )
