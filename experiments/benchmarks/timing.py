"""The timing rule every benchmark script here shares: best of N after a warm-up call."""

from __future__ import annotations

import time


def best_time(fn, repeats: int = 3):
    """``(fastest time in seconds, result)`` over ``repeats`` calls after one warm-up call.

    The warm-up call keeps compilation and first-touch page faults out of the times.
    """
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result
