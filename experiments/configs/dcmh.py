"""DCMH (Jiang & Li, CVPR 2017): image and text networks trained by alternating updates towards
shared codes (cross-modal pairwise likelihood + quantization + balance); protocol
`digits_mosaic_tags` (mosaics with synthetic noisy tags).

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/dcmh.py:digits_mosaic_tags,bits=32 \
        --workdir=runs/dcmh_digits_mosaic_tags_32

Settings (query 200, database 1,800, train 1,000): image MLP 256-256-32 on the 16x16 mosaics
instead of the paper's CNN-F, text MLP 256-32 on the 80-tag vector, batch 50 on one device, Adam
1e-3 with cosine decay per network, 800 steps (400 per network), the best of 8 validation
checkpoints (mean of the two directions); γ = 1 as in the paper.

Expected at 32 bits, whole database, ties by index, seed=0 / 1 / 2 (RESULTS.md, cross-modal
table): mAP image → text 0.792 / 0.787 / 0.807, text → image 0.809 / 0.804 / 0.823 (CCA+ITQ
0.603 / 0.615 / 0.608 and 0.624 / 0.633 / 0.645), about 5 s of training on 2 CPU cores
(jax 0.10.2, CPU).

η = 0.001 instead of the paper's 1: with η = 1 both networks collapse to near-zero outputs (the
balance term, weighted η·N/B = 20 here, wins over the likelihood while the outputs of the
untrained networks share a large mean, and F = G = 0 is a saddle of the likelihood). Measured at
32 bits, seed 0, on the protocol's earlier 23-tag vocabulary: image → text / text → image mAP
0.48 / 0.47 for η = 1 (chance level; Adam 1e-3 or 1e-2 alike, and SGD at the authors' rate 0.03
gave one code for every item), 0.68 / 0.73 for η = 0.01, 0.73 / 0.76 for η = 0.001, 0.71 / 0.75
for η = 0.0001.
"""

from experiments.configs import base


def get_config(argument="digits_mosaic_tags,bits=32"):
    return base.get_config(
        argument, method="dcmh", settings={"digits_mosaic_tags": {"hparams.eta": 0.001}}
    )
