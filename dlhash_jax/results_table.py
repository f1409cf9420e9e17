"""Results tables: per-run records grouped by (method, code length) into Markdown report sections.

A :class:`Table` says which runs a section holds (a protocol, its recipes and baselines) and how
they are shown (its metric columns, :class:`Column`). A record is a flat dict, one per (method,
bits, seed), as ``experiments.reproduce`` writes them to ``results.jsonl``: ``method``, ``bits``,
``seed``, and either ``error`` (a failed run) or ``train_seconds`` and the key of each column
(:func:`scalar_metrics` flattens an evaluation into those keys), plus, for the columns with
``interval=True``, ``per_query``: ``{key: [Q per-query values]}`` (:func:`per_query_metrics`).
:func:`aggregate` groups the records into rows, :func:`format_table` and :func:`format_section`
write them, and :func:`merge_report` puts a section into an existing report, keeping the others.

Significance (``dlhash_jax.statistics``). A column with ``interval=True`` whose rows' records
carry per-query values gets a second column, its 95% confidence interval (percentile bootstrap
over the queries of each seed, pooled over the seeds: :func:`dlhash_jax.statistics.bootstrap_ci`),
and its mean cells are bold for the rows not significantly below the best row of the same code
length (one-sided paired sign-flip permutation tests against the best over the seeds both ran,
Holm-corrected over the other rows of that code length, α = 0.05:
:func:`dlhash_jax.statistics.compare_with_best`). :func:`significance_note` says so above the
table.
"""

from __future__ import annotations

import dataclasses
import datetime
import numbers
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from dlhash_jax import evaluate
from dlhash_jax import experiment
from dlhash_jax import methods
from dlhash_jax import statistics


@dataclasses.dataclass(frozen=True)
class Column:
    """A metric column: its header and the key it reads from the records.

    Attributes:
      header: the column's header.
      key: a key of :func:`scalar_metrics`'s output, e.g. ``"map"``,
        ``"precision_within_radius_2"`` or ``"map_image_to_text"``.
      digits: decimals shown.
      interval: whether the column gets a confidence-interval column and significance marks
        from the records' per-query values of ``key`` (only the keys of
        :func:`per_query_metrics` have them: mAP's).
    """

    header: str
    key: str
    digits: int = 3
    interval: bool = False


# The evaluation entry holding the per-query values of a metric key of scalar_metrics.
PER_QUERY_KEYS = {"map": "per_query_ap"}
# The settings of every table's intervals and significance marks.
CONFIDENCE = 0.95
ALPHA = 0.05
CORRECTION = "holm"
NUM_RESAMPLES = 10_000
NUM_PERMUTATIONS = 10_000
STATISTICS_SEED = 0


# The classic baselines a single-modality table compares against.
SINGLE_MODALITY_BASELINES = tuple(
    name for name, baseline in experiment.BASELINES.items() if not baseline.cross_modal
)


@dataclasses.dataclass(frozen=True)
class Table:
    """One section of a report: which runs it holds and how they are shown.

    Attributes:
      title: the section's level-1 heading, which also identifies it in an existing report.
      protocol: the ``dlhash_jax.data`` protocol of every run.
      description: the paragraph between the section's environment and its table (the
        protocol, the metrics, how the runs were made).
      recipes: its deep methods (keys of ``methods.RECIPES``), in row order; the baselines
        follow them.
      columns: the metric columns, between ``bits`` and the training time.
      baselines: its classic baselines (keys of ``experiment.BASELINES``).
      taxonomy: "labels × input" cells that differ on this table's data from the method's own
        (e.g. a single-label recipe trained on multi-hot labels).
    """

    title: str
    protocol: str
    description: str
    recipes: tuple[str, ...]
    columns: tuple[Column, ...]
    baselines: tuple[str, ...] = SINGLE_MODALITY_BASELINES
    taxonomy: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def methods(self) -> tuple[str, ...]:
        """Its rows' methods: the recipes, then the baselines."""
        return (*self.recipes, *self.baselines)

    @property
    def heading(self) -> str:
        """The section's heading line, ``"# <title>"``."""
        return f"# {self.title}"


def row_taxonomy(table: Table, method: str) -> str:
    """The "labels × input" cell of ``method``'s rows in ``table``.

    Returns:
      The table's override, else the recipe's taxonomy (``methods.RECIPES[method].taxonomy``,
      e.g. ``"single × pairs"``), else the baseline's (``"classic, unsupervised"``), else
      ``"?"`` for a name that is neither.
    """
    if method in table.taxonomy:
        return table.taxonomy[method]
    if method in methods.RECIPES:
        return str(methods.RECIPES[method].taxonomy)
    if method in experiment.BASELINES:
        return experiment.BASELINES[method].taxonomy
    return "?"


def scalar_metrics(results: Mapping[str, Any]) -> dict[str, float]:
    """The scalar metrics of an evaluation, flat, as a record keeps them.

    Args:
      results: the dict of ``evaluate.evaluate_model`` (or of ``metrics.evaluate_codes``), or
        the cross-modal one, ``{"image_to_text": {...}, "text_to_image": {...}}``.

    Returns:
      ``{key: value}`` of the numbers (curves, switches and flags are left out); for cross-modal
      results ``{f"{key}_{direction}": value}``, e.g. ``map_image_to_text``.
    """
    flat = {}
    for direction, scores in evaluate.directions(results).items():
        for key, value in scores.items():
            if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
                flat[f"{key}_{direction}" if direction else key] = float(value)
    return flat


def per_query_metrics(results: Mapping[str, Any]) -> dict[str, list[float]]:
    """The per-query values of an evaluation, keyed like :func:`scalar_metrics`.

    Args:
      results: as :func:`scalar_metrics`; per-query values are present when the evaluation
        was asked for them (``evaluate.evaluate_model(..., per_query_ap=True)``).

    Returns:
      ``{key: list of Q floats}`` for each metric of :data:`PER_QUERY_KEYS` present, e.g.
      ``{"map": [...]}``, or ``{"map_image_to_text": [...], "map_text_to_image": [...]}``.
    """
    flat = {}
    for direction, scores in evaluate.directions(results).items():
        for key, entry in PER_QUERY_KEYS.items():
            if entry in scores:
                flat[f"{key}_{direction}" if direction else key] = [
                    float(v) for v in scores[entry]
                ]
    return flat


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value).

    Raises:
      ValueError: for no value.
    """
    values = np.asarray(values, np.float64)
    if values.size == 0:
        raise ValueError("mean_std needs at least one value.")
    std = float(np.std(values, ddof=1)) if values.size > 1 else 0.0
    return float(np.mean(values)), std


def format_mean_std(values: Sequence[float], digits: int = 3) -> str:
    """``"0.912 ± 0.004"``; a single value has no ``±``; no value is ``"—"``."""
    if len(values) == 0:
        return "—"
    mean, std = mean_std(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def aggregate(records: Iterable[Mapping], table: Table) -> list[dict]:
    """Groups per-run records by (method, bits) into table rows.

    Args:
      records: dicts with ``method``, ``bits``, ``seed``, and either ``error`` (a failed run) or
        ``train_seconds`` and the key of each of ``table.columns``; optionally ``per_query``,
        ``{key: per-query values}`` for the columns with ``interval=True``.
      table: gives the columns and the taxonomy overrides.

    Returns:
      One dict per (method, bits), in the order methods first appear and then by bits:
      ``method``, ``taxonomy`` (:func:`row_taxonomy`), ``bits``, the successful runs' ``seeds``,
      ``train_seconds`` and one list per column key, ``failed``, the seeds whose run failed, and
      ``per_query``: ``{key: {seed: per-query values}}`` for each interval column, holding the
      successful runs whose record has them.
    """
    keys = [column.key for column in table.columns] + ["train_seconds"]
    interval_keys = [column.key for column in table.columns if column.interval]
    rows: dict[tuple[str, int], dict] = {}
    order: list[str] = []
    for record in records:
        method, bits = record["method"], int(record["bits"])
        if method not in order:
            order.append(method)
        row = rows.setdefault(
            (method, bits),
            {
                "method": method,
                "taxonomy": row_taxonomy(table, method),
                "bits": bits,
                "seeds": [],
                "failed": [],
                **{key: [] for key in keys},
                "per_query": {key: {} for key in interval_keys},
            },
        )
        if record.get("error"):
            row["failed"].append(record["seed"])
            continue
        row["seeds"].append(record["seed"])
        for key in keys:
            row[key].append(float(record[key]))
        per_query = record.get("per_query") or {}
        for key in interval_keys:
            if per_query.get(key) is not None:
                row["per_query"][key][record["seed"]] = per_query[key]
    return [rows[key] for key in sorted(rows, key=lambda k: (order.index(k[0]), k[1]))]


def _complete_per_query(row: Mapping, key: str) -> dict | None:
    """The row's ``{seed: finite per-query values}`` of ``key`` if every seed that ran has them."""
    values = row.get("per_query", {}).get(key, {})
    if not row["seeds"] or set(values) != set(row["seeds"]):
        return None
    arrays = {seed: np.asarray(v, np.float64) for seed, v in values.items()}
    if any(a.ndim != 1 or a.size == 0 or not np.isfinite(a).all() for a in arrays.values()):
        return None
    return arrays


def format_interval(interval: statistics.Interval, digits: int = 3) -> str:
    """``"[0.951, 0.972]"``, the ends of a confidence interval."""
    return f"[{interval.low:.{digits}f}, {interval.high:.{digits}f}]"


def significance(rows: Sequence[Mapping], column: Column) -> dict[tuple[str, int], dict]:
    """The confidence interval and significance mark of ``column`` in each row that can have one.

    Rows whose every successful seed has finite per-query values of ``column.key`` take part;
    the others get neither (their cells show ``—`` and no mark). Among the rows of one code
    length, :func:`dlhash_jax.statistics.compare_with_best` finds the best row and those not
    significantly below it.

    Args:
      rows: rows of :func:`aggregate`.
      column: a column with ``interval=True``.

    Returns:
      ``{(method, bits): {"interval": statistics.Interval, "not_below": bool, "p_value":
      float}}`` (the adjusted p-value; 1.0 for the best row, NaN when untested).
    """
    found = {}
    for bits in sorted({row["bits"] for row in rows}):
        values = {}
        for row in rows:
            if row["bits"] == bits:
                per_query = _complete_per_query(row, column.key)
                if per_query is not None:
                    values[row["method"]] = per_query
        if not values:
            continue
        comparison = statistics.compare_with_best(
            values, alpha=ALPHA, correction=CORRECTION, num_permutations=NUM_PERMUTATIONS,
            seed=STATISTICS_SEED,
        )
        for method, per_query in values.items():
            found[(method, bits)] = {
                "interval": statistics.bootstrap_ci(
                    per_query, confidence=CONFIDENCE, num_resamples=NUM_RESAMPLES,
                    seed=STATISTICS_SEED,
                ),
                "not_below": comparison.not_below[method],
                "p_value": comparison.adjusted_p_values[method],
            }
    return found


def significance_note(table: Table) -> str:
    """The sentence above a table with interval columns saying how they were made ("" without)."""
    headers = [column.header for column in table.columns if column.interval]
    if not headers:
        return ""
    named = ", ".join(headers)
    correction = (
        "Holm-corrected over the other rows of that code length"
        if CORRECTION == "holm"
        else "not corrected for multiple comparisons"
    )
    return (
        f"Significance ({named}): **bold** = not significantly below the best row of the same "
        "code length by a one-sided paired sign-flip permutation test on the per-query "
        f"differences (queries of every seed both rows ran; {NUM_PERMUTATIONS:,} random sign "
        f"flips; {correction}; α = {ALPHA}). {CONFIDENCE:.0%} CI: percentile bootstrap over the "
        f"queries of each seed, averaged within each seed then over the seeds "
        f"({NUM_RESAMPLES:,} resamples); it reflects which queries were drawn, not training "
        "randomness (see ± std over the seeds)."
    )


def format_table(rows: Sequence[Mapping], table: Table) -> str:
    """The Markdown table of :func:`aggregate`'s rows, with ``table``'s metric columns.

    Each metric cell is the mean ± sample standard deviation over the seeds that ran; the last
    column counts them and names the seeds that failed. A column with ``interval=True`` is
    followed by its confidence-interval column, and its cells are bold where the row is not
    significantly below the best of its code length (:func:`significance`); rows without
    per-query values show ``—`` there.
    """
    headers = ["method", "labels × input", "bits"]
    for column in table.columns:
        headers.append(column.header)
        if column.interval:
            headers.append(f"{column.header} {CONFIDENCE:.0%} CI")
    headers += ["train time / run (s)", "runs"]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|---|---|---:|" + "---|" * (len(headers) - 3),
    ]
    marks = {column.key: significance(rows, column) for column in table.columns if column.interval}
    for row in rows:
        runs = f"{len(row['seeds'])}"
        if row["failed"]:
            runs += f", failed: seed {', '.join(str(s) for s in row['failed'])}"
        cells = [row["method"], row["taxonomy"], str(row["bits"])]
        for column in table.columns:
            cell = format_mean_std(row[column.key], digits=column.digits)
            if column.interval:
                mark = marks[column.key].get((row["method"], row["bits"]))
                if mark and mark["not_below"]:
                    cell = f"**{cell}**"
                cells.append(cell)
                cells.append(format_interval(mark["interval"], column.digits) if mark else "—")
            else:
                cells.append(cell)
        cells += [format_mean_std(row["train_seconds"], digits=1), runs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_section(
    records: Sequence[Mapping],
    table: Table,
    *,
    command: str,
    environment: Mapping[str, str],
    seconds: float,
    resumed: int = 0,
) -> str:
    """One table's section of a report.

    Args:
      records: the table's per-run records (see :func:`aggregate`).
      table: the table.
      command: the command line that produced the records.
      environment: ``{name: value}`` lines describing the machine (:func:`environment`).
      seconds: the wall time of the whole table, or of this invocation's runs when ``resumed``.
      resumed: how many of ``records`` an earlier invocation made (``--resume``); their wall
        time is not in ``seconds``, and the section says so.

    Returns:
      Markdown: the heading, the command, the environment and wall time, ``table.description``,
      :func:`significance_note` when the table has interval columns, the table, and a "Failed
      runs" list when a run failed.
    """
    lines = [
        table.heading,
        "",
        "Produced by:",
        "",
        "```",
        command,
        "```",
        "",
        *(f"- {name}: {value}" for name, value in environment.items()),
        (
            f"- wall time of the whole table: {seconds:.0f} s"
            if not resumed
            else f"- wall time: {seconds:.0f} s for {len(records) - resumed} runs; {resumed} runs "
            "kept from an earlier invocation that stopped (`--resume`), their time not included"
        ),
        "",
        table.description,
        "",
        *([significance_note(table), ""] if significance_note(table) else []),
        format_table(aggregate(records, table), table),
        "",
    ]
    failures = [r for r in records if r.get("error")]
    if failures:
        lines += ["## Failed runs", ""]
        lines += [
            f"- {r['method']}, {r['bits']} bits, seed {r['seed']}: {r['error']}" for r in failures
        ]
        lines.append("")
    return "\n".join(lines)


def split_sections(report: str) -> tuple[str, dict[str, str]]:
    """Splits a report at its level-1 headings.

    Returns:
      The text before the first heading, and ``{heading line: section}`` in the report's order,
      each section running from its heading to the next one.
    """
    preamble, sections, heading = "", {}, None
    for line in report.splitlines(keepends=True):
        if line.startswith("# "):
            heading = line.rstrip("\n")
            sections[heading] = ""
        if heading is None:
            preamble += line
        else:
            sections[heading] += line
    return preamble, sections


def merge_report(report: str, sections: Mapping[str, str], order: Sequence[str] = ()) -> str:
    """``report`` with ``sections`` (by heading line) replacing or joining its own.

    Args:
      report: the existing report (``""`` for none).
      sections: ``{heading line: section}``, e.g. ``{table.heading: format_section(...)}``.
      order: heading lines in the order their sections go, first.

    Returns:
      The text before the report's first heading, the sections whose headings are in ``order``
      in that order, then any other section the report holds, kept as it is.
    """
    preamble, merged = split_sections(report)
    merged.update(sections)
    order = list(order)
    headings = sorted(merged, key=lambda h: order.index(h) if h in order else len(order))
    return preamble + "\n".join(merged[h].rstrip("\n") + "\n" for h in headings)


def environment() -> dict[str, str]:
    """JAX version and backend, CPU count, Python version and date, for the top of a section."""
    return {
        "jax": f"{jax.__version__} ({jax.default_backend()} backend, {jax.device_count()} "
        f"device(s))",
        "CPUs": f"{os.cpu_count()} ({platform.processor() or platform.machine()})",
        "Python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
