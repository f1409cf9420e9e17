"""kNN-graph recipe: the two-hop graph of the training inputs against a loop, the loss of a batch
against the bank, no use of labels, its model and defaults, and a tiny run."""

import types

import jax
import ml_collections
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
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


def _prepare(inputs, k1, k2):
    config = ml_collections.ConfigDict({"hparams": {"k1": k1, "k2": k2}})
    split = types.SimpleNamespace(inputs=inputs, labels=np.zeros((len(inputs), 2), np.float32))
    return knn_graph.prepare(split, config)


def _naive_loss(h, bank, index, graph):
    """mean over batch rows i and training items j of (L·g_ij − h_i·u_j)²."""
    bits = h.shape[1]
    terms = [(bits * graph[index[i], j] - float(np.dot(h[i], bank[j]))) ** 2
             for i in range(len(h)) for j in range(len(bank))]
    return np.mean(terms)


def _loss(h, bank, index, prepared, labels=None):
    labels = np.zeros((len(bank), 3), np.float32) if labels is None else labels
    memory = methods.MemoryBank(outputs=bank, labels=labels)

    @jax.jit
    def fn(out, batch, memory, prepared):
        return knn_graph.loss_fn(out, batch, methods.LossContext(bank=memory, prepared=prepared))

    return fn({"relaxed": h}, {"index": index}, memory, prepared)


@pytest.mark.parametrize("k1, k2", [(3, 2), (1, 0), (2, 4)])
def test_prepare_builds_the_two_hop_graph_of_the_training_inputs(k1, k2):
    inputs = np.random.default_rng(0).uniform(size=(9, 4, 4, 1)).astype(np.float32)
    prepared = _prepare(inputs, k1, k2)
    assert prepared["graph"].shape == (9, 9) and prepared["graph"].dtype == np.float32
    np.testing.assert_array_equal(prepared["graph"], _naive_graph(inputs.reshape(9, -1), k1, k2))


def test_loss_matches_loop_over_the_batch_against_the_bank():
    rng = np.random.default_rng(0)
    inputs = rng.uniform(size=(9, 4, 4, 1)).astype(np.float32)
    prepared = _prepare(inputs, 2, 1)
    bank = np.tanh(rng.normal(size=(9, 6))).astype(np.float32)
    index = np.array([4, 0, 7], np.int32)
    h = np.tanh(rng.normal(size=(3, 6))).astype(np.float32)
    loss, terms = _loss(h, bank, index, prepared)
    expected = _naive_loss(h, bank, index, prepared["graph"])
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    similar = np.mean(prepared["graph"][index] > 0)
    np.testing.assert_allclose(float(terms["similar_fraction"]), similar, rtol=1e-6)


def test_hand_made_batch():
    # Two tight pairs far apart: with K1 = 1, K2 = 0 each item's only neighbour is its partner.
    inputs = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]], np.float32)
    prepared = _prepare(inputs, 1, 0)
    h = np.array([[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0], [-1.0, -1.0]], np.float32)
    index = np.arange(4, dtype=np.int32)
    loss, terms = _loss(h, h, index, prepared)
    assert float(loss) == 0.0  # similar codes equal, dissimilar codes complementary
    assert float(terms["similar_fraction"]) == 0.5
    flipped = h * np.array([[1.0], [-1.0], [1.0], [1.0]], np.float32)
    # Batch row 1 flipped against the unchanged bank breaks the pairs (1, 0), (1, 1) (similar:
    # target 2, product −2) and (1, 2), (1, 3) (dissimilar: target −2, product 2): 4 of 16 pairs
    # with squared error 16.
    np.testing.assert_allclose(float(_loss(flipped, h, index, prepared)[0]), 4 * 16 / 16)


def test_loss_ignores_labels():
    rng = np.random.default_rng(1)
    inputs = rng.uniform(size=(10, 8, 8, 1)).astype(np.float32)
    prepared = _prepare(inputs, 3, 2)
    bank = np.tanh(rng.normal(size=(10, 8))).astype(np.float32)
    index = np.array([1, 5, 2], np.int32)
    labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 10)]
    loss, _ = _loss(bank[index], bank, index, prepared, labels)
    for seed in range(3):
        shuffled = np.random.default_rng(seed).permutation(labels)
        assert float(_loss(bank[index], bank, index, prepared, shuffled)[0]) == float(loss)


def test_recipe_defaults_and_model():
    recipe = methods.get_recipe("knn_graph")
    assert recipe is knn_graph.RECIPE
    # K1, K2 are ours (the thesis's are not available; module docstring).
    assert dict(recipe.default_hparams) == dict(knn_graph.DEFAULT_HPARAMS)
    assert recipe.bank_output == "relaxed" and recipe.prepare is knn_graph.prepare
    assert recipe.beta_schedule is None and not recipe.taxonomy.supervised
    assert "2018" in recipe.citation and "[65]" in recipe.citation
    out = train_helpers.tiny_model_outputs(recipe)
    assert out["pre"].shape == (3, 12)
    np.testing.assert_allclose(out["relaxed"], np.tanh(out["pre"]), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="knn_graph", bits=16, num_epochs=60, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
