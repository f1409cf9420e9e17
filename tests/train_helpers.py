"""Tiny run configs shared by the training tests and their subprocess workers."""

import jax
import numpy as np

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


# Changes to tiny_config() for the resume tests, per method: ADSH updates its codes V every
# epoch (10 steps), so updates fall before and after the checkpoint a killed run resumes from.
RESUME_CHANGES = {
    "dpsh": {},
    "adsh": {"method": "adsh", "hparams.inner_epochs": 1},
    # Training batches from the grain image pipeline (random crops and flips of every item).
    "images": {"images.resize": 10, "images.crop": 8, "images.num_threads": 2},
}


def validation_map_before_and_after(config, workdir):
    """Validation mAP of a run's untrained network, then of the network ``train.fit`` trains.

    Both are measured on the same splits with ``train.validation_map`` (for cross-modal runs the
    mean of the two directions), so a recipe test can assert that training improved retrieval.
    """
    run = train.setup_run(config)
    untrained = train.create_train_state(
        run.model,
        run.tx,
        seed=config.seed,
        sample_inputs=jax.tree.map(lambda x: x[: config.batch_size], run.data.train.inputs),
        recipe=run.recipe,
        train_split=run.data.train,
        fill_bank=False,
        prepared=run.prepared,
    )
    before = train.validation_map(run, {"params": untrained.params, **untrained.model_state})
    result = train.fit(config, str(workdir))
    after = train.validation_map(run, {"params": result.state.params, **result.state.model_state})
    return before, after


def tiny_model_outputs(recipe, *, bits=12, features=(8,), num_classes=10):
    """The outputs of ``recipe``'s model (an MLP of ``features``) on 3 random 8x8 images."""
    config = train.default_config()
    config.bits = bits
    config.model.features = features
    model = recipe.make_model(config, num_classes)
    x = np.random.default_rng(2).normal(size=(3, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    return model.apply(variables, x, train=False)
