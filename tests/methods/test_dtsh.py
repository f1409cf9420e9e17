"""DTSH recipe: its loss against a loop over triplets, the triplet count, defaults, a run."""

import math
import types

import jax
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import dtsh

from experiments.configs import dtsh as dtsh_config


def _naive_dtsh(u, labels, alpha, lambda_q, triplets_per_anchor):
    """J / T of the paper on the batch: Σ over the triplets of −log σ(Θ_qp − Θ_qn − α) divided by
    their number, plus (λ / (T/N)) · (1/B) Σ_i ‖sgn(u_i) − u_i‖²."""
    n = u.shape[0]
    shares = labels @ labels.T > 0
    terms = []
    for q in range(n):
        for p in range(n):
            for m in range(n):
                if p != q and shares[q, p] and not shares[q, m]:
                    x = 0.5 * float(u[q] @ u[p]) - 0.5 * float(u[q] @ u[m]) - alpha
                    terms.append(math.log1p(math.exp(-x)))
    quantization = sum(
        float(np.sum((u[i] - np.where(u[i] >= 0, 1.0, -1.0)) ** 2)) for i in range(n)
    ) / n
    return sum(terms) / len(terms) + lambda_q / triplets_per_anchor * quantization


def test_loss_matches_triplet_loop_reference():
    rng = np.random.default_rng(0)
    u = rng.normal(scale=1.5, size=(8, 6)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 1, 2, 0]]
    hparams = {"alpha_per_bit": 0.5, "lambda_q": 100.0}
    prepared = {"triplets_per_anchor": np.float32(250.0)}
    loss, terms = jax.jit(
        lambda out, batch, prep: dtsh.loss_fn(
            out, batch, methods.LossContext(prepared=prep, hparams=hparams)
        )
    )({"relaxed": u}, {"labels": labels}, prepared)
    expected = _naive_dtsh(u.astype(np.float64), labels, 3.0, 100.0, 250.0)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert set(terms) == {"likelihood", "quantization"}
    np.testing.assert_allclose(
        float(loss), float(terms["likelihood"]) + 100.0 / 250.0 * float(terms["quantization"]),
        rtol=1e-6,
    )


def test_prepare_counts_the_triplets_per_anchor():
    # 50 items per class over 10 classes (digits' training split): 49 positives × 450 negatives.
    labels = np.eye(10, dtype=np.float32)[np.repeat(np.arange(10), 50)]
    split = types.SimpleNamespace(labels=labels)
    prepared = dtsh.prepare(split, None)
    assert float(prepared["triplets_per_anchor"]) == 49 * 450
    # Multi-label, in chunks: a loop over anchors gives the same count; no labels → no triplet.
    multi = (np.random.default_rng(1).random((23, 4)) < 0.3).astype(np.float32)
    shares = multi @ multi.T > 0
    expected = sum(
        (shares[i].sum() - shares[i, i]) * (~shares[i]).sum() for i in range(23)
    ) / 23
    assert dtsh.triplets_per_anchor(multi, chunk_size=5) == pytest.approx(expected)
    assert dtsh.triplets_per_anchor(np.zeros((4, 3))) == 0.0


def test_recipe_defaults_model_and_config():
    recipe = methods.get_recipe("dtsh")
    assert recipe is dtsh.RECIPE
    assert str(recipe.taxonomy) == "single × multi-tuples"
    assert dict(recipe.default_hparams) == {"alpha_per_bit": 0.5, "lambda_q": 100.0}
    assert "ACCV 2016" in recipe.citation and recipe.prepare is dtsh.prepare
    config = dtsh_config.get_config()
    assert (config.method, config.protocol, config.bits) == ("dtsh", "digits", 32)
    assert config.hparams.to_dict() == dict(dtsh.DEFAULT_HPARAMS)
    assert train.validate_config(config) is recipe
    config.bits = 12
    config.model.features = (8,)
    model = recipe.make_model(config, 10)
    x = np.random.default_rng(1).normal(size=(3, 8, 8, 1)).astype(np.float32)
    out = model.apply(model.init(jax.random.key(0), x, train=False), x, train=False)
    assert out["pre"].shape == (3, 12)
    np.testing.assert_array_equal(out["relaxed"], out["pre"])  # u is unbounded


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="dtsh", bits=16, num_epochs=10, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
