"""kNN-graph hashing (He, 2018): inner-product loss against a two-hop kNN graph of the inputs.

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/knn_graph.py:digits,bits=32 \
        --workdir=runs/knn_graph_digits_32

Expected on `digits` (query 100, database 1,697; MLP 64-256-256-32, the graph over the 500
training items with K1 = 40, K2 = 5, each batch of 50 against a bank of every training output,
Adam 1e-3, 2,000 steps, the best of 20 validation checkpoints): mAP over the whole database
0.815 / 0.796 / 0.845 for seed=0 / 1 / 2 (median 0.815; RESULTS.md), above LSH
(0.467 / 0.459 / 0.516) and ITQ (about 0.65). About 5 s of training per run on 2 CPU cores
(jax 0.10.2). The earlier per-batch graph (K1 = 3, K2 = 2, 1,000 steps) gave 0.757 / 0.781 / 0.795.
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
