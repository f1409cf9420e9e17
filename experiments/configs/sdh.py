"""SDH (Erin Liong et al., CVPR 2015): DH's quantization, variance, weight orthogonality and
decay + α·between/within-class scatter against a memory bank, with the paper's λ₁, λ₂, λ₃, α.

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/sdh.py:digits,bits=32 --workdir=runs/sdh_digits_32

Expected on `digits` (query 100, database 1,697; all-tanh MLP 64-256-256-32, batch 50, Adam
1e-3, 300 steps, the best of 3 validation checkpoints): mAP over the whole database 0.103 /
0.103 / 0.103 for seed=0 / 1 / 2, about 3 s for training and evaluation in a single-threaded
worker of experiments.reproduce (3.1-3.3 s of CPU time; jax 0.10.2, CPU). The method does
not reach the 0.80 bar with the paper's settings: within a few dozen steps every item gets the
same code (0.103 is the mAP of a constant code, the share of relevant items), see
dlhash_jax/methods/sdh.py. What was tried, seed 0, 32 bits, each ending in that collapse:
Adam at 1e-5, 1e-4, 1e-3, 1e-2 (at 1e-5 it takes about 200 steps); SGD with
momentum at 0.01 and 0.1; widths (64,) and (256, 256); the ConvNet backbone; batch 250;
the objective normalised by the batch size (this recipe, as DH), by the training-set size, and
unnormalised. The scatter term alone (no quantization or variance) trains without collapsing
but reaches only 0.66: it asks each bit for some balanced split of the classes and nothing
makes the bits differ. The untrained network scores about 0.3 on validation.
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="sdh",
        settings={
            "digits": {"optimizer.learning_rate": 1e-3, "num_epochs": 30},
        },
    )
