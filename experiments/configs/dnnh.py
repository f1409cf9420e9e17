"""DNNH (Lai, Pan, Liu & Yan, CVPR 2015): triplet ranking loss over every triplet of the batch, on
the divide-and-encode outputs with the piecewise threshold.

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/dnnh.py:digits,bits=32 --workdir=runs/dnnh_digits_32

Expected on `digits` (query 100, database 1,697; MLP 64-256-256 and divide-and-encode into 32
bits, batch 50, Adam 1e-3, 600 steps, the best of 3 validation checkpoints): mAP over the whole
database 0.943 / 0.964 / 0.946 for seed=0 / 1 / 2 (median 0.946; LSH at 32 bits: 0.48). A run
takes about 4 s of single-threaded CPU time for training and evaluation once its programs are
compiled, 7 s with compilation (jax 0.10.2, CPU; measured on a shared, loaded 2-core machine).
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="dnnh",
        settings={
            # 600 steps of batch 50, 3 validations and one checkpoint: the results table's budget
            # of about 6 s per run. Longer runs (1,000 steps) end at the same mAP.
            "digits": {
                "optimizer.learning_rate": 1e-3,
                "num_epochs": 60,
                "eval_every": 200,
                "checkpoint_every": 600,
            },
        },
    )
