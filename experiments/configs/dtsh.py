"""DTSH (Wang, Shi & Kitani, ACCV 2016): negative log-likelihood of every triplet label of the batch
+ (λN/T)·quantization, α = L/2 and λ = 100 as the authors'.

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/dtsh.py:digits,bits=32 --workdir=runs/dtsh_digits_32

Expected on `digits` (query 100, database 1,697; MLP 64-256-256-32, batch 50, Adam 1e-3, 2,000
steps, the best of 20 validation checkpoints): mAP over the whole database 0.941 / 0.985 / 0.963
for seed=0 / 1 / 2 (median 0.963), 13-24 s for training and evaluation on 2 shared CPU cores
(jax 0.10.2, CPU).
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="dtsh",
        settings={
            "digits": {"optimizer.learning_rate": 1e-3},
        },
    )
