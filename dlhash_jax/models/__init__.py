"""Flax (linen) networks for deep hashing: backbones, hash heads, autoencoder, text encoder.

A model maps inputs to a dict with ``"pre"`` (``[B, L]`` before the relaxation) and
``"relaxed"`` (``[B, L]`` after it); the binary codes are ``codes.sign(out["pre"])``, computed
for a whole split by :func:`encode`.
"""

from dlhash_jax.models.autoencoder import Autoencoder
from dlhash_jax.models.backbones import MLP
from dlhash_jax.models.backbones import ConvNet
from dlhash_jax.models.backbones import ResNet
from dlhash_jax.models.heads import DIVIDE_AND_ENCODE_RELAXATIONS
from dlhash_jax.models.heads import HASH_RELAXATIONS
from dlhash_jax.models.heads import DivideAndEncode
from dlhash_jax.models.heads import HashHead
from dlhash_jax.models.heads import LatentLayer
from dlhash_jax.models.network import MODALITIES
from dlhash_jax.models.network import CrossModalNetwork
from dlhash_jax.models.network import HashNetwork
from dlhash_jax.models.network import encode
from dlhash_jax.models.network import map_in_batches
from dlhash_jax.models.network import num_params
from dlhash_jax.models.network import num_rows
from dlhash_jax.models.text import TextEncoder

__all__ = [
    "Autoencoder",
    "ConvNet",
    "CrossModalNetwork",
    "DIVIDE_AND_ENCODE_RELAXATIONS",
    "DivideAndEncode",
    "HASH_RELAXATIONS",
    "HashHead",
    "HashNetwork",
    "LatentLayer",
    "MLP",
    "MODALITIES",
    "ResNet",
    "TextEncoder",
    "encode",
    "map_in_batches",
    "num_params",
    "num_rows",
]
