"""kNN-graph hashing (He, 2018): inner-product loss against a two-hop kNN graph of the inputs.

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/knn_graph.py:digits,bits=32 \
        --workdir=runs/knn_graph_digits_32

Expected on `digits` (query 100, database 1,697; MLP 64-256-256-32, per-batch graph with K1 = 3,
K2 = 2, batch 50, Adam 1e-3, 1,000 steps, the best of 10 validation checkpoints): mAP over the
whole database 0.757 / 0.781 / 0.795 for seed=0 / 1 / 2 (median 0.781), above LSH
(0.467 / 0.459 / 0.516). About 12 s of CPU time for training and evaluation on 2 CPU cores
(jax 0.10.2; DPSH's config: 11 s measured the same way).
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="knn_graph",
        settings={
            "digits": {"optimizer.learning_rate": 1e-3, "num_epochs": 200},
        },
    )
