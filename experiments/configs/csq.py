"""CSQ (Yuan et al., CVPR 2020): BCE of the tanh codes to their Hadamard hash centres +
λ·quantization.

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/csq.py:digits,bits=32 --workdir=runs/csq_digits_32

Expected on `digits` (query 100, database 1,697; MLP 64-256-256-32, batch 50, Adam 1e-3, 1,000
steps, the best of 10 validation checkpoints; λ = 0.05 as the authors'): mAP over the whole
database 0.937 / 0.983 / 0.958 for seed=0 / 1 / 2 (median 0.958), about 11 s for training and
evaluation on 2 CPU cores (jax 0.10.2, CPU). 1,000 steps rather than 2,000: with a constant rate
they are the first half of the longer run, whose best checkpoint was at step 400-500 every time.

CSQ handles multi-label data too (an item's centre is the majority of its classes' centres): with
`digits_mosaic,bits=32` (MLP 256-256-256-32 on one device, Adam 1e-3 with cosine decay, 800 steps)
it gives mAP 0.785 / 0.788 / 0.801, NDCG@100 0.598 / 0.588 / 0.612 and ACG@100 1.224 / 1.231 /
1.248 for seed=0 / 1 / 2 (LSH: NDCG@100 0.24-0.27, ITQ: 0.28).
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="csq",
        settings={
            "digits": {"optimizer.learning_rate": 1e-3, "num_epochs": 100},
            "digits_mosaic": {
                "model.backbone": "mlp",
                "num_epochs": 40,
                "eval_every": 100,
            },
        },
    )
