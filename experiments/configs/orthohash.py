"""OrthoHash (Hoe et al., NeurIPS 2021): cosine-margin cross-entropy of the batch-normalised code
layer against fixed Bernoulli(0.5) class targets (m = 0.2, s = √L); multi-label by label smoothing.

Commands:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/orthohash.py:digits,bits=32 \
        --workdir=runs/orthohash_digits_32
    .venv/bin/python -m experiments.train \
        --config=experiments/configs/orthohash.py:digits_mosaic,bits=32 \
        --workdir=runs/orthohash_digits_mosaic_32

Expected on `digits` (query 100, database 1,697; MLP 64-256-256-32, batch 50, Adam 1e-3, 1,000
steps, the best of 10 validation checkpoints; m = 0.2, s = √32 as the paper's tables): mAP over
the whole database 0.952 / 0.978 / 0.953 for seed=0 / 1 / 2 (median 0.953), about 8 s for
training and evaluation on 2 CPU cores (jax 0.10.2, CPU).

On `digits_mosaic` (multi-label; query 200, database 1,800; the protocol's ConvNet, batch 50 on
one device, Adam 1e-3 with cosine decay, 800 steps, the best of 8 validation checkpoints), whole
database, ties by index, seed=0 / 1 / 2:

    mAP       0.869 / 0.873 / 0.876
    NDCG@100  0.657 / 0.670 / 0.667   (ITQ 0.275 / 0.284 / 0.284; DSRH, MLP: 0.622 / 0.633 / 0.653)
    ACG@100   1.329 / 1.346 / 1.337

about 21 s each. With the MLP 256-256-256-32 of the CSQ and DSRH configs instead of the ConvNet
(`--config.model.backbone=mlp`), OrthoHash stays below DSRH: NDCG@100 0.596 / 0.611 / 0.607,
mAP 0.809 / 0.816 / 0.815 (about 13 s each).
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="orthohash",
        settings={
            "digits": {"optimizer.learning_rate": 1e-3, "num_epochs": 100},
            # The protocol's ConvNet backbone (see above for the MLP), 40 epochs = 800 steps.
            "digits_mosaic": {"num_epochs": 40, "eval_every": 100},
        },
    )
