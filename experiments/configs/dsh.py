"""DSH (Liu, Wang, Shan & Chen, CVPR 2016): squared-L2 contrastive loss with margin 2L against a
memory bank, + α·hash_constraint_l1.

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/dsh.py:digits,bits=32 --workdir=runs/dsh_digits_32

Expected on `digits` (query 100, database 1,697; MLP 64-256-256-32, batch 50, Adam 1e-3, 2,000
steps, the best of 20 validation checkpoints): mAP over the whole database 0.947 / 0.972 / 0.955
for seed=0 / 1 / 2 (median 0.955), about 12 s for training and evaluation on 2 CPU cores
(jax 0.10.2, CPU).
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="dsh",
        settings={
            "digits": {"optimizer.learning_rate": 1e-3},
        },
    )
