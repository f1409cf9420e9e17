"""UDH (Xia et al., IPTA 2016): autoencoder reconstruction + bit balance + bit decorrelation.

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/udh.py:digits,bits=32 --workdir=runs/udh_digits_32

Expected on `digits` (query 100, database 1,697; autoencoder 64-256-256-32-256-256-64, batch 50,
Adam 1e-3, 200 steps, the best of 10 validation checkpoints): mAP over the whole database
0.601 / 0.569 / 0.604 for seed=0 / 1 / 2 (median 0.601), above LSH (0.467 / 0.459 / 0.516).
Validation mAP peaks after 40-60 steps and then falls (0.45 by step 400), as the
reconstruction favours unsaturated bits, hence the short schedule. About 15 s of CPU time for
training and evaluation on 2 CPU cores (jax 0.10.2; DPSH's config: 11 s measured the same way).

Below ITQ (0.654 / 0.631 / 0.671): every variant tried peaks at a validation mAP of 0.57-0.62
(dlhash_jax/methods/udh.py gives the evidence). `mnist5k` uses the protocol's defaults
(configs/base.py; UDH's encoder is always an MLP on the pixels): seed 0 at 32 bits gives 0.418
(ITQ 0.433). Results at 16, 32 and 64 bits on both protocols: RESULTS.md, the unsupervised tables.
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="udh",
        settings={
            "digits": {"optimizer.learning_rate": 1e-3, "num_epochs": 20, "eval_every": 20},
        },
    )
