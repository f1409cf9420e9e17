"""Relaxations of ``sgn``: straight-through sign, BiHalf's batch split, scaled tanh, and
β-continuation schedules; and the gradient reversal of adversarial terms.

Survey §4.5. ``sgn`` has zero gradient almost everywhere, so a network that ends in it cannot be
trained by back-propagation. The two families here either keep the exact ``sgn`` in the forward
pass and substitute a surrogate gradient (:func:`sign_ste`; :func:`bihalf_sign`, whose forward
pass splits each bit at the batch median), or replace ``sgn`` by a smooth
function that approaches it as a sharpness ``β`` grows (:func:`scaled_tanh`, with ``β`` raised
during training by :func:`continuation_schedule`, the HashNet recipe).

:func:`gradient_reversal` is the other surrogate derivative the recipes need: the identity in
the forward pass and a negated derivative in the backward pass, which turns the minimax game of
an adversarial regulariser (TBH) into one loss for one optimizer.
"""

from __future__ import annotations

import functools
import math
import numbers

import jax
import jax.numpy as jnp
import optax

from dlhash_jax import codes


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _sign_ste(x: jax.Array, clipped: bool) -> jax.Array:
    return codes.sign(x)


@_sign_ste.defjvp
def _sign_ste_jvp(clipped: bool, primals, tangents):
    (x,), (t,) = primals, tangents
    if clipped:
        t = jnp.where(jnp.abs(x) <= 1, t, jnp.zeros_like(t))
    return codes.sign(x), t


def sign_ste(x: jax.typing.ArrayLike, *, clipped: bool = False) -> jax.Array:
    """``sgn`` in the forward pass, a straight-through gradient in the backward pass.

    The forward value is exactly :func:`dlhash_jax.codes.sign` (``sgn(0) = +1``), so the codes
    a network trains with are the codes it retrieves with. The derivative is replaced by 1
    (identity), or with ``clipped=True`` by ``1[|x| <= 1]``, the derivative of the hard tanh
    ``clip(x, -1, 1)``: outputs already far past ±1 stop receiving gradient, which keeps them
    from growing without bound.

    Survey §4.5 lists smooth relaxations only; the straight-through estimator is the other
    standard way to train through ``sgn`` and is added here. Implemented with
    ``jax.custom_jvp``, so it works under ``jit``, ``vmap``, ``grad`` and forward-mode ``jvp``;
    the forward value is computed exactly rather than as ``x + stop_gradient(sgn(x) - x)``,
    which can be off by one rounding error.

    References:
      Bengio, Léonard & Courville, "Estimating or propagating gradients through stochastic
      neurons for conditional computation", arXiv:1308.3432, 2013 (identity estimator);
      Hubara et al., "Binarized neural networks", NeurIPS 2016 (the clipped estimator).

    Args:
      x: real array of any shape, typically ``[N, L]`` pre-activation outputs.
      clipped: pass gradient only where ``|x| <= 1``.

    Returns:
      Array of the shape and dtype of ``x`` with values in {-1, +1}.

    Examples:
      >>> sign_ste(jnp.array([-0.5, 0.0, 2.0]))
      Array([-1.,  1.,  1.], dtype=float32)
      >>> jax.grad(lambda x: sign_ste(x, clipped=True).sum())(jnp.array([-0.5, 0.0, 2.0]))
      Array([1., 1., 0.], dtype=float32)
    """
    return _sign_ste(jnp.asarray(x), bool(clipped))


def _half_split(u: jax.Array) -> jax.Array:
    """Per column, ``+1`` for the ``⌊N/2⌋`` largest entries and ``−1`` for the others."""
    n = u.shape[0]
    # The rank of each entry in its column, largest first; equal values rank by row (stable).
    order = jnp.argsort(-u, axis=0, stable=True)
    rank = jnp.argsort(order, axis=0, stable=True)
    return jnp.where(rank < n // 2, 1.0, -1.0).astype(u.dtype)


@jax.custom_vjp
def _bihalf_sign(u: jax.Array, gamma: jax.Array) -> jax.Array:
    return _half_split(u)


def _bihalf_sign_fwd(u, gamma):
    b = _half_split(u)
    return b, (u, b, gamma)


def _bihalf_sign_bwd(residuals, g):
    u, b, gamma = residuals
    # The authors' backward: the cotangent passed straight through, plus the gradient of the
    # quantization penalty (γ / 2NL) ‖U − B‖² with B held fixed.
    return g + gamma * (u - b) / u.size, jnp.zeros_like(gamma)


_bihalf_sign.defvjp(_bihalf_sign_fwd, _bihalf_sign_bwd)


def bihalf_sign(u: jax.typing.ArrayLike, *, gamma: jax.typing.ArrayLike = 6.0) -> jax.Array:
    """BiHalf's binarisation: each bit splits the batch in half at its median.

    Forward: for every bit (column ``k`` of ``U``), the ``⌊N/2⌋`` samples of the batch with the
    largest ``U_ik`` get ``B_ik = +1`` and the other ``⌈N/2⌉`` get ``−1`` (equal values are
    ranked by row, the earlier row first), so every bit is ``+1`` on half the batch: the
    maximum-entropy code distribution. This is the optimal transport of the batch's values of
    each bit onto the half-half distribution of ``{−1, +1}`` (the sorted assignment).

    Backward (reverse mode only; ``jax.custom_vjp``): with ``G = ∂L/∂B`` the cotangent of the
    output,

        ∂L/∂U = G + (γ / (N·L)) (U − B),

    the straight-through gradient plus that of a quantization penalty ``(γ / 2NL) ‖U − B‖²_F``
    with ``B`` held fixed, which pulls the continuous values towards their codes (the paper's
    penalised Wasserstein objective). The extra term does not depend on ``G``: it is added
    once per backward pass through the layer, however the loss is scaled, as in the authors'
    PyTorch layer; a cotangent that is symbolically zero (the output unused) skips it.

    Not in the survey (§4.5 lists smooth relaxations only). The batch statistics make the codes
    of an item depend on the rest of its batch; the paper binarises test items with
    ``sgn(U)`` (:func:`dlhash_jax.codes.sign`), as this library's evaluation does.

    References:
      Yunqiang Li & Jan van Gemert, "Deep unsupervised image hashing by maximizing bit
      entropy", AAAI 2021 (arXiv:2012.12334); the ``γ`` scaling ``(U − B) / (N·L)`` and
      ``γ = 6`` (image hashing; 1 for the MNIST autoencoder) are those of the authors' code
      (liyunqianggyn/Deep-Unsupervised-Image-Hashing, ``ImageHashing/*.py``).

    Args:
      u: ``[N, L]`` continuous outputs of a batch (``N ≥ 2``).
      gamma: non-negative weight ``γ`` of the quantization gradient (keyword-only); a traced
        scalar is accepted unchecked. ``γ = 0`` is the plain straight-through gradient.

    Returns:
      ``[N, L]`` codes in {−1, +1}, of the dtype of ``u`` (float32 for integer input).

    Raises:
      ValueError: if ``u`` is not ``[N, L]`` with ``N ≥ 2``, or ``gamma`` is not a non-negative
        real number (or, traced, not a scalar).

    Examples:
      >>> u = jnp.array([[0.3, -2.0], [0.1, 5.0], [0.7, 1.0], [0.2, 0.0]])
      >>> bihalf_sign(u)
      Array([[ 1., -1.],
             [-1.,  1.],
             [ 1.,  1.],
             [-1., -1.]], dtype=float32)
      >>> # N·L = 2: ∂/∂U of Σ B is 1 + 4 (U − B); B = [+1, −1] for U = [0.3, 0.1].
      >>> jax.grad(lambda u: bihalf_sign(u, gamma=8.0).sum())(u[:2, :1])
      Array([[-1.8],
             [ 5.4]], dtype=float32)
    """
    if isinstance(gamma, jax.Array):
        if jnp.ndim(gamma) != 0:
            raise ValueError(f"gamma must be a scalar, got shape {jnp.shape(gamma)}.")
    elif isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not gamma >= 0:
        raise ValueError(f"gamma must be a non-negative real number, got {gamma!r}.")
    if jnp.ndim(u) != 2:
        raise ValueError(f"u must have shape [N, L], got shape {jnp.shape(u)}.")
    if jnp.shape(u)[0] < 2:
        raise ValueError(
            f"u must hold a batch of at least 2 rows to split in half, got shape {jnp.shape(u)}."
        )
    u = jnp.asarray(u, jnp.result_type(u, jnp.float32))
    return _bihalf_sign(u, jnp.asarray(gamma, u.dtype))


def scaled_tanh(x: jax.typing.ArrayLike, beta: jax.typing.ArrayLike) -> jax.Array:
    """Smooth surrogate of ``sgn`` with sharpness ``β``: ``tanh(β x)``.

    ``tanh(β x) → sgn(x)`` for every ``x ≠ 0`` as ``β → ∞``; HashNet trains with an increasing
    ``β`` (see :func:`continuation_schedule`) so the network converges to the non-smooth
    ``sgn`` it is evaluated with.

    Survey eq 23 (§4.5) prints ``(1 − e^{−βx}) / (1 + e^{−βx})``, which equals ``tanh(βx/2)``,
    not ``tanh(βx)`` as the text names it; we follow HashNet and the name, ``tanh(βx)``. The two
    differ only by rescaling ``β`` by 2.

    References:
      Cao et al., "HashNet: deep learning to hash by continuation", ICCV 2017; survey refs
      [47, 48, 66].

    Args:
      x: real array of any shape, typically ``[N, L]``.
      beta: positive sharpness, a scalar or an array broadcastable to ``x``; may be traced
        (e.g. the value of a schedule at the current step).

    Returns:
      Array of the broadcast shape with values in ``(-1, 1)``.

    Raises:
      ValueError: if ``beta`` is a Python number that is not positive.

    Examples:
      >>> scaled_tanh(jnp.array([0.0, 1.0]), 2.0)
      Array([0.       , 0.9640276], dtype=float32)
    """
    if isinstance(beta, numbers.Real) and not beta > 0:
        raise ValueError(f"beta must be positive, got {beta!r}.")
    return jnp.tanh(jnp.asarray(beta) * jnp.asarray(x))


def continuation_schedule(
    init_value: float = 1.0,
    gamma: float = 0.005,
    power: float = 0.5,
    step_size: int = 200,
) -> optax.Schedule:
    """HashNet's continuation schedule for the ``β`` of :func:`scaled_tanh`.

    ``β(step) = init_value · (1 + γ · step_k)^power`` with ``step_k = ⌊step / step_size⌋ ·
    step_size``: ``β`` is constant for ``step_size`` steps and then jumps, so it grows like the
    square root of the step count with the defaults (β = 1, 1.41, 1.73, 2, ... at steps 0, 200,
    400, 600, ...). The defaults are HashNet's.

    Step convention: HashNet's reference code raises ``β`` on the training forward pass whose
    1-based count ``iter_num`` is a multiple of ``step_size``, to ``init · (1 + γ ·
    iter_num)^power``; this schedule at ``step = iter_num`` gives the same value. With an optax
    0-based step counter (``state.step`` before the update) pass ``state.step + 1`` to
    reproduce it exactly; passing ``state.step`` delays every jump by one step.

    Not in the survey's equations (§4.5 mentions "gradually increasing β"); taken from the
    paper and its reference code.

    References:
      Cao et al., "HashNet: deep learning to hash by continuation", ICCV 2017.

    Args:
      init_value: ``β`` at step 0; positive.
      gamma: growth rate; non-negative.
      power: exponent of the growth.
      step_size: number of steps between increases of ``β``; a positive integer.

    Returns:
      A function ``step -> β`` (an ``optax.Schedule``) that works on Python numbers and on
      traced integer or float steps under ``jit``. Negative steps are treated as step 0.

    Raises:
      ValueError: if a hyper-parameter is out of range.

    Examples:
      >>> schedule = continuation_schedule()
      >>> [round(float(schedule(s)), 4) for s in (0, 199, 200, 600)]
      [1.0, 1.0, 1.4142, 2.0]
    """
    if not init_value > 0:
        raise ValueError(f"init_value must be positive, got {init_value!r}.")
    if not gamma >= 0:
        raise ValueError(f"gamma must be non-negative, got {gamma!r}.")
    if not isinstance(power, numbers.Real):
        raise ValueError(f"power must be a real number, got {power!r}.")
    if isinstance(step_size, bool) or not isinstance(step_size, numbers.Integral) or step_size < 1:
        raise ValueError(f"step_size must be a positive integer, got {step_size!r}.")

    def schedule(step: jax.typing.ArrayLike) -> jax.Array:
        step = jnp.maximum(jnp.asarray(step), 0)
        stage_start = (step // step_size) * step_size
        return init_value * (1.0 + gamma * stage_start.astype(float)) ** power

    return schedule


@jax.custom_jvp
def _gradient_reversal(x: jax.Array, scale: jax.Array) -> jax.Array:
    del scale  # The value is x whatever the scale: only the derivative reads it.
    return x


@_gradient_reversal.defjvp
def _gradient_reversal_jvp(primals, tangents):
    (x, scale), (t, _) = primals, tangents
    # The value does not depend on `scale`, so its tangent is dropped: d/d scale is exactly 0.
    return x, -scale * t


def gradient_reversal(x: jax.typing.ArrayLike, *, scale: jax.typing.ArrayLike = 1.0) -> jax.Array:
    """The identity in the forward pass, the derivative multiplied by ``−scale`` backwards.

    ``y = x`` exactly, and ``∂y/∂x := −scale · I``: whatever gradient reaches ``y`` reaches
    ``x`` negated (and scaled). Placed between a generator and a discriminator, it lets one
    loss drive a minimax game: with ``loss = g(θ_G) + h(D_φ(gradient_reversal(G_θ(x))))`` the
    gradient with respect to the discriminator's parameters ``φ`` is that of ``h`` (it
    minimises ``h``), and the gradient with respect to the generator's parameters ``θ`` is that
    of ``g − scale · h`` (it maximises ``h``). With ``scale = 1`` one step of a per-parameter
    optimizer on this loss is the step of the two players' separate optimizers on their own
    losses.

    Implemented with ``jax.custom_jvp`` (tangent ``−scale · t``, linear, so reverse mode
    transposes it), so it works under ``jit``, ``vmap``, ``grad`` and forward-mode ``jvp``. No
    derivative reaches ``scale``: the value does not depend on it.

    Not in the survey. TBH (Shen et al., CVPR 2020) trains its encoder and decoder ("actor")
    and its two discriminators ("critic") with two optimizers on two losses; its recipe here
    reverses the gradient of the generated inputs of each discriminator instead
    (:mod:`dlhash_jax.methods.tbh`).

    References:
      Ganin & Lempitsky, "Unsupervised domain adaptation by backpropagation", ICML 2015 (the
      gradient reversal layer).

    Args:
      x: real array of any shape.
      scale: the factor ``λ`` of the reversed derivative (keyword-only), a finite real number;
        a traced scalar is accepted unchecked. ``0`` blocks the gradient like
        ``stop_gradient``.

    Returns:
      ``x`` as a float array of its shape (float32 for integer input).

    Raises:
      ValueError: if ``scale`` is not a finite real number (or, traced, not a scalar).

    Examples:
      >>> x = jnp.array([1.0, -2.0])
      >>> gradient_reversal(x)
      Array([ 1., -2.], dtype=float32)
      >>> jax.grad(lambda x: jnp.sum(x * gradient_reversal(x, scale=0.5)))(x)
      Array([ 0.5, -1. ], dtype=float32)
    """
    if isinstance(scale, jax.Array):
        if jnp.ndim(scale) != 0:
            raise ValueError(f"scale must be a scalar, got shape {jnp.shape(scale)}.")
    elif (
        isinstance(scale, bool)
        or not isinstance(scale, numbers.Real)
        or not math.isfinite(scale)
    ):
        raise ValueError(f"scale must be a finite real number, got {scale!r}.")
    x = jnp.asarray(x)
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    return _gradient_reversal(x, jnp.asarray(scale, x.dtype))
