"""dlhash_jax.results_table: aggregation, formatting, sections and merging from known numbers."""

import jax
import numpy as np
import pytest

from dlhash_jax import experiment
from dlhash_jax import methods
from dlhash_jax import results_table
from dlhash_jax import statistics
from dlhash_jax.results_table import Column
from dlhash_jax.results_table import Table

MAP = Column("mAP (database)", "map")
DIGITS = Table(
    title="Results on digits",
    protocol="digits",
    description="Protocol `digits` (query 100, database 1,697, train 500, validation 100).",
    recipes=("dnnh", "drsch"),
    columns=(MAP, Column("precision (r ≤ 2)", "precision_within_radius_2")),
)
MOSAIC = Table(
    title="Multi-label results on digits_mosaic",
    protocol="digits_mosaic",
    description="Protocol `digits_mosaic` (2,000 mosaics). NDCG@100 (gain 2^r − 1, ...).",
    recipes=("csq",),
    columns=(MAP, Column("NDCG@100", "ndcg_at_100"), Column("ACG@100", "acg_at_100")),
    taxonomy={"csq": "multi × single"},
)


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
    mean, std = results_table.mean_std([0.9, 0.8, 1.0])
    assert mean == pytest.approx(0.9) and std == pytest.approx(0.1)
    assert results_table.mean_std([0.5]) == (0.5, 0.0)
    with pytest.raises(ValueError, match="at least one value"):
        results_table.mean_std([])
    assert results_table.format_mean_std([0.9, 0.8, 1.0]) == "0.900 ± 0.100"
    assert results_table.format_mean_std([5.0, 6.0, 7.0], digits=1) == "6.0 ± 1.0"
    assert results_table.format_mean_std([0.9123]) == "0.912"
    assert results_table.format_mean_std([]) == "—"


def test_table_rows_are_its_recipes_then_the_single_modality_baselines():
    assert DIGITS.methods == ("dnnh", "drsch", "lsh", "pcah", "itq", "sh")
    assert results_table.SINGLE_MODALITY_BASELINES == ("lsh", "pcah", "itq", "sh")
    assert DIGITS.heading == "# Results on digits"


def test_taxonomy_comes_from_the_recipe_the_baseline_or_the_tables_override():
    for name, recipe in methods.RECIPES.items():
        assert results_table.row_taxonomy(DIGITS, name) == str(recipe.taxonomy)
    assert results_table.row_taxonomy(DIGITS, "dnnh") == "single × multi-tuples"
    assert results_table.row_taxonomy(DIGITS, "dcmh") == "multi × pairs (cross-modal)"
    assert {name: results_table.row_taxonomy(DIGITS, name) for name in experiment.BASELINES} == {
        "lsh": "classic, data-independent", "pcah": "classic, unsupervised",
        "itq": "classic, unsupervised", "sh": "classic, unsupervised",
        "cca_itq": "classic, paired modalities"}
    assert results_table.row_taxonomy(MOSAIC, "csq") == "multi × single"
    assert results_table.row_taxonomy(DIGITS, "csq") == "single × single"
    assert results_table.row_taxonomy(DIGITS, "new_method") == "?"


def test_aggregate_groups_by_method_and_bits_and_keeps_failures():
    rows = results_table.aggregate(RECORDS, DIGITS)
    assert [(r["method"], r["bits"]) for r in rows] == [
        ("dnnh", 16), ("dnnh", 32), ("lsh", 32), ("drsch", 32)]
    dnnh_32 = rows[1]
    assert dnnh_32["seeds"] == [0, 1, 2]
    assert dnnh_32["map"] == [0.9, 0.8, 1.0]
    assert dnnh_32["precision_within_radius_2"] == [0.8, 0.7, 0.9]
    assert dnnh_32["taxonomy"] == "single × multi-tuples"
    assert rows[3]["failed"] == [1] and rows[3]["map"] == []
    new = results_table.aggregate([_record("new_method", 8, 0, 0.5, 0.5, 1.0)], DIGITS)
    assert new[0]["taxonomy"] == "?"


def test_table_rows():
    lines = results_table.format_table(
        results_table.aggregate(RECORDS, DIGITS), DIGITS).splitlines()
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
    rows = results_table.aggregate(MOSAIC_RECORDS, MOSAIC)
    # csq trains on multi-hot labels here, whatever its single-label row says on digits.
    assert rows[0]["taxonomy"] == "multi × single"
    digits_csq = results_table.aggregate([_record("csq", 32, 0, 0.9, 0.9, 1.0)], DIGITS)
    assert digits_csq[0]["taxonomy"] == "single × single"
    assert rows[1]["acg_at_100"] == [0.70, 0.74] and rows[1]["failed"] == [1]
    lines = results_table.format_table(rows, MOSAIC).splitlines()
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
    table = Table(
        title="Cross-modal results", protocol="digits_mosaic", description="Pairs.",
        recipes=("dcmh",), baselines=(),
        columns=(Column("mAP image→text", "map_i2t", digits=2),
                 Column("mAP text→image", "map_t2i", digits=2)),
    )
    records = [{"method": "dcmh", "bits": 16, "seed": 0, "map_i2t": 0.714, "map_t2i": 0.666,
                "train_seconds": 3.0}]
    lines = results_table.format_table(
        results_table.aggregate(records, table), table).splitlines()
    assert lines == [
        "| method | labels × input | bits | mAP image→text | mAP text→image | "
        "train time / run (s) | runs |",
        "|---|---|---:|---|---|---|---|",
        "| dcmh | multi × pairs (cross-modal) | 16 | 0.71 | 0.67 | 3.0 | 1 |",
    ]
    assert table.methods == ("dcmh",) and table.heading == "# Cross-modal results"


def test_report_holds_command_environment_table_and_failures():
    report = results_table.format_section(
        RECORDS, DIGITS, command="python -m experiments.reproduce --bits=32",
        environment={"jax": "0.10.2 (cpu backend, 1 device(s))", "CPUs": "2"}, seconds=12.3,
    )
    assert report.startswith("# Results on digits\n")
    assert "```\npython -m experiments.reproduce --bits=32\n```" in report
    assert "- jax: 0.10.2 (cpu backend, 1 device(s))\n- CPUs: 2\n" in report
    assert "- wall time of the whole table: 12 s" in report
    assert f"\n\n{DIGITS.description}\n\n| method |" in report
    assert "| dnnh | single × multi-tuples | 32 | 0.900 ± 0.100 |" in report
    assert report.rstrip().endswith("- drsch, 32 bits, seed 1: ValueError: boom")


def test_multilabel_section():
    section = results_table.format_section(
        MOSAIC_RECORDS, MOSAIC, command="cmd", environment={}, seconds=300.4)
    assert section.startswith("# Multi-label results on digits_mosaic\n")
    assert "- wall time of the whole table: 300 s" in section
    assert "\nProtocol `digits_mosaic` (" in section and "NDCG@100 (gain 2^r − 1" in section
    assert "| csq | multi × single | 32 | 0.800 ± 0.020 |" in section
    assert section.rstrip().endswith("- itq, 32 bits, seed 1: RuntimeError: no convergence")
    clean = results_table.format_section(MOSAIC_RECORDS[:3], MOSAIC, command="cmd",
                                         environment={}, seconds=1)
    assert "Failed runs" not in clean


def _section(heading, body):
    return f"{heading}\n\nProduced by: {body}\n\n| a |\n|---|\n"


def test_merge_replaces_only_the_sections_run_and_orders_them_as_told():
    order = [DIGITS.heading, MOSAIC.heading]
    digits = _section("# Results on digits", "the digits command")
    mosaic = _section("# Multi-label results on digits_mosaic", "the mosaic command")
    other = _section("# Notes", "by hand")
    # The first report: one table.
    assert results_table.merge_report("", {DIGITS.heading: digits}, order) == digits
    both = results_table.merge_report(digits, {MOSAIC.heading: mosaic}, order)
    assert both == digits + "\n" + mosaic
    # Mosaic first in the file, then a digits rerun: back in the given order.
    assert results_table.merge_report(mosaic, {DIGITS.heading: digits}, order) == both
    # Without an order the report's own order stays and a new section joins at the end.
    assert results_table.merge_report(mosaic, {DIGITS.heading: digits}) == mosaic + "\n" + digits
    rerun = _section("# Multi-label results on digits_mosaic", "a new command")
    assert results_table.merge_report(both, {MOSAIC.heading: rerun}, order) == (
        digits + "\n" + rerun)
    # Text before the first heading and sections of no table stay, the latter after the tables.
    kept = results_table.merge_report("Preamble.\n\n" + other + "\n" + digits,
                                      {MOSAIC.heading: mosaic}, order)
    assert kept == "Preamble.\n\n" + digits + "\n" + mosaic + "\n" + other


def test_split_sections_keeps_subheadings_inside():
    section = results_table.format_section(RECORDS, DIGITS, command="c", environment={},
                                           seconds=1)
    preamble, sections = results_table.split_sections(section)
    assert preamble == "" and sections == {"# Results on digits": section}
    preamble, sections = results_table.split_sections("Intro.\n# A\na\n# B\nb\n")
    assert preamble == "Intro.\n" and sections == {"# A": "# A\na\n", "# B": "# B\nb\n"}


def test_scalar_metrics_flatten_directions_and_drop_non_numbers():
    flat = results_table.scalar_metrics({
        "image_to_text": {"map": 0.5, "ndcg_at_100": 0.25, "ties": "index", "pr_curve": {}},
        "text_to_image": {"map": 0.75, "ndcg_at_100": 0.5, "ties": "index"},
    })
    assert flat == {"map_image_to_text": 0.5, "ndcg_at_100_image_to_text": 0.25,
                    "map_text_to_image": 0.75, "ndcg_at_100_text_to_image": 0.5}
    single = results_table.scalar_metrics(
        {"map": 0.5, "map_at_100": np.float32(0.25), "ties": "index", "skip": True,
         "pr_curve": {"precision": [1.0]}})
    assert single == {"map": 0.5, "map_at_100": 0.25}
    cross = Table(title="T", protocol="digits_mosaic_tags", description="", recipes=(),
                  baselines=("cca_itq",), columns=(Column("mAP", "map_image_to_text"),))
    record = {"method": "cca_itq", "bits": 16, "seed": 0, "train_seconds": 1.0, **flat}
    line = results_table.format_table(
        results_table.aggregate([record], cross), cross).splitlines()[2]
    assert line == "| cca_itq | classic, paired modalities | 16 | 0.500 | 1.0 | 1 |"


def test_environment_names_jax_cpus_python_and_date():
    environment = results_table.environment()
    assert list(environment) == ["jax", "CPUs", "Python", "date"]
    assert environment["jax"].startswith(f"{jax.__version__} ({jax.default_backend()} backend, ")
    assert environment["date"].endswith(" UTC")


# ----------------------------------------------------------------------------------------------
# Confidence intervals and significance marks from per-query values.

CI_TABLE = Table(
    title="Results on mnist5k", protocol="mnist5k", description="Protocol `mnist5k`.",
    recipes=("dpsh", "dsh", "csq"), baselines=("lsh",),
    columns=(Column("mAP (database)", "map", interval=True),
             Column("precision (r ≤ 2)", "precision_within_radius_2")),
)


def _ci_records():
    rng = np.random.default_rng(0)
    base = {seed: rng.random(200) for seed in (0, 1, 2)}
    alternating = 0.01 * (-1.0) ** np.arange(200)
    per_query = {
        # dpsh is the best at 12 bits; dsh ties with it up to symmetric noise; csq and lsh are
        # clearly below. At 24 bits only csq and lsh ran, csq being the best.
        ("dpsh", 12): {s: v for s, v in base.items()},
        ("dsh", 12): {s: v + alternating - 1e-4 for s, v in base.items()},
        ("csq", 12): {s: v - 0.1 for s, v in base.items()},
        ("lsh", 12): {s: np.clip(v - 0.4, 0, 1) for s, v in base.items()},
        ("csq", 24): {s: v for s, v in base.items()},
        ("lsh", 24): {s: v * 0.5 for s, v in base.items()},
    }
    records = []
    for (method, bits), seeds in per_query.items():
        for seed, values in seeds.items():
            records.append({
                "method": method, "bits": bits, "seed": seed, "map": float(np.mean(values)),
                "precision_within_radius_2": 0.5, "train_seconds": 1.0,
                "per_query": {"map": values.tolist()},
            })
    return records, per_query


def test_aggregate_keeps_per_query_values_of_interval_columns():
    records, per_query = _ci_records()
    rows = results_table.aggregate(records, CI_TABLE)
    dsh = next(r for r in rows if (r["method"], r["bits"]) == ("dsh", 12))
    assert list(dsh["per_query"]) == ["map"] and sorted(dsh["per_query"]["map"]) == [0, 1, 2]
    np.testing.assert_array_equal(dsh["per_query"]["map"][1], per_query[("dsh", 12)][1])
    # Columns without intervals keep no per-query values; old records without them still work.
    assert results_table.aggregate(RECORDS, DIGITS)[0]["per_query"] == {}


def test_interval_column_shows_the_bootstrap_ci_and_bolds_rows_not_below_the_best():
    records, per_query = _ci_records()
    rows = results_table.aggregate(records, CI_TABLE)
    lines = results_table.format_table(rows, CI_TABLE).splitlines()
    assert lines[:2] == [
        "| method | labels × input | bits | mAP (database) | mAP (database) 95% CI | "
        "precision (r ≤ 2) | train time / run (s) | runs |",
        "|---|---|---:|---|---|---|---|---|",
    ]
    cells = {(line.split(" | ")[0][2:], int(line.split(" | ")[2])): line.split(" | ")
             for line in lines[2:]}

    def ci(method, bits):
        interval = statistics.bootstrap_ci(per_query[(method, bits)], num_resamples=10_000,
                                           seed=0)
        return f"[{interval.low:.3f}, {interval.high:.3f}]"

    for key in per_query:
        assert cells[key][4] == ci(*key)
    bold = {key for key, line in cells.items() if line[3].startswith("**")}
    # At 12 bits dpsh is the best and dsh is not significantly below it; at 24 bits csq is.
    assert bold == {("dpsh", 12), ("dsh", 12), ("csq", 24)}
    mean, std = results_table.mean_std([np.mean(v) for v in per_query[("dpsh", 12)].values()])
    assert cells[("dpsh", 12)][3] == f"**{mean:.3f} ± {std:.3f}**"
    assert cells[("lsh", 12)][3] == results_table.format_mean_std(
        [np.mean(v) for v in per_query[("lsh", 12)].values()])
    # The marks come from compare_with_best over the rows of one code length.
    marks = results_table.significance(rows, CI_TABLE.columns[0])
    assert marks[("dsh", 12)]["not_below"] and marks[("dsh", 12)]["p_value"] > 0.05
    assert marks[("csq", 12)]["p_value"] < 0.05 and marks[("dpsh", 12)]["p_value"] == 1.0


def test_rows_without_complete_per_query_values_get_no_interval_or_mark():
    records, _ = _ci_records()
    # dsh's seed 2 lost its per-query values, csq at 12 bits has a failed seed (two seeds left,
    # both with values), lsh's values hold a NaN.
    for record in records:
        if (record["method"], record["bits"], record["seed"]) == ("dsh", 12, 2):
            del record["per_query"]
        if record["method"] == "lsh" and record["bits"] == 12:
            record["per_query"]["map"][0] = float("nan")
    records = [r for r in records if (r["method"], r["bits"], r["seed"]) != ("csq", 12, 1)]
    records.append({"method": "csq", "bits": 12, "seed": 1, "error": "boom"})
    rows = results_table.aggregate(records, CI_TABLE)
    lines = {line.split(" | ")[0][2:] + line.split(" | ")[2]: line.split(" | ")
             for line in results_table.format_table(rows, CI_TABLE).splitlines()[2:]}
    assert lines["dsh12"][4] == "—" and not lines["dsh12"][3].startswith("**")
    assert lines["lsh12"][4] == "—"
    assert lines["csq12"][4].startswith("[") and lines["csq12"][-1] == "2, failed: seed 1 |"
    assert lines["dpsh12"][3].startswith("**")


def test_section_names_the_test_above_the_table():
    records, _ = _ci_records()
    section = results_table.format_section(records, CI_TABLE, command="c", environment={},
                                           seconds=1)
    note = results_table.significance_note(CI_TABLE)
    assert f"\n\n{CI_TABLE.description}\n\n{note}\n\n| method |" in section
    for phrase in ("**bold** = not significantly below the best row of the same code length",
                   "one-sided paired sign-flip permutation test", "10,000 random sign flips",
                   "Holm-corrected", "α = 0.05", "95% CI: percentile bootstrap over the queries "
                   "of each seed", "10,000 resamples"):
        assert phrase in note, phrase
    assert results_table.significance_note(DIGITS) == ""


def test_per_query_metrics_are_keyed_like_the_scalar_metrics():
    assert results_table.per_query_metrics({"map": 0.5, "per_query_ap": [0.25, 0.75]}) == {
        "map": [0.25, 0.75]}
    assert results_table.per_query_metrics({"map": 0.5}) == {}
    assert results_table.per_query_metrics({
        "image_to_text": {"map": 0.5, "per_query_ap": [0.5]},
        "text_to_image": {"map": 0.5, "per_query_ap": [np.float64(0.25)]},
    }) == {"map_image_to_text": [0.5], "map_text_to_image": [0.25]}
    # scalar_metrics leaves the lists out.
    assert results_table.scalar_metrics({"map": 0.5, "per_query_ap": [0.25, 0.75]}) == {
        "map": 0.5}
