"""Flax (linen) networks for deep hashing: backbones, hash heads, autoencoder, text encoder.

A model maps inputs to a dict with ``"pre"`` (``[B, L]`` before the relaxation) and
``"relaxed"`` (``[B, L]`` after it); the binary codes are ``codes.sign(out["pre"])``, computed
for a whole split by :func:`encode`.
"""

from dlhash_jax.models.alexnet import AlexNet
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
from dlhash_jax.models.pretrained import PRETRAINED_BACKBONES
from dlhash_jax.models.pretrained import PretrainedFeatures
from dlhash_jax.models.pretrained import graft_pretrained
from dlhash_jax.models.pretrained import load_pretrained
from dlhash_jax.models.pretrained import normalize_images
from dlhash_jax.models.pretrained import save_pretrained
from dlhash_jax.models.resnet50 import ResNet50
from dlhash_jax.models.text import TextEncoder
from dlhash_jax.models.vgg import VGG16
from dlhash_jax.models.vit import ViTB16

__all__ = [
    "AlexNet",
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
    "PRETRAINED_BACKBONES",
    "PretrainedFeatures",
    "ResNet",
    "ResNet50",
    "TextEncoder",
    "VGG16",
    "ViTB16",
    "encode",
    "graft_pretrained",
    "load_pretrained",
    "map_in_batches",
    "normalize_images",
    "num_params",
    "num_rows",
    "save_pretrained",
]
