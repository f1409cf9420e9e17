"""GreedyHash (Su et al., NeurIPS 2018): sgn forward / identity backward, softmax on the codes +
(α/L)·ℓ3 penalty.

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/greedyhash.py:digits,bits=32 \
        --workdir=runs/greedyhash_digits_32

Expected on `digits` (query 100, database 1,697; MLP 64-256-256-32, batch 50, Adam 1e-3 instead
of the authors' SGD, 2,000 steps, the best of 20 validation checkpoints; α = 0.1, p = 3 as the
authors'): mAP over the whole database 0.948 / 0.980 / 0.967 for seed=0 / 1 / 2 (median 0.967),
about 12 s for training and evaluation on 2 CPU cores (jax 0.10.2, CPU).
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="greedyhash",
        settings={
            "digits": {"optimizer.learning_rate": 1e-3},
        },
    )
