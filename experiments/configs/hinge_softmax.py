"""Hinge-softmax hashing (Guo, Zhang & Li, PAKDD 2016): softmax on the features, hinge-softmax
(margin 0.5) on a clipped hash layer, + 0.1 × the clipped hash constraint (survey eq 26, 9).

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/hinge_softmax.py:digits,bits=32 \
        --workdir=runs/hinge_softmax_digits_32

Expected on `digits` (query 100, database 1,697; MLP 64-256-256-32, batch 50, Adam 1e-3, 2,000
steps, the best of 20 validation checkpoints): mAP over the whole database 0.884 / 0.931 / 0.889
for seed=0 / 1 / 2 (median 0.889), about 15 s for training and evaluation on 2 CPU cores
(jax 0.10.2, CPU; measured on a shared machine and scaled by DPSH's time in the same conditions).
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="hinge_softmax",
        settings={
            "digits": {"optimizer.learning_rate": 1e-3},
        },
    )
