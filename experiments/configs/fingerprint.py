"""Fingerprint hashing (Bai et al., 2018): reconstruction + quantization + Laplacian + weight norm.

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/fingerprint.py:digits,bits=32 \
        --workdir=runs/fingerprint_digits_32

Expected on `digits` (query 100, database 1,697; MLP encoder 64-256-256-32, linear decoder from
the sign code, batch 50 against a bank of every training output with the affinity over the 500
training items, Adam 1e-3, 1,500 steps, the best of 15 validation checkpoints): mAP over the
whole database 0.611 / 0.581 / 0.619 for seed=0 / 1 / 2 (median 0.611; RESULTS.md), above LSH
(0.467 / 0.459 / 0.516). Validation mAP first falls, then rises past 0.5 after about 700 steps.
About 4 s of training per run on 2 CPU cores (jax 0.10.2). The earlier per-batch affinity gave
0.622 / 0.546 / 0.607.

Below ITQ (0.654 / 0.631 / 0.671) on `digits`, and on `mnist5k` it does not learn (validation mAP
0.20-0.21 with every setting tried): dlhash_jax/methods/fingerprint.py gives the evidence.
`mnist5k` uses the protocol's defaults (configs/base.py). Results at 16, 32 and 64 bits on
`digits` and 32 bits on `mnist5k`: RESULTS.md, the unsupervised tables.
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="fingerprint",
        settings={
            "digits": {"optimizer.learning_rate": 1e-3, "num_epochs": 150},
        },
    )
