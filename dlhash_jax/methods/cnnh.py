"""CNNH: convolutional neural network hashing (Xia, Pan, Lai, Liu & Yan, AAAI 2014).

Survey §1 (reference [18]); a single-label method of §5.2, the first deep supervised one, and a
two-stage one:

1. *Approximate target codes.* With ``S_ij = +1`` for similar and ``−1`` for dissimilar training
   pairs, find ``H ∈ {−1, +1}^{n×q}`` with ``‖S − (1/q) H Hᵀ‖²_F`` small. CNNH relaxes ``H`` to
   ``[−1, 1]``, minimises ``‖H Hᵀ − q S‖²_F`` by random coordinate descent with Newton steps (one
   entry ``H_ij`` at a time, the step clipped to the box) and takes the signs:
   :func:`approximate_codes`.
2. *Learn the hash function.* A CNN whose output layer has one sigmoid unit per bit is trained
   to output each training image's target code; its codes are the thresholded outputs.

Stage 1 runs once before training, over the whole training split, as in the paper: the recipe's
``prepare`` builds ``S`` from the training labels (``+1`` where two items share a label, ``−1``
otherwise, so multi-label data works as it is), runs :func:`approximate_codes` and keeps the
``[N, L]`` target codes in the train state; the loss reads the rows of its batch
(``ctx.prepared["targets"][batch["index"]]``). Stage 1 is ``O(T·N²·L)`` on the host (a few seconds
for the 500 training items of ``digits``); ``S`` and ``H Hᵀ`` are ``[N, N]``, so it is meant for
training splits of up to some ten thousand items, as in the paper's experiments.

Stage 2 maps onto the catalogue as :func:`~dlhash_jax.losses.multilabel_bce_loss` of the hash
layer's pre-activations (the sigmoid units' logits) against the targets mapped to {0, 1} (survey
eq 21 with the bits as labels); ``codes.sign(pre)`` is the thresholded sigmoid.

Deviations from the paper:

- Coordinate steps: where the objective along the chosen entry is not convex at the current
  point (the Newton step would climb), or the clipped Newton step does not decrease it, we take
  the better end of the box if it decreases the objective and otherwise keep the entry; every
  accepted step decreases ``‖H Hᵀ − q S‖²``.
- Stage 2 loss: we fit the sigmoid outputs with the per-bit cross-entropy; the paper's exact
  fitting loss was not at hand (a public PyTorch re-implementation, swuxyj/DeepHash-pytorch,
  regresses the raw outputs to ``H`` with the mean squared error instead).
- Backbone: the paper's own 3-layer CNN on 32×32 images; we train the run config's backbone (an
  MLP on ``digits``). CNNH+ (class labels as extra outputs) is not this recipe.
- Optimiser and schedule: the run config chooses (Adam with a constant rate on ``digits``).
"""

from __future__ import annotations

import functools
import types

import numpy as np

from dlhash_jax import _checks
from dlhash_jax import losses
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import hash_network

CITATION = (
    "Rongkai Xia, Yan Pan, Hanjiang Lai, Cong Liu and Shuicheng Yan, 'Supervised hashing for "
    "image retrieval via image representation learning', AAAI 2014."
)

# T = 10 sweeps of stage 1, each over all n·q entries in a random order, as in the public
# PyTorch re-implementation (swuxyj/DeepHash-pytorch, CNNH.py `"T": 10`).
DEFAULT_HPARAMS = types.MappingProxyType({"stage1_sweeps": 10})

# Seed of stage 1's random start and visiting order; fixed, independent of the run seed.
STAGE1_SEED = 0


def approximate_codes(S, bits: int, *, num_sweeps: int = 10, seed: int = 0) -> np.ndarray:
    """CNNH stage 1: binary codes ``H`` whose scaled inner products approximate ``S``.

    Minimises ``f(H) = ‖H Hᵀ − q S‖²_F`` over ``H ∈ [−1, 1]^{n×q}`` by random coordinate
    descent, then returns ``sgn(H)`` (``sgn(0) = +1``). ``H`` starts uniform in ``[−1, 1]``;
    each sweep visits the ``n·q`` entries in a random order. Changing ``H_ij`` by ``d`` changes
    ``f`` by the quartic ``a d + b d² + 4 H_ij d³ + d⁴`` with ``a = 4 R_i·h_j`` and
    ``b = 2(‖h_j‖² + H_ij² + R_ii)`` (``R = H Hᵀ − q S``, ``h_j`` column ``j``): the paper's
    Newton step is ``d = −a / (2b)``, clipped to ``[−1 − H_ij, 1 − H_ij]``. Where ``b ≤ 0`` or
    that step does not decrease ``f``, the better end of the interval is taken if it decreases
    ``f``, else the entry is kept; ``R`` is updated in ``O(n)`` per step.

    Args:
      S: ``[n, n]`` symmetric target similarity, ``+1`` similar and ``−1`` dissimilar (any
        real values work; the diagonal is normally ``+1``).
      bits: ``q``, the code length.
      num_sweeps: ``T``, passes over all entries.
      seed: seed of the start and of the visiting orders.

    Returns:
      ``[n, q]`` float32 array with values in {−1, +1}.

    Raises:
      ValueError: if ``S`` is not a square matrix, or ``bits`` / ``num_sweeps`` is not a
        positive integer.

    Examples:
      >>> codes = approximate_codes(2 * np.eye(4) - 1, 8)
      >>> distances = (8 - codes @ codes.T) / 2
      >>> codes.shape, distances[~np.eye(4, dtype=bool)].min().item()
      ((4, 8), 5.0)
    """
    S = np.asarray(S, np.float64)
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"S must be a square [n, n] matrix, got shape {S.shape}.")
    _checks.check_int(bits, "bits")
    _checks.check_int(num_sweeps, "num_sweeps")
    n = S.shape[0]
    rng = np.random.default_rng(seed)
    H = rng.uniform(-1.0, 1.0, size=(n, bits))
    R = H @ H.T - bits * S

    def change(d, a, b, c):
        return d * (a + d * (b + d * (c + d)))

    for _ in range(num_sweeps):
        for flat in rng.permutation(n * bits):
            i, j = divmod(int(flat), bits)
            column = H[:, j]
            a = 4.0 * (R[i] @ column)
            b = 2.0 * (column @ column + H[i, j] ** 2 + R[i, i])
            c = 4.0 * H[i, j]
            low, high = -1.0 - H[i, j], 1.0 - H[i, j]
            step, gain = 0.0, 0.0
            if b > 0:
                newton = min(max(-a / (2.0 * b), low), high)
                step, gain = newton, change(newton, a, b, c)
            if gain >= 0:
                ends = [(change(d, a, b, c), d) for d in (low, high)]
                best_gain, best_end = min(ends)
                step = best_end if best_gain < 0 else 0.0
            if step == 0.0:
                continue
            R[i] += step * column
            R[:, i] += step * column
            R[i, i] += step * step
            H[i, j] += step
    return np.where(H >= 0, 1.0, -1.0).astype(np.float32)


def prepare(train_split, config) -> dict[str, np.ndarray]:
    """Stage 1 over the training split: ``{"targets": [N, L]}`` ±1 codes, one row per item.

    Args:
      train_split: the training split; ``labels`` ``[N, C]`` multi-hot.
      config: the resolved run config: ``bits`` and ``hparams.stage1_sweeps``.

    Returns:
      ``{"targets": float32 [N, bits]}``, :func:`approximate_codes` of ``S = 2·[Y Yᵀ > 0] − 1``
      with the fixed ``STAGE1_SEED``, so a resumed run computes the same codes.
    """
    labels = np.asarray(train_split.labels)
    similar = (labels @ labels.T) > 0
    targets = approximate_codes(
        np.where(similar, 1.0, -1.0),
        config.bits,
        num_sweeps=config.hparams.stage1_sweeps,
        seed=STAGE1_SEED,
    )
    return {"targets": targets}


def loss_fn(outputs, batch, ctx):
    """Per-bit cross-entropy of the hash layer's sigmoid outputs to the items' stage-1 codes.

    Args:
      outputs: model outputs on the local batch; ``"pre"`` ``[B, L]`` are the logits.
      batch: local batch with ``"index"`` ``[B]``, the items' rows in the training split.
      ctx: :class:`~dlhash_jax.methods.LossContext`; ``ctx.prepared["targets"]`` ``[N, L]`` are
        the stage-1 codes of :func:`prepare`.

    Returns:
      ``(loss, {"fit": ...})``.
    """
    targets = ctx.prepared["targets"][batch["index"]]
    fit = losses.multilabel_bce_loss(outputs["pre"], (targets + 1.0) / 2.0)
    return fit, {"fit": fit}


RECIPE = Recipe(
    name="cnnh",
    title="Convolutional neural network hashing",
    citation=CITATION,
    taxonomy=Taxonomy("single", "pairs"),
    # A backbone and a linear hash layer whose pre-activations are the sigmoid units' logits.
    make_model=functools.partial(hash_network, relaxation="none"),
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
    prepare=prepare,
)
