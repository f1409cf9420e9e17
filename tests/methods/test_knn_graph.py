"""kNN-graph recipe: its loss against a loop over an independently built two-hop kNN graph, no
use of labels, its model and defaults, and a tiny run."""

import jax
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import knn_graph


def _naive_graph(x, k1, k2):
    """S of survey §4.3.1 2): +1 for x_j in the K1-NN of x_i or of one of x_i's K2-NN, or i = j."""
    n = len(x)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    cosine = unit @ unit.T
    order = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        order.append(sorted(others, key=lambda j: (-cosine[i, j], j)))
    graph = -np.ones((n, n))
    for i in range(n):
        graph[i, i] = 1.0
        for j in order[i][:k1]:
            graph[i, j] = 1.0
        for m in order[i][:k2]:
            for j in order[m][:k1]:
                graph[i, j] = 1.0
    return graph


def _naive_loss(h, x, k1, k2):
    graph = _naive_graph(x.reshape(len(x), -1), k1, k2)
    bits = h.shape[1]
    terms = [(bits * graph[i, j] - float(np.dot(h[i], h[j]))) ** 2
             for i in range(len(h)) for j in range(len(h))]
    return np.mean(terms)


def _loss(h, inputs, labels, **hparams):
    hparams = {**knn_graph.DEFAULT_HPARAMS, **hparams}
    fn = jax.jit(lambda out, batch: knn_graph.loss_fn(out, batch, bank=None, step=0,
                                                      hparams=hparams))
    return fn({"relaxed": h}, {"inputs": inputs, "labels": labels})


@pytest.mark.parametrize("k1, k2", [(3, 2), (1, 0), (2, 4)])
def test_loss_matches_loop_over_two_hop_graph(k1, k2):
    rng = np.random.default_rng(0)
    inputs = rng.uniform(size=(9, 4, 4, 1)).astype(np.float32)
    h = np.tanh(rng.normal(size=(9, 6))).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 9)]
    loss, terms = _loss(h, inputs, labels, k1=k1, k2=k2)
    np.testing.assert_allclose(float(loss), _naive_loss(h, inputs, k1, k2), rtol=1e-5)
    graph = _naive_graph(inputs.reshape(9, -1), k1, k2)
    np.testing.assert_allclose(float(terms["similar_fraction"]), np.mean(graph > 0), rtol=1e-6)


def test_hand_made_batch():
    # Two tight pairs far apart: with K1 = 1, K2 = 0 each item's only neighbour is its partner.
    inputs = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]], np.float32)
    h = np.array([[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0], [-1.0, -1.0]], np.float32)
    loss, terms = _loss(h, inputs, np.eye(4, dtype=np.float32), k1=1, k2=0)
    assert float(loss) == 0.0  # similar codes equal, dissimilar codes complementary
    assert float(terms["similar_fraction"]) == 0.5
    flipped = h * np.array([[1.0], [-1.0], [1.0], [1.0]], np.float32)
    # Flipping item 1 breaks the ordered pairs (0, 1), (1, 0) (similar: target 2, product −2)
    # and (1, 2), (2, 1), (1, 3), (3, 1) (dissimilar: target −2, product 2): 6 of 16 pairs with
    # squared error 16.
    np.testing.assert_allclose(float(_loss(flipped, inputs, np.eye(4, dtype=np.float32), k1=1,
                                           k2=0)[0]), 6 * 16 / 16)


def test_loss_ignores_labels():
    rng = np.random.default_rng(1)
    inputs = rng.uniform(size=(10, 8, 8, 1)).astype(np.float32)
    h = np.tanh(rng.normal(size=(10, 8))).astype(np.float32)
    labels = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 10)]
    loss, _ = _loss(h, inputs, labels)
    for seed in range(3):
        shuffled = np.random.default_rng(seed).permutation(labels)
        assert float(_loss(h, inputs, shuffled)[0]) == float(loss)
    assert float(_loss(h, inputs, np.zeros_like(labels))[0]) == float(loss)


def test_recipe_defaults_and_model():
    recipe = methods.get_recipe("knn_graph")
    assert recipe is knn_graph.RECIPE
    # K1, K2 are ours (the thesis's are not available): sized for batches of 50 (module docstring).
    assert dict(recipe.default_hparams) == {"k1": 3, "k2": 2}
    assert recipe.bank_output is None and recipe.beta_schedule is None
    assert "2018" in recipe.citation and "[65]" in recipe.citation
    config = train.default_config()
    config.bits = 12
    config.model.features = (8,)
    model = recipe.make_model(config, 10)
    x = np.random.default_rng(2).normal(size=(3, 8, 8, 1)).astype(np.float32)
    variables = model.init(jax.random.key(0), x, train=False)
    out = model.apply(variables, x, train=False)
    assert out["pre"].shape == (3, 12)
    np.testing.assert_allclose(out["relaxed"], np.tanh(out["pre"]), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="knn_graph", bits=16, num_epochs=20, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
