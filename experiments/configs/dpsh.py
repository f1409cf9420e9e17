"""DPSH (Li, Wang & Kang, IJCAI 2016): pairwise likelihood against a memory bank + quantization.

Command (also `make train`):

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/dpsh.py:digits,bits=32 --workdir=runs/dpsh_digits_32

Expected on `digits` (query 100, database 1,697; MLP 64-256-256-32, batch 50, Adam 1e-3, 2,000
steps, the best of 20 validation checkpoints): mAP over the whole database 0.958 / 0.976 / 0.976
for seed=0 / 1 / 2 (median 0.976), about 12 s for training and evaluation on 2 CPU cores
(jax 0.10.2, CPU).
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="dpsh",
        settings={
            "digits": {"optimizer.learning_rate": 1e-3},
        },
    )
