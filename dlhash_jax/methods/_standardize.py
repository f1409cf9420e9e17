"""Standardised inputs and features: what stops DH's and SDH's codes collapsing on pixels.

DH and SDH (Erin Liong et al., CVPR 2015) collapse to one code for every input when the inputs
share a positive mean (pixels in ``[0, 1]``): each unit's pre-activation has a large part
``w·μ + c`` common to all items, which the quantization and variance terms drive to saturation
(evidence in :mod:`.sdh` and :mod:`.dh`). Both recipes' networks therefore see their inputs
standardised per input element by a ``BatchNorm`` without learned scale or offset
(:class:`StandardizedInputs`), and the ReLU backbones' features too
(:class:`StandardizedFeatures`); :func:`.dh.make_model` builds that network for both recipes.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlhash_jax.methods._recipe import AXIS_NAME

# Momentum of the running statistics used in evaluation (ResNet's BatchNorm uses 0.9 too):
# after 50 steps the initial values (mean 0, variance 1) weigh 0.9⁵⁰ ≈ 0.5%.
STATISTICS_MOMENTUM = 0.9


def _standardize(x, *, train: bool, momentum: float, axis_name: str | None, name: str):
    """``BatchNorm`` without learned scale or offset over every non-batch element of ``x``.

    Called inside a compact module's ``__call__``; the statistics go to that module's
    ``batch_stats[name]``.
    """
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(
            f"Standardisation needs inputs [B, ...] with a batch axis, got shape {x.shape}."
        )
    return nn.BatchNorm(
        use_running_average=not train,
        axis=tuple(range(1, x.ndim)),
        momentum=momentum,
        use_scale=False,
        use_bias=False,
        axis_name=axis_name,
        name=name,
    )(x)


class StandardizedInputs(nn.Module):
    """A network applied to inputs standardised per input element (zero mean, unit variance).

    ``network(BatchNorm(x))`` where the ``BatchNorm`` (named ``"inputs"``) has no learned scale
    or offset and normalises every non-batch element of ``x`` (each pixel of an image, each
    dimension of a feature vector) separately: over the batch in training (averaged over the
    devices of ``axis_name``), with the running averages of those statistics in evaluation.
    The statistics live in the ``"batch_stats"`` collection, so they are checkpointed with the
    train state and used to encode the query and database splits; the parameters are the
    network's alone (``params["network"]``).

    Attributes:
      network: called as ``network(x, train=..., beta=...)`` (e.g. a
        :class:`~dlhash_jax.models.HashNetwork`).
      momentum: decay of the running averages.
      axis_name: the mapped device axis the batch statistics are averaged over in training
        (``None`` to apply the module in training mode outside ``pmap``/``shard_map``).

    Call:
      ``x``: ``[B, ...]`` inputs. ``train``: batch statistics (updating the running averages)
      or the running averages; passed to the network with ``beta``.

    Returns:
      The network's outputs on the standardised inputs.
    """

    network: nn.Module
    momentum: float = STATISTICS_MOMENTUM
    axis_name: str | None = AXIS_NAME

    @nn.compact
    def __call__(self, x: jax.typing.ArrayLike, *, train: bool, beta: jax.typing.ArrayLike = 1.0):
        x = _standardize(
            x, train=train, momentum=self.momentum, axis_name=self.axis_name, name="inputs"
        )
        return self.network(x, train=train, beta=beta)


class StandardizedFeatures(nn.Module):
    """A backbone whose output features are standardised as :class:`StandardizedInputs` does.

    For the ReLU backbones (ConvNet, ResNet), whose features are ``≥ 0``: the hash layer then
    reads centred features, as DH's all-``tanh`` MLP on standardised inputs does. The
    statistics are under ``batch_stats["features"]``.

    Attributes:
      backbone: called as ``backbone(x, train=...)``, returning ``[B, D]``.
      momentum, axis_name: as in :class:`StandardizedInputs`.
    """

    backbone: nn.Module
    momentum: float = STATISTICS_MOMENTUM
    axis_name: str | None = AXIS_NAME

    @nn.compact
    def __call__(self, x: jax.typing.ArrayLike, *, train: bool) -> jax.Array:
        features = self.backbone(x, train=train)
        return _standardize(
            features, train=train, momentum=self.momentum, axis_name=self.axis_name,
            name="features",
        )

