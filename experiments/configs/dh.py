"""DH (Erin Liong et al., CVPR 2015): quantization + variance + weight orthogonality + decay.

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/dh.py:digits,bits=32 --workdir=runs/dh_digits_32

Expected on `digits` (query 100, database 1,697; tanh MLP 64-256-256-32, batch 50, Adam 1e-3,
200 steps, the best of 10 validation checkpoints): mAP over the whole database 0.103 / 0.103 /
0.103 for seed=0 / 1 / 2: the paper's objective gives every input the same code (chance level;
see dlhash_jax/methods/dh.py), below LSH (0.467 / 0.459 / 0.516). About 12 s of CPU time for
training and evaluation on 2 CPU cores (jax 0.10.2; DPSH's config: 11 s measured the same way).
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="dh",
        settings={
            "digits": {"optimizer.learning_rate": 1e-3, "num_epochs": 20, "eval_every": 20},
        },
    )
