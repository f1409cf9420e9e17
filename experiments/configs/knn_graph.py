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

On `mnist5k` (1,000 training items; seed 0, 32 bits, an MLP 784-256-256-32, Adam 1e-3) the bank
of training outputs is stale with the protocol's batch of 50: a row is refreshed once every
1,000 / 50 = 20 steps, and the codes fit targets made by older networks (the mechanism
configs/dpsh.py measures for DPSH). Best validation mAP against the steps between refreshes of a
row (batch 50, 200, 500, 1,000 = every row fresh at every step): 0.208, 0.331, 0.447, 0.592
(test mAP 0.206, 0.323, 0.441, 0.574; ITQ 0.433, LSH 0.284). The protocol's ConvNet with batch 50
gives 0.187. This config therefore trains on `mnist5k` with the whole training set as the batch,
300 steps (validation mAP 0.576 at step 200, 0.592 at 300, 0.590 at 400), about 30 s per run.
Results at 32 bits: RESULTS.md, "Unsupervised results on mnist5k".
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="knn_graph",
        settings={
            "digits": {"optimizer.learning_rate": 1e-3, "num_epochs": 200},
            # One batch of all 1,000 training items: every bank row fresh at every step.
            "mnist5k": {
                "model.backbone": "mlp",
                "optimizer.learning_rate": 1e-3,
                "batch_size": 1000,
                "num_epochs": 300,
                "eval_every": 50,
                "checkpoint_every": 150,
            },
        },
    )
