"""Tests of dlhash_jax.evaluate: metrics of a model's codes, the report files, a whole run."""

import dataclasses
import json
import os

import jax
import numpy as np
import pytest
import train_helpers

from dlhash_jax import evaluate
from dlhash_jax import models
from dlhash_jax import train

EVALUATION = dict(
    topk=(5,), ndcg_k=100, radius=1, ties="index", normalize="retrieved", zero_relevant="zero",
    batch_size=4,
)


@dataclasses.dataclass
class _Split:
    inputs: np.ndarray
    labels: np.ndarray


@dataclasses.dataclass
class _Data:
    query: _Split
    database: _Split


def _projection(variables, inputs, train):
    del train
    return {"pre": inputs @ variables["w"]}


def _naive_map(query_codes, db_codes, query_labels, db_labels, topk=None):
    """Hamming ranking with ties broken by database index; AP over the relevant items retrieved."""
    aps = []
    for q in range(query_codes.shape[0]):
        distances = np.sum(query_codes[q] != db_codes, axis=1)
        order = np.argsort(distances, kind="stable")[:topk]
        relevant = (db_labels[order] @ query_labels[q]) > 0
        hits = np.cumsum(relevant)
        precisions = hits[relevant] / (np.flatnonzero(relevant) + 1)
        aps.append(precisions.mean() if relevant.any() else 0.0)
    return float(np.mean(aps))


def _toy_data(rng):
    query = _Split(rng.normal(size=(6, 5)).astype(np.float32),
                   np.eye(3, dtype=np.float32)[rng.integers(0, 3, 6)])
    database = _Split(rng.normal(size=(13, 5)).astype(np.float32),
                      np.eye(3, dtype=np.float32)[rng.integers(0, 3, 13)])
    return _Data(query, database)


def test_evaluate_model_ranks_queries_against_database():
    rng = np.random.default_rng(0)
    data = _toy_data(rng)
    variables = {"w": rng.normal(size=(5, 8)).astype(np.float32)}
    results = evaluate.evaluate_model(_projection, variables, data, evaluation=EVALUATION)
    query_codes = np.where(data.query.inputs @ variables["w"] >= 0, 1.0, -1.0)
    db_codes = np.where(data.database.inputs @ variables["w"] >= 0, 1.0, -1.0)
    labels = (query_codes, db_codes, data.query.labels, data.database.labels)
    assert results["map"] == pytest.approx(_naive_map(*labels), abs=1e-9)
    assert results["map_at_5"] == pytest.approx(_naive_map(*labels, topk=5), abs=1e-9)
    # ndcg_k is capped at the 13 database items.
    assert "ndcg_at_13" in results and "precision_within_radius_1" in results
    assert (results["ties"], results["normalize"], results["zero_relevant"]) == (
        "index", "retrieved", "zero")
    assert evaluate.map_summary(results) == f"mAP {results['map']:.4f}"


def test_write_report_writes_json_plots_and_markdown(tmp_path):
    rng = np.random.default_rng(1)
    data = _toy_data(rng)
    results = evaluate.evaluate_model(
        _projection, {"w": rng.normal(size=(5, 4)).astype(np.float32)}, data,
        evaluation=EVALUATION,
    )
    report = evaluate.write_report(
        results, str(tmp_path / "eval"), title="Toy run", details={"method": "toy"}
    )
    assert report == str(tmp_path / "eval" / "report.md")
    with open(tmp_path / "eval" / "metrics.json") as f:
        assert json.load(f) == json.loads(json.dumps(results))
    for png in ("pr_curve.png", "precision_at_k.png"):
        with open(tmp_path / "eval" / png, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    text = open(report).read()
    assert text.startswith("# Toy run\n")
    assert "- method: toy" in text
    assert f"| map | {results['map']:.4f} |" in text
    assert "`ties=index`, `normalize=retrieved`, `zero_relevant=zero`" in text
    assert "![precision-recall by Hamming radius](pr_curve.png)" in text
    assert "![precision at K](precision_at_k.png)" in text


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("run"))
    config = train_helpers.tiny_config(num_epochs=2, checkpoint_every=10, eval_every=5)
    result = train.fit(config, workdir)
    return workdir, result


def test_evaluate_run_scores_the_best_checkpoint(trained_run):
    workdir, fit_result = trained_run
    results = evaluate.evaluate_run(workdir)
    assert results["checkpoint"] == "best" and results["step"] == fit_result.best_step
    for key in ("map", "map_at_1000", "precision_within_radius_2", "ndcg_at_100", "ties",
                "normalize", "zero_relevant"):
        assert key in results, key
    with open(os.path.join(workdir, "eval", "metrics.json")) as f:
        assert json.load(f)["map"] == results["map"]
    assert results["report"] == os.path.join(workdir, "eval", "report.md")
    assert set(os.listdir(os.path.join(workdir, "eval"))) == {
        "metrics.json", "report.md", "pr_curve.png", "precision_at_k.png"}

    # Independent check of the whole chain: encode with the best variables, rank by hand.
    run = fit_result.run
    variables, step, which = train.restore_variables(workdir, run, which="best")
    query_codes = models.encode(run.model.apply, variables, run.data.query.inputs)
    db_codes = models.encode(run.model.apply, variables, run.data.database.inputs)
    expected = _naive_map(query_codes, db_codes, run.data.query.labels, run.data.database.labels)
    assert results["map"] == pytest.approx(expected, abs=1e-9)


def test_evaluate_run_last_checkpoint_matches_final_state(trained_run):
    workdir, fit_result = trained_run
    results = evaluate.evaluate_run(workdir, checkpoint="last")
    assert (results["checkpoint"], results["step"]) == ("last", 20)
    run = fit_result.run
    variables, _, _ = train.restore_variables(workdir, run, which="last")
    jax.tree.map(np.testing.assert_array_equal, variables["params"], fit_result.state.params)


def test_evaluate_run_needs_a_training_workdir(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a training run"):
        evaluate.evaluate_run(str(tmp_path))


def _cross_modal_projection(variables, inputs, train):
    del train
    return {"pre": {name: inputs[name] @ variables[name] for name in ("image", "text")}}


def test_cross_modal_model_is_evaluated_in_both_directions_and_reported(tmp_path):
    rng = np.random.default_rng(2)

    def split(n):
        inputs = {"image": rng.normal(size=(n, 5)).astype(np.float32),
                  "text": rng.normal(size=(n, 3)).astype(np.float32)}
        return _Split(inputs, np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)])

    data = _Data(split(6), split(11))
    variables = {"image": rng.normal(size=(5, 8)).astype(np.float32),
                 "text": rng.normal(size=(3, 8)).astype(np.float32)}
    results = evaluate.evaluate_model(
        _cross_modal_projection, variables, data, evaluation=EVALUATION
    )
    assert set(results) == {"image_to_text", "text_to_image"}
    codes = {
        split_name: {name: np.where(getattr(data, split_name).inputs[name] @ variables[name] >= 0,
                                    1.0, -1.0) for name in ("image", "text")}
        for split_name in ("query", "database")
    }
    labels = (data.query.labels, data.database.labels)
    image_to_text = _naive_map(codes["query"]["image"], codes["database"]["text"], *labels)
    text_to_image = _naive_map(codes["query"]["text"], codes["database"]["image"], *labels)
    assert image_to_text != pytest.approx(text_to_image)  # the two directions are told apart
    assert results["image_to_text"]["map"] == pytest.approx(image_to_text, abs=1e-9)
    assert results["text_to_image"]["map"] == pytest.approx(text_to_image, abs=1e-9)
    assert "ndcg_at_11" in results["image_to_text"]  # ndcg_k capped at the database size
    assert evaluate.map_summary(results) == (
        f"mAP image → text {image_to_text:.4f}, text → image {text_to_image:.4f}"
    )

    report = evaluate.write_report(results, str(tmp_path), title="Toy cross-modal")
    text = open(report).read()
    assert "| metric | image → text | text → image |" in text
    assert (
        f"| map | {results['image_to_text']['map']:.4f} | {results['text_to_image']['map']:.4f} |"
        in text
    )
    assert "`ties=index`" in text
    with open(tmp_path / "metrics.json") as f:
        assert json.load(f)["text_to_image"]["map"] == results["text_to_image"]["map"]


def _naive_aps(query_codes, db_codes, query_labels, db_labels):
    """Per-query AP over the whole database, ties by index (as _naive_map, before the mean)."""
    aps = []
    for q in range(query_codes.shape[0]):
        order = np.argsort(np.sum(query_codes[q] != db_codes, axis=1), kind="stable")
        relevant = (db_labels[order] @ query_labels[q]) > 0
        hits = np.cumsum(relevant)
        aps.append((hits[relevant] / (np.flatnonzero(relevant) + 1)).mean()
                   if relevant.any() else 0.0)
    return np.array(aps)


def test_per_query_ap_is_returned_on_request_and_averages_to_map():
    rng = np.random.default_rng(4)
    data = _toy_data(rng)
    variables = {"w": rng.normal(size=(5, 8)).astype(np.float32)}
    plain = evaluate.evaluate_model(_projection, variables, data, evaluation=EVALUATION)
    assert "per_query_ap" not in plain
    results = evaluate.evaluate_model(_projection, variables, data, evaluation=EVALUATION,
                                      per_query_ap=True)
    per_query = results.pop("per_query_ap")
    assert results == plain  # nothing else changes
    assert isinstance(per_query, list) and len(per_query) == 6
    assert all(isinstance(v, float) for v in per_query)
    query_codes = np.where(data.query.inputs @ variables["w"] >= 0, 1.0, -1.0)
    db_codes = np.where(data.database.inputs @ variables["w"] >= 0, 1.0, -1.0)
    np.testing.assert_allclose(
        per_query, _naive_aps(query_codes, db_codes, data.query.labels, data.database.labels),
        atol=1e-12)
    assert results["map"] == pytest.approx(np.mean(per_query), abs=1e-12)
    # The evaluation switches apply: under "skip" a query without a relevant item is NaN.
    data.query.labels[0] = 0.0
    skipped = evaluate.evaluate_model(_projection, variables, data, per_query_ap=True,
                                      evaluation={**EVALUATION, "zero_relevant": "skip"})
    assert np.isnan(skipped["per_query_ap"][0])
    assert skipped["map"] == pytest.approx(np.nanmean(skipped["per_query_ap"]), abs=1e-12)


def test_cross_modal_per_query_ap_is_per_direction():
    rng = np.random.default_rng(5)

    def split(n):
        inputs = {"image": rng.normal(size=(n, 5)).astype(np.float32),
                  "text": rng.normal(size=(n, 3)).astype(np.float32)}
        return _Split(inputs, np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)])

    data = _Data(split(6), split(11))
    variables = {"image": rng.normal(size=(5, 8)).astype(np.float32),
                 "text": rng.normal(size=(3, 8)).astype(np.float32)}
    results = evaluate.evaluate_model(_cross_modal_projection, variables, data,
                                      evaluation=EVALUATION, per_query_ap=True)
    codes = {
        split_name: {name: np.where(getattr(data, split_name).inputs[name] @ variables[name] >= 0,
                                    1.0, -1.0) for name in ("image", "text")}
        for split_name in ("query", "database")
    }
    labels = (data.query.labels, data.database.labels)
    for direction, source, target in (("image_to_text", "image", "text"),
                                      ("text_to_image", "text", "image")):
        per_query = results[direction]["per_query_ap"]
        np.testing.assert_allclose(
            per_query, _naive_aps(codes["query"][source], codes["database"][target], *labels),
            atol=1e-12)
        assert results[direction]["map"] == pytest.approx(np.mean(per_query), abs=1e-12)


@dataclasses.dataclass
class _IndexedSplit:
    inputs: np.ndarray
    labels: np.ndarray
    indices: np.ndarray

    def __len__(self):
        return len(self.indices)


@dataclasses.dataclass
class _IndexedData:
    query: _IndexedSplit
    database: _IndexedSplit
    train: _IndexedSplit


def _indexed_data(rng):
    """A database of items 10..22 (stored in a shuffled order) and a training split drawn from
    it, so the training items sit at scattered database rows."""
    def split(indices):
        indices = np.asarray(indices)
        return _IndexedSplit(rng.normal(size=(len(indices), 5)).astype(np.float32),
                             np.eye(3, dtype=np.float32)[indices % 3], indices)

    database = split(rng.permutation(np.arange(10, 23)))
    train_indices = np.array([21, 12, 17, 10])
    rows = [int(np.flatnonzero(database.indices == i)[0]) for i in train_indices]
    train_split = _IndexedSplit(database.inputs[rows], database.labels[rows], train_indices)
    return _IndexedData(split(np.arange(6)), database, train_split), rows


def test_learned_training_codes_replace_the_network_codes_of_those_database_items():
    rng = np.random.default_rng(6)
    data, rows = _indexed_data(rng)
    np.testing.assert_array_equal(evaluate.training_rows(data), rows)
    variables = {"w": rng.normal(size=(5, 8)).astype(np.float32)}
    network = np.where(data.database.inputs @ variables["w"] >= 0, 1.0, -1.0)
    learned = -network[rows]  # codes the network would never give those items
    codes = evaluate.database_codes(_projection, variables, data, batch_size=4,
                                    train_codes=learned)
    expected = network.copy()
    expected[rows] = learned
    np.testing.assert_array_equal(codes, expected)
    np.testing.assert_array_equal(
        evaluate.database_codes(_projection, variables, data, batch_size=4), network)

    results = evaluate.evaluate_model(_projection, variables, data, evaluation=EVALUATION,
                                      train_codes=learned)
    query_codes = np.where(data.query.inputs @ variables["w"] >= 0, 1.0, -1.0)
    assert results["map"] == pytest.approx(
        _naive_map(query_codes, expected, data.query.labels, data.database.labels), abs=1e-9)
    assert results["database_codes"] == (
        "learned codes for the 4 training items, the network's codes for the other 9 database "
        "items and for the queries")
    assert "database_codes" not in evaluate.evaluate_model(
        _projection, variables, data, evaluation=EVALUATION)


def test_learned_training_codes_are_checked():
    rng = np.random.default_rng(7)
    data, _ = _indexed_data(rng)
    variables = {"w": rng.normal(size=(5, 8)).astype(np.float32)}
    with pytest.raises(ValueError, match=r"train_codes must have shape \[N_train, L\] = "
                       r"\(4, 8\), got \(3, 8\)"):
        evaluate.database_codes(_projection, variables, data, batch_size=4,
                                train_codes=np.ones((3, 8)))
    outsider = dataclasses.replace(data, train=dataclasses.replace(
        data.train, indices=np.array([21, 12, 99, 10])))
    with pytest.raises(ValueError, match=r"1 training items \(e.g. index 99\) are not in the "
                       r"database split"):
        evaluate.training_rows(outsider)


def test_learned_training_codes_have_no_row_when_the_database_holds_no_training_item():
    # The cifar10 protocol keeps its training items out of the database.
    rng = np.random.default_rng(8)
    data, _ = _indexed_data(rng)
    apart = dataclasses.replace(data, train=dataclasses.replace(
        data.train, indices=np.array([30, 31, 32, 33])))
    assert evaluate.training_rows(apart).shape == (0,)
    variables = {"w": rng.normal(size=(5, 8)).astype(np.float32)}
    network = np.where(data.database.inputs @ variables["w"] >= 0, 1.0, -1.0)
    codes = evaluate.database_codes(_projection, variables, apart, batch_size=4,
                                    train_codes=-np.ones((4, 8)))
    np.testing.assert_array_equal(codes, network)
    assert evaluate.describe_database_codes(apart) == (
        "the network's codes for all 13 database items and the queries (the protocol keeps the "
        "4 training items, whose codes were learned, out of the database)")
