"""DSRH (Zhao et al., CVPR 2015): NDCG-weighted triplet ranking of every batch item's list by
shared labels (+ bit balance); multi-label, so the default protocol is `digits_mosaic`.

Commands:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/dsrh.py:digits_mosaic,bits=32 \
        --workdir=runs/dsrh_digits_mosaic_32
    .venv/bin/python -m experiments.train \
        --config=experiments/configs/dsrh.py:digits,bits=32 --workdir=runs/dsrh_digits_32

Expected on `digits` (MLP 64-256-256-32, batch 50, Adam 1e-3, 1,200 steps, the best of 12 validation
checkpoints): mAP 0.919 / 0.971 / 0.948 for seed=0 / 1 / 2, about 9 s for training and evaluation.

On `digits_mosaic` (32 bits; MLP 256-256-256-32, the common budget of 2,400 steps, Adam with cosine
decay unless stated): batch 50 at 3e-3, chosen on seed 0's validation split (validation mAP 0.875;
grid batch/rate: 50/1e-3 0.868, 50/3e-3 0.875). mAP and NDCG@100 over seeds 0-2: RESULTS.md,
multi-label table.
"""

from experiments.configs import base


def get_config(argument="digits_mosaic,bits=32"):
    return base.get_config(
        argument,
        method="dsrh",
        settings={
            "digits": {"num_epochs": 120},
            # Chosen on seed 0's validation split (configs/base.py: mosaic_settings).
            "digits_mosaic": base.mosaic_settings(learning_rate=0.003, batch_size=50),
        },
    )
