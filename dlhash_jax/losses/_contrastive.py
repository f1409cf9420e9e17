"""Terms over two augmented views of a batch: NT-Xent between their codes, KL between their bits.

Not in the survey's catalogue. Contrastive hashing (CIBHash, Qiu et al., IJCAI 2021) encodes
two random views of every training image; row ``i`` of ``A1`` and row ``i`` of ``A2`` come from
the same image, every other pair of rows from different images. :func:`nt_xent_loss` pulls the
two views of an image together against the other ``2(N − 1)`` views of the batch (SimCLR's
loss, applied to the codes themselves); :func:`symmetric_bernoulli_kl_loss` makes the bit
distributions of the two views agree, CIBHash's bound on the information the code keeps about
the view beyond the image (the compression side of its information bottleneck).
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

from dlhash_jax.losses._validation import check_rank


def _check_pair(a1, a2, names: tuple[str, str]) -> None:
    """Two ``[N, L]`` matrices of one shape (row i of each: the two views of item i)."""
    check_rank(a1, 2, names[0], "[N, L]")
    check_rank(a2, 2, names[1], "[N, L]")
    if jnp.shape(a1) != jnp.shape(a2):
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape [N, L] (row i of each: two "
            f"views of item i), got shapes {jnp.shape(a1)} and {jnp.shape(a2)}."
        )


def _check_temperature(temperature) -> None:
    """Raises ValueError unless ``temperature`` is a positive real; traced: a scalar."""
    if isinstance(temperature, jax.Array):
        if jnp.ndim(temperature) != 0:
            raise ValueError(f"temperature must be a scalar, got shape {jnp.shape(temperature)}.")
        return
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, numbers.Real)
        or not temperature > 0
        or temperature == float("inf")
    ):
        raise ValueError(f"temperature must be a positive real number, got {temperature!r}.")


def nt_xent_loss(
    A1: jax.typing.ArrayLike, A2: jax.typing.ArrayLike, *, temperature: float
) -> jax.Array:
    """NT-Xent: softmax cross-entropy of each view against its partner among the batch's views.

    Stack the views, ``V = [A1; A2]`` (``2N`` rows), and let ``c_kl = cos(v_k, v_l) / τ``. Row
    ``k``'s partner ``p(k)`` is the other view of the same item (``k ± N``); the loss is

        (1/2N) Σ_k −log( exp(c_{k,p(k)}) / Σ_{l ≠ k} exp(c_kl) ),

    the mean over the ``2N`` anchors; the denominator runs over the partner and the
    ``2(N − 1)`` views of the other items. For ±1 codes ``cos(b, b') = 1 − 2 d_H(b, b') / L``,
    so the loss ranks Hamming distances directly. ``N = 1`` has no negatives and gives 0.
    Computed as ``logsumexp`` over each row of ``c`` with the diagonal masked to ``−∞``, minus
    the partner's entry; the norms in the cosine are clipped at ``√eps`` of the dtype, so a zero
    row gives finite values and gradients. (``optax.losses.ntxent`` with one label per item
    gives the same value, but its gradient is NaN once the other items' exponentials underflow,
    e.g. for ``τ ≲ 0.01``.)

    CIBHash (Qiu et al., IJCAI 2021) applies it to the sampled codes of two augmented views,
    without SimCLR's projection head, so the contrast acts on the codes that are retrieved; the
    authors' code (qiuzx2/CIBHash, ``NtXentLoss``) takes the same reduction.

    References:
      Chen, Kornblith, Norouzi & Hinton, "A simple framework for contrastive learning of visual
      representations", ICML 2020; Qiu, Su, Ou, Yu & Chen, "Unsupervised hashing with
      contrastive information bottleneck", IJCAI 2021.

    Args:
      A1: ``[N, L]`` outputs (codes) of the first view of N items.
      A2: ``[N, L]`` outputs of the second view, row i the same item as row i of ``A1``.
      temperature: ``τ > 0`` (keyword-only); a traced scalar is accepted unchecked.

    Returns:
      Float scalar (≥ 0).

    Raises:
      ValueError: if ``A1`` or ``A2`` is not ``[N, L]``, their shapes differ, or
        ``temperature`` is not a positive real number (or, traced, not a scalar).

    Examples:
      >>> b = jnp.array([[1.0, 1.0], [1.0, -1.0]])
      >>> # Each anchor: partner cos 1, the other item's two views cos 0: log(1 + 2/e).
      >>> round(float(nt_xent_loss(b, b, temperature=1.0)), 6)
      0.551445
    """
    _check_temperature(temperature)
    _check_pair(A1, A2, ("A1", "A2"))
    dtype = jnp.result_type(A1, A2, jnp.float32)
    views = jnp.concatenate([jnp.asarray(A1, dtype), jnp.asarray(A2, dtype)], axis=0)
    n = jnp.shape(A1)[0]
    # Norms clipped away from 0: a zero row has cosine 0 with everything instead of NaN.
    squared = jnp.sum(views**2, axis=1, keepdims=True)
    unit = views * jax.lax.rsqrt(jnp.maximum(squared, jnp.finfo(dtype).eps))
    logits = unit @ unit.T / temperature
    # An anchor is not its own negative: −∞ on the diagonal drops it from the logsumexp.
    logits = jnp.where(jnp.eye(2 * n, dtype=bool), -jnp.inf, logits)
    partners = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(n)])
    positive = jnp.take_along_axis(logits, partners[:, None], axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - positive)


def symmetric_bernoulli_kl_loss(
    Z1: jax.typing.ArrayLike, Z2: jax.typing.ArrayLike, *, stop_gradient: bool = True
) -> jax.Array:
    """Symmetrised KL divergence between the bits' Bernoulli distributions under two views.

    With ``q_ij = σ(Z1_ij)`` and ``r_ij = σ(Z2_ij)`` the probabilities that bit ``j`` of item
    ``i`` is 1 under each view,

        (1/2N) Σ_ij [KL(Bern(q_ij) ‖ Bern(r_ij)) + KL(Bern(r_ij) ‖ Bern(q_ij))],

    ``KL(Bern(q) ‖ Bern(r)) = q log(q/r) + (1 − q) log((1 − q)/(1 − r))``: a sum over bits, a
    mean over items. It is 0 when both views give every bit the same probability. Computed from
    the logits with ``log σ(z)`` and ``log σ(−z)``, so it is finite with a finite gradient for
    any logits (no ``log 0``, no ε).

    ``stop_gradient=True`` (the default, as CIBHash's authors' code, ``compute_kl``) treats the
    second argument of each KL as a fixed target: the gradient with respect to ``Z1`` is
    ``σ'(Z1) (Z1 − Z2) / (2N)`` (each view is pulled towards the other, not the reverse), and
    symmetrically for ``Z2``. ``False`` differentiates both arguments (the value is the same).

    CIBHash (Qiu et al., IJCAI 2021) adds ``β`` times this term to :func:`nt_xent_loss` of the
    two views' codes: following the multi-view information bottleneck, it bounds the
    information the code keeps about the view that the other view does not share.

    References:
      Qiu, Su, Ou, Yu & Chen, "Unsupervised hashing with contrastive information bottleneck",
      IJCAI 2021; Federici et al., "Learning robust representations via multi-view information
      bottleneck", ICLR 2020.

    Args:
      Z1: ``[N, L]`` logits of the bits under the first view (``q = σ(Z1)``).
      Z2: ``[N, L]`` logits under the second view, row i the same item.
      stop_gradient: treat the target of each KL as a constant (keyword-only, static).

    Returns:
      Float scalar (≥ 0).

    Raises:
      ValueError: if ``Z1`` or ``Z2`` is not ``[N, L]`` or their shapes differ.

    Examples:
      >>> z = jnp.array([[0.0, 2.0]])
      >>> float(symmetric_bernoulli_kl_loss(z, z))
      0.0
      >>> # q = 0.75 against r = 0.5: KL = 0.130812 one way, 0.143841 the other.
      >>> round(float(symmetric_bernoulli_kl_loss(jnp.log(jnp.array([[3.0]])),
      ...                                         jnp.zeros((1, 1)))), 6)
      0.137327
    """
    _check_pair(Z1, Z2, ("Z1", "Z2"))
    dtype = jnp.result_type(Z1, Z2, jnp.float32)
    Z1, Z2 = jnp.asarray(Z1, dtype), jnp.asarray(Z2, dtype)

    def kl(z, target):
        if stop_gradient:
            target = jax.lax.stop_gradient(target)
        q = jax.nn.sigmoid(z)
        # q (log q − log r) + (1 − q)(log(1 − q) − log(1 − r)), every log from the logits.
        log_ratio_one = jax.nn.log_sigmoid(z) - jax.nn.log_sigmoid(target)
        log_ratio_zero = jax.nn.log_sigmoid(-z) - jax.nn.log_sigmoid(-target)
        return jnp.sum(q * log_ratio_one + (1 - q) * log_ratio_zero)

    return (kl(Z1, Z2) + kl(Z2, Z1)) / (2 * Z1.shape[0])
