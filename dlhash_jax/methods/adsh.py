"""ADSH: asymmetric deep supervised hashing (Jiang & Li, AAAI 2018).

Single-label data, pairs. ADSH learns a network only for queries: the codes ``V`` of the
database items are variables learned directly, and the network's outputs ``U = tanh(F(x))`` of
a sample ``Ω`` of database items (playing the queries) are paired with the codes of the whole
database ``Γ``. The objective (paper eq 3, our orientation, ``c`` = code length ``L``):

    J = Σ_{i∈Ω} Σ_{j∈Γ} (u_iᵀ v_j − c S_ij)² + γ Σ_{i∈Ω} ‖v_i − u_i‖²,  V ∈ {−1, +1}^{|Γ|×c},

with ``S_ij = +1`` for a similar pair and ``−1`` otherwise (the authors' code softens the
dissimilar target to ``−r``, ``r`` = similar pairs / dissimilar pairs; see below). It is
minimised by alternation: the network by back-propagation with ``V`` fixed, for a few epochs
over ``Ω``; then ``V`` with the network fixed, bit by bit, each bit (column) set to its exact
minimiser given the others (paper eq 10): ``V_{·k} = −sgn(2 V̂_k Ûᵀ_k U_{·k} + Q_{·k})``
with ``Q = −2c SᵀU − 2γ Ū`` (``Ū``: ``U`` on the rows of ``Ω``, 0 elsewhere). At test time the queries are encoded by the
network and the database by ``V``.

How it maps onto the recipe contract and the catalogue:

- ``Γ`` is the training split (the items whose codes are learned) and ``Ω`` is all of it: the
  loop passes over the training split in batches (``N = 500`` on ``digits``, fewer than the
  paper's ``m = 2,000`` samples, so the paper would sample all of them too);
- ``U`` of the training items is the memory bank (``bank_output="relaxed"``, ``tanh`` outputs),
  refreshed for the batch rows at every step (the authors keep the outputs of the last epoch);
- ``V`` (with the value of ``J / N²`` after the update, for the log, and the dissimilar target)
  is the recipe's discrete variables (``discrete=DiscreteUpdate``): it starts at 0, as in the
  authors' code, and is replaced at the start of every ``inner_epochs``-th epoch (epoch 0
  included) by one sweep of :func:`dlhash_jax.discrete.bitwise_code_update` with ``G = UᵀU``
  and ``P = −Q/2 = c SᵀU + γ U`` (``S`` holding the targets, 1 or the dissimilar target),
  computed from the bank;
- the network's loss on a batch of ``n`` items is ``J`` restricted to the batch rows divided by
  ``n·N`` (the authors' normalisation), ``asymmetric_inner_product_loss(u, V, S, index; γ,
  dissimilar)``; its gradient is the authors' ``2 (u Vᵀ − c S) V + 2γ (u − V_Ω)`` over ``n·N``;
- evaluation: the database items that are training items take their learned codes ``V``
  (``DiscreteUpdate.train_codes``); the network encodes the other database items (the protocols'
  database is larger than the training split) and the queries. Validation ranks the validation
  items' network codes against ``V`` likewise. ``eval/metrics.json`` and ``report.md`` state it
  (``database_codes``).

Defaults: ``γ = 200`` and 3 epochs over ``Ω`` per update of ``V`` (``inner_epochs``), the
values of the paper and of the authors' code (jiangqy/ADSH-AAAI2018: ``gamma = 200``,
``maxIter = 3``; 50 outer iterations, ``m = 2,000``); ``soft_constraint=True``: the dissimilar
target ``−r`` of the authors' code (``calc_sim``: ``S (1 + r) − r``, ``r`` over the sampled
pairs; here over all pairs of the training split, ``r ≈ 0.11`` for ten balanced classes).

Deviations from the paper:

- ``Ω`` is the whole training split at every outer iteration instead of a fresh random sample
  of ``m = 2,000`` (equal when ``N ≤ m``, as on ``digits`` and ``mnist5k``); ``Γ`` is the
  training split, and database items outside it are encoded by the network.
- The first update of ``V`` is taken before the first epoch, from the untrained network's
  outputs; the paper first trains the network against ``V = 0``, where the pair term has no
  gradient and the quantization term only shrinks the outputs towards 0.
- The dissimilar target is the authors' code's ``−r`` rather than the paper's printed ``−1``
  (``soft_constraint=False`` gives the printed form). With ``−1`` each output is asked to be
  anti-correlated with the codes of all nine other classes at once, and ``V`` collapses towards
  one code: on ``digits`` at 32 bits, mAP 0.484 / 0.565 / 0.550 (seeds 0 / 1 / 2) against
  0.962 / 0.987 / 0.970 with ``−r`` (``experiments/configs/adsh.py``).
- Our backbone (an MLP on ``digits``) and optimizer replace the paper's CNN-F with SGD.
"""

from __future__ import annotations

import functools
import types

import jax.numpy as jnp

from dlhash_jax import discrete
from dlhash_jax import losses
from dlhash_jax import similarity
from dlhash_jax.methods._recipe import DiscreteUpdate
from dlhash_jax.methods._recipe import Recipe
from dlhash_jax.methods._recipe import Taxonomy
from dlhash_jax.methods._recipe import hash_network

CITATION = (
    "Qing-Yuan Jiang and Wu-Jun Li, 'Asymmetric deep supervised hashing', AAAI 2018 "
    "(arXiv:1707.08325; code github.com/jiangqy/ADSH-AAAI2018)."
)

# γ = 200 and 3 epochs per update of V: the paper's and the authors' code's values;
# soft_constraint: the dissimilar target −r of the authors' code (False: the paper's −1).
DEFAULT_HPARAMS = types.MappingProxyType(
    {"gamma": 200.0, "inner_epochs": 3, "soft_constraint": True}
)


def dissimilar_target(labels, *, soft_constraint: bool):
    """Target of a dissimilar pair in units of ``c``: ``−r`` (soft constraint) or ``−1``.

    ``r`` is the number of similar pairs divided by the number of dissimilar pairs among all
    pairs of the training items (the authors' ``calc_sim``: ``S (1 + r) − r``); 1 when no pair
    is dissimilar.

    Args:
      labels: ``[N, C]`` labels of the training items.
      soft_constraint: ``True`` for the authors' ``−r``, ``False`` for the paper's ``−1``.

    Returns:
      Float scalar.
    """
    if not soft_constraint:
        return jnp.asarray(-1.0, jnp.float32)
    pair_similarity = similarity.label_similarity(labels, labels)
    similar = jnp.sum(pair_similarity)
    dissimilar = pair_similarity.size - similar
    return -jnp.where(dissimilar > 0, similar / jnp.maximum(dissimilar, 1.0), 1.0)


def solve_database_codes(V, U, S, index, *, gamma, dissimilar):
    """ADSH's V-step: one sweep over the bits of ``V``, each set to its exact minimiser.

    Minimises ``‖U Vᵀ − c T‖² + γ Σ_i ‖v_{index_i} − u_i‖²`` over ``V ∈ {−1, +1}^{M×c}``, with
    ``T = dissimilar + (1 − dissimilar) S``, one bit at a time (paper eq 10): a
    :func:`~dlhash_jax.discrete.bitwise_code_update` with ``G = UᵀU`` and ``P = c TᵀU + γ Ū``.
    The objective never increases.

    Args:
      V: ``[M, c]`` current database codes (0 before the first update).
      U: ``[n, c]`` network outputs of the sampled items ``Ω``.
      S: ``[n, M]`` similarity (1 similar, 0 not) of the sampled items to the database.
      index: ``[n]`` rows of ``V`` of the sampled items.
      gamma: ``γ``.
      dissimilar: target of a dissimilar pair in units of ``c``.

    Returns:
      ``[M, c]`` codes in {−1, +1}.
    """
    U = jnp.asarray(U)
    num_bits = U.shape[1]
    target = dissimilar + (1.0 - dissimilar) * jnp.asarray(S, U.dtype)
    outputs_on_database = jnp.zeros(V.shape, U.dtype).at[index].add(U)  # Ū
    P = num_bits * target.T @ U + gamma * outputs_on_database
    return discrete.bitwise_code_update(V, U.T @ U, P)


def init_codes(ctx):
    """``V = 0`` (``[N, L]``, the authors' start), objective 0, and the dissimilar target."""
    outputs = ctx.bank.outputs
    soft = bool(ctx.hparams["soft_constraint"])
    return {
        "V": jnp.zeros(outputs.shape, outputs.dtype),
        "objective": jnp.zeros((), outputs.dtype),
        "dissimilar": dissimilar_target(ctx.bank.labels, soft_constraint=soft).astype(
            outputs.dtype
        ),
    }


def update_codes(variables, ctx):
    """The V-step with ``Ω = Γ`` = the training split, from the bank.

    See :func:`solve_database_codes`.
    """
    outputs, labels = ctx.bank.outputs, ctx.bank.labels
    index = jnp.arange(outputs.shape[0])
    pair_similarity = similarity.label_similarity(labels, labels)
    gamma, dissimilar = ctx.hparams["gamma"], variables["dissimilar"]
    V = solve_database_codes(
        variables["V"], outputs, pair_similarity, index, gamma=gamma, dissimilar=dissimilar
    )
    objective = losses.asymmetric_inner_product_loss(
        outputs, V, pair_similarity, index, gamma=gamma, dissimilar=dissimilar
    )
    return {"V": V, "objective": objective, "dissimilar": dissimilar}


def database_codes(variables):
    """The learned codes ``V`` of the training items, which evaluation puts in the database."""
    return variables["V"]


def loss_fn(outputs, batch, ctx):
    """``J`` on the batch rows against all ``N`` codes, divided by ``n·N`` (module docstring).

    Args:
      outputs: model outputs on the local batch; ``"relaxed"`` is ``u = tanh(F(x))`` ``[n, L]``.
      batch: local batch with ``"labels"`` ``[n, C]`` and ``"index"`` ``[n]``.
      ctx: :class:`~dlhash_jax.methods.LossContext`: ``ctx.discrete`` is ``{"V", "objective"}``
        (``V`` ``[N, L]``), ``ctx.bank.labels`` the training labels, ``ctx.hparams`` has
        ``gamma``.

    Returns:
      ``(loss, {"pairs", "quantization", "discrete_objective"})``: the mean of
      ``(u_iᵀv_j − c S_ij)²`` over the batch's pairs, the mean ``‖v_i − u_i‖²`` over the batch,
      and ``J / N²`` after the last update of ``V``.
    """
    u = outputs["relaxed"]
    V, dissimilar = ctx.discrete["V"], ctx.discrete["dissimilar"]
    pair_similarity = similarity.label_similarity(batch["labels"], ctx.bank.labels)
    loss = losses.asymmetric_inner_product_loss(
        u, V, pair_similarity, batch["index"], gamma=ctx.hparams["gamma"], dissimilar=dissimilar
    )
    return loss, {
        "pairs": losses.inner_product_loss(u, V, pair_similarity, dissimilar=dissimilar),
        "quantization": losses.quantization_loss(u, V[batch["index"]]),
        "discrete_objective": ctx.discrete["objective"],
    }


RECIPE = Recipe(
    name="adsh",
    title="Asymmetric deep supervised hashing",
    citation=CITATION,
    taxonomy=Taxonomy("single", "pairs"),
    # The network's outputs are u = tanh(F(x)).
    make_model=functools.partial(hash_network, relaxation="tanh"),
    loss_fn=loss_fn,
    default_hparams=DEFAULT_HPARAMS,
    bank_output="relaxed",
    discrete=DiscreteUpdate(
        init=init_codes,
        update=update_codes,
        every_epochs=lambda hparams: int(hparams["inner_epochs"]),
        train_codes=database_codes,
    ),
)
