"""Argument checks shared by every module: one wording for each kind of bad input.

Each check raises ``ValueError`` with a message that names the argument, what it must be and what
it got, so a mistake surfaces at the call that made it rather than inside XLA.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Iterable

import numpy as np


def is_int(value) -> bool:
    """Whether ``value`` is a Python or NumPy integer (``bool`` is not)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_int(value, name: str, *, minimum: int = 1, allow_none: bool = False) -> int | None:
    """``int(value)`` if it is an integer ``>= minimum`` (``None`` too with ``allow_none``).

    Raises:
      ValueError: ``"{name} must be a positive integer, got ..."`` (``minimum=1``), ``"... a
        non-negative integer ..."`` (``minimum=0``) or ``"... an integer >= m ..."``.
    """
    if value is None and allow_none:
        return None
    if not is_int(value) or value < minimum:
        if minimum == 1:
            kind = "a positive integer"
        elif minimum == 0:
            kind = "a non-negative integer"
        else:
            kind = f"an integer >= {minimum}"
        if allow_none:
            kind += " or None"
        raise ValueError(f"{name} must be {kind}, got {value!r}.")
    return int(value)


def close_match_hint(value, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices`` to ``value``, or ``""``."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_choice(value, choices: Iterable[str], name: str) -> None:
    """Raises ``ValueError`` unless ``value`` is one of ``choices`` (naming the closest one)."""
    choices = tuple(choices)
    if value in choices:
        return
    raise ValueError(
        f"{name} must be one of {choices}, got {value!r}{close_match_hint(value, choices)}."
    )
