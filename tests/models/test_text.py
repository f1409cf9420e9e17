import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlhash_jax.models import HashHead, HashNetwork, TextEncoder


@pytest.mark.parametrize("log_counts", [False, True])
def test_text_encoder_matches_numpy(log_counts):
    model = HashNetwork(TextEncoder((6,), log_counts=log_counts), HashHead(4, "none"))
    counts = np.random.default_rng(0).poisson(1.0, size=(3, 10)).astype(np.float32)
    rng = np.random.default_rng(1)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), counts, train=False))
    variables = jax.tree_util.tree_map(
        lambda leaf: rng.normal(size=leaf.shape).astype(np.float32), shapes
    )
    p = variables["params"]
    out = model.apply(variables, counts, train=False)
    inputs = np.log1p(counts) if log_counts else counts
    layer = p["backbone"]["mlp"]["Dense_0"]
    features = np.maximum(inputs @ layer["kernel"] + layer["bias"], 0)
    pre = features @ p["head"]["hash"]["kernel"] + p["head"]["hash"]["bias"]
    np.testing.assert_allclose(out["features"], features, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["pre"], pre, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["relaxed"], out["pre"])


def test_text_encoder_needs_bag_of_words_matrix():
    with pytest.raises(ValueError, match=r"bag-of-words vectors \[B, V\], got shape \(2, 3, 4\)"):
        TextEncoder().init(jax.random.key(0), jnp.zeros((2, 3, 4)), train=False)
    with pytest.raises(ValueError, match="dropout_rate must be in"):
        TextEncoder(dropout_rate=-0.1)
