"""Tiny run configs shared by the training tests and their subprocess workers."""

from dlhash_jax import train


def tiny_config(**changes):
    """DPSH on digits with a one-layer MLP and 8 bits: a few dozen steps run in about a second."""
    config = train.default_config()
    config.method = "dpsh"
    config.protocol = "digits"
    config.bits = 8
    config.model.features = (32,)
    config.batch_size = 50
    config.num_epochs = 3
    config.optimizer.learning_rate = 1e-3
    config.optimizer.schedule = "constant"
    config.num_devices = 1
    config.log_every = 5
    config.eval_every = 5
    config.checkpoint_every = 7
    config.keep_checkpoints = 3
    config.progress_bar = False
    config.evaluation.batch_size = 512
    for dotted, value in changes.items():
        *blocks, field = dotted.split(".")
        target = config
        for block in blocks:
            target = target[block]
        target[field] = value
    return config
