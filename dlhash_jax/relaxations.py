"""Relaxations of ``sgn``: straight-through sign, scaled tanh, and β-continuation schedules.

Survey §4.5. ``sgn`` has zero gradient almost everywhere, so a network that ends in it cannot be
trained by back-propagation. The two families here either keep the exact ``sgn`` in the forward
pass and substitute a surrogate gradient (:func:`sign_ste`), or replace ``sgn`` by a smooth
function that approaches it as a sharpness ``β`` grows (:func:`scaled_tanh`, with ``β`` raised
during training by :func:`continuation_schedule`, the HashNet recipe).
"""

from __future__ import annotations

import functools
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
