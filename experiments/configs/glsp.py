"""GLSP (Ma et al., Neurocomputing 2018): DCMH's networks and alternating updates, plus the
intra-modal KL term of survey eq 18 within each modality; protocol `digits_mosaic_tags`.

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/glsp.py:digits_mosaic_tags,bits=32 \
        --workdir=runs/glsp_digits_mosaic_tags_32

Settings: the protocol's defaults in `base.py` and, as in `dcmh.py`, η = 0.001 (same reason, see
there); α = 0.1 (ours; see dlhash_jax/methods/glsp.py).

Expected at 32 bits, whole database, ties by index, seed=0 / 1 / 2 (RESULTS.md, cross-modal
table): mAP image → text 0.765 / 0.762 / 0.776, text → image 0.782 / 0.770 / 0.794 (CCA+ITQ
0.603 / 0.615 / 0.608 and 0.624 / 0.633 / 0.645), about 5 s of training on 2 CPU cores
(jax 0.10.2, CPU).
"""

from experiments.configs import base


def get_config(argument="digits_mosaic_tags,bits=32"):
    return base.get_config(
        argument, method="glsp", settings={"digits_mosaic_tags": {"hparams.eta": 0.001}}
    )
