"""CSQ recipe: its loss against a loop over items and bits, its defaults, config and a tiny run."""

import math

import jax
import numpy as np
import pytest
import train_helpers

from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.methods import csq

from experiments.configs import csq as csq_config


def _hadamard_entry(i, j):
    """Sylvester's Hadamard matrix entry in closed form: (−1)^popcount(i AND j)."""
    return -1.0 if bin(i & j).count("1") % 2 else 1.0


def _naive_csq(u, labels, tie_break, lambda_q):
    """L_C + λ L_Q of the paper, item by item and bit by bit (Hadamard centres, L = 2^k)."""
    n, bits = u.shape
    central = quantization = 0.0
    for i in range(n):
        classes = [c for c in range(labels.shape[1]) if labels[i, c] > 0]
        for k in range(bits):
            # Class c's centre is row c of [H; −H]; the item's centre is the sign of their sum.
            vote = sum(
                _hadamard_entry(c % bits, k) * (-1.0 if c >= bits else 1.0) for c in classes
            )
            center = 1.0 if vote > 0 else (-1.0 if vote < 0 else tie_break[k])
            h = math.tanh(u[i, k])
            p, t = (h + 1) / 2, (center + 1) / 2
            central -= t * math.log(p) + (1 - t) * math.log(1 - p)
            quantization += (abs(h) - 1) ** 2
    return central / (n * bits) + lambda_q * quantization / (n * bits)


def test_loss_matches_itemwise_reference():
    rng = np.random.default_rng(0)
    bits, num_classes = 8, 3
    u = rng.normal(size=(5, bits)).astype(np.float32)
    # One-hot items, two-label items (their centres tie on half the bits) and an unlabelled one.
    labels = np.array(
        [[1, 0, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [0, 0, 0]], np.float32
    )
    outputs = {"pre": u, "relaxed": np.tanh(u)}
    loss_fn = jax.jit(
        lambda out, batch: csq.loss_fn(out, batch, methods.LossContext(hparams={"lambda_q": 0.3}))
    )
    loss, terms = loss_fn(outputs, {"labels": labels})
    tie_break = csq.centers.tie_break_code(bits, seed=csq.CENTER_SEED)
    expected = _naive_csq(u.astype(np.float64), labels, tie_break, 0.3)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert set(terms) == {"central", "quantization"}
    assert num_classes <= bits  # the Hadamard path the reference implements


def test_item_centers_follow_labels():
    labels = np.eye(4, dtype=np.float32)
    np.testing.assert_array_equal(
        np.asarray(csq.item_centers(labels, 16)), csq.centers.hadamard_matrix(16)[:4]
    )


def test_recipe_defaults_are_the_papers():
    recipe = methods.get_recipe("csq")
    assert recipe is csq.RECIPE
    assert recipe.bank_output is None
    assert dict(recipe.default_hparams) == {"lambda_q": 0.05}
    assert "CVPR 2020" in recipe.citation
    config = train.default_config()
    config.bits = 12
    config.model.features = (8,)
    model = recipe.make_model(config, 10)
    x = np.random.default_rng(1).normal(size=(3, 8, 8, 1)).astype(np.float32)
    out = model.apply(model.init(jax.random.key(0), x, train=False), x, train=False)
    np.testing.assert_allclose(out["relaxed"], np.tanh(out["pre"]), rtol=1e-6)


def test_config_defaults():
    config = csq_config.get_config()
    assert (config.method, config.protocol, config.bits) == ("csq", "digits", 32)
    assert config.hparams.to_dict() == dict(csq.DEFAULT_HPARAMS)
    assert train.validate_config(config) is csq.RECIPE
    assert "--config=experiments/configs/csq.py:digits,bits=32" in csq_config.__doc__


@pytest.mark.slow
def test_tiny_run_improves_validation_map(tmp_path):
    config = train_helpers.tiny_config(
        method="csq", bits=16, num_epochs=10, eval_every=0, checkpoint_every=1000,
        log_every=100, **{"model.features": (64,), "optimizer.learning_rate": 3e-3},
    )
    before, after = train_helpers.validation_map_before_and_after(config, tmp_path)
    assert after > before + 0.2, (before, after)
    assert after > 0.5, (before, after)
