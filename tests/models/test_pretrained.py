"""Loading pretrained backbones: the file readers and their errors, round trips, and parity.

The parity tests compare each backbone with its reference implementation (torchvision, timm) on
the same seeded weights and images; the reference features were computed with PyTorch by
``experiments/tools/make_pretrained_fixtures.py`` and stored in ``tests/fixtures/pretrained/``,
so PyTorch is not needed here.
"""

import functools
import pathlib
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.flax
import safetensors.numpy
from flax import traverse_util

from dlhash_jax.models import PRETRAINED_BACKBONES
from dlhash_jax.models import HashHead
from dlhash_jax.models import HashNetwork
from dlhash_jax.models import encode
from dlhash_jax.models import load_pretrained
from dlhash_jax.models import normalize_images
from dlhash_jax.models import save_pretrained
from dlhash_jax.models import pretrained

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "pretrained"
NAMES = ("alexnet", "vgg16", "resnet50", "vit_b16")


@functools.cache
def _case(name):
    """Weights, images and reference features of the fixture of ``name``."""
    with np.load(FIXTURES / f"{name}.npz", allow_pickle=False) as fixture:
        shape = tuple(int(d) for d in fixture["image_shape"])
        image_size = shape[1] if name == "vit_b16" else None
        weights = pretrained.random_weights(
            name, int(fixture["weight_seed"]), image_size=image_size
        )
        images = pretrained.random_images(name, shape, int(fixture["image_seed"]))
        return weights, images, fixture["features"]


def _flat_shapes(tree):
    return {path: tuple(leaf.shape) for path, leaf in traverse_util.flatten_dict(tree).items()}


class _Trap:
    """Unpickling this creates ``path``: proof that a loader unpickled the file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_backbone_table_and_normalisation():
    assert tuple(PRETRAINED_BACKBONES) == NAMES
    assert [PRETRAINED_BACKBONES[n].features for n in NAMES] == [4096, 4096, 2048, 768]
    # torchvision's ImageNet constants map their own mean to 0; timm's ViT maps [0, 1] to [-1, 1].
    for name in ("alexnet", "vgg16", "resnet50"):
        np.testing.assert_allclose(
            normalize_images([[0.485, 0.456, 0.406], [0.714, 0.68, 0.631]], name),
            [[0, 0, 0], [1, 1, 1]],
            atol=1e-6,
        )
    np.testing.assert_allclose(normalize_images(np.ones((2, 4, 4, 3)), "vit_b16"), 1.0)
    np.testing.assert_allclose(normalize_images(np.zeros((4, 3)), "vit_b16"), -1.0)
    with pytest.raises(ValueError, match=r"RGB values \[\.\.\., 3\], got shape \(4, 1\)"):
        normalize_images(np.zeros((4, 1)), "alexnet")


def test_unknown_name_is_refused_with_the_closest(tmp_path):
    with pytest.raises(ValueError, match=r"got 'resnet'.*did you mean 'resnet50'"):
        load_pretrained("resnet", tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match=r"got 'vit'"):
        pretrained.random_weights("vit", 0)
    with pytest.raises(ValueError, match=r"image_size sets the ViT position embeddings only"):
        pretrained.random_weights("alexnet", 0, image_size=64)


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".bin", ".ckpt", ".pkl", ".PTH"])
def test_pickled_checkpoint_is_refused_unread_with_the_conversion(tmp_path, suffix):
    trap = tmp_path / "unpickled"
    path = tmp_path / f"resnet50{suffix}"
    path.write_bytes(pickle.dumps(_Trap(trap)))
    with pytest.raises(ValueError) as error:
        load_pretrained("resnet50", path)
    assert not trap.exists()
    message = str(error.value)
    target = str(tmp_path / "resnet50.safetensors")
    assert "loading a pickle runs whatever code it holds" in message
    assert (
        "    import torch, safetensors.torch\n"
        f"    safetensors.torch.save_file(torch.load({str(path)!r}, map_location='cpu', "
        f"weights_only=True), {target!r})\n"
    ) in message
    assert message.endswith(
        "    import timm.models, safetensors.torch\n"
        f"    safetensors.torch.save_file(timm.models.load_state_dict({str(path)!r}), {target!r})"
    )


def test_other_suffixes_and_missing_files(tmp_path):
    (tmp_path / "w.h5").write_bytes(b"")
    with pytest.raises(ValueError, match=r"end in one of \('.safetensors', '.npz'\), got .*w\.h5"):
        load_pretrained("alexnet", tmp_path / "w.h5")
    with pytest.raises(FileNotFoundError, match=r"no weights file at .*absent\.npz"):
        load_pretrained("alexnet", tmp_path / "absent.npz")


def test_npz_with_object_arrays_or_pickles_is_refused(tmp_path):
    trap = tmp_path / "unpickled"
    objects = tmp_path / "objects.npz"
    np.savez(
        objects,
        **{"conv1.weight": np.zeros(2), "bn1.weight": np.array([_Trap(trap)], dtype=object),
           "fc.bias": np.array([{"a": 1}], dtype=object)},
    )
    with pytest.raises(ValueError, match=r"holds object arrays.*: bn1\.weight, fc\.bias\."):
        load_pretrained("resnet50", objects)
    disguised = tmp_path / "disguised.npz"
    disguised.write_bytes(pickle.dumps({"conv1.weight": _Trap(trap)}))
    with pytest.raises(ValueError, match=r"holds pickled data, which is never loaded"):
        load_pretrained("resnet50", disguised)
    assert not trap.exists()
    single = tmp_path / "single.npz"
    with open(single, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(ValueError, match=r"single \.npy array, not an \.npz archive"):
        load_pretrained("resnet50", single)


def test_invalid_safetensors_file_is_refused(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(ValueError, match=r"broken\.safetensors is not a valid safetensors file"):
        load_pretrained("vit_b16", path)


def test_bfloat16_weights_load_as_float32(tmp_path):
    weights, _, _ = _case("resnet50")
    path = tmp_path / "bf16.safetensors"
    safetensors.flax.save_file({k: jnp.asarray(v, jnp.bfloat16) for k, v in weights.items()},
                               str(path))
    assert pretrained.read_weights(path)["conv1.weight"].dtype == jnp.bfloat16
    _, variables = load_pretrained("resnet50", path)
    kernel = variables["params"]["conv1"]["kernel"]
    assert kernel.dtype == jnp.float32
    rounded = weights["conv1.weight"].astype(jnp.bfloat16).astype(np.float32)
    np.testing.assert_array_equal(kernel, rounded.transpose(2, 3, 1, 0))


def test_every_missing_extra_misshaped_or_non_float_key_is_named(tmp_path):
    weights, _, _ = _case("resnet50")
    broken = dict(weights)
    for key in ("conv1.weight", "layer2.0.downsample.1.running_var", "layer4.2.bn3.bias"):
        del broken[key]
    broken["layer5.0.conv1.weight"] = np.zeros((3, 3), np.float32)
    broken["module.fc.weight"] = np.zeros(1, np.float32)
    broken["bn1.bias"] = np.zeros(65, np.float32)
    broken["layer3.5.conv2.weight"] = weights["layer3.5.conv2.weight"][..., None]
    broken["layer1.1.bn2.running_mean"] = np.zeros(64, np.int64)
    # The classifier and the BatchNorm counters are skipped, not reported.
    broken["fc.weight"] = np.zeros((1000, 2048), np.float32)
    broken["layer1.0.bn1.num_batches_tracked"] = np.array(7)
    with pytest.raises(ValueError) as error:
        pretrained.variables_from_state_dict("resnet50", broken)
    message = str(error.value)
    assert message.startswith("the state dict does not hold the resnet50 weights")
    for line in (
        "missing (3):",
        "  conv1.weight [64, 3, 7, 7]",
        "  layer2.0.downsample.1.running_var [512]",
        "  layer4.2.bn3.bias [2048]",
        "unexpected (2):",
        "  layer5.0.conv1.weight [3, 3]",
        "  module.fc.weight [1]",
        "wrong shape (2):",
        "  bn1.bias: got [65], expected [64]",
        "  layer3.5.conv2.weight: got [256, 256, 3, 3, 1], expected [256, 256, 3, 3]",
        "not floating point (1):",
        "  layer1.1.bn2.running_mean: int64",
    ):
        assert line in message.splitlines()
    assert "num_batches_tracked [" not in message and "  fc.weight" not in message

    # From a file, the message names the file and every one of the missing keys.
    path = tmp_path / "partial.npz"
    np.savez(path, **{"bn1.weight": weights["bn1.weight"]})
    with pytest.raises(ValueError) as error:
        load_pretrained("resnet50", path)
    message = str(error.value)
    assert message.startswith(f"{path} does not hold the resnet50 weights")
    assert f"missing ({len(weights) - 1}):" in message
    assert all(f"  {key} [" in message for key in weights if key != "bn1.weight")


def test_vit_position_embeddings_that_fit_no_square_grid_are_named():
    weights, _, _ = _case("vit_b16")
    broken = dict(weights, pos_embed=np.zeros((1, 18, 768), np.float32))
    expected = r"(?s)pos_embed: got \[1, 18, 768\], expected \[1, 197, 768\].*16 × grid"
    with pytest.raises(ValueError, match=expected):
        pretrained.variables_from_state_dict("vit_b16", broken)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_load_save_load_round_trips(tmp_path, suffix):
    weights, _, _ = _case("resnet50")
    first = tmp_path / f"first{suffix}"
    # As torchvision saves it: with the classifier and BatchNorm counters, which are skipped.
    extras = {"fc.weight": np.ones((1000, 2048), np.float32), "fc.bias": np.ones(1000, np.float32),
              "bn1.num_batches_tracked": np.array(5, np.int64)}
    if suffix == ".npz":
        np.savez(first, **weights, **extras)
    else:
        safetensors.numpy.save_file({**weights, **extras}, str(first))
    module, variables = load_pretrained("resnet50", first)
    assert set(variables) == {"params", "batch_stats"}
    second = tmp_path / f"second{suffix}"
    save_pretrained("resnet50", variables, second)
    saved = pretrained.read_weights(second)
    assert sorted(saved) == sorted(weights)
    for key, array in weights.items():
        np.testing.assert_array_equal(saved[key], array, err_msg=key)
    module_again, variables_again = load_pretrained("resnet50", second)
    assert module_again == module
    jax.tree.map(np.testing.assert_array_equal, variables_again, variables)


def test_save_refuses_other_variables_and_pickles(tmp_path):
    weights, _, _ = _case("resnet50")
    _, variables = pretrained.variables_from_state_dict("resnet50", weights)
    with pytest.raises(ValueError, match=r"loading a pickle runs whatever code"):
        save_pretrained("resnet50", variables, tmp_path / "w.pth")
    params = dict(variables["params"])
    del params["conv1"]
    params["extra"] = {"kernel": np.zeros(3)}
    broken = {"params": params, "batch_stats": variables["batch_stats"]}
    with pytest.raises(ValueError) as error:
        save_pretrained("resnet50", broken, tmp_path / "w.npz")
    lines = str(error.value).splitlines()
    assert lines[0] == "these are not the variables of resnet50:"
    assert {"  missing params/conv1/kernel", "  unexpected params/extra/kernel"} <= set(lines)
    assert not (tmp_path / "w.npz").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_features_equal_the_reference_implementation(name):
    weights, images, expected = _case(name)
    module, variables = pretrained.variables_from_state_dict(name, weights)
    # The key mapping fills every variable of the module, with its shape, and nothing else.
    shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), images, train=False))
    assert _flat_shapes(variables) == _flat_shapes(shapes)
    features = jax.jit(lambda v, x: module.apply(v, x, train=False))(variables, images)
    assert features.shape == (images.shape[0], PRETRAINED_BACKBONES[name].features)
    assert features.dtype == jnp.float32
    np.testing.assert_allclose(features, expected, rtol=0, atol=1e-4)
    if name == "vit_b16":
        assert module.image_size == images.shape[1]


@pytest.mark.slow
def test_pretrained_backbone_plugs_into_hash_network():
    weights, _, _ = _case("resnet50")
    backbone, backbone_vars = pretrained.variables_from_state_dict("resnet50", weights)
    model = HashNetwork(backbone, HashHead(16))
    images = pretrained.random_images("resnet50", (3, 32, 32, 3), seed=7)
    head_vars = HashHead(16).init(jax.random.key(1), jnp.zeros((1, 2048)))
    variables = {
        "params": {"backbone": backbone_vars["params"], "head": head_vars["params"]},
        "batch_stats": {"backbone": backbone_vars["batch_stats"]},
    }
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), images, train=False))
    assert _flat_shapes(variables) == _flat_shapes(shapes)
    codes = encode(model.apply, variables, images, batch_size=2)
    assert codes.shape == (3, 16)
    assert set(np.unique(codes)) <= {-1.0, 1.0}

    @jax.jit
    def both(variables, backbone_vars, images):
        out = model.apply(variables, images, train=False)
        return out, backbone.apply(backbone_vars, images, train=False)

    out, alone = both(variables, backbone_vars, images)
    np.testing.assert_array_equal(codes, np.where(np.asarray(out["pre"]) >= 0, 1.0, -1.0))
    np.testing.assert_allclose(out["features"], alone, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_pretrained_features_normalise_and_graft_into_a_hash_network():
    weights, _, _ = _case("resnet50")
    backbone, backbone_vars = pretrained.variables_from_state_dict("resnet50", weights)
    model = HashNetwork(pretrained.PretrainedFeatures("resnet50"), HashHead(16))
    images = np.random.default_rng(3).uniform(size=(2, 32, 32, 3)).astype(np.float32)
    # The model's variables with values drawn here: the graft must keep the head's values and
    # replace the backbone's whatever they are, and ResNet-50's initialisers took 6 s to compile
    # (9 s op by op).
    shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), images)
    rng = np.random.default_rng(4)
    initial = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(s.dtype), shapes)
    grafted = pretrained.graft_pretrained(initial, backbone_vars)
    # The head keeps its initialisation; the backbone is the file's, BatchNorm statistics too.
    assert jax.tree.all(jax.tree.map(np.array_equal, grafted["params"]["head"],
                                     initial["params"]["head"]))
    (inner,) = grafted["params"]["backbone"].values()
    assert jax.tree.all(jax.tree.map(np.array_equal, inner, backbone_vars["params"]))
    (stats,) = grafted["batch_stats"]["backbone"].values()
    assert jax.tree.all(jax.tree.map(np.array_equal, stats, backbone_vars["batch_stats"]))

    @jax.jit
    def both(grafted, backbone_vars, images):
        out = model.apply(grafted, images, train=False)
        alone = backbone.apply(backbone_vars, normalize_images(images, "resnet50"), train=False)
        return out, alone

    out, alone = both(grafted, backbone_vars, images)
    np.testing.assert_allclose(out["features"], alone, rtol=1e-5, atol=1e-5)


def test_graft_needs_exactly_one_backbone_of_the_weights_structure():
    dense = {"params": {"kernel": np.ones((3, 2)), "bias": np.zeros(2)}}
    variables = {"params": {"a": {"kernel": np.zeros((3, 2)), "bias": np.ones(2)},
                            "b": {"kernel": np.zeros((4, 2)), "bias": np.ones(2)}}}
    grafted = pretrained.graft_pretrained(variables, dense)
    np.testing.assert_array_equal(grafted["params"]["a"]["kernel"], np.ones((3, 2)))
    np.testing.assert_array_equal(grafted["params"]["b"]["kernel"], np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"has 0 parameter groups with the structure of the "
                       r"pretrained backbone's \(2 arrays\); exactly one"):
        pretrained.graft_pretrained(variables, {"params": {"kernel": np.ones((5, 2)),
                                                           "bias": np.zeros(2)}})
    twice = {"params": {"a": variables["params"]["a"], "c": variables["params"]["a"]}}
    with pytest.raises(ValueError, match=r"has 2 parameter groups .*\[\('a',\), \('c',\)\]"):
        pretrained.graft_pretrained(twice, dense)
