"""DSRH (Zhao et al., CVPR 2015): NDCG-weighted triplet ranking of every batch item's list by
shared labels (+ bit balance); multi-label, so the default protocol is `digits_mosaic`.

Commands:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/dsrh.py:digits_mosaic,bits=32 \
        --workdir=runs/dsrh_digits_mosaic_32
    .venv/bin/python -m experiments.train \
        --config=experiments/configs/dsrh.py:digits,bits=32 --workdir=runs/dsrh_digits_32

Expected on `digits_mosaic` (query 200, database 1,800; MLP 256-256-256-32 instead of the
protocol's ConvNet, whose steps cost about 2.5x more on CPU; batch 50 on one device, Adam 1e-3
with cosine decay, 800 steps, the best of 8 validation checkpoints; ρ = 1, α = 1, no weight decay,
see dlhash_jax/methods/dsrh.py), whole database, ties by index, seed=0 / 1 / 2:

    mAP       0.798 / 0.802 / 0.810
    NDCG@100  0.622 / 0.633 / 0.653   (LSH 0.241 / 0.268 / 0.267, ITQ 0.275 / 0.284 / 0.284)
    ACG@100   1.280 / 1.303 / 1.333   (LSH 0.629 / 0.707 / 0.700, ITQ 0.693 / 0.736 / 0.737)

(LSH and ITQ: dlhash_jax.baselines, 32 bits, fitted on the same training split; their mAP is
0.48-0.52), about 9 s for training and evaluation on 2 CPU cores (jax 0.10.2, CPU). On `digits`
(MLP 64-256-256-32, batch 50, Adam 1e-3, 1,200 steps, the best of 12 validation checkpoints): mAP
0.919 / 0.971 / 0.948 for seed=0 / 1 / 2, about 9 s.
"""

from experiments.configs import base


def get_config(argument="digits_mosaic,bits=32"):
    return base.get_config(
        argument,
        method="dsrh",
        settings={
            "digits": {"num_epochs": 120},
            "digits_mosaic": {
                "model.backbone": "mlp",
                "num_epochs": 40,
                "eval_every": 100,
            },
        },
    )
