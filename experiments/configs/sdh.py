"""SDH (Erin Liong et al., CVPR 2015): DH's quantization, variance, weight orthogonality and
decay + α·between/within-class scatter against a memory bank, with the paper's λ₁, λ₂, λ₃, α,
on standardised inputs (the recipe's fix for the paper's objective collapsing on raw pixels).

Command:

    .venv/bin/python -m experiments.train \
        --config=experiments/configs/sdh.py:digits,bits=32 --workdir=runs/sdh_digits_32

Expected on `digits` (query 100, database 1,697; standardised inputs, all-tanh MLP
64-512-512-32, batch 50, Adam 1e-3, 1,000 steps, the best of 10 validation checkpoints): mAP
over the whole database 0.816 / 0.847 / 0.898 for seed=0 / 1 / 2 (median 0.847); at seed 0,
0.904 with bits=16 and 0.884 with bits=64. About 17 s for training and evaluation, 22 s of
CPU time (2 CPU cores shared with other jobs; jax 0.10.2, CPU).

Why 512-512 rather than the protocol's 256-256: with the paper's hyper-parameters on
standardised inputs, 256-256 learns but some initialisations merge classes into shared codes
(see dlhash_jax/methods/sdh.py). What was measured, mAP at 32 bits, seeds 0 / 1 / 2 (and
3 / 4 / 5 in brackets), the paper's λ₁ = 100, λ₂ = 0.001, α = 1 unless stated, 600 steps
unless stated:

    raw inputs (the objective as it was, 300 steps)   0.103 / 0.103 / 0.103
    raw, α = 3                                        0.103 / 0.103 / 0.196
    raw, α = 10 (300 steps)                           0.432 (seed 0)
    raw, layers started from principal directions,
      widths 64-64 (300 steps)                        0.103 (seed 0)
    raw, quantization + variance ramped in over
      the first 300 steps                             0.790 / 0.632 / 0.689
    raw, 512-512                                      0.103 / 0.103
    standardised, 256-256                             0.806 / 0.635 / 0.416  (0.890 / 0.724 / 0.686)
      + α = 3                                         0.810 / 0.660 / 0.521
      + the 300-step ramp                             0.900 / 0.737 / 0.558  (0.898 / 0.899 / 0.800)
      + the ramp and α = 3                            0.908 / 0.757 / 0.560  (0.917 / 0.883 / 0.810)
      scatter only (no quantization, variance)        0.909 / 0.734 / 0.561  (0.916 / 0.889 / 0.820)
      + λ₂ = 1                                        0.822 / 0.579 / 0.457
      + λ₂ = 10                                       0.772 / 0.590 / 0.596
      + λ₂ = 100                                      0.779 / 0.733 / 0.717
      + Adam 3e-3                                     0.877 / 0.712 / 0.380
    standardised, no hidden layer                     0.729 / 0.735 / 0.696
    standardised, 64                                  0.561 / 0.672 / 0.463
    standardised, 512-512                             0.824 / 0.820 / 0.860  (0.911 / 0.885 / 0.885)
      1,000 steps (this config)                       0.816 / 0.847 / 0.898  (0.901 / 0.904 / 0.919)
    standardised, 1024-1024                           0.905 / 0.917 / 0.819  (0.933 / 0.913 / 0.877)

One seed is one draw of initial weights, and draws differ a lot at 256-256: the same
standardised 256-256 run with the parameters under another module name (so other initial
values) gave 0.880 / 0.797 / 0.772, and with α = 3 0.904 / 0.915 / 0.881 instead of 0.810 /
0.660 / 0.521. 512-512 was chosen because it learned at all six seeds (lowest 0.816) with the
paper's settings and no schedule; 1024-1024 did as well at three times the cost.

On `digits_mosaic` (32 bits; MLP 256-256-256-32, the common budget of 2,400 steps, Adam with cosine
decay unless stated): batch 50 at 3e-3, chosen on seed 0's validation split (validation mAP 0.533;
grid batch/rate: 50/3e-4 0.525, 50/1e-3 0.522, 50/3e-3 0.525, 200/1e-3 0.519, 200/3e-3 0.533). No
setting learns beyond 0.53: 512-512 (0.530), Adam 3e-4 (0.526), α = 10 (0.530); its variance and
quantization terms are unsupervised and the scatter term's similar pairs (45% of all, linked through
shared digits) cover nearly every item. mAP and NDCG@100 over seeds 0-2: RESULTS.md, multi-label
table.
"""

from experiments.configs import base


def get_config(argument="digits,bits=32"):
    return base.get_config(
        argument,
        method="sdh",
        settings={
            "digits": {
                "model.features": (512, 512),
                "optimizer.learning_rate": 1e-3,
                "num_epochs": 100,
            },
            # Chosen on seed 0's validation split (configs/base.py: mosaic_settings).
            "digits_mosaic": base.mosaic_settings(learning_rate=0.003, batch_size=50),
        },
    )
