"""UH-BDNN (Do, Doan & Cheung, ECCV 2016): codes B kept as variables, reconstructed by a linear
decoder and regressed by a sigmoid network, with independence and balance of its outputs; B by
discrete cyclic coordinate descent and the decoder in closed form between network epochs.

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/uh_bdnn.py:digits,bits=32 --workdir=runs/uh_bdnn_digits_32

and for seed S = 0, 1, 2 (the runs measured below):

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/uh_bdnn.py:digits,bits=32,seed=S --workdir=/tmp/uhbdnn_S

Expected on `digits` (query 100, database 1,697; sigmoid MLP 64-120-50-32, the authors' widths
for 32 bits; batch 50, Adam 1e-3, 2,000 steps, B started at ITQ's codes and updated every 10
epochs (100 steps), the best of 20 validation checkpoints; the authors' λ1-λ4): mAP over the
whole database 0.675 / 0.679 / 0.710 for seed=0 / 1 / 2 (median 0.679), above LSH (0.467 /
0.459 / 0.515) and ITQ (0.654 / 0.631 / 0.670), both from
`dlhash_jax.experiment.evaluate_baseline(name, "digits", 32, seed)`. About 25 s for training and
evaluation, 15 s of CPU time (2 CPU cores shared with other jobs; jax 0.10.2, CPU; DPSH's
config: 17 s, 11 s measured the same way).

Epochs between B-steps (`hparams.epochs_per_update`, ours: the authors run 400 L-BFGS
iterations), mAP at 32 bits, seeds 0 / 1 / 2: 1, 0.672 / 0.683 / 0.685; 5, 0.672 / 0.687 /
0.717; 10 (this config), 0.675 / 0.679 / 0.710; 200, i.e. no B-step after the ITQ start (the
network regresses ITQ's codes), 0.713 / 0.674 / 0.721. On `digits` the B-steps lower the
objective (the logged `discrete_objective` falls from 1.22 at step 200 to 0.71 at step 2,000,
seed 0) but do not improve retrieval over the network fitted to ITQ's codes.
"""

from dlhash_jax import train
from experiments.configs import base

# The authors' hidden widths per code length (runHash.m); other lengths take the 32-bit ones.
AUTHORS_WIDTHS = {8: (90, 20), 16: (90, 30), 24: (100, 40), 32: (120, 50)}


def get_config(argument="digits,bits=32"):
    _, fields = base.parse_argument(argument)
    bits = fields.get("bits", train.default_config().bits)
    widths = AUTHORS_WIDTHS.get(bits, AUTHORS_WIDTHS[32])
    return base.get_config(
        argument,
        method="uh_bdnn",
        settings={
            "*": {"model.features": widths},
            "digits": {"optimizer.learning_rate": 1e-3, "num_epochs": 200},
        },
    )
