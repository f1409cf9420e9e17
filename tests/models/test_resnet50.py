import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlhash_jax.models import ResNet50
from dlhash_jax.models import num_params
from dlhash_jax.models import pretrained


@pytest.mark.parametrize("image_shape", [(224, 224, 3), (64, 48, 3), (32, 32, 3)])
def test_resnet50_shapes_and_param_count(image_shape):
    out, variables = jax.eval_shape(
        lambda: ResNet50().init_with_output(jax.random.key(0), jnp.zeros((2, *image_shape)),
                                            train=False)
    )
    assert out.shape == (2, 2048)
    # torchvision's 25,557,032 parameters less fc's 2048 * 1000 + 1000.
    assert num_params(variables["params"]) == 25_557_032 - 2_049_000
    # A running mean and variance per BatchNorm channel: 26,560 channels in 53 BatchNorms.
    scales = [
        leaf.size
        for path, leaf in jax.tree_util.tree_leaves_with_path(variables["params"])
        if path[-1].key == "scale"
    ]
    assert (len(scales), sum(scales)) == (53, 26_560)
    assert num_params(variables["batch_stats"]) == 2 * 26_560
    blocks = [name for name in variables["params"] if name.startswith("layer")]
    assert len(blocks) == 16 and "layer4_2" in blocks


def test_resnet50_bad_input():
    with pytest.raises(ValueError, match=r"at least 32x32, got shape \(1, 31, 40, 3\)"):
        ResNet50().init(jax.random.key(0), jnp.zeros((1, 31, 40, 3)), train=False)
    with pytest.raises(ValueError, match=r"RGB images \[B, H, W, 3\], got shape \(1, 32, 32\)"):
        ResNet50().init(jax.random.key(0), jnp.zeros((1, 32, 32)), train=False)


def test_resnet50_batch_norm_follows_pytorch_in_both_modes():
    module, variables = pretrained.variables_from_state_dict(
        "resnet50", pretrained.random_weights("resnet50", 0)
    )
    x = pretrained.random_images("resnet50", (3, 32, 32, 3), seed=1)

    def is_stem(mdl, _):
        return mdl.scope.path == ("conv1",)

    @jax.jit
    def run(variables, x):
        train, state = module.apply(
            variables, x, train=True, mutable=["batch_stats", "intermediates"],
            capture_intermediates=is_stem,
        )
        evaluation = module.apply(variables, x, train=False)
        # Evaluation normalises with the running averages: each row is independent of the others.
        first_alone = module.apply(variables, x[:1], train=False)
        return train, state, evaluation, first_alone

    train, state, evaluation, first_alone = run(variables, x)
    np.testing.assert_allclose(first_alone, evaluation[:1], rtol=1e-5, atol=1e-5)
    assert not np.allclose(train, evaluation, atol=1e-2)
    # PyTorch's momentum 0.1: running mean <- 0.9 running mean + 0.1 batch mean.
    stem = state["intermediates"]["conv1"]["__call__"][0]
    old = variables["batch_stats"]["bn1"]["mean"]
    np.testing.assert_allclose(
        state["batch_stats"]["bn1"]["mean"], 0.9 * old + 0.1 * stem.mean(axis=(0, 1, 2)),
        rtol=1e-5, atol=1e-5,
    )
    changed = jax.tree.map(
        lambda a, b: not np.allclose(a, b), variables["batch_stats"], state["batch_stats"]
    )
    assert all(jax.tree.leaves(changed))
