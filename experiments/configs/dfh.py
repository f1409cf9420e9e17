"""DFH (Li, Pei, Zha & van Gemert, BMVC 2019): margin likelihood (m = 3) against a memory bank, plus
the quantization towards codes pushed by binary class centres fitted with the Fisher objective.

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/dfh.py:digits,bits=32 --workdir=runs/dfh_digits_32

Expected on `digits` (query 100, database 1,697; MLP 64-256-256-32, batch 50, Adam 1e-3, 2,000
steps, the best of 20 validation checkpoints): mAP over the whole database 0.957 / 0.969 / 0.964
for seed=0 / 1 / 2 (median 0.964), about 15 s for training and evaluation on 2 CPU cores
(jax 0.10.2, CPU; measured on a shared machine and scaled by DPSH's time in the same conditions).
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="dfh",
        settings={
            # Adam at 1e-3, as for DPSH and HashNet on digits: the authors fine-tune a
            # pre-trained AlexNet with SGD (1e-2, momentum 0.9), which does not transfer
            # to an MLP trained from scratch.
            "digits": {"optimizer.learning_rate": 1e-3},
        },
    )
