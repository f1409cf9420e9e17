"""Pretrained ImageNet backbones: AlexNet, VGG-16, ResNet-50 (torchvision) and ViT-B/16 (timm).

``load_pretrained(name, path)`` reads a weights file in the reference implementation's own
state-dict layout (the names and shapes of ``model.state_dict()`` in PyTorch) and returns a flax
module with its variables; the module maps normalised NHWC images to the reference's feature
layer and plugs into :class:`~dlhash_jax.models.network.HashNetwork` as its backbone:

- ``"alexnet"``: ``torchvision.models.alexnet``, fc7 after its ReLU, ``[B, 4096]``;
- ``"vgg16"``: ``torchvision.models.vgg16``, fc7 after its ReLU, ``[B, 4096]``;
- ``"resnet50"``: ``torchvision.models.resnet50``, the pooled input of ``fc``, ``[B, 2048]``;
- ``"vit_b16"``: timm's ``vit_base_patch16_224``, the class token after the final LayerNorm
  (timm's pre-logits features with ``global_pool="token"``), ``[B, 768]``.

Images are NHWC, normalised as the reference expects (:func:`normalize_images`: torchvision's
ImageNet mean and standard deviation, 0.5 and 0.5 for the ViT).

Only ``.safetensors`` and ``.npz`` files are read: a pickled PyTorch checkpoint (``.pth``,
``.pt``, ``.bin``, ``.ckpt``, ``.pkl``) is refused, because unpickling runs whatever code the file
holds; the error gives the two lines that convert it once, in an environment with PyTorch.
The reference's classifier (AlexNet/VGG ``classifier.6``, ResNet ``fc``, ViT ``head``) and
PyTorch's ``num_batches_tracked`` counters are not part of the features and are skipped; every
other missing, unexpected, mis-shaped or non-float array is named in one error.

:func:`random_weights` draws seeded weights in the reference layout, scaled so activations keep
their size through every layer; the parity tests load them here and compare the features with
those of the reference implementation on the same weights, which
``experiments/tools/make_pretrained_fixtures.py`` computes with PyTorch (see
``docs/pretrained.md``).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import os
from collections.abc import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import safetensors.numpy
from flax import traverse_util

from dlhash_jax import _checks
from dlhash_jax.models.alexnet import AlexNet
from dlhash_jax.models.resnet50 import RESNET50_STAGES
from dlhash_jax.models.resnet50 import ResNet50
from dlhash_jax.models.vgg import VGG16
from dlhash_jax.models.vgg import VGG16_STAGES
from dlhash_jax.models.vit import VIT_B16_DEPTH
from dlhash_jax.models.vit import VIT_B16_MLP
from dlhash_jax.models.vit import VIT_B16_PATCH
from dlhash_jax.models.vit import VIT_B16_WIDTH
from dlhash_jax.models.vit import ViTB16

WEIGHT_SUFFIXES = (".safetensors", ".npz")
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".pkl", ".pickle")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class PretrainedBackbone:
    """What one pretrained backbone is, expects and gives.

    Attributes:
      reference: the implementation whose layout and outputs it reproduces.
      features: output dimension ``D`` of the module.
      image_size: side of the square images the published weights were trained on.
      mean: per-channel (RGB) mean subtracted from images scaled to ``[0, 1]``.
      std: per-channel standard deviation they are then divided by.
      skipped: ``fnmatch`` patterns of the reference's state-dict keys that the features do not
        use (its classifier, PyTorch's BatchNorm counters): present or not, they are ignored.
    """

    reference: str
    features: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    skipped: tuple[str, ...]


PRETRAINED_BACKBONES: dict[str, PretrainedBackbone] = {
    "alexnet": PretrainedBackbone(
        "torchvision.models.alexnet", 4096, 224, IMAGENET_MEAN, IMAGENET_STD, ("classifier.6.*",)
    ),
    "vgg16": PretrainedBackbone(
        "torchvision.models.vgg16", 4096, 224, IMAGENET_MEAN, IMAGENET_STD, ("classifier.6.*",)
    ),
    "resnet50": PretrainedBackbone(
        "torchvision.models.resnet50",
        2048,
        224,
        IMAGENET_MEAN,
        IMAGENET_STD,
        ("fc.*", "*.num_batches_tracked"),
    ),
    "vit_b16": PretrainedBackbone(
        "timm vit_base_patch16_224", 768, 224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), ("head.*",)
    ),
}


def _check_name(name: str) -> PretrainedBackbone:
    _checks.check_choice(name, PRETRAINED_BACKBONES, "pretrained backbone name")
    return PRETRAINED_BACKBONES[name]


def normalize_images(images: jax.typing.ArrayLike, name: str) -> jax.Array:
    """Images scaled to ``[0, 1]`` as backbone ``name`` expects them: ``(x - mean) / std``.

    Args:
      images: ``[..., 3]`` RGB values in ``[0, 1]`` (channels last).
      name: one of ``PRETRAINED_BACKBONES``.

    Returns:
      ``[..., 3]`` float32 images normalised per channel with the backbone's ``mean`` and
      ``std``.
    """
    info = _check_name(name)
    images = jnp.asarray(images, jnp.float32)
    if images.ndim < 1 or images.shape[-1] != 3:
        raise ValueError(f"normalize_images expects RGB values [..., 3], got shape {images.shape}.")
    return (images - jnp.asarray(info.mean)) / jnp.asarray(info.std)


@dataclasses.dataclass(frozen=True)
class _Tensor:
    """One array of a reference state dict and the flax variable it becomes.

    ``layout`` says how the array is rearranged: ``"conv"`` (PyTorch ``[out, in, kh, kw]`` to
    flax ``[kh, kw, in, out]``), ``"linear"`` (``[out, in]`` to ``[in, out]``), ``"fc6"`` (a
    linear layer on a flattened ``chw`` map: PyTorch flattens channels first, flax channels
    last) or ``"same"``. ``init`` says how :func:`random_weights` draws it.
    """

    key: str
    shape: tuple[int, ...]
    path: tuple[str, ...]
    layout: str = "same"
    init: str = "bias"
    chw: tuple[int, int, int] | None = None

    def to_flax(self, array: np.ndarray) -> np.ndarray:
        if self.layout == "conv":
            return array.transpose(2, 3, 1, 0)
        if self.layout == "linear":
            return array.T
        if self.layout == "fc6":
            return array.reshape(-1, *self.chw).transpose(2, 3, 1, 0).reshape(-1, array.shape[0])
        return array

    def to_reference(self, array: np.ndarray) -> np.ndarray:
        if self.layout == "conv":
            return array.transpose(3, 2, 0, 1)
        if self.layout == "linear":
            return array.T
        if self.layout == "fc6":
            c, h, w = self.chw
            return array.reshape(h, w, c, -1).transpose(3, 2, 0, 1).reshape(array.shape[1], -1)
        return array


def _conv(key, module, out, inp, kernel, *, bias=True):
    shape = (out, inp, kernel, kernel)
    tensors = [_Tensor(f"{key}.weight", shape, ("params", *module, "kernel"), "conv", "weight")]
    if bias:
        tensors.append(_Tensor(f"{key}.bias", (out,), ("params", *module, "bias")))
    return tensors


def _linear(key, module, out, inp, *, chw=None):
    layout = "linear" if chw is None else "fc6"
    return [
        _Tensor(f"{key}.weight", (out, inp), ("params", *module, "kernel"), layout, "weight", chw),
        _Tensor(f"{key}.bias", (out,), ("params", *module, "bias")),
    ]


def _batch_norm(key, module, channels):
    return [
        _Tensor(f"{key}.weight", (channels,), ("params", *module, "scale"), init="bn_scale"),
        _Tensor(f"{key}.bias", (channels,), ("params", *module, "bias")),
        _Tensor(f"{key}.running_mean", (channels,), ("batch_stats", *module, "mean")),
        _Tensor(f"{key}.running_var", (channels,), ("batch_stats", *module, "var"), init="bn_var"),
    ]


def _layer_norm(key, module, channels):
    return [
        _Tensor(f"{key}.weight", (channels,), ("params", *module, "scale"), init="ln_scale"),
        _Tensor(f"{key}.bias", (channels,), ("params", *module, "bias")),
    ]


def _alexnet_tensors() -> list[_Tensor]:
    convs = ((0, 64, 3, 11), (3, 192, 64, 5), (6, 384, 192, 3), (8, 256, 384, 3), (10, 256, 256, 3))
    tensors = []
    for i, (index, out, inp, kernel) in enumerate(convs, start=1):
        tensors += _conv(f"features.{index}", (f"conv{i}",), out, inp, kernel)
    tensors += _linear("classifier.1", ("fc6",), 4096, 256 * 6 * 6, chw=(256, 6, 6))
    return tensors + _linear("classifier.4", ("fc7",), 4096, 4096)


def _vgg16_tensors() -> list[_Tensor]:
    tensors, index, inp = [], 0, 3
    for stage, widths in enumerate(VGG16_STAGES, start=1):
        for i, out in enumerate(widths, start=1):
            tensors += _conv(f"features.{index}", (f"conv{stage}_{i}",), out, inp, 3)
            index, inp = index + 2, out  # Each convolution is followed by its ReLU.
        index += 1  # The stage's max pooling.
    tensors += _linear("classifier.0", ("fc6",), 4096, 512 * 7 * 7, chw=(512, 7, 7))
    return tensors + _linear("classifier.3", ("fc7",), 4096, 4096)


def _resnet50_tensors() -> list[_Tensor]:
    tensors = _conv("conv1", ("conv1",), 64, 3, 7, bias=False) + _batch_norm("bn1", ("bn1",), 64)
    inp = 64
    for stage, (width, blocks) in enumerate(RESNET50_STAGES, start=1):
        for block in range(blocks):
            key, module = f"layer{stage}.{block}", f"layer{stage}_{block}"
            for i, (out, c_in, kernel) in enumerate(
                ((width, inp, 1), (width, width, 3), (4 * width, width, 1)), start=1
            ):
                tensors += _conv(f"{key}.conv{i}", (module, f"conv{i}"), out, c_in, kernel,
                                 bias=False)
                tensors += _batch_norm(f"{key}.bn{i}", (module, f"bn{i}"), out)
            if block == 0:
                tensors += _conv(f"{key}.downsample.0", (module, "downsample_conv"), 4 * width,
                                 inp, 1, bias=False)
                tensors += _batch_norm(f"{key}.downsample.1", (module, "downsample_bn"), 4 * width)
            inp = 4 * width
    return tensors


def _vit_b16_tensors(image_size: int) -> list[_Tensor]:
    width, tokens = VIT_B16_WIDTH, 1 + (image_size // VIT_B16_PATCH) ** 2
    tensors = [
        _Tensor("cls_token", (1, 1, width), ("params", "cls_token"), init="embedding"),
        _Tensor("pos_embed", (1, tokens, width), ("params", "pos_embed"), init="embedding"),
        *_conv("patch_embed.proj", ("patch_embed",), width, 3, VIT_B16_PATCH),
    ]
    for i in range(VIT_B16_DEPTH):
        key, module = f"blocks.{i}", f"blocks_{i}"
        tensors += _layer_norm(f"{key}.norm1", (module, "norm1"), width)
        tensors += _linear(f"{key}.attn.qkv", (module, "attn", "qkv"), 3 * width, width)
        tensors += _linear(f"{key}.attn.proj", (module, "attn", "proj"), width, width)
        tensors += _layer_norm(f"{key}.norm2", (module, "norm2"), width)
        tensors += _linear(f"{key}.mlp.fc1", (module, "mlp", "fc1"), VIT_B16_MLP, width)
        tensors += _linear(f"{key}.mlp.fc2", (module, "mlp", "fc2"), width, VIT_B16_MLP)
    return tensors + _layer_norm("norm", ("norm",), width)


def _tensors(name: str, image_size: int) -> list[_Tensor]:
    """The reference's arrays that backbone ``name`` uses, in state-dict order."""
    if name == "vit_b16":
        return _vit_b16_tensors(image_size)
    return {"alexnet": _alexnet_tensors, "vgg16": _vgg16_tensors,
            "resnet50": _resnet50_tensors}[name]()


def _module(name: str, image_size: int) -> nn.Module:
    if name == "vit_b16":
        return ViTB16(image_size=image_size)
    return {"alexnet": AlexNet, "vgg16": VGG16, "resnet50": ResNet50}[name]()


def _vit_image_size(pos_embed_shape: tuple[int, ...] | None) -> int:
    """The image size of ViT position embeddings ``[1, 1 + grid², 768]``; 224 if not of that form.

    Falling back to the published size lets the key check report the embeddings as mis-shaped.
    """
    if pos_embed_shape is not None and len(pos_embed_shape) == 3:
        grid = math.isqrt(max(pos_embed_shape[1] - 1, 0))
        if grid >= 1 and grid * grid == pos_embed_shape[1] - 1:
            return grid * VIT_B16_PATCH
    return PRETRAINED_BACKBONES["vit_b16"].image_size


def _shape_text(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _check_state_dict(name: str, tensors: list[_Tensor], state_dict: Mapping, source: str) -> None:
    """Raises one ``ValueError`` naming every missing, unexpected, mis-shaped or non-float key."""
    info = PRETRAINED_BACKBONES[name]
    expected = {t.key: t for t in tensors}
    problems = []
    missing = [t for t in tensors if t.key not in state_dict]
    if missing:
        problems.append(f"missing ({len(missing)}):")
        problems += [f"  {t.key} {_shape_text(t.shape)}" for t in missing]
    unexpected = [
        key for key in state_dict
        if key not in expected and not any(fnmatch.fnmatchcase(key, p) for p in info.skipped)
    ]
    if unexpected:
        problems.append(f"unexpected ({len(unexpected)}):")
        problems += [f"  {key} {_shape_text(np.shape(state_dict[key]))}" for key in unexpected]
    present = [t for t in tensors if t.key in state_dict]
    misshaped = [t for t in present if tuple(np.shape(state_dict[t.key])) != t.shape]
    if misshaped:
        problems.append(f"wrong shape ({len(misshaped)}):")
        problems += [
            f"  {t.key}: got {_shape_text(np.shape(state_dict[t.key]))}, expected "
            f"{_shape_text(t.shape)}"
            for t in misshaped
        ]
    # jnp's test, unlike NumPy's, counts bfloat16 (ml_dtypes) as floating point.
    not_float = [
        t for t in present if not jnp.issubdtype(np.asarray(state_dict[t.key]).dtype, jnp.floating)
    ]
    if not_float:
        problems.append(f"not floating point ({len(not_float)}):")
        problems += [f"  {t.key}: {np.asarray(state_dict[t.key]).dtype}" for t in not_float]
    if problems:
        hint = ""
        if any(t.key == "pos_embed" for t in misshaped):
            hint = (
                f"\nViT position embeddings [1, 1 + grid², {VIT_B16_WIDTH}] set the image size "
                "to 16 × grid."
            )
        raise ValueError(
            f"{source} does not hold the {name} weights of {info.reference} (skipping "
            f"{', '.join(info.skipped)}):\n" + "\n".join(problems) + hint
        )


def variables_from_state_dict(
    name: str, state_dict: Mapping[str, np.ndarray], *, source: str = "the state dict"
) -> tuple[nn.Module, dict]:
    """The module of backbone ``name`` and its variables, from arrays in the reference layout.

    :func:`load_pretrained` without the file: for arrays already in memory (e.g.
    :func:`random_weights`).

    Args:
      name: one of ``PRETRAINED_BACKBONES``.
      state_dict: ``{key: array}`` with the keys and shapes of the reference's
        ``model.state_dict()``; the keys matching ``PRETRAINED_BACKBONES[name].skipped`` may be
        there or not.
      source: how error messages name the weights (the file's path for :func:`load_pretrained`).

    Returns:
      ``(module, variables)``: ``variables`` holds ``"params"`` (and for ``resnet50``
      ``"batch_stats"``) for ``module.apply(variables, x, train=False)``, in float32 whatever
      floating-point type the arrays had (float16 and bfloat16 are widened).

    Raises:
      ValueError: for an unknown name, or naming every missing, unexpected, mis-shaped or
        non-float array.
    """
    _check_name(name)
    image_size = PRETRAINED_BACKBONES[name].image_size
    if name == "vit_b16":
        pos_embed = state_dict.get("pos_embed")
        image_size = _vit_image_size(None if pos_embed is None else np.shape(pos_embed))
    tensors = _tensors(name, image_size)
    _check_state_dict(name, tensors, state_dict, source)
    flat = {
        t.path: jnp.asarray(t.to_flax(np.asarray(state_dict[t.key], np.float32)))
        for t in tensors
    }
    return _module(name, image_size), traverse_util.unflatten_dict(flat)


def state_dict_from_variables(name: str, variables: Mapping) -> dict[str, np.ndarray]:
    """The inverse of :func:`variables_from_state_dict`: variables to reference-layout arrays.

    Args:
      name: one of ``PRETRAINED_BACKBONES``.
      variables: the backbone's variables (``"params"``, and ``"batch_stats"`` for
        ``resnet50``), e.g. after fine-tuning.

    Returns:
      ``{key: float32 array}`` with the reference's keys and shapes, without the skipped
      classifier.

    Raises:
      ValueError: naming the variables that are missing, unexpected or mis-shaped.
    """
    _check_name(name)
    flat = traverse_util.flatten_dict(dict(variables))
    image_size = PRETRAINED_BACKBONES[name].image_size
    if name == "vit_b16" and ("params", "pos_embed") in flat:
        image_size = _vit_image_size(np.shape(flat[("params", "pos_embed")]))
    tensors = _tensors(name, image_size)
    module = _module(name, image_size)
    size = image_size if name == "vit_b16" else 64
    shapes = traverse_util.flatten_dict(
        jax.eval_shape(
            lambda: module.init(jax.random.key(0), jnp.zeros((1, size, size, 3)), train=False)
        )
    )
    problems = [f"  missing {'/'.join(path)}" for path in shapes if path not in flat]
    problems += [f"  unexpected {'/'.join(path)}" for path in flat if path not in shapes]
    problems += [
        f"  {'/'.join(path)}: got {_shape_text(np.shape(flat[path]))}, expected "
        f"{_shape_text(shapes[path].shape)}"
        for path in shapes
        if path in flat and tuple(np.shape(flat[path])) != shapes[path].shape
    ]
    if problems:
        raise ValueError(f"these are not the variables of {name}:\n" + "\n".join(problems))
    return {t.key: np.ascontiguousarray(t.to_reference(np.asarray(flat[t.path], np.float32)))
            for t in tensors}


def _pickle_error(path: str) -> ValueError:
    stem = os.path.splitext(os.path.basename(path))[0]
    target = os.path.join(os.path.dirname(path), f"{stem}.safetensors")
    return ValueError(
        f"{path} is a pickled PyTorch checkpoint, and loading a pickle runs whatever code it "
        "holds, so only .safetensors and .npz files are read. Convert it once, where PyTorch is "
        "installed:\n"
        "  a torchvision state dict:\n"
        "    import torch, safetensors.torch\n"
        f"    safetensors.torch.save_file(torch.load({path!r}, map_location='cpu', "
        f"weights_only=True), {target!r})\n"
        "  a timm checkpoint:\n"
        "    import timm.models, safetensors.torch\n"
        f"    safetensors.torch.save_file(timm.models.load_state_dict({path!r}), {target!r})"
    )


def _check_suffix(path: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    if suffix in PICKLE_SUFFIXES:
        raise _pickle_error(path)
    if suffix not in WEIGHT_SUFFIXES:
        raise ValueError(
            f"weights files must end in one of {WEIGHT_SUFFIXES}, got {path!r}."
        )
    return suffix


def read_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of a ``.safetensors`` or ``.npz`` file, never unpickling anything.

    Args:
      path: a ``.safetensors`` file or an ``.npz`` archive of plain numeric arrays.

    Returns:
      ``{key: array}``, each array with the dtype it was stored with (bfloat16 included).

    Raises:
      ValueError: for a pickled checkpoint (``PICKLE_SUFFIXES``; the message gives the two
        lines that convert it to safetensors), any other suffix, an ``.npz`` holding object
        arrays or pickled data, or a file that is not valid safetensors.
      FileNotFoundError: if there is no file at ``path``.
    """
    path = os.fspath(path)
    suffix = _check_suffix(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no weights file at {path!r}.")
    if suffix == ".safetensors":
        try:
            return safetensors.numpy.load_file(path)
        except Exception as error:  # safetensors raises its own exception type for bad files.
            raise ValueError(f"{path} is not a valid safetensors file: {error}") from error
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise ValueError(
            f"{path} holds pickled data, which is never loaded: save plain arrays with np.savez."
        ) from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is a single .npy array, not an .npz archive of named arrays.")
    arrays, objects = {}, []
    with archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except ValueError:  # np.load refuses object arrays when allow_pickle=False.
                objects.append(key)
    if objects:
        raise ValueError(
            f"{path} holds object arrays, which would be unpickled to load: {', '.join(objects)}."
            " Save plain numeric arrays (np.savez(path, **{key: np.asarray(a, np.float32)}))."
        )
    return arrays


def load_pretrained(name: str, path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """A pretrained backbone and its variables, from a local weights file.

    Args:
      name: ``"alexnet"``, ``"vgg16"``, ``"resnet50"`` or ``"vit_b16"`` (``PRETRAINED_BACKBONES``).
      path: a ``.safetensors`` or ``.npz`` file holding the reference's state dict
        (``docs/pretrained.md`` says where to get one and how to convert a ``.pth`` file).

    Returns:
      ``(module, variables)``: ``module(x, train=...)`` maps ``[B, H, W, 3]`` images,
      normalised with :func:`normalize_images`, to ``[B, D]`` features
      (``PRETRAINED_BACKBONES[name].features``); ``variables`` holds float32 ``"params"``
      (and ``"batch_stats"`` for ``resnet50``). For ``vit_b16`` the image size is read off the
      position embeddings.

    Raises:
      ValueError: for an unknown name; a pickled checkpoint (with the conversion to
        safetensors); any other suffix; an ``.npz`` with object arrays; and, naming all of them,
        missing, unexpected, mis-shaped or non-float arrays.
      FileNotFoundError: if there is no file at ``path``.

    Examples:
      >>> module, variables = load_pretrained("resnet50", "resnet50.safetensors")  # doctest: +SKIP
      >>> features = module.apply(variables, images, train=False)  # doctest: +SKIP
    """
    _check_name(name)
    path = os.fspath(path)
    return variables_from_state_dict(name, read_weights(path), source=path)


def save_pretrained(name: str, variables: Mapping, path: str | os.PathLike) -> None:
    """Writes a backbone's variables as the reference's state dict (``.safetensors`` or ``.npz``).

    The file loads back with :func:`load_pretrained`, and into the reference implementation
    (``model.load_state_dict(safetensors.torch.load_file(path), strict=False)``; the classifier
    is not written).

    Raises:
      ValueError: for an unknown name, a suffix other than ``WEIGHT_SUFFIXES``, or variables
        that are not the backbone's (naming them).
    """
    path = os.fspath(path)
    suffix = _check_suffix(path)
    arrays = state_dict_from_variables(name, variables)
    if suffix == ".safetensors":
        safetensors.numpy.save_file(arrays, path)
    else:
        np.savez(path, **arrays)


_DRAWS: dict[str, Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]] = {
    "bias": lambda rng, shape: 0.1 * rng.standard_normal(shape, np.float32),
    "bn_scale": lambda rng, shape: rng.uniform(0.5, 1.0, shape).astype(np.float32),
    "bn_var": lambda rng, shape: rng.uniform(0.5, 1.5, shape).astype(np.float32),
    "ln_scale": lambda rng, shape: 1.0 + 0.1 * rng.standard_normal(shape, np.float32),
    "embedding": lambda rng, shape: 0.5 * rng.standard_normal(shape, np.float32),
}


def random_weights(name: str, seed: int, *, image_size: int | None = None) -> dict[str, np.ndarray]:
    """Seeded float32 weights in the reference's state-dict layout, for parity tests.

    The same seed gives the same arrays on every platform (NumPy's ``default_rng``), so the
    fixture script can give them to PyTorch and the tests to :func:`variables_from_state_dict`.
    Weights are He-normal per fan-in (``std = sqrt(2 / fan_in)``; ``sqrt(1 / fan_in)`` in the
    ViT, which has no ReLU), biases, BatchNorm shifts and running means ``N(0, 0.1²)``,
    BatchNorm scales ``U(0.5, 1)`` and running variances ``U(0.5, 1.5)``, LayerNorm scales
    ``1 + N(0, 0.1²)``, ViT class token and position embeddings ``N(0, 0.5²)``: activations keep
    their size through all layers, and every array, the position embeddings included, changes
    the output.

    Args:
      name: one of ``PRETRAINED_BACKBONES``.
      seed: seed of the generator.
      image_size: for ``vit_b16``, the image size the position embeddings are drawn for
        (default 224); must be ``None`` for the others.

    Returns:
      ``{key: array}`` of the arrays the features use (no classifier, no BatchNorm counters).
    """
    info = _check_name(name)
    if image_size is not None and name != "vit_b16":
        raise ValueError(f"image_size sets the ViT position embeddings only, got it for {name!r}.")
    if image_size is None:
        image_size = info.image_size
    elif isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 16 or (
        image_size % VIT_B16_PATCH
    ):
        raise ValueError(
            f"vit_b16 image_size must be a positive multiple of 16, got {image_size!r}."
        )
    gain = 1.0 if name == "vit_b16" else 2.0
    rng = np.random.default_rng(seed)
    weights = {}
    for t in _tensors(name, image_size):
        if t.init == "weight":
            std = math.sqrt(gain / math.prod(t.shape[1:]))
            weights[t.key] = std * rng.standard_normal(t.shape, np.float32)
        else:
            weights[t.key] = _DRAWS[t.init](rng, t.shape)
    return weights


def random_images(name: str, shape: tuple[int, int, int, int], seed: int) -> np.ndarray:
    """Seeded uniform ``[0, 1)`` RGB images ``[B, H, W, 3]``, normalised for backbone ``name``."""
    images = np.random.default_rng(seed).uniform(size=shape).astype(np.float32)
    return np.array(normalize_images(images, name))


class PretrainedFeatures(nn.Module):
    """A pretrained backbone on images in ``[0, 1]``: its normalisation, then its network.

    What a run config's ``model.backbone = "resnet50"`` (etc.) builds, so a ``HashNetwork`` (or
    any recipe's model) reads the protocol's images as they are; the run loads the weights file
    into it (:func:`graft_pretrained`).

    Attributes:
      architecture: one of ``PRETRAINED_BACKBONES``.
      image_size: ``vit_b16`` only: the image side its position embeddings are for (``None``:
        the published 224).
      bn_axis_name: ``resnet50`` only: the mapped axis its BatchNorm averages batch statistics
        over in training (the training step's, so several devices train as one).

    Call:
      ``x``: ``[B, H, W, 3]`` RGB values in ``[0, 1]``; ``train``: dropout (AlexNet, VGG-16) and
      BatchNorm statistics (ResNet-50).

    Returns:
      ``[B, D]`` features (``PRETRAINED_BACKBONES[architecture].features``).
    """

    architecture: str
    image_size: int | None = None
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.typing.ArrayLike, *, train: bool) -> jax.Array:
        info = _check_name(self.architecture)
        if self.architecture == "resnet50":
            network = ResNet50(bn_axis_name=self.bn_axis_name)
        else:
            network = _module(self.architecture, self.image_size or info.image_size)
        return network(normalize_images(x, self.architecture), train=train)


def _subtree_paths(tree: Mapping, target_structure, prefix: tuple[str, ...] = ()) -> list:
    """Key paths of the sub-dicts of ``tree`` whose structure and shapes equal the target's."""
    found = []
    if jax.tree.structure(tree) == target_structure[0] and all(
        np.shape(a) == s for a, s in zip(jax.tree.leaves(tree), target_structure[1])
    ):
        found.append(prefix)
    for key, value in tree.items():
        if isinstance(value, Mapping):
            found.extend(_subtree_paths(value, target_structure, (*prefix, key)))
    return found


def _replace_at(tree: Mapping, path: tuple[str, ...], value) -> dict:
    if not path:
        return value
    return {**tree, path[0]: _replace_at(tree[path[0]], path[1:], value)}


def graft_pretrained(variables: Mapping, pretrained: Mapping) -> dict:
    """``variables`` of a whole model with its pretrained backbone's replaced by ``pretrained``.

    The backbone is found by structure: the one sub-dict of ``variables["params"]`` whose keys
    and shapes are those of ``pretrained["params"]`` (e.g. ``params["backbone"]["network"]`` of a
    ``HashNetwork`` on :class:`PretrainedFeatures`); ``pretrained["batch_stats"]`` (ResNet-50)
    replaces the ``batch_stats`` at the same path.

    Args:
      variables: the model's initial variables (``model.init``).
      pretrained: the backbone's variables (:func:`load_pretrained`).

    Returns:
      The variables with the backbone's replaced; everything else (hash head, classifier, other
      networks) keeps its initialisation.

    Raises:
      ValueError: if no sub-dict, or more than one, has the pretrained parameters' structure.
    """
    target = pretrained["params"]
    structure = (jax.tree.structure(target), [np.shape(a) for a in jax.tree.leaves(target)])
    paths = _subtree_paths(variables["params"], structure)
    if len(paths) != 1:
        raise ValueError(
            f"The model has {len(paths)} parameter groups with the structure of the pretrained "
            f"backbone's ({len(structure[1])} arrays){': ' + str(paths) if paths else ''}; "
            "exactly one is needed to load the weights into (is model.backbone the weights' "
            "architecture?)."
        )
    path = paths[0]
    grafted = dict(variables)
    grafted["params"] = _replace_at(variables["params"], path, target)
    if "batch_stats" in pretrained:
        grafted["batch_stats"] = _replace_at(variables["batch_stats"], path,
                                             pretrained["batch_stats"])
    return grafted
