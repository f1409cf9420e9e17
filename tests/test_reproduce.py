"""experiments/reproduce.py: aggregation and formatting from known numbers (no training)."""

import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO_ROOT, "experiments"))

import reproduce  # noqa: E402  (experiments/ is not a package)


def _record(method, bits, seed, map_, precision, seconds):
    return {"method": method, "bits": bits, "seed": seed, "map": map_,
            "precision_within_radius": precision, "train_seconds": seconds}


RECORDS = [
    _record("dnnh", 32, 0, 0.90, 0.80, 5.0),
    _record("dnnh", 32, 1, 0.80, 0.70, 6.0),
    _record("lsh", 32, 0, 0.25, 0.10, 0.5),
    _record("dnnh", 16, 0, 0.70, 0.60, 4.0),
    _record("dnnh", 32, 2, 1.00, 0.90, 7.0),
    {"method": "drsch", "bits": 32, "seed": 1, "error": "ValueError: boom"},
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
    rows = reproduce.aggregate(RECORDS)
    assert [(r["method"], r["bits"]) for r in rows] == [
        ("dnnh", 16), ("dnnh", 32), ("lsh", 32), ("drsch", 32)]
    dnnh_32 = rows[1]
    assert dnnh_32["seeds"] == [0, 1, 2]
    assert dnnh_32["map"] == [0.9, 0.8, 1.0]
    assert dnnh_32["taxonomy"] == "single × multi-tuples"
    assert rows[3]["failed"] == [1] and rows[3]["map"] == []
    assert reproduce.aggregate([_record("new_method", 8, 0, 0.5, 0.5, 1.0)])[0]["taxonomy"] == "?"


def test_table_rows():
    lines = reproduce.format_table(reproduce.aggregate(RECORDS)).splitlines()
    assert lines[0].startswith("| method | labels × input | bits | mAP (database) |")
    assert len(lines) == 2 + 4
    assert lines[3] == (
        "| dnnh | single × multi-tuples | 32 | 0.900 ± 0.100 | 0.800 ± 0.100 | 6.0 ± 1.0 | 3 |")
    assert lines[2] == "| dnnh | single × multi-tuples | 16 | 0.700 | 0.600 | 4.0 | 1 |"
    assert lines[4] == "| lsh | classic, data-independent | 32 | 0.250 | 0.100 | 0.5 | 1 |"
    assert lines[5] == "| drsch | single × multi-tuples | 32 | — | — | — | 0, failed: seed 1 |"


def test_report_holds_command_environment_table_and_failures():
    report = reproduce.format_report(
        RECORDS, command="python experiments/reproduce.py --bits=32",
        environment={"jax": "0.10.2 (cpu backend, 1 device(s))", "CPUs": "2"}, seconds=12.3,
    )
    assert report.startswith("# Results on digits")
    assert "```\npython experiments/reproduce.py --bits=32\n```" in report
    assert "- jax: 0.10.2 (cpu backend, 1 device(s))\n- CPUs: 2\n" in report
    assert "- wall time of the whole table: 12 s" in report
    assert "| dnnh | single × multi-tuples | 32 | 0.900 ± 0.100 |" in report
    assert report.rstrip().endswith("- drsch, 32 bits, seed 1: ValueError: boom")


def test_failed_run_is_a_record_not_an_exception(tmp_path):
    record = reproduce.run_one(
        {"method": "no_such_method", "bits": 8, "seed": 0, "workdir": str(tmp_path)})
    assert record["error"].startswith("ValueError: Unknown method 'no_such_method'")
    assert (record["method"], record["bits"], record["seed"]) == ("no_such_method", 8, 0)
    assert "map" not in record and record["seconds"] >= 0
