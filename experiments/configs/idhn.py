"""IDHN (Zhang et al., IEEE TMM 2019): cross-entropy on the pairs of cosine label similarity 0 or 1,
squared error on the fractional ones, + α·quantization; α, β, γ as the authors'.

Commands:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/idhn.py:digits,bits=32 --workdir=runs/idhn_digits_32
    .venv/bin/python -m experiments.train \
        --config=experiments/configs/idhn.py:digits_mosaic,bits=32 \
        --workdir=runs/idhn_digits_mosaic_32

Expected on `digits` (query 100, database 1,697; MLP 64-256-256-32, batch 50, Adam 1e-3, 2,000
steps, the best of 20 validation checkpoints): mAP over the whole database 0.924 / 0.985 / 0.948
for seed=0 / 1 / 2 (median 0.948), 10-13 s for training and evaluation on 2 shared CPU cores
(jax 0.10.2, CPU).

On `digits_mosaic` (query 200, database 1,800; MLP 256-256-256-32 as CSQ's and DSRH's configs,
batch 50, Adam 1e-3 with cosine decay, 9,600 steps, the best of 24 validation checkpoints), whole
database, ties by index, seed=0 / 1 / 2:

    mAP       0.797 / 0.814 / 0.825
    NDCG@100  0.588 / 0.600 / 0.625   (ITQ 0.275 / 0.284 / 0.284, DSRH 0.622 / 0.633 / 0.653)
    ACG@100   1.229 / 1.260 / 1.290

about 30-40 s each. IDHN converges slowly here: with the 800 steps of CSQ's and DSRH's configs it
gives NDCG@100 0.425 (mAP 0.636) for seed 0, with 2,400 steps 0.498, with 4,800 steps 0.575 and
with 9,600 steps 0.588, the validation mAP still creeping up; Adam 3e-3 stalls for the first 800
steps and ends at 0.503 after 2,400, a constant rate does no better (0.583 after 4,800). It stays
below DSRH, which ranks by shared-label counts directly; the ConvNet backbone collapsed (validation
mAP 0.51 throughout).
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="idhn",
        settings={
            "digits": {"optimizer.learning_rate": 1e-3},
            # Slow to converge on the mosaics (see above): 480 epochs of 20 steps.
            "digits_mosaic": {
                "model.backbone": "mlp",
                "num_epochs": 480,
                "eval_every": 400,
            },
        },
    )
