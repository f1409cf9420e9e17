import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlhash_jax.models import AlexNet
from dlhash_jax.models import num_params
from dlhash_jax.models import pretrained
from dlhash_jax.models.alexnet import adaptive_avg_pool

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "pretrained"


def _pool_loop(x, size_out):
    """PyTorch's definition, one cell at a time: rows floor(i H / h) to ceil((i + 1) H / h)."""
    (height, width), (h, w) = x.shape[1:3], size_out
    out = np.zeros((x.shape[0], h, w, x.shape[3]))
    for i in range(h):
        top, bottom = int(np.floor(i * height / h)), int(np.ceil((i + 1) * height / h))
        for j in range(w):
            left, right = int(np.floor(j * width / w)), int(np.ceil((j + 1) * width / w))
            out[:, i, j] = x[:, top:bottom, left:right].mean(axis=(1, 2))
    return out


def test_adaptive_avg_pool_equals_pytorch():
    with np.load(FIXTURES / "adaptive_avg_pool.npz", allow_pickle=False) as fixture:
        seed = int(fixture["seed"])
        cases = [key for key in fixture.files if "_to_" in key]
        # Sizes that divide, overlap (7 -> 6, 13 -> 7), repeat (1 -> 6, 3 -> 7) and mix both.
        assert len(cases) == 6
        for key in cases:
            size_in, size_out = (tuple(int(d) for d in s.split("x")) for s in key.split("_to_"))
            maps = np.random.default_rng((seed, *size_in)).standard_normal(
                (2, *size_in, 3), np.float32
            )
            pooled = jax.jit(adaptive_avg_pool, static_argnums=1)(maps, size_out)
            assert pooled.shape == (2, *size_out, 3)
            np.testing.assert_allclose(pooled, fixture[key], rtol=0, atol=1e-6, err_msg=key)


@pytest.mark.parametrize(
    "size_in, size_out", [((5, 8), (3, 3)), ((2, 9), (4, 2)), ((6, 6), (6, 6)), ((10, 3), (1, 1))]
)
def test_adaptive_avg_pool_matches_the_definition(size_in, size_out):
    x = np.random.default_rng(0).normal(size=(2, *size_in, 4)).astype(np.float32)
    np.testing.assert_allclose(adaptive_avg_pool(x, size_out), _pool_loop(x, size_out), atol=1e-6)


def test_adaptive_avg_pool_bad_rank():
    with pytest.raises(ValueError, match=r"maps \[B, H, W, C\], got shape \(4, 4, 3\)"):
        adaptive_avg_pool(jnp.zeros((4, 4, 3)), (2, 2))


@pytest.mark.parametrize("image_shape", [(224, 224, 3), (63, 63, 3), (300, 200, 3)])
def test_alexnet_shapes_and_param_count(image_shape):
    out, variables = jax.eval_shape(
        lambda: AlexNet().init_with_output(jax.random.key(0), jnp.zeros((2, *image_shape)),
                                           train=False)
    )
    assert out.shape == (2, 4096)
    assert set(variables) == {"params"}
    # torchvision's 61,100,840 parameters less fc8's 4096 * 1000 + 1000, at any image size.
    assert num_params(variables["params"]) == 61_100_840 - 4_097_000
    assert variables["params"]["fc6"]["kernel"].shape == (256 * 6 * 6, 4096)


def test_alexnet_bad_input_and_config():
    model = AlexNet()
    with pytest.raises(ValueError, match=r"at least 63x63, got shape \(2, 62, 100, 3\)"):
        model.init(jax.random.key(0), jnp.zeros((2, 62, 100, 3)), train=False)
    for shape in [(2, 64, 64), (2, 64, 64, 1)]:
        expected = r"RGB images \[B, H, W, 3\], got shape " + re.escape(str(shape))
        with pytest.raises(ValueError, match=expected):
            model.init(jax.random.key(0), jnp.zeros(shape), train=False)
    with pytest.raises(ValueError, match="dropout_rate must be in"):
        AlexNet(dropout_rate=1.0)


def test_alexnet_dropout_in_training_only_and_not_after_fc7():
    module, variables = pretrained.variables_from_state_dict(
        "alexnet", pretrained.random_weights("alexnet", 0)
    )
    no_dropout = module.clone(dropout_rate=0.0)
    x = pretrained.random_images("alexnet", (2, 63, 63, 3), seed=1)

    @jax.jit
    def run(variables, x):
        key = jax.random.key(2)
        return (
            module.apply(variables, x, train=False),
            module.apply(variables, x, train=True, rngs={"dropout": key}),
            module.apply(variables, x, train=True, rngs={"dropout": key}),
            module.apply(variables, x, train=True, rngs={"dropout": jax.random.key(3)}),
            no_dropout.apply(variables, x, train=True),
        )

    evaluation, train, train_again, other_key, rate_zero = map(np.asarray, run(variables, x))
    np.testing.assert_array_equal(train, train_again)
    assert not np.allclose(train, evaluation) and not np.allclose(train, other_key)
    np.testing.assert_allclose(rate_zero, evaluation, rtol=1e-6, atol=1e-6)
    # The output is fc7's ReLU with no dropout after it: about half the units are 0 in both
    # modes (VGG16, which drops after fc7, has three quarters in training).
    assert 0.4 < np.mean(evaluation == 0) < 0.6 and 0.4 < np.mean(train == 0) < 0.6
