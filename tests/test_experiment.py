"""dlhash_jax.experiment: baselines by name, a recipe's table run, one run end to end."""

import json
import os

import jax
import numpy as np
import pytest
import train_helpers
from PIL import Image

from dlhash_jax import baselines
from dlhash_jax import data as data_lib
from dlhash_jax import experiment
from dlhash_jax import metrics


def _fit_directly(name, key, x, bits):
    if name == "lsh":
        return baselines.fit_lsh(key, x, bits)
    if name == "pcah":
        return baselines.fit_pcah(x, bits)
    if name == "itq":
        return baselines.fit_itq(key, x, bits)
    if name == "sh":
        return baselines.fit_spectral_hashing(x, bits)
    return baselines.fit_cca_itq(key, x["image"], x["text"], bits)


@pytest.mark.parametrize("name", sorted(experiment.BASELINES))
def test_fit_baseline_by_name_is_the_baselines_function(name):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 12)).astype(np.float32)
    if experiment.BASELINES[name].cross_modal:
        x = {"image": x, "text": rng.normal(size=(120, 9)).astype(np.float32)}
    key = jax.random.PRNGKey(3)
    codes = experiment.fit_baseline(name, key, x, 8).encode(x)
    expected = _fit_directly(name, key, x, 8).encode(x)
    for got, want in zip(jax.tree.leaves(codes), jax.tree.leaves(expected)):
        assert got.shape == (120, 8)
        np.testing.assert_array_equal(got, want)


def test_baseline_table_is_the_five_classic_methods():
    assert list(experiment.BASELINES) == ["lsh", "pcah", "itq", "sh", "cca_itq"]
    assert [n for n, b in experiment.BASELINES.items() if b.cross_modal] == ["cca_itq"]
    assert all(b.taxonomy.startswith("classic, ") for b in experiment.BASELINES.values())


def test_unknown_baseline_is_refused():
    with pytest.raises(ValueError, match=r"baseline must be one of .*got 'lhs' \(did you mean "
                                         r"'lsh'\?\)"):
        experiment.fit_baseline("lhs", jax.random.PRNGKey(0), np.zeros((4, 2)), 2)
    with pytest.raises(ValueError, match=r"got 'no_such'"):
        experiment.evaluate_baseline("no_such", "digits", 16, 0)


def test_baseline_on_digits_is_fitted_on_the_seeds_training_split():
    outcome = experiment.evaluate_baseline("itq", "digits", 16, 1)
    data = data_lib.load_protocol("digits", seed=1)
    fitted = baselines.fit_itq(jax.random.PRNGKey(1), data.train.inputs, 16)
    expected = metrics.mean_average_precision(
        fitted.encode(data.query.inputs), fitted.encode(data.database.inputs),
        data.query.labels, data.database.labels,
    )
    assert outcome["results"]["map"] == pytest.approx(float(expected), abs=1e-12)
    assert outcome["results"]["ties"] == "index" and outcome["train_seconds"] > 0


def test_cross_modal_baseline_is_scored_in_both_directions():
    outcome = experiment.evaluate_baseline("cca_itq", "digits_mosaic_tags", 16, 0)
    data = data_lib.load_protocol("digits_mosaic_tags", seed=0)
    fitted = baselines.fit_cca_itq(
        jax.random.PRNGKey(0), data.train.inputs["image"], data.train.inputs["text"], 16
    )
    expected = metrics.cross_modal_map(
        fitted.encode(data.query.inputs), fitted.encode(data.database.inputs),
        data.query.labels, data.database.labels,
    )
    results = outcome["results"]
    assert results["image_to_text"]["map"] == pytest.approx(expected["image_to_text"], abs=1e-12)
    assert results["text_to_image"]["map"] == pytest.approx(expected["text_to_image"], abs=1e-12)


def test_baseline_and_protocol_must_share_modalities():
    with pytest.raises(ValueError, match="Baseline 'lsh' does not fit cross-modal protocol "
                                         "'digits_mosaic_tags'; its baselines: cca_itq."):
        experiment.evaluate_baseline("lsh", "digits_mosaic_tags", 16, 0)
    with pytest.raises(ValueError, match="Baseline 'cca_itq' does not fit single-modality "
                                         "protocol 'digits'; its baselines: lsh, pcah, itq, sh."):
        experiment.evaluate_baseline("cca_itq", "digits", 16, 0)


def test_baseline_on_an_image_list_asks_for_features_first(tmp_path):
    lines = []
    for i in range(12):
        Image.fromarray(np.full((9, 9, 3), 20 * i, np.uint8)).save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png " + " ".join("1" if c == i % 3 else "0" for c in range(3)))
    (tmp_path / "test.txt").write_text("\n".join(lines[:3]) + "\n")
    (tmp_path / "database.txt").write_text("\n".join(lines[3:]) + "\n")
    (tmp_path / "train.txt").write_text("\n".join(lines[3:8]) + "\n")
    with pytest.raises(ValueError, match=r"Baseline 'itq' fits in-memory input vectors, but "
                       r"protocol 'imagelist:.*' reads image files; extract features first"):
        experiment.evaluate_baseline("itq", f"imagelist:{tmp_path}", 16, 0)


def test_table_run_and_end_to_end_run_score_the_same_checkpoint(tmp_path):
    config = train_helpers.tiny_config()
    outcome = experiment.run_recipe(config, str(tmp_path / "table"))
    assert outcome["checkpoint"] == config.evaluation.checkpoint == "best"
    assert 0 < outcome["step"] <= 30 and outcome["train_seconds"] > 0
    assert not os.path.exists(tmp_path / "table" / "eval")  # a table run writes no report
    results = experiment.train_and_evaluate(config, str(tmp_path / "run"))
    # Same config, seed and data order: the same network, scored the same way.
    assert (results["step"], results["checkpoint"]) == (outcome["step"], "best")
    assert results["map"] == pytest.approx(outcome["results"]["map"], abs=1e-12)
    with open(tmp_path / "run" / "eval" / "metrics.json") as f:
        assert json.load(f)["map"] == pytest.approx(results["map"], abs=1e-12)
    assert os.path.exists(results["report"])


def test_baseline_returns_per_query_ap_on_request():
    outcome = experiment.evaluate_baseline("pcah", "digits", 16, 2, per_query_ap=True)
    data = data_lib.load_protocol("digits", seed=2)
    fitted = baselines.fit_pcah(data.train.inputs, 16)
    expected = metrics.average_precision(
        fitted.encode(data.query.inputs), fitted.encode(data.database.inputs),
        data.query.labels, data.database.labels,
    )
    per_query = outcome["results"]["per_query_ap"]
    assert len(per_query) == len(data.query) == 100
    np.testing.assert_allclose(per_query, expected, atol=1e-12)
    assert outcome["results"]["map"] == pytest.approx(np.mean(per_query), abs=1e-12)
    assert "per_query_ap" not in experiment.evaluate_baseline("pcah", "digits", 16, 2)["results"]
    cross = experiment.evaluate_baseline("cca_itq", "digits_mosaic_tags", 16, 0,
                                         per_query_ap=True)["results"]
    for direction in ("image_to_text", "text_to_image"):
        assert len(cross[direction]["per_query_ap"]) == 200
        assert cross[direction]["map"] == pytest.approx(
            np.mean(cross[direction]["per_query_ap"]), abs=1e-12)


def test_recipe_run_returns_per_query_ap_on_request(tmp_path):
    config = train_helpers.tiny_config()
    outcome = experiment.run_recipe(config, str(tmp_path / "run"), per_query_ap=True)
    results = outcome["results"]
    assert len(results["per_query_ap"]) == 100  # digits' queries
    assert results["map"] == pytest.approx(np.mean(results["per_query_ap"]), abs=1e-12)
