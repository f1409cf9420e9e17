import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlhash_jax.models import ViTB16
from dlhash_jax.models import num_params
from dlhash_jax.models import pretrained


@pytest.mark.parametrize("image_size", [224, 64])
def test_vit_b16_shapes_and_param_count(image_size):
    out, variables = jax.eval_shape(
        lambda: ViTB16(image_size).init_with_output(
            jax.random.key(0), jnp.zeros((2, image_size, image_size, 3)), train=False
        )
    )
    assert out.shape == (2, 768)
    assert set(variables) == {"params"}
    tokens = 1 + (image_size // 16) ** 2
    assert variables["params"]["pos_embed"].shape == (1, tokens, 768)
    # timm's vit_base_patch16_224 has 86,567,656 parameters; less its head (768 * 1000 + 1000)
    # and, at other sizes, the position embeddings of the missing patches.
    assert num_params(variables["params"]) == 86_567_656 - 769_000 - (197 - tokens) * 768
    assert variables["params"]["blocks_11"]["attn"]["qkv"]["kernel"].shape == (768, 3 * 768)


@pytest.mark.parametrize("image_size", [0, 100, 8, True, 224.0])
def test_vit_b16_image_size_must_be_a_multiple_of_16(image_size):
    with pytest.raises(ValueError, match=rf"positive multiple of 16, got {image_size!r}\."):
        ViTB16(image_size=image_size)


def test_vit_b16_images_must_have_the_size_of_its_position_embeddings():
    with pytest.raises(ValueError, match=r"image_size=224 expects images \[B, 224, 224, 3\].*"
                                         r"got shape \(1, 240, 240, 3\)"):
        ViTB16().init(jax.random.key(0), jnp.zeros((1, 240, 240, 3)), train=False)
    with pytest.raises(ValueError, match=r"RGB images \[B, H, W, 3\], got shape \(1, 224, 224\)"):
        ViTB16().init(jax.random.key(0), jnp.zeros((1, 224, 224)), train=False)


def test_vit_b16_has_no_dropout():
    module, variables = pretrained.variables_from_state_dict(
        "vit_b16", pretrained.random_weights("vit_b16", 0, image_size=32)
    )
    assert module.image_size == 32
    x = pretrained.random_images("vit_b16", (2, 32, 32, 3), seed=1)
    run = jax.jit(lambda v, x: (module.apply(v, x, train=True), module.apply(v, x, train=False)))
    train, evaluation = run(variables, x)
    np.testing.assert_array_equal(train, evaluation)
