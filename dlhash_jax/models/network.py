"""Hash networks (backbone + head; two of them for cross-modal data), and encoding a split."""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlhash_jax import codes
from dlhash_jax import conventions

# Keys of cross-modal inputs and outputs (docs/design.md: the data of DCMH-style methods).
MODALITIES = conventions.MODALITIES


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


class CrossModalNetwork(nn.Module):
    """Two hash networks, one per modality, mapping paired inputs into one Hamming space.

    The image network and the text network of DCMH-style cross-modal hashing (Jiang & Li, CVPR
    2017): each item ``i`` has an image ``x_i`` and a text ``y_i``; ``F = f(x; θ_x)`` and
    ``G = g(y; θ_y)`` are ``[B, L]`` real outputs whose signs are the image and the text codes.
    Their parameters live under the submodule names ``"image"`` and ``"text"``, so a training
    loop can update one network while the other stays fixed (alternating optimisation).

    Attributes:
      image: network called as ``image(x, train=..., beta=...)`` returning a dict with ``"pre"``
        and ``"relaxed"`` ``[B, L]`` (e.g. a :class:`HashNetwork`).
      text: the same for the text modality (e.g. a :class:`HashNetwork` over a
        :class:`~dlhash_jax.models.text.TextEncoder`).

    Call:
      ``x``: ``{"image": [B, ...], "text": [B, V]}``, the two modalities of the same B items.
      ``train``, ``beta``: passed to both networks.

    Returns:
      ``{"pre": {"image": [B, L], "text": [B, L]}, "relaxed": {...}, "stacked": [B, 2, L]}``:
      ``"stacked"`` holds the relaxed ``F`` and ``G`` rows side by side, the form a memory bank
      of both modalities keeps. :func:`encode` turns ``"pre"`` into a dict of codes.

    Examples:
      >>> import jax.numpy as jnp
      >>> from dlhash_jax.models import MLP, HashHead, TextEncoder
      >>> model = CrossModalNetwork(HashNetwork(MLP((16,)), HashHead(8)),
      ...                           HashNetwork(TextEncoder((16,)), HashHead(8)))
      >>> x = {"image": jnp.zeros((2, 4, 4, 1)), "text": jnp.zeros((2, 5))}
      >>> variables = model.init(jax.random.key(0), x, train=False)
      >>> model.apply(variables, x, train=False)["stacked"].shape
      (2, 2, 8)
    """

    image: nn.Module
    text: nn.Module

    def __call__(
        self, x: Mapping[str, jax.typing.ArrayLike], *, train: bool, beta: jax.typing.ArrayLike = 1.0
    ) -> dict[str, Any]:
        if not isinstance(x, Mapping) or set(x) != set(MODALITIES):
            got = sorted(x) if isinstance(x, Mapping) else type(x).__name__
            raise ValueError(
                f"CrossModalNetwork expects inputs {{'image': [B, ...], 'text': [B, V]}}, got {got}."
            )
        image = self.image(x["image"], train=train, beta=beta)
        text = self.text(x["text"], train=train, beta=beta)
        if image["pre"].shape != text["pre"].shape:
            raise ValueError(
                "the image and text networks must give outputs of one shape [B, L], got "
                f"{image['pre'].shape} and {text['pre'].shape} (same batch and bits?)."
            )
        return {
            "pre": {"image": image["pre"], "text": text["pre"]},
            "relaxed": {"image": image["relaxed"], "text": text["relaxed"]},
            "stacked": jnp.stack([image["relaxed"], text["relaxed"]], axis=1),
        }


def _sign_of_pre(apply_fn, kwargs, variables, inputs):
    pre = apply_fn(variables, inputs, train=False, **dict(kwargs))["pre"]
    return jax.tree.map(codes.sign, pre)


# apply_fn and the keyword arguments are static: encoding the same model again (e.g. at every
# validation) reuses the compiled function instead of tracing it anew.
_encode_batch = jax.jit(_sign_of_pre, static_argnums=(0, 1))


def _shapes(inputs):
    return jax.tree.map(np.shape, inputs, is_leaf=lambda x: not isinstance(x, Mapping))


def num_rows(inputs) -> int:
    """Number of items N of an input array ``[N, ...]`` or of a dict of them (cross-modal).

    Raises:
      ValueError: if an input has no batch axis, or the arrays of a dict disagree on N.
    """
    shapes = [np.shape(leaf) for leaf in jax.tree.leaves(inputs)]
    if not shapes or any(len(shape) < 1 for shape in shapes):
        raise ValueError(
            f"inputs must be [N, ...] with N >= 1, got shape {_shapes(inputs)}."
        )
    sizes = {shape[0] for shape in shapes}
    if len(sizes) != 1:
        raise ValueError(
            "the inputs of every modality need the same number of items, got shapes "
            f"{_shapes(inputs)}."
        )
    return sizes.pop()


def _rows_or_array(leaf):
    lazy = (
        hasattr(leaf, "shape")
        and hasattr(leaf, "__getitem__")
        and not isinstance(leaf, (np.ndarray, jax.Array))
    )
    return leaf if lazy else np.asarray(leaf)


def map_in_batches(fn: Callable, inputs, *, batch_size: int):
    """``fn`` on fixed-size batches of rows of ``inputs`` (an array or a dict of arrays).

    The last batch is padded with zeros to the same size and the padding rows are dropped, so
    one compiled function serves every batch. ``fn`` returns an array or a pytree of arrays
    ``[batch_size, ...]``; the results are concatenated as NumPy arrays of the same structure.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    # Row-indexable inputs that decode lazily (an ImageSource) are sliced batch by batch, never
    # materialised whole.
    inputs = jax.tree.map(_rows_or_array, inputs)
    total = num_rows(inputs)
    if total == 0:
        raise ValueError(f"inputs must be [N, ...] with N >= 1, got shape {_shapes(inputs)}.")
    size = min(batch_size, total)

    def pad(leaf):
        rows = leaf.shape[0]
        if rows == size:
            return leaf
        return np.concatenate([leaf, np.zeros((size - rows, *leaf.shape[1:]), leaf.dtype)])

    chunks = []
    for start in range(0, total, size):
        batch = jax.tree.map(lambda leaf: pad(leaf[start : start + size]), inputs)
        rows = min(size, total - start)
        chunks.append(jax.tree.map(lambda out: np.asarray(out)[:rows], fn(batch)))
    return jax.tree.map(lambda *parts: np.concatenate(parts), *chunks)


def encode(
    apply_fn: Callable[..., dict],
    variables,
    inputs,
    *,
    batch_size: int = 1024,
    **kwargs,
):
    """Encodes inputs to ±1 codes, ``sign(out["pre"])``, in evaluation mode and in batches.

    Runs ``apply_fn(variables, batch, train=False, **kwargs)`` on batches of ``batch_size`` rows
    (fewer if there are fewer inputs). The last batch is padded with zeros to the same size, so
    one compiled function serves every batch, and the padding rows are dropped. In evaluation
    mode every row is encoded independently (BatchNorm uses its running averages), so the codes
    do not depend on ``batch_size``.

    Args:
      apply_fn: e.g. ``model.apply`` of a :class:`HashNetwork` or ``Autoencoder``, returning a
        dict with ``"pre"`` ``[B, L]`` (a :class:`CrossModalNetwork` returns a dict of them).
        Passing the same function object again reuses the compiled encoder.
      variables: the model's variables (``{"params": ..., "batch_stats": ...}``).
      inputs: ``[N, ...]`` inputs, ``N ≥ 1`` (host or device array), or a dict of them with one
        ``N`` (cross-modal ``{"image": ..., "text": ...}``).
      batch_size: rows per forward pass; a positive integer.
      **kwargs: further keyword arguments for ``apply_fn`` (hashable values, e.g. ``beta=2.0``).

    Returns:
      ``[N, L]`` ``float32`` NumPy array with values in {-1, +1}; a dict of them when the model's
      ``"pre"`` is a dict (``{"image": ..., "text": ...}`` codes of a cross-modal network).

    Raises:
      ValueError: if ``inputs`` has no batch axis or no rows, or ``batch_size`` is not positive.
    """
    static_kwargs = tuple(sorted(kwargs.items()))
    result = map_in_batches(
        lambda batch: _encode_batch(apply_fn, static_kwargs, variables, batch),
        inputs,
        batch_size=batch_size,
    )
    return jax.tree.map(lambda c: c.astype(np.float32), result)


def num_params(params) -> int:
    """Total number of scalars in a pytree of arrays, e.g. ``variables["params"]``."""
    return sum(math.prod(np.shape(leaf)) for leaf in jax.tree_util.tree_leaves(params))
