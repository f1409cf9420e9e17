"""Results tables: per-run records grouped by (method, code length) into Markdown report sections.

A :class:`Table` says which runs a section holds (a protocol, its recipes and baselines) and how
they are shown (its metric columns, :class:`Column`). A record is a flat dict, one per (method,
bits, seed), as ``experiments.reproduce`` writes them to ``results.jsonl``: ``method``, ``bits``,
``seed``, and either ``error`` (a failed run) or ``train_seconds`` and the key of each column
(:func:`scalar_metrics` flattens an evaluation into those keys). :func:`aggregate` groups the
records into rows, :func:`format_table` and :func:`format_section` write them, and
:func:`merge_report` puts a section into an existing report, keeping the others.
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


@dataclasses.dataclass(frozen=True)
class Column:
    """A metric column: its header and the key it reads from the records.

    Attributes:
      header: the column's header.
      key: a key of :func:`scalar_metrics`'s output, e.g. ``"map"``,
        ``"precision_within_radius_2"`` or ``"map_image_to_text"``.
      digits: decimals shown.
    """

    header: str
    key: str
    digits: int = 3


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
        ``train_seconds`` and the key of each of ``table.columns``.
      table: gives the columns and the taxonomy overrides.

    Returns:
      One dict per (method, bits), in the order methods first appear and then by bits:
      ``method``, ``taxonomy`` (:func:`row_taxonomy`), ``bits``, the successful runs' ``seeds``,
      ``train_seconds`` and one list per column key, and ``failed``, the seeds whose run failed.
    """
    keys = [column.key for column in table.columns] + ["train_seconds"]
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
            },
        )
        if record.get("error"):
            row["failed"].append(record["seed"])
            continue
        row["seeds"].append(record["seed"])
        for key in keys:
            row[key].append(float(record[key]))
    return [rows[key] for key in sorted(rows, key=lambda k: (order.index(k[0]), k[1]))]


def format_table(rows: Sequence[Mapping], table: Table) -> str:
    """The Markdown table of :func:`aggregate`'s rows, with ``table``'s metric columns.

    Each metric cell is the mean ± sample standard deviation over the seeds that ran; the last
    column counts them and names the seeds that failed.
    """
    headers = ["method", "labels × input", "bits", *(c.header for c in table.columns),
               "train time / run (s)", "runs"]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|---|---|---:|" + "---|" * (len(headers) - 3),
    ]
    for row in rows:
        runs = f"{len(row['seeds'])}"
        if row["failed"]:
            runs += f", failed: seed {', '.join(str(s) for s in row['failed'])}"
        cells = [
            row["method"],
            row["taxonomy"],
            str(row["bits"]),
            *(format_mean_std(row[c.key], digits=c.digits) for c in table.columns),
            format_mean_std(row["train_seconds"], digits=1),
            runs,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_section(
    records: Sequence[Mapping],
    table: Table,
    *,
    command: str,
    environment: Mapping[str, str],
    seconds: float,
) -> str:
    """One table's section of a report.

    Args:
      records: the table's per-run records (see :func:`aggregate`).
      table: the table.
      command: the command line that produced the records.
      environment: ``{name: value}`` lines describing the machine (:func:`environment`).
      seconds: the wall time of the whole table.

    Returns:
      Markdown: the heading, the command, the environment and wall time, ``table.description``,
      the table, and a "Failed runs" list when a run failed.
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
        f"- wall time of the whole table: {seconds:.0f} s",
        "",
        table.description,
        "",
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
