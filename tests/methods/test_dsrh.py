"""DSRH recipe: its loss against a loop over queries and triplets, defaults, config, a tiny run."""

import math

import jax
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import dsrh

from experiments.configs import dsrh as dsrh_config


def naive_ranking(h, labels, margin):
    """(Σ over (q, i, j), i ≠ q ≠ j, r_i > r_j, of ω [d_qi − d_qj + ρ]₊, number of triplets T).

    ω = (2^{r_i} − 2^{r_j}) / IDCG_q with IDCG over q's whole row; T counts every (q, i, j)
    with r_i > r_j, the query's own included (the reduction the recipe documents).
    """
    n, bits = h.shape
    relevance = labels @ labels.T
    total, count = 0.0, 0
    for q in range(n):
        ranked = sorted(relevance[q], reverse=True)
        idcg = sum((2.0**r - 1) / math.log2(k + 2) for k, r in enumerate(ranked))
        for i in range(n):
            for j in range(n):
                if relevance[q, i] <= relevance[q, j]:
                    continue
                count += 1
                if q in (i, j):
                    continue
                weight = (2.0 ** relevance[q, i] - 2.0 ** relevance[q, j]) / idcg
                d_qi = (bits - float(np.dot(h[q], h[i]))) / 2
                d_qj = (bits - float(np.dot(h[q], h[j]))) / 2
                total += weight * max(0.0, d_qi - d_qj + margin)
    return total, count


def _naive_dsrh(h, labels, margin, alpha):
    total, count = naive_ranking(h, labels, margin)
    n, bits = h.shape
    balance = sum((sum(h[q, k] for q in range(n)) / n) ** 2 for k in range(bits))
    return (total + 0.5 * alpha * balance) / count


def _multi_label_batch(rng, n=7, num_classes=4, bits=6):
    h = np.tanh(rng.normal(scale=1.5, size=(n, bits))).astype(np.float32)
    labels = (rng.random((n, num_classes)) < 0.45).astype(np.float32)
    labels[0] = [1, 1, 1, 0]  # graded relevance up to 3
    labels[1] = 0  # an item relevant to nobody
    return h, labels


def test_loss_matches_loop_reference():
    h, labels = _multi_label_batch(np.random.default_rng(0))
    hparams = {"margin": 2.0, "alpha": 50.0}
    loss, terms = jax.jit(
        lambda out, batch: dsrh.loss_fn(out, batch, methods.LossContext(hparams=hparams))
    )({"relaxed": h}, {"labels": labels})
    expected = _naive_dsrh(h.astype(np.float64), labels.astype(np.float64), 2.0, 50.0)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    total, count = naive_ranking(h.astype(np.float64), labels.astype(np.float64), 2.0)
    np.testing.assert_allclose(float(terms["ranking"]), total / count, rtol=1e-5)
    assert set(terms) == {"ranking", "balance"}


def test_query_itself_carries_no_weight():
    # Two items with the same label and one without: only triplets through the query itself
    # would be active, so the masked ranking loss is 0 whatever the codes.
    h = np.array([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]], np.float32)
    labels = np.array([[1.0], [1.0], [0.0]], np.float32)
    ranking = jax.jit(lambda h, labels: dsrh.in_batch_ranking_loss(h, labels, margin=1.0))
    loss, count = ranking(h[[0, 2]], labels[[0, 2]])
    assert float(loss) == 0.0 and float(count) == 1.0
    loss, _ = ranking(h, labels)
    # Query 0 ranks item 1 (shares its label) before item 2: d(0, 1) = 2, d(0, 2) = 1.
    assert float(loss) > 0.0


def test_recipe_defaults_and_config():
    recipe = methods.get_recipe("dsrh")
    assert recipe is dsrh.RECIPE
    assert recipe.bank_output is None
    assert dict(recipe.default_hparams) == {"margin": 1.0, "alpha": 1.0}
    assert "CVPR 2015" in recipe.citation
    config = dsrh_config.get_config()
    assert (config.method, config.protocol, config.bits) == ("dsrh", "digits_mosaic", 32)
    assert config.hparams.to_dict() == dict(dsrh.DEFAULT_HPARAMS)
    assert config.optimizer.weight_decay == 0.0
    assert train.validate_config(config) is dsrh.RECIPE
    assert "--config=experiments/configs/dsrh.py:digits_mosaic,bits=32" in dsrh_config.__doc__


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="dsrh", bits=16, num_epochs=10, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
