"""experiments/reproduce.py: aggregation, formatting, sections and planning from known numbers
(no training)."""

import glob
import os
import sys

import pytest
from absl import app
from absl import flags
from absl.testing import flagsaver

from dlhash_jax import methods
from dlhash_jax import train

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO_ROOT, "experiments"))

import reproduce  # noqa: E402  (experiments/ is not a package)

DIGITS = reproduce.TABLES["digits"]
MOSAIC = reproduce.TABLES["digits_mosaic"]


def _record(method, bits, seed, map_, precision, seconds):
    return {"method": method, "bits": bits, "seed": seed, "map": map_,
            "precision_within_radius_2": precision, "train_seconds": seconds}


def _mosaic_record(method, bits, seed, map_, ndcg, acg, seconds):
    return {"method": method, "bits": bits, "seed": seed, "map": map_, "ndcg_at_100": ndcg,
            "acg_at_100": acg, "train_seconds": seconds}


RECORDS = [
    _record("dnnh", 32, 0, 0.90, 0.80, 5.0),
    _record("dnnh", 32, 1, 0.80, 0.70, 6.0),
    _record("lsh", 32, 0, 0.25, 0.10, 0.5),
    _record("dnnh", 16, 0, 0.70, 0.60, 4.0),
    _record("dnnh", 32, 2, 1.00, 0.90, 7.0),
    {"method": "drsch", "bits": 32, "seed": 1, "error": "ValueError: boom"},
]

MOSAIC_RECORDS = [
    _mosaic_record("csq", 32, 0, 0.78, 0.60, 1.20, 8.0),
    _mosaic_record("csq", 32, 1, 0.80, 0.62, 1.30, 9.0),
    _mosaic_record("csq", 32, 2, 0.82, 0.58, 1.25, 10.0),
    _mosaic_record("itq", 32, 0, 0.50, 0.28, 0.70, 1.0),
    _mosaic_record("itq", 32, 2, 0.52, 0.29, 0.74, 3.0),
    {"method": "itq", "bits": 32, "seed": 1, "error": "RuntimeError: no convergence"},
]


def test_mean_and_sample_std():
    mean, std = reproduce.mean_std([0.9, 0.8, 1.0])
    assert mean == pytest.approx(0.9) and std == pytest.approx(0.1)
    assert reproduce.mean_std([0.5]) == (0.5, 0.0)
    with pytest.raises(ValueError, match="at least one value"):
        reproduce.mean_std([])
    assert reproduce.format_mean_std([0.9, 0.8, 1.0]) == "0.900 ± 0.100"
    assert reproduce.format_mean_std([5.0, 6.0, 7.0], digits=1) == "6.0 ± 1.0"
    assert reproduce.format_mean_std([0.9123]) == "0.912"
    assert reproduce.format_mean_std([]) == "—"


def test_aggregate_groups_by_method_and_bits_and_keeps_failures():
    rows = reproduce.aggregate(RECORDS, DIGITS)
    assert [(r["method"], r["bits"]) for r in rows] == [
        ("dnnh", 16), ("dnnh", 32), ("lsh", 32), ("drsch", 32)]
    dnnh_32 = rows[1]
    assert dnnh_32["seeds"] == [0, 1, 2]
    assert dnnh_32["map"] == [0.9, 0.8, 1.0]
    assert dnnh_32["precision_within_radius_2"] == [0.8, 0.7, 0.9]
    assert dnnh_32["taxonomy"] == "single × multi-tuples"
    assert rows[3]["failed"] == [1] and rows[3]["map"] == []
    new = reproduce.aggregate([_record("new_method", 8, 0, 0.5, 0.5, 1.0)], DIGITS)
    assert new[0]["taxonomy"] == "?"


def test_table_rows():
    lines = reproduce.format_table(reproduce.aggregate(RECORDS, DIGITS), DIGITS).splitlines()
    assert lines[:2] == [
        "| method | labels × input | bits | mAP (database) | precision (r ≤ 2) | "
        "train time / run (s) | runs |",
        "|---|---|---:|---|---|---|---|",
    ]
    assert len(lines) == 2 + 4
    assert lines[3] == (
        "| dnnh | single × multi-tuples | 32 | 0.900 ± 0.100 | 0.800 ± 0.100 | 6.0 ± 1.0 | 3 |")
    assert lines[2] == "| dnnh | single × multi-tuples | 16 | 0.700 | 0.600 | 4.0 | 1 |"
    assert lines[4] == "| lsh | classic, data-independent | 32 | 0.250 | 0.100 | 0.5 | 1 |"
    assert lines[5] == "| drsch | single × multi-tuples | 32 | — | — | — | 0, failed: seed 1 |"


def test_multilabel_table_has_its_columns_and_taxonomy():
    rows = reproduce.aggregate(MOSAIC_RECORDS, MOSAIC)
    # csq trains on multi-hot labels here, whatever its single-label row says on digits.
    assert rows[0]["taxonomy"] == "multi × single"
    digits_csq = reproduce.aggregate([_record("csq", 32, 0, 0.9, 0.9, 1.0)], DIGITS)
    assert digits_csq[0]["taxonomy"] == "single × single"
    assert rows[1]["acg_at_100"] == [0.70, 0.74] and rows[1]["failed"] == [1]
    lines = reproduce.format_table(rows, MOSAIC).splitlines()
    assert lines == [
        "| method | labels × input | bits | mAP (database) | NDCG@100 | ACG@100 | "
        "train time / run (s) | runs |",
        "|---|---|---:|---|---|---|---|---|",
        # means 0.80 / 0.60 / 1.25, sample stds 0.02 / 0.02 / 0.05, time 9 ± 1.
        "| csq | multi × single | 32 | 0.800 ± 0.020 | 0.600 ± 0.020 | 1.250 ± 0.050 | "
        "9.0 ± 1.0 | 3 |",
        # two of three seeds: means 0.51 / 0.285 / 0.72; stds 0.01·√2, 0.005·√2, 0.02·√2.
        "| itq | classic, unsupervised | 32 | 0.510 ± 0.014 | 0.285 ± 0.007 | 0.720 ± 0.028 | "
        "2.0 ± 1.4 | 2, failed: seed 1 |",
    ]


def test_a_new_table_is_one_spec():
    table = reproduce.Table(
        title="Cross-modal results", protocol="digits_mosaic", description="Pairs.",
        recipes=("dcmh",), baselines=(),
        columns=(reproduce.Column("mAP image→text", "map_i2t", digits=2),
                 reproduce.Column("mAP text→image", "map_t2i", digits=2)),
    )
    records = [{"method": "dcmh", "bits": 16, "seed": 0, "map_i2t": 0.714, "map_t2i": 0.666,
                "train_seconds": 3.0}]
    lines = reproduce.format_table(reproduce.aggregate(records, table), table).splitlines()
    assert lines == [
        "| method | labels × input | bits | mAP image→text | mAP text→image | "
        "train time / run (s) | runs |",
        "|---|---|---:|---|---|---|---|",
        "| dcmh | multi × pairs (cross-modal) | 16 | 0.71 | 0.67 | 3.0 | 1 |",
    ]
    assert table.methods == ("dcmh",) and table.heading == "# Cross-modal results"


def test_report_holds_command_environment_table_and_failures():
    report = reproduce.format_section(
        RECORDS, DIGITS, command="python experiments/reproduce.py --bits=32",
        environment={"jax": "0.10.2 (cpu backend, 1 device(s))", "CPUs": "2"}, seconds=12.3,
    )
    assert report.startswith("# Results on digits\n")
    assert "```\npython experiments/reproduce.py --bits=32\n```" in report
    assert "- jax: 0.10.2 (cpu backend, 1 device(s))\n- CPUs: 2\n" in report
    assert "- wall time of the whole table: 12 s" in report
    assert "\nProtocol `digits` (query 100, database 1,697," in report
    assert "| dnnh | single × multi-tuples | 32 | 0.900 ± 0.100 |" in report
    assert report.rstrip().endswith("- drsch, 32 bits, seed 1: ValueError: boom")


def test_multilabel_section():
    section = reproduce.format_section(
        MOSAIC_RECORDS, MOSAIC, command="cmd", environment={}, seconds=300.4)
    assert section.startswith("# Multi-label results on digits_mosaic\n")
    assert "- wall time of the whole table: 300 s" in section
    assert "\nProtocol `digits_mosaic` (" in section and "NDCG@100 (gain 2^r − 1" in section
    assert "| csq | multi × single | 32 | 0.800 ± 0.020 |" in section
    assert section.rstrip().endswith("- itq, 32 bits, seed 1: RuntimeError: no convergence")


def _section(heading, body):
    return f"{heading}\n\nProduced by: {body}\n\n| a |\n|---|\n"


def test_merge_replaces_only_the_sections_run_and_orders_them_as_the_tables():
    digits = _section("# Results on digits", "the digits command")
    mosaic = _section("# Multi-label results on digits_mosaic", "the mosaic command")
    other = _section("# Notes", "by hand")
    # The first report: one table, as reproduce.py wrote it before it had sections.
    assert reproduce.merge_report("", {DIGITS.heading: digits}) == digits
    both = reproduce.merge_report(digits, {MOSAIC.heading: mosaic})
    assert both == digits + "\n" + mosaic
    # Mosaic first in the file, then a digits rerun: back in the tables' order.
    assert reproduce.merge_report(mosaic, {DIGITS.heading: digits}) == both
    rerun = _section("# Multi-label results on digits_mosaic", "a new command")
    assert reproduce.merge_report(both, {MOSAIC.heading: rerun}) == digits + "\n" + rerun
    # Text before the first heading and sections of no table stay, the latter after the tables.
    kept = reproduce.merge_report("Preamble.\n\n" + other + "\n" + digits,
                                  {MOSAIC.heading: mosaic})
    assert kept == "Preamble.\n\n" + digits + "\n" + mosaic + "\n" + other


def test_split_sections_keeps_subheadings_inside():
    section = reproduce.format_section(RECORDS, DIGITS, command="c", environment={}, seconds=1)
    preamble, sections = reproduce.split_sections(section)
    assert preamble == "" and sections == {"# Results on digits": section}


def test_plan_defaults_to_every_row_of_both_tables(tmp_path):
    plans = reproduce.plan(["digits", "digits_mosaic"], None, [16, 32], [0, 1, 2], str(tmp_path))
    assert [name for name, _ in plans] == ["digits", "digits_mosaic"]
    digits_tasks, mosaic_tasks = plans[0][1], plans[1][1]
    assert len(digits_tasks) == len(DIGITS.methods) * 2 * 3
    assert len(mosaic_tasks) == (3 + 4) * 2 * 3
    assert mosaic_tasks[0] == {"table": "digits_mosaic", "method": "csq", "bits": 16, "seed": 0,
                               "workdir": str(tmp_path / "digits_mosaic")}
    assert [t["method"] for t in mosaic_tasks[::6]] == [
        "csq", "dsrh", "order_sensitive", "lsh", "pcah", "itq", "sh"]
    # Cross-modal recipes need two modalities: not rows of the digits table.
    assert not {"dcmh", "glsp"} & set(DIGITS.methods)
    assert {"dsrh", "order_sensitive", "csq", "dpsh", "lsh"} <= set(DIGITS.methods)


def test_plan_methods_pick_rows_of_each_table():
    plans = reproduce.plan(["digits", "digits_mosaic"], ["itq", "dsrh", "dpsh"], [32], [0], "w")
    assert [(name, [t["method"] for t in tasks]) for name, tasks in plans] == [
        ("digits", ["itq", "dsrh", "dpsh"]), ("digits_mosaic", ["itq", "dsrh"])]
    only_digits = reproduce.plan(["digits_mosaic", "digits"], ["dpsh"], [32], [0], "w")
    assert [name for name, _ in only_digits] == ["digits"]


@pytest.mark.parametrize(
    "tables, chosen, message",
    [
        ([], None, r"No table to produce; tables: digits, digits_mosaic"),
        (["digits", "mosaic"], None, r"Unknown table\(s\) \['mosaic'\]; tables: digits, "),
        (["digits_mosaic"], ["dpsh", "lsh"],
         r"Method\(s\) \['dpsh'\] are rows of none of the tables \(digits_mosaic: csq, dsrh, "
         r"order_sensitive, lsh, pcah, itq, sh\)"),
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
        flags.FLAGS(["reproduce.py", "--tables=digits_mosaic", "--methods=dpsh"])
        with pytest.raises(app.UsageError, match=r"Method\(s\) \['dpsh'\] are rows of none"):
            reproduce.main(["reproduce.py"])
    assert reproduce._TABLES.default == ["digits", "digits_mosaic", "digits_mosaic_tags"]


def test_mosaic_rows_are_the_single_modality_configs_with_mosaic_settings():
    configs = glob.glob(os.path.join(REPO_ROOT, "experiments", "configs", "*.py"))
    with_mosaic = set()
    for path in configs:
        name = os.path.splitext(os.path.basename(path))[0]
        with open(path) as f:
            if name in methods.RECIPES and '"digits_mosaic": {' in f.read():
                with_mosaic.add(name)
    assert set(MOSAIC.recipes) == {n for n in with_mosaic if not methods.RECIPES[n].cross_modal}


@pytest.mark.parametrize("method", [*MOSAIC.recipes, "dpsh"])
def test_mosaic_configs_are_valid_with_the_test_sessions_four_devices(method):
    # dpsh has no digits_mosaic settings of its own: configs/base.py's defaults must be valid.
    config = reproduce.load_config("digits_mosaic", method, 16, 1)
    assert (config.protocol, config.bits, config.seed, config.num_devices) == (
        "digits_mosaic", 16, 1, 1)
    assert train.validate_config(config) is methods.get_recipe(method)


def test_run_one_fills_the_tables_columns(monkeypatch):
    def fake_baseline(protocol, method, bits, seed):
        return {"train_seconds": 0.5, "note": f"{protocol}/{method}/{bits}/{seed}",
                "results": {"map": 0.5, "ndcg_at_100": 0.25, "acg_at_100": 0.75, "auc": 0.9}}

    table = reproduce.Table(title="T", protocol="digits_mosaic", description="", recipes=(),
                            columns=MOSAIC.columns, run_baseline=fake_baseline)
    monkeypatch.setitem(reproduce.TABLES, "fake", table)
    record = reproduce.run_one(
        {"table": "fake", "method": "itq", "bits": 16, "seed": 2, "workdir": "unused"})
    assert {k: v for k, v in record.items() if k != "seconds"} == {
        "table": "fake", "method": "itq", "bits": 16, "seed": 2, "map": 0.5,
        "ndcg_at_100": 0.25, "acg_at_100": 0.75, "train_seconds": 0.5,
        "note": "digits_mosaic/itq/16/2"}


def test_failed_run_is_a_record_not_an_exception(tmp_path):
    record = reproduce.run_one({"table": "digits", "method": "no_such_method", "bits": 8,
                                "seed": 0, "workdir": str(tmp_path)})
    assert record["error"].startswith("ValueError: Unknown method 'no_such_method'")
    assert (record["method"], record["bits"], record["seed"]) == ("no_such_method", 8, 0)
    assert "map" not in record and record["seconds"] >= 0
    missing = reproduce.run_one({"table": "fake", "method": "lsh", "bits": 8, "seed": 0,
                                 "workdir": str(tmp_path)})
    assert missing["error"] == "KeyError: 'fake'"


def test_cross_modal_table_rows_columns_and_flattened_directions():
    table = reproduce.TABLES["digits_mosaic_tags"]
    assert table.methods == ("dcmh", "glsp", "cca_itq")
    assert [c.key for c in table.columns] == [
        "map_image_to_text", "map_text_to_image", "ndcg_at_100_image_to_text",
        "ndcg_at_100_text_to_image"]
    flat = reproduce._by_direction({
        "image_to_text": {"map": 0.5, "ndcg_at_100": 0.25, "ties": "index", "pr_curve": {}},
        "text_to_image": {"map": 0.75, "ndcg_at_100": 0.5, "ties": "index"},
    })
    assert flat == {"map_image_to_text": 0.5, "ndcg_at_100_image_to_text": 0.25,
                    "map_text_to_image": 0.75, "ndcg_at_100_text_to_image": 0.5}
    record = {"method": "cca_itq", "bits": 16, "seed": 0, "train_seconds": 1.0, **flat}
    line = reproduce.format_table(reproduce.aggregate([record], table), table).splitlines()[2]
    assert line == (
        "| cca_itq | classic, paired modalities | 16 | 0.500 | 0.750 | 0.250 | 0.500 | 1.0 | 1 |"
    )


def test_cross_modal_baseline_is_scored_in_both_directions():
    import jax

    from dlhash_jax import baselines
    from dlhash_jax import data as data_lib
    from dlhash_jax import metrics

    outcome = reproduce.fit_cross_modal_baseline("digits_mosaic_tags", "cca_itq", 16, 0)
    data = data_lib.load_protocol("digits_mosaic_tags", seed=0)
    fitted = baselines.fit_cca_itq(
        jax.random.PRNGKey(0), data.train.inputs["image"], data.train.inputs["text"], 16
    )
    expected = metrics.cross_modal_map(
        fitted.encode(data.query.inputs), fitted.encode(data.database.inputs),
        data.query.labels, data.database.labels,
    )
    results = outcome["results"]
    assert results["map_image_to_text"] == pytest.approx(expected["image_to_text"], abs=1e-12)
    assert results["map_text_to_image"] == pytest.approx(expected["text_to_image"], abs=1e-12)
    with pytest.raises(ValueError, match="Unknown cross-modal baseline 'lsh'"):
        reproduce.fit_cross_modal_baseline("digits_mosaic_tags", "lsh", 16, 0)
