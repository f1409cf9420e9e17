"""experiments.reproduce: its tables, planning, flags and one run's record (no training).

The aggregation and formatting it calls are tested in test_results_table.py, the baselines and
recipe runs in test_experiment.py.
"""

import json
import os

import pytest
from absl import app
from absl import flags
from absl.testing import flagsaver

from dlhash_jax import experiment
from dlhash_jax import methods
from dlhash_jax import results_table
from dlhash_jax import train
from experiments import configs
from experiments import reproduce

DIGITS = reproduce.TABLES["digits"]
MNIST5K = reproduce.TABLES["mnist5k"]
MOSAIC = reproduce.TABLES["digits_mosaic"]
CROSS_MODAL = reproduce.TABLES["digits_mosaic_tags"]
UNSUPERVISED_TABLES = (
    reproduce.TABLES["digits_unsupervised"], reproduce.TABLES["mnist5k_unsupervised"])


def test_tables_rows_columns_and_taxonomy():
    # Cross-modal recipes need two modalities: not rows of the digits table.
    assert not {"dcmh", "glsp"} & set(DIGITS.methods)
    assert {"dsrh", "order_sensitive", "csq", "dpsh", "lsh"} <= set(DIGITS.methods)
    # Unsupervised recipes have their own tables, where the best row is one of them.
    assert not {"dh", "udh", "cibhash"} & set(DIGITS.methods)
    assert [c.key for c in DIGITS.columns] == ["map", "precision_within_radius_2"]
    # mAP columns get a confidence interval and significance marks; the others do not.
    assert [c.interval for c in DIGITS.columns] == [True, False]
    assert [c.interval for c in CROSS_MODAL.columns] == [True, True, False, False]
    # Every supervised single-modality recipe, single-label ones included.
    supervised = tuple(name for name, recipe in methods.RECIPES.items()
                       if recipe.taxonomy.supervised and not recipe.cross_modal)
    assert MOSAIC.methods == (*supervised, "lsh", "pcah", "itq", "sh")
    assert {"dpsh", "dsh", "dnnh", "hashnet", "sdh", "dsrh", "idhn", "dpn"} <= set(supervised)
    assert not {"dh", "udh", "fingerprint", "knn_graph", "dcmh"} & set(supervised)
    assert reproduce.table_bits("digits_mosaic") == (32,)
    assert [c.header for c in MOSAIC.columns] == ["mAP (database)", "NDCG@100", "ACG@100"]
    # csq trains on multi-hot labels there, whatever its single-label row says on digits.
    assert results_table.row_taxonomy(MOSAIC, "csq") == "multi × single"
    assert results_table.row_taxonomy(DIGITS, "csq") == "single × single"
    assert CROSS_MODAL.methods == ("dcmh", "glsp", "cca_itq")
    assert [c.key for c in CROSS_MODAL.columns] == [
        "map_image_to_text", "map_text_to_image", "ndcg_at_100_image_to_text",
        "ndcg_at_100_text_to_image"]
    assert [table.heading for table in reproduce.TABLES.values()] == [
        "# Supervised results on digits", "# Unsupervised results on digits",
        "# Single-label results on mnist5k", "# Unsupervised results on mnist5k",
        "# Multi-label results on digits_mosaic", "# Cross-modal results on digits_mosaic_tags"]
    assert reproduce._TABLES.default == list(reproduce.TABLES)


def test_unsupervised_tables_are_every_unsupervised_recipe_and_the_baselines():
    expected = tuple(name for name, recipe in methods.RECIPES.items()
                     if not recipe.taxonomy.supervised and not recipe.cross_modal)
    assert {"dh", "udh", "fingerprint", "knn_graph", "greedyhash_unsupervised", "bihalf",
            "cibhash", "uh_bdnn"} <= set(expected)
    assert not {"dpsh", "greedyhash", "dcmh"} & set(expected)
    assert [table.protocol for table in UNSUPERVISED_TABLES] == ["digits", "mnist5k"]
    for table in UNSUPERVISED_TABLES:
        assert table.recipes == reproduce.UNSUPERVISED == expected
        assert table.methods == (*expected, "lsh", "pcah", "itq", "sh")
        assert [c.key for c in table.columns] == ["map", "precision_within_radius_2"]
        assert "no label is used in training" in table.description
    assert reproduce.table_bits("digits_unsupervised") == (16, 32, 64)
    assert reproduce.table_bits("mnist5k_unsupervised") == (32,)
    # Together the supervised and unsupervised digits tables hold every one-modality recipe.
    assert set(DIGITS.recipes) | set(expected) == {
        name for name, recipe in methods.RECIPES.items() if not recipe.cross_modal}


def test_mnist5k_table_is_every_single_label_supervised_recipe_and_the_baselines():
    expected = tuple(name for name, recipe in methods.RECIPES.items()
                     if recipe.taxonomy.labels == "single" and not recipe.cross_modal)
    assert MNIST5K.recipes == reproduce.SINGLE_LABEL_SUPERVISED == expected
    assert {"dpsh", "dsh", "hashnet", "greedyhash", "csq", "sdh", "dsrh_triplet"} <= set(expected)
    assert not {"dh", "udh", "fingerprint", "knn_graph", "dsrh", "order_sensitive", "dcmh",
                "glsp"} & set(expected)
    assert MNIST5K.methods == (*expected, "lsh", "pcah", "itq", "sh")
    assert MNIST5K.protocol == "mnist5k"
    assert [c.key for c in MNIST5K.columns] == ["map", "precision_within_radius_2"]
    assert MNIST5K.columns[0].interval
    assert "query 500 (50 per class), database 4,500, train 1,000" in MNIST5K.description
    assert reproduce.table_bits("mnist5k") == (12, 24, 48)
    assert reproduce.table_bits("digits") == reproduce.DEFAULT_BITS == (16, 32, 64)


@pytest.mark.parametrize("method", ["dpsh", "csq", "sdh"])
def test_mnist5k_configs_use_the_convnet_on_one_device(method):
    config = reproduce.load_config("mnist5k", method, 12, 2)
    assert (config.protocol, config.bits, config.seed, config.num_devices) == ("mnist5k", 12, 2, 1)
    assert config.model.backbone == "convnet"
    assert train.validate_config(config) is methods.get_recipe(method)


def test_mnist5k_description_gives_the_network_and_steps_a_shared_config_trains():
    config = reproduce.load_config("mnist5k", "hashnet", 12, 0)
    steps = config.num_epochs * 1000 // config.batch_size
    widths = " and ".join(str(w) for w in config.model.conv_features)
    assert f"ConvNet ({widths} channels, {config.num_epochs} epochs of batch " in (
        reproduce.TABLES["mnist5k"].description
    )
    assert f"= {steps:,} steps" in reproduce.TABLES["mnist5k"].description


def test_sections_describe_the_protocol_and_how_the_runs_were_made():
    records = [{"method": "dpsh", "bits": 32, "seed": 0, "map": 0.9,
                "precision_within_radius_2": 0.8, "train_seconds": 5.0}]
    section = results_table.format_section(records, DIGITS, command="c", environment={},
                                           seconds=1)
    assert "\nProtocol `digits` (query 100, database 1,697," in section
    # No per-query values in the record: its CI cell is empty.
    assert "| dpsh | single × pairs | 32 | 0.900 | — | 0.800 | 5.0 | 1 |" in section
    assert "one-sided paired sign-flip permutation test" in section
    for table in reproduce.TABLES.values():
        assert table.description.endswith(
            "measured with the runs spread over the worker processes.")
    assert "NDCG@100 (gain 2^r − 1" in MOSAIC.description
    assert "`baselines.fit_cca_itq`" in CROSS_MODAL.description


def test_plan_uses_each_tables_own_bits_unless_told(tmp_path):
    plans = dict(reproduce.plan(["digits", "mnist5k"], ["lsh"], None, [0], str(tmp_path)))
    assert [t["bits"] for t in plans["digits"]] == [16, 32, 64]
    assert [t["bits"] for t in plans["mnist5k"]] == [12, 24, 48]
    assert plans["mnist5k"][0]["workdir"] == str(tmp_path / "mnist5k")
    plans = dict(reproduce.plan(["digits", "mnist5k"], ["lsh"], [12], [0, 1], str(tmp_path)))
    assert [t["bits"] for t in plans["digits"]] == [t["bits"] for t in plans["mnist5k"]] == [
        12, 12]


def test_plan_defaults_to_every_row_of_both_tables(tmp_path):
    plans = reproduce.plan(["digits", "digits_mosaic"], None, [16, 32], [0, 1, 2], str(tmp_path))
    assert [name for name, _ in plans] == ["digits", "digits_mosaic"]
    digits_tasks, mosaic_tasks = plans[0][1], plans[1][1]
    assert len(digits_tasks) == len(DIGITS.methods) * 2 * 3
    assert len(mosaic_tasks) == len(MOSAIC.methods) * 2 * 3
    first = MOSAIC.methods[0]
    assert mosaic_tasks[0] == {"table": "digits_mosaic", "method": first, "bits": 16, "seed": 0,
                               "workdir": str(tmp_path / "digits_mosaic")}
    assert [t["method"] for t in mosaic_tasks[::6]] == list(MOSAIC.methods)


def test_plan_methods_pick_rows_of_each_table():
    plans = reproduce.plan(["digits_unsupervised", "digits_mosaic"], ["itq", "dsrh", "udh"], [32],
                           [0], "w")
    assert [(name, [t["method"] for t in tasks]) for name, tasks in plans] == [
        ("digits_unsupervised", ["itq", "udh"]), ("digits_mosaic", ["itq", "dsrh"])]
    only_unsupervised = reproduce.plan(["digits_mosaic", "digits_unsupervised"], ["udh"], [32],
                                       [0], "w")
    assert [name for name, _ in only_unsupervised] == ["digits_unsupervised"]


@pytest.mark.parametrize(
    "tables, chosen, message",
    [
        ([], None, r"No table to produce; tables: digits, digits_unsupervised, mnist5k, "),
        (["digits", "mosaic"], None, r"Unknown table\(s\) \['mosaic'\]; tables: digits, "),
        (["digits_mosaic"], ["udh", "lsh"],
         r"Method\(s\) \['udh'\] are rows of none of the tables \(digits_mosaic: adsh, cnnh, "),
    ],
)
def test_plan_refuses_bad_tables_and_methods(tables, chosen, message):
    with pytest.raises(ValueError, match=message):
        reproduce.plan(tables, chosen, [32], [0], "w")


def test_flags_parse_and_reach_the_plan():
    with flagsaver.flagsaver():
        flags.FLAGS(["reproduce.py", "--tables=digits_mosaic", "--methods=csq,lsh",
                     "--bits=32", "--seeds=1", "--workers=1"])
        assert reproduce._TABLES.value == ["digits_mosaic"]
        assert reproduce._METHODS.value == ["csq", "lsh"]
        flags.FLAGS(["reproduce.py", "--tables=digits_mosaic", "--methods=udh"])
        with pytest.raises(app.UsageError, match=r"Method\(s\) \['udh'\] are rows of none"):
            reproduce.main(["reproduce.py"])
    assert reproduce._TABLES.default == [
        "digits", "digits_unsupervised", "mnist5k", "mnist5k_unsupervised", "digits_mosaic",
        "digits_mosaic_tags"]
    assert reproduce._BITS.default is None  # each table's own code lengths


@pytest.mark.parametrize("method", MOSAIC.recipes)
def test_every_mosaic_row_trains_the_common_budget_with_its_own_choice(method):
    config = reproduce.load_config("digits_mosaic", method, 32, 1)
    assert (config.protocol, config.bits, config.seed, config.num_devices) == (
        "digits_mosaic", 32, 1, 1)
    assert config.progress_bar is False
    assert (config.model.backbone, tuple(config.model.features)) == ("mlp", (256, 256))
    steps = config.num_epochs * configs.base.MOSAIC_TRAIN_SIZE // config.batch_size
    assert steps == configs.base.MOSAIC_STEPS == 2400
    assert train.validate_config(config) is methods.get_recipe(method)
    # Every method file states the rate and batch it chose on validation for the mosaics.
    with open(f"{configs.CONFIGS_DIR}/{method}.py") as f:
        assert "base.mosaic_settings(" in f.read()


def test_mosaic_settings_keep_the_budget_and_refuse_a_batch_that_breaks_it():
    assert configs.base.mosaic_settings(learning_rate=3e-3, batch_size=200) == {
        "optimizer.learning_rate": 3e-3, "batch_size": 200, "num_epochs": 480}
    with pytest.raises(ValueError, match="batch_size 64 does not give whole epochs"):
        configs.base.mosaic_settings(learning_rate=1e-3, batch_size=64)


def test_run_one_fills_the_tables_columns(monkeypatch):
    def fake_baseline(name, protocol, bits, seed, *, per_query_ap):
        assert per_query_ap
        return {"train_seconds": 0.5, "note": f"{protocol}/{name}/{bits}/{seed}",
                "results": {"map": 0.5, "ndcg_at_100": 0.25, "acg_at_100": 0.75, "auc": 0.9,
                            "ties": "index", "per_query_ap": [0.25, 0.75]}}

    monkeypatch.setattr(experiment, "evaluate_baseline", fake_baseline)
    record = reproduce.run_one(
        {"table": "digits_mosaic", "method": "itq", "bits": 16, "seed": 2, "workdir": "unused"})
    assert record["started"] <= record["finished"]
    timings = ("seconds", "started", "finished")
    assert {k: v for k, v in record.items() if k not in timings} == {
        "table": "digits_mosaic", "method": "itq", "bits": 16, "seed": 2, "map": 0.5,
        "ndcg_at_100": 0.25, "acg_at_100": 0.75, "train_seconds": 0.5,
        "note": "digits_mosaic/itq/16/2", "per_query": {"map": [0.25, 0.75]}}


def test_run_one_asks_recipes_for_per_query_ap(monkeypatch, tmp_path):
    calls = []

    def fake_run_recipe(config, workdir, *, per_query_ap):
        calls.append((config.protocol, config.method, config.bits, config.seed, per_query_ap))
        return {"train_seconds": 2.0, "step": 100, "checkpoint": "best",
                "results": {"map": 0.5, "precision_within_radius_2": 0.25,
                            "per_query_ap": [0.0, 1.0]}}

    monkeypatch.setattr(experiment, "run_recipe", fake_run_recipe)
    record = reproduce.run_one({"table": "mnist5k", "method": "dpsh", "bits": 12, "seed": 1,
                                "workdir": str(tmp_path)})
    assert calls == [("mnist5k", "dpsh", 12, 1, True)]
    assert record["per_query"] == {"map": [0.0, 1.0]} and record["map"] == 0.5


def test_run_one_flattens_cross_modal_results_into_the_columns(monkeypatch):
    def fake_baseline(name, protocol, bits, seed, *, per_query_ap):
        return {"train_seconds": 1.0, "results": {
            "image_to_text": {"map": 0.5, "ndcg_at_100": 0.25, "pr_curve": {},
                              "per_query_ap": [0.5]},
            "text_to_image": {"map": 0.75, "ndcg_at_100": 0.5, "per_query_ap": [0.75]}}}

    monkeypatch.setattr(experiment, "evaluate_baseline", fake_baseline)
    record = reproduce.run_one({"table": "digits_mosaic_tags", "method": "cca_itq", "bits": 16,
                                "seed": 0, "workdir": "unused"})
    assert {k: record[k] for k in [c.key for c in CROSS_MODAL.columns]} == {
        "map_image_to_text": 0.5, "map_text_to_image": 0.75, "ndcg_at_100_image_to_text": 0.25,
        "ndcg_at_100_text_to_image": 0.5}
    assert record["per_query"] == {"map_image_to_text": [0.5], "map_text_to_image": [0.75]}


def test_failed_run_is_a_record_not_an_exception(tmp_path):
    record = reproduce.run_one({"table": "digits", "method": "no_such_method", "bits": 8,
                                "seed": 0, "workdir": str(tmp_path)})
    assert record["error"].startswith("ValueError: Unknown method 'no_such_method'")
    assert (record["method"], record["bits"], record["seed"]) == ("no_such_method", 8, 0)
    assert "map" not in record and record["seconds"] >= 0
    missing = reproduce.run_one({"table": "fake", "method": "lsh", "bits": 8, "seed": 0,
                                 "workdir": str(tmp_path)})
    assert missing["error"] == "KeyError: 'fake'"


def test_table_descriptions_are_fully_formatted():
    # A description written without its f-prefix would print "{_SWITCHES}" into RESULTS.md.
    for name, table in reproduce.TABLES.items():
        assert "{" not in table.description and "}" not in table.description, name
        assert "`ties=index`" in table.description or name == "digits_mosaic_tags", name


def test_resume_keeps_the_recorded_runs_and_plans_the_rest(tmp_path):
    tasks = dict(reproduce.plan(["mnist5k"], ["dpsh", "lsh"], [12], [0, 1], str(tmp_path)))[
        "mnist5k"]
    path = tmp_path / "results.jsonl"
    good = {"table": "mnist5k", "method": "dpsh", "bits": 12, "seed": 0, "map": 0.5}
    failed = {"table": "mnist5k", "method": "dpsh", "bits": 12, "seed": 1, "error": "boom"}
    other = {"table": "mnist5k", "method": "csq", "bits": 12, "seed": 0, "map": 0.7}
    # The last line was cut short by the crash that stopped the run.
    path.write_text("\n".join(json.dumps(r) for r in (good, failed, other)) + '\n{"table": "mn')
    assert reproduce.recorded_runs(str(path)) == [good, other]
    kept, todo = reproduce.split_done(tasks, str(path))
    assert kept == [good]  # csq is not among the tasks; the failed run is run again
    assert [(t["method"], t["seed"]) for t in todo] == [("dpsh", 1), ("lsh", 0), ("lsh", 1)]
    assert reproduce.split_done(tasks, str(tmp_path / "missing.jsonl")) == ([], tasks)


def test_a_resumed_section_says_which_runs_its_wall_time_covers():
    records = [{"method": "dpsh", "bits": 32, "seed": s, "map": 0.9,
                "precision_within_radius_2": 0.8, "train_seconds": 5.0} for s in (0, 1, 2)]
    section = results_table.format_section(records, DIGITS, command="c", environment={},
                                           seconds=12, resumed=2)
    assert ("- wall time: 12 s for 1 runs; 2 runs kept from an earlier invocation that stopped "
            "(`--resume`), their time not included") in section
    assert "wall time of the whole table" not in section


def test_a_tables_wall_time_spans_its_runs_even_when_they_overlap():
    records = [{"started": 100.0, "finished": 130.0}, {"started": 95.5, "finished": 110.0},
               {"started": 120.0, "finished": 126.0}]
    assert reproduce.table_seconds(records) == 34.5


def test_main_queues_every_table_and_writes_a_section_for_each(tmp_path, capsys, monkeypatch):
    # main() sets XLA and cache variables for its workers; keep them out of later tests'
    # subprocesses (an appended XLA flag hid the 4 fake devices of the multi-device test).
    for name in ("XLA_FLAGS", "JAX_COMPILATION_CACHE_DIR",
                 "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"):
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
    output = tmp_path / "report.md"
    with flagsaver.flagsaver():
        flags.FLAGS(["reproduce.py", "--tables=digits,digits_unsupervised", "--methods=lsh",
                     "--bits=16", "--seeds=0,1", "--workers=1", f"--output={output}",
                     f"--workdir={tmp_path / 'runs'}"])
        assert reproduce.main(["reproduce.py"]) == 0
    report = output.read_text()
    for name in ("digits", "digits_unsupervised"):
        assert f"# {reproduce.TABLES[name].title}" in report
        lines = (tmp_path / "runs" / name / "results.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        assert [(r["method"], r["seed"]) for r in records] == [("lsh", 0), ("lsh", 1)]
        assert all(r["started"] <= r["finished"] for r in records)
    assert report.count("- wall time of the whole table: ") == 2
    assert "All tables: " in capsys.readouterr().out
