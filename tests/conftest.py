"""Test-session setup.

Fake CPU devices must be requested before JAX initialises its backend, so this runs at collection
time, before any test module imports jax. Single-device code still runs on device 0.
"""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
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
