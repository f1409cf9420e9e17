import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlhash_jax.models import VGG16
from dlhash_jax.models import num_params
from dlhash_jax.models import pretrained


@pytest.mark.parametrize("image_shape", [(224, 224, 3), (32, 32, 3), (96, 64, 3)])
def test_vgg16_shapes_and_param_count(image_shape):
    out, variables = jax.eval_shape(
        lambda: VGG16().init_with_output(jax.random.key(0), jnp.zeros((2, *image_shape)),
                                         train=False)
    )
    assert out.shape == (2, 4096)
    assert set(variables) == {"params"}
    # torchvision's 138,357,544 parameters less fc8's 4096 * 1000 + 1000, at any image size.
    assert num_params(variables["params"]) == 138_357_544 - 4_097_000
    assert len([name for name in variables["params"] if name.startswith("conv")]) == 13
    assert variables["params"]["fc6"]["kernel"].shape == (512 * 7 * 7, 4096)


def test_vgg16_bad_input_and_config():
    with pytest.raises(ValueError, match=r"at least 32x32, got shape \(1, 31, 64, 3\)"):
        VGG16().init(jax.random.key(0), jnp.zeros((1, 31, 64, 3)), train=False)
    with pytest.raises(ValueError, match=r"RGB images \[B, H, W, 3\], got shape \(1, 32, 32, 4\)"):
        VGG16().init(jax.random.key(0), jnp.zeros((1, 32, 32, 4)), train=False)
    with pytest.raises(ValueError, match="dropout_rate must be in"):
        VGG16(dropout_rate=-0.1)


def test_vgg16_dropout_in_training_only_and_after_fc7():
    module, variables = pretrained.variables_from_state_dict(
        "vgg16", pretrained.random_weights("vgg16", 0)
    )
    x = pretrained.random_images("vgg16", (2, 32, 32, 3), seed=1)

    @jax.jit
    def run(variables, x):
        return (
            module.apply(variables, x, train=False),
            module.apply(variables, x, train=True, rngs={"dropout": jax.random.key(2)}),
            module.clone(dropout_rate=0.0).apply(variables, x, train=True),
        )

    evaluation, train, rate_zero = (np.asarray(a) for a in run(variables, x))
    np.testing.assert_allclose(rate_zero, evaluation, rtol=1e-6, atol=1e-6)
    # About half of fc7's ReLU outputs are 0; dropout with rate 0.5 after fc7 zeroes half of
    # the rest in training (AlexNet's output, with no dropout after fc7, stays at one half).
    assert 0.4 < np.mean(evaluation == 0) < 0.6
    assert 0.68 < np.mean(train == 0) < 0.82
