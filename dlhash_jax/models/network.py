"""A hash network (backbone + head), and encoding a whole split to ±1 codes."""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import numpy as np

from dlhash_jax import codes


class HashNetwork(nn.Module):
    """A backbone followed by a hash head.

    ``out = head(backbone(x, train=train), beta=beta)`` plus ``out["features"]``, the backbone's
    output. The binary codes are ``codes.sign(out["pre"])``; :func:`encode` computes them for a
    whole split.

    Attributes:
      backbone: module called as ``backbone(x, train=...)`` returning ``[B, D]`` (e.g.
        :class:`~dlhash_jax.models.backbones.MLP`, ``ConvNet``, ``ResNet``, ``TextEncoder``).
      head: module called as ``head(features, beta=...)`` returning a dict with ``"pre"`` and
        ``"relaxed"`` (e.g. :class:`~dlhash_jax.models.heads.HashHead`).

    Call:
      ``x``: ``[B, ...]`` inputs for the backbone.
      ``train``: training mode of the backbone (dropout, BatchNorm statistics).
      ``beta``: sharpness passed to the head (see ``HashHead(relaxation="scaled_tanh")``).

    Returns:
      The head's dict (``"pre"``, ``"relaxed"``, and ``"logits"`` etc. where the head has them)
      with ``"features": [B, D]`` added.

    Examples:
      >>> import jax.numpy as jnp
      >>> from dlhash_jax.models import MLP, HashHead
      >>> model = HashNetwork(MLP((16,)), HashHead(8))
      >>> variables = model.init(jax.random.key(0), jnp.zeros((2, 4)), train=False)
      >>> model.apply(variables, jnp.ones((2, 4)), train=False)["pre"].shape
      (2, 8)
    """

    backbone: nn.Module
    head: nn.Module

    def __call__(
        self, x: jax.typing.ArrayLike, *, train: bool, beta: jax.typing.ArrayLike = 1.0
    ) -> dict[str, jax.Array]:
        features = self.backbone(x, train=train)
        out = dict(self.head(features, beta=beta))
        out["features"] = features
        return out


def _sign_of_pre(apply_fn, kwargs, variables, inputs):
    return codes.sign(apply_fn(variables, inputs, train=False, **dict(kwargs))["pre"])


# apply_fn and the keyword arguments are static: encoding the same model again (e.g. at every
# validation) reuses the compiled function instead of tracing it anew.
_encode_batch = jax.jit(_sign_of_pre, static_argnums=(0, 1))


def encode(
    apply_fn: Callable[..., dict],
    variables,
    inputs: jax.typing.ArrayLike,
    *,
    batch_size: int = 1024,
    **kwargs,
) -> np.ndarray:
    """Encodes inputs to ±1 codes, ``sign(out["pre"])``, in evaluation mode and in batches.

    Runs ``apply_fn(variables, batch, train=False, **kwargs)`` on batches of ``batch_size`` rows
    (fewer if there are fewer inputs). The last batch is padded with zeros to the same size, so
    one compiled function serves every batch, and the padding rows are dropped. In evaluation
    mode every row is encoded independently (BatchNorm uses its running averages), so the codes
    do not depend on ``batch_size``.

    Args:
      apply_fn: e.g. ``model.apply`` of a :class:`HashNetwork` or ``Autoencoder``, returning a
        dict with ``"pre"`` ``[B, L]``. Passing the same function object again reuses the
        compiled encoder.
      variables: the model's variables (``{"params": ..., "batch_stats": ...}``).
      inputs: ``[N, ...]`` inputs, ``N ≥ 1`` (host or device array).
      batch_size: rows per forward pass; a positive integer.
      **kwargs: further keyword arguments for ``apply_fn`` (hashable values, e.g. ``beta=2.0``).

    Returns:
      ``[N, L]`` ``float32`` NumPy array with values in {-1, +1}.

    Raises:
      ValueError: if ``inputs`` has no batch axis or no rows, or ``batch_size`` is not positive.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    inputs = np.asarray(inputs)
    if inputs.ndim < 1 or inputs.shape[0] == 0:
        raise ValueError(f"inputs must be [N, ...] with N >= 1, got shape {inputs.shape}.")
    num_inputs = inputs.shape[0]
    size = min(batch_size, num_inputs)
    static_kwargs = tuple(sorted(kwargs.items()))
    chunks = []
    for start in range(0, num_inputs, size):
        batch = inputs[start : start + size]
        rows = batch.shape[0]
        if rows < size:
            padding = np.zeros((size - rows, *batch.shape[1:]), batch.dtype)
            batch = np.concatenate([batch, padding])
        batch_codes = _encode_batch(apply_fn, static_kwargs, variables, batch)
        chunks.append(np.asarray(batch_codes, np.float32)[:rows])
    return np.concatenate(chunks)


def num_params(params) -> int:
    """Total number of scalars in a pytree of arrays, e.g. ``variables["params"]``."""
    return sum(math.prod(np.shape(leaf)) for leaf in jax.tree_util.tree_leaves(params))
