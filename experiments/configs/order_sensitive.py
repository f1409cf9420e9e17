"""Order-sensitive deep hashing (Chen et al., MICCAI 2018): NDCG-weighted triplet ranking (survey
eq 27) + λ₁ multi-label BCE of a classifier on the codes + λ₂ quantization; multi-label, so the
default protocol is `digits_mosaic`.

Commands:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/order_sensitive.py:digits_mosaic,bits=32 \
        --workdir=runs/order_sensitive_digits_mosaic_32
    .venv/bin/python -m experiments.train \
        --config=experiments/configs/order_sensitive.py:digits,bits=32 \
        --workdir=runs/order_sensitive_digits_32

Expected on `digits_mosaic` (query 200, database 1,800; MLP 256-256-256-32 instead of the
protocol's ConvNet, whose steps cost about 2.5x more on CPU; batch 50 on one device, Adam 1e-3
with cosine decay, 800 steps, the best of 8 validation checkpoints; M = 1, λ₁ = λ₂ = 1), whole
database, ties by index, seed=0 / 1 / 2:

    mAP       0.699 / 0.678 / 0.731
    NDCG@100  0.513 / 0.493 / 0.551   (LSH 0.241 / 0.268 / 0.267, ITQ 0.275 / 0.284 / 0.284)
    ACG@100   1.087 / 1.076 / 1.160   (LSH 0.629 / 0.707 / 0.700, ITQ 0.693 / 0.736 / 0.737)

(LSH and ITQ: dlhash_jax.baselines, 32 bits, fitted on the same training split; their mAP is
0.48-0.52), about 11 s for training and evaluation on 2 CPU cores (jax 0.10.2, CPU). On `digits`
(MLP 64-256-256-32, batch 50, Adam 1e-3, 1,200 steps, the best of 12 validation checkpoints): mAP
0.935 / 0.950 / 0.922 for seed=0 / 1 / 2, about 10 s.
"""

from experiments.configs import base


def get_config(argument="digits_mosaic,bits=32"):
    return base.get_config(
        argument,
        method="order_sensitive",
        settings={
            "digits": {"num_epochs": 120},
            "digits_mosaic": {
                "model.backbone": "mlp",
                "num_epochs": 40,
                "eval_every": 100,
            },
        },
    )
