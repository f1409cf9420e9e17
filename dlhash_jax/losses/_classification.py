"""Classification terms: the labels supervise the codes through a classifier on top of them.

Survey §4.4 (eq 20-22) and §5.2.1 (eq 26). Labels follow the library's convention: a float
``[N, C]`` matrix, one-hot for single-label data and multi-hot for multi-label data, exactly as
``dlhash_jax.data.batches`` yields them, so no term needs integer class ids. Shapes are checked at
trace time; label *values* are not (they are traced under ``jit``), so each docstring says what a
row must hold.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from dlhash_jax.losses._validation import check_rank, check_same_rows


def _check_logits_and_labels(logits, labels, labels_name: str) -> None:
    check_rank(logits, 2, "logits", "[N, C]")
    check_rank(labels, 2, labels_name, "[N, C]")
    if jnp.shape(labels) != jnp.shape(logits):
        raise ValueError(
            f"{labels_name} must have the shape of logits, [N, C] = {jnp.shape(logits)}, got "
            f"{jnp.shape(labels)} (one column per class, one row per sample)."
        )


def _float_pair(logits, labels) -> tuple[jax.Array, jax.Array]:
    dtype = jnp.result_type(logits, jnp.float32)
    return jnp.asarray(logits, dtype), jnp.asarray(labels, dtype)


def softmax_loss(logits: jax.typing.ArrayLike, labels: jax.typing.ArrayLike) -> jax.Array:
    """Softmax cross-entropy of a classifier, mean over samples.

    ``−(1/N) Σ_i Σ_c q_ic log softmax(z_i)_c`` (``optax.losses.softmax_cross_entropy``) with the
    target ``q_i = y_i / Σ_c y_ic``: a one-hot row (or any probability row) is used as it is, a
    multi-hot row becomes the uniform distribution over its labels, and a row without labels
    contributes 0 (it still counts in the mean).

    Survey eq 20 (§4.4), printed for single-label data with the logits of a linear layer
    ``W_yᵀ x_i``; ``logits`` here is whatever the classifier head outputs.

    References:
      Lin, Yang, Hsiao & Chen, "Deep learning of binary hash codes for fast image retrieval"
      (DLBHC), CVPR Workshops 2015; Yang, Lin & Chen, "Supervised learning of
      semantics-preserving hashing via deep neural networks" (SSDH), TPAMI 2018.

    Args:
      logits: ``[N, C]`` unnormalised class scores.
      labels: ``[N, C]`` one-hot (or multi-hot, or probability) rows, non-negative.

    Returns:
      Float scalar (≥ 0).

    Raises:
      ValueError: if ``logits`` is not ``[N, C]`` or ``labels`` has a different shape.

    Examples:
      >>> round(float(softmax_loss(jnp.zeros((1, 4)), jnp.array([[0.0, 1.0, 0.0, 0.0]]))), 6)
      1.386294
    """
    _check_logits_and_labels(logits, labels, "labels")
    logits, labels = _float_pair(logits, labels)
    mass = jnp.sum(labels, axis=1, keepdims=True)
    # An unlabelled row has no target; dividing by 1 keeps it all-zero instead of 0/0.
    target = labels / jnp.where(mass > 0, mass, 1.0)
    return jnp.mean(optax.losses.softmax_cross_entropy(logits, target))


def multilabel_bce_loss(logits: jax.typing.ArrayLike, Y: jax.typing.ArrayLike) -> jax.Array:
    """Independent sigmoid cross-entropy per label, summed over labels, mean over samples.

    ``(1/N) Σ_i Σ_c −[y_ic log σ(z_ic) + (1 − y_ic) log(1 − σ(z_ic))]``, through
    ``optax.losses.sigmoid_binary_cross_entropy``, which works in log-sigmoid form and stays
    finite for any logit.

    Survey eq 21 (§4.4), printed for one sample with predicted probabilities ``p̂``; we take
    logits (so ``log p̂`` is never ``log 0``) and average over the batch.

    References:
      Chen et al., "Order-sensitive deep hashing for multimorbidity medical image retrieval",
      MICCAI 2018 (multi-label classification term beside the ranking loss).

    Args:
      logits: ``[N, C]`` unnormalised per-label scores.
      Y: ``[N, C]`` multi-hot labels in {0, 1} (any real, int or bool dtype).

    Returns:
      Float scalar (≥ 0).

    Raises:
      ValueError: if ``logits`` is not ``[N, C]`` or ``Y`` has a different shape.

    Examples:
      >>> round(float(multilabel_bce_loss(jnp.zeros((1, 2)), jnp.array([[1.0, 0.0]]))), 6)
      1.386294
    """
    _check_logits_and_labels(logits, Y, "Y")
    logits, Y = _float_pair(logits, Y)
    return jnp.mean(jnp.sum(optax.losses.sigmoid_binary_cross_entropy(logits, Y), axis=1))


def linear_classification_loss(
    B: jax.typing.ArrayLike, Y: jax.typing.ArrayLike, W: jax.typing.ArrayLike
) -> jax.Array:
    """Codes as features of a linear classifier that regresses the labels.

    ``(1/N) ‖Y − B W‖²_F``: row ``i`` of ``B W`` should reproduce the label vector ``y_i``.

    Survey eq 22 (§4.4), printed as ``‖Y − BW‖²`` (a sum over samples); we take the mean over
    samples so the weight of the term does not depend on the batch size. ``B`` may be codes
    (as in the discrete methods, which solve for ``B`` and ``W`` in turn) or relaxed outputs.

    References:
      Zhou et al., "Graph convolutional network hashing", IEEE Transactions on Cybernetics
      2018; Shen et al., "Supervised discrete hashing", CVPR 2015 (the original form).

    Args:
      B: ``[N, L]`` codes in {-1, +1} or real network outputs.
      Y: ``[N, C]`` labels (one-hot or multi-hot).
      W: ``[L, C]`` classifier weights.

    Returns:
      Float scalar (≥ 0).

    Raises:
      ValueError: if ``B`` is not ``[N, L]``, ``Y`` is not ``[N, C]`` with the same ``N``, or
        ``W`` is not ``[L, C]``.

    Examples:
      >>> b = jnp.array([[1.0, -1.0]])
      >>> float(linear_classification_loss(b, jnp.array([[1.0, 0.0]]), jnp.eye(2)))
      1.0
    """
    check_rank(B, 2, "B", "[N, L]")
    check_rank(Y, 2, "Y", "[N, C]")
    check_rank(W, 2, "W", "[L, C]")
    check_same_rows(B, Y, ("B", "Y"))
    expected = (jnp.shape(B)[1], jnp.shape(Y)[1])
    if tuple(jnp.shape(W)) != expected:
        raise ValueError(
            f"W must have shape [L, C] = {expected} for B of shape {jnp.shape(B)} and Y of "
            f"shape {jnp.shape(Y)}, got {jnp.shape(W)}."
        )
    dtype = jnp.result_type(B, W, jnp.float32)
    B, Y, W = (jnp.asarray(x, dtype) for x in (B, Y, W))
    return jnp.sum((Y - B @ W) ** 2) / B.shape[0]


def hinge_softmax_loss(
    logits: jax.typing.ArrayLike, labels: jax.typing.ArrayLike, *, margin: float
) -> jax.Array:
    """Softmax loss that stops once the true class wins by a probability margin.

    With ``p = softmax(z_i)`` and true class ``y``, a sample costs 0 when
    ``p_y ≥ max_{c≠y} p_c + m`` and ``−log p_y`` otherwise; the result is the mean over samples.
    ``log p_y`` comes from ``log_softmax``, so it is finite for any logits. The cost jumps at the
    threshold; its gradient is that of ``−log p_y`` on one side and 0 on the other.

    Survey eq 26 (§5.2.1), as printed, averaged over the batch.

    References:
      Guo, Zhang & Li, "Hash learning with convolutional neural networks for semantic based
      image retrieval", PAKDD 2016.

    Args:
      logits: ``[N, C]`` unnormalised class scores.
      labels: ``[N, C]`` one-hot rows; the true class of a row is its largest entry (the first
        one on ties), since this term is defined for single-label data.
      margin: ``m``, a probability gap in ``[0, 1)``.

    Returns:
      Float scalar (≥ 0).

    Raises:
      ValueError: if ``logits`` is not ``[N, C]`` or ``labels`` has a different shape.

    Examples:
      >>> logits = jnp.log(jnp.array([[0.7, 0.2, 0.1], [0.5, 0.4, 0.1]]))
      >>> labels = jnp.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
      >>> round(float(hinge_softmax_loss(logits, labels, margin=0.3)), 6)  # (0 - log 0.5) / 2
      0.346574
    """
    _check_logits_and_labels(logits, labels, "labels")
    logits, labels = _float_pair(logits, labels)
    true_class = jax.nn.one_hot(jnp.argmax(labels, axis=1), logits.shape[1], dtype=bool)
    log_p = jax.nn.log_softmax(logits, axis=1)
    log_p_true = jnp.sum(jnp.where(true_class, log_p, 0.0), axis=1)
    # -inf for the true class, so a single-class problem (no rival) always meets the margin.
    best_rival = jnp.max(jnp.where(true_class, -jnp.inf, jnp.exp(log_p)), axis=1)
    satisfied = jnp.exp(log_p_true) >= best_rival + margin
    return jnp.mean(jnp.where(satisfied, 0.0, -log_p_true))
