"""CIBHash (Qiu et al., IJCAI 2021): NT-Xent (τ = 0.3) between the sampled codes of two augmented
views of every image, plus β = 0.001 times the symmetrised KL between the views' bit
distributions; no labels.

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/cibhash.py:digits,bits=32 --workdir=runs/cibhash_digits_32

(per seed: `--config=experiments/configs/cibhash.py:digits,bits=32,seed=S --workdir=/tmp/cib_S`).

Expected on `digits` (query 100, database 1,697; MLP 64-256-256 and a 32-bit hash layer trained
from scratch, batch 64, Adam 1e-3, 1,500 epochs = 10,500 steps, the best of 11 validation
checkpoints; views: random resized crops of 50-100 % of the area and Gaussian noise of standard
deviation 0.3, codes sampled from Bernoulli(σ(z))): mAP over the whole database 0.855 / 0.855 /
0.878 for seed=0 / 1 / 2 (median 0.855), against ITQ 0.654 / 0.631 / 0.671 (median 0.654) and
LSH 0.467 / 0.459 / 0.516 for the same splits (`dlhash_jax.experiment.evaluate_baseline`). About
30 s of CPU time for training and evaluation on 2 CPU cores (jax 0.10.2, CPU).

On `mnist5k` (`mnist5k,bits=32,seed=S`; ConvNet 8-16 channels), 200 epochs = 3,000 steps gave mAP
0.492 / 0.518 / 0.496 for seed=0 / 1 / 2 (median 0.496), against ITQ 0.433 / 0.440 / 0.429 and
LSH 0.284 / 0.265 / 0.285, at 2 min per run. To fit the results tables' time budget this config
trains 100 epochs = 1,500 steps there (seed 0's validation mAP at steps 500 / 1,000 / 1,500 /
2,000 / 3,000: 0.298 / 0.424 / 0.468 / 0.487 / 0.494), about 80 s per run, for mAP 0.368 / 0.393 /
0.417 (below ITQ there); the MLP learns less from the views (validation mAP 0.262 after 900
steps). Results at 32 bits: RESULTS.md, "Unsupervised results on mnist5k".
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="cibhash",
        settings={
            # The authors' Adam at 1e-3 and batch 64 (qiuzx2/CIBHash, model/base_model.py). Their
            # 60 epochs of 5,000 images on a frozen VGG-16 are about 4,700 steps; a network trained
            # from scratch needs more (digits, seed 0, validation mAP: 0.835 after 4,900 steps,
            # 0.862 after 10,500).
            "*": {"optimizer.learning_rate": 1e-3, "batch_size": 64},
            "digits": {"num_epochs": 1500, "eval_every": 1000, "checkpoint_every": 3500},
            "mnist5k": {"num_epochs": 100, "eval_every": 500, "checkpoint_every": 1500},
        },
    )
