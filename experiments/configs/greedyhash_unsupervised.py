"""GreedyHash, unsupervised (Su et al., NeurIPS 2018): sgn forward / identity backward, the
cosine of the codes of each pair matched to the cosine of the pair's (centred) inputs, plus
(α/L)·ℓ3 penalty.

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/greedyhash_unsupervised.py:digits,bits=32 \
        --workdir=runs/greedyhash_unsupervised_digits_32

(for the seeds below: `:digits,bits=32,seed=S --workdir=/tmp/greedyhash_unsupervised_S`).

Expected on `digits` (query 100, database 1,697; MLP 64-256-256-32, batch 50, the first half
of each batch paired with the second, the target the cosine of the inputs centred by the
training mean, Adam 1e-3 instead of the authors' SGD, 2,000 steps, the best of 20 validation
checkpoints; α = 0.1, p = 3 as the authors'): mAP over the whole database
0.717 / 0.709 / 0.719 for seed=0 / 1 / 2 (median 0.717), above ITQ (0.654 / 0.631 / 0.671)
and LSH (0.467 / 0.459 / 0.516) for the same seeds. With uncentred inputs
(`--config.hparams.center_features=False`) the codes collapse: 0.172 / 0.103 / 0.103 (see the
recipe's docstring). About 12-18 s per run, training and evaluation, on 2 CPU cores shared
with other jobs (jax 0.10.2).

On `mnist5k` (32 bits; the ConvNet 8-16 channels and 600 steps, configs/base.py's until it went to
400 for the time budget of RESULTS.md, Adam 1e-3): mAP 0.504 / 0.506 / 0.504 for seed=0 / 1 / 2,
above ITQ (0.433 / 0.440 / 0.429) and LSH (0.284 / 0.265 / 0.285); uncentred inputs, seed 0: 0.465.
About 40 s per run.
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="greedyhash_unsupervised",
        settings={
            "digits": {"optimizer.learning_rate": 1e-3},
        },
    )
