"""CNNH (Xia et al., AAAI 2014): stage-1 target codes by coordinate descent on the class
similarity, then per-bit cross-entropy of the network's sigmoid outputs to them.

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/cnnh.py:digits,bits=32 --workdir=runs/cnnh_digits_32

Expected on `digits` (query 100, database 1,697; MLP 64-256-256-32, batch 50, Adam 1e-3, 1,000
steps, the best of 10 validation checkpoints; T = 10 stage-1 sweeps): mAP over the whole database
0.936 / 0.986 / 0.951 for seed=0 / 1 / 2 (median 0.951), about 9 s for training and evaluation
(stage 1 takes 0.07 s of it) on 2 CPU cores (jax 0.10.2, CPU). 1,000 steps: with 2,000 the best
checkpoint was at step 300-500 every time.
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="cnnh",
        settings={
            "digits": {"optimizer.learning_rate": 1e-3, "num_epochs": 100},
        },
    )
