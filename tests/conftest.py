"""Test-session setup.

Fake CPU devices must be requested before JAX initialises its backend, so this runs at collection
time, before any test module imports jax. Single-device code still runs on device 0.
"""

import os

# Tests compile far more programs than they run steps: XLA's backend optimisation level 0 skips
# LLVM's optimisation passes (same values) and took about a third off the compile-bound tests
# (the four notebooks' kernels, inheriting it: 73 -> 50 s of CPU).
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest


@pytest.fixture
def x64():
    """Enables float64 for one test (gradient checks) and restores float32 afterwards."""
    import jax

    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", False)
