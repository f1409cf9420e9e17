"""SSDH (Yang, Lin & Chen, TPAMI 2018): DLBHC's latent layer with softmax + binarisation (push the
sigmoid units from 0.5) + per-code balance, weights α = β = γ = 1.

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/ssdh.py:digits,bits=32 \
        --workdir=runs/ssdh_digits_32

Expected on `digits` (query 100, database 1,697; MLP 64-256-256-32, batch 50, Adam 1e-3, 2,000
steps, the best of 20 validation checkpoints): mAP over the whole database 0.924 / 0.968 / 0.950
for seed=0 / 1 / 2 (median 0.950), about 14 s for training and evaluation on 2 CPU cores
(jax 0.10.2, CPU; measured on a shared machine and scaled by DPSH's time in the same conditions).
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="ssdh",
        settings={
            "digits": {"optimizer.learning_rate": 1e-3},
        },
    )
