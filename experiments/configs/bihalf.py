"""BiHalf (Li & van Gemert, AAAI 2021): each bit splits the batch at its median (straight-through
gradient plus γ(U − B)/(N·L)), the cosine of the codes of each pair matched to the cosine of
the pair's (centred) inputs.

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/bihalf.py:digits,bits=32 --workdir=runs/bihalf_digits_32

(for the seeds below: `:digits,bits=32,seed=S --workdir=/tmp/bihalf_S`).

Expected on `digits` (query 100, database 1,697; MLP 64-256-256-32, batch 50 split per bit
and the first half paired with the second, the target the cosine of the inputs centred by the
training mean, Adam 1e-3 instead of the authors' SGD, 2,000 steps, the best of 20 validation
checkpoints; γ = 6 as the authors'): mAP over the whole database 0.755 / 0.740 / 0.731 for
seed=0 / 1 / 2 (median 0.740), above ITQ (0.654 / 0.631 / 0.671) and LSH
(0.467 / 0.459 / 0.516) for the same seeds. Uncentred inputs
(`--config.hparams.center_features=False`): 0.757 / 0.759 / 0.750. About 15-20 s per run,
training and evaluation, on 2 CPU cores shared with other jobs (jax 0.10.2).

On `mnist5k` (32 bits, 600 steps of batch 50 as configs/base.py then gave every recipe there (now
400), Adam 1e-3) the MLP 784-256-256-32 is this config's choice on seed 0's validation split:
validation mAP 0.470 against 0.420 for the protocol's ConvNet (8-16 channels), whose test mAP was
0.420 / 0.440 / 0.438 for seed=0 / 1 / 2 (ITQ 0.433 / 0.440 / 0.429, LSH 0.284 / 0.265 / 0.285). The
MLP's results at 32 bits (400 steps): RESULTS.md, "Unsupervised results on mnist5k". About 10 s per
run.
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="bihalf",
        settings={
            "digits": {"optimizer.learning_rate": 1e-3},
            "mnist5k": {"model.backbone": "mlp", "optimizer.learning_rate": 1e-3},
        },
    )
