"""DLBHC (Lin, Yang, Hsiao & Chen, CVPR Workshops 2015): a sigmoid latent layer of L units before
a softmax classifier, trained with the classification loss alone; codes = latent > 0.5.

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/dlbhc.py:digits,bits=32 \
        --workdir=runs/dlbhc_digits_32

Expected on `digits` (query 100, database 1,697; MLP 64-256-256-32, batch 50, Adam 1e-3, 2,000
steps, the best of 20 validation checkpoints): mAP over the whole database 0.951 / 0.980 / 0.961
for seed=0 / 1 / 2 (median 0.961), about 13 s for training and evaluation on 2 CPU cores
(jax 0.10.2, CPU; measured on a shared machine and scaled by DPSH's time in the same conditions).
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="dlbhc",
        settings={
            "digits": {"optimizer.learning_rate": 1e-3},
        },
    )
