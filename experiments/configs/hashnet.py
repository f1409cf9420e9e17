"""HashNet (Cao, Long, Wang & Yu, ICCV 2017): weighted pairwise likelihood (α = 10/L) between the
two halves of each batch on tanh(βz), β raised by the paper's continuation schedule.

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/hashnet.py:digits,bits=32 \
        --workdir=runs/hashnet_digits_32

Expected on `digits` (query 100, database 1,697; MLP 64-256-256-32, batch 50, Adam 1e-3, 2,000
steps, the best of 20 validation checkpoints): mAP over the whole database 0.950 / 0.989 / 0.972
for seed=0 / 1 / 2 (median 0.972), about 12 s for training and evaluation on 2 CPU cores
(jax 0.10.2, CPU; measured on a shared machine and scaled by DPSH's time in the same conditions).
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="hashnet",
        settings={
            "digits": {"optimizer.learning_rate": 1e-3},
        },
    )
