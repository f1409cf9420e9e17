"""dlhash_jax: deep learning to hash in JAX.

Submodules are imported explicitly by users (``from dlhash_jax import losses``); this file keeps
import of the package cheap.
"""

__version__ = "0.1.0"
