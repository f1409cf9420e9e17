"""The results tables: recipes and the classic baselines, by protocol, code length and seed.

Commands (the full report, all three tables; about 14 minutes on 2 CPU cores: 9-10 for
``digits``, 2-3 for ``digits_mosaic``, 1-2 for ``digits_mosaic_tags``):

    .venv/bin/python experiments/reproduce.py

One table (``--tables`` names them: ``digits``, every single-modality recipe; ``digits_mosaic``,
the multi-label recipes; ``digits_mosaic_tags``, the cross-modal recipes against CCA+ITQ in both
directions), or a subset, e.g. two methods and LSH at 32 bits with one seed:

    .venv/bin/python experiments/reproduce.py --tables=digits_mosaic
    .venv/bin/python experiments/reproduce.py --methods=dpsh,dnnh,lsh --bits=32 --seeds=0 \
        --output=/tmp/results.md

A table is a :class:`Table` in ``TABLES``: its protocol, its recipes, the baselines, the metric
columns and the functions that run one recipe or one baseline, so another table is one more
entry. ``--methods`` picks among the rows of the tables named by ``--tables``.

Every recipe trains with its own config file
(``experiments/configs/<name>.py:<protocol>,bits=<L>,seed=<s>``; the shared defaults of
``configs/base.py`` when a recipe has no file) through ``dlhash_jax.train.fit`` in this process's
workers, and is evaluated on the query and database splits with its best validation checkpoint
by ``dlhash_jax.evaluate.evaluate_model``. The baselines LSH, PCAH, ITQ and SH (CCA+ITQ for the
cross-modal table; ``dlhash_jax.baselines``) are fitted on the inputs of the same seed's training
split and evaluated with the same metrics, so every row of a table shares one protocol and one
set of metric switches.

Runs go to ``--workdir/<table>/<method>_<bits>_s<seed>`` (cleared first, so times are never
those of a resumed run), one JSON line per run to ``--workdir/<table>/results.jsonl``, and each
table to its own section (a level-1 heading, the command, environment and wall time that produced
it, the protocol, the table) of ``--output``. Sections of tables not run this time are kept as
they are in ``--output``, so each section always states the command and date that made it.
Runs are spread over ``--workers`` processes (2: one per core of the reference machine), each
with single-threaded XLA so two runs do not fight over the cores, and compiled programs are kept
in JAX's persistent cache (``--workdir/jax_cache``), so the seeds of a method after the first
skip most compilation. A run that fails is a row saying so, with its error listed under its
table; the other runs go on.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import importlib
import json
import multiprocessing
import os
import platform
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence

import jax
import numpy as np
from absl import app
from absl import flags
from absl import logging

from dlhash_jax import baselines
from dlhash_jax import data as data_lib
from dlhash_jax import evaluate
from dlhash_jax import methods
from dlhash_jax import metrics
from dlhash_jax import train

EXPERIMENTS = os.path.dirname(os.path.abspath(__file__))
if EXPERIMENTS not in sys.path:
    sys.path.insert(0, EXPERIMENTS)

from configs import base  # noqa: E402  (experiments/ is not a package)

BASELINES = ("lsh", "pcah", "itq", "sh")
RADIUS = 2
# The cutoff of NDCG and ACG: the library's default `evaluation.ndcg_k`, which every config keeps.
GRADED_K = 100

# Survey §5 taxonomy (DESIGN.md, "Methods"): labels × input form of each method.
TAXONOMY = {
    "dh": "none × single",
    "udh": "none × single",
    "fingerprint": "none × single",
    "knn_graph": "none × pairs",
    "dlbhc": "single × single",
    "ssdh": "single × single",
    "hinge_softmax": "single × single",
    "greedyhash": "single × single",
    "csq": "single × single",
    "cnnh": "single × pairs",
    "dpsh": "single × pairs",
    "dsh": "single × pairs",
    "hashnet": "single × pairs",
    "sdh": "single × pairs",
    "discrete_supervised": "single × pairs",
    "sparse_similarity": "single × pairs",
    "dnnh": "single × multi-tuples",
    "dsrh_triplet": "single × multi-tuples",
    "drsch": "single × multi-tuples",
    "dcmh": "multi × pairs (cross-modal)",
    "glsp": "multi × pairs (cross-modal)",
    "dsrh": "multi × multi-tuples",
    "order_sensitive": "multi × multi-tuples",
    "lsh": "classic, data-independent",
    "pcah": "classic, unsupervised",
    "itq": "classic, unsupervised",
    "sh": "classic, unsupervised",
    "cca_itq": "classic, paired modalities",
}

_TABLES = flags.DEFINE_list(
    "tables", ["digits", "digits_mosaic", "digits_mosaic_tags"],
    "Tables to produce (keys of TABLES), in this order.",
)
_METHODS = flags.DEFINE_list(
    "methods",
    None,
    "Recipes and baselines to run, among the rows of --tables (default: every row of each).",
)
_BITS = flags.DEFINE_list("bits", ["16", "32", "64"], "Code lengths.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (splits, initialisation, data order).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/reproduce", "Where the runs are written.")
_OUTPUT = flags.DEFINE_string(
    "output", "RESULTS.md", "The Markdown report; the sections of the tables run are replaced."
)
_WORKERS = flags.DEFINE_integer("workers", 2, "Worker processes (runs in parallel).")


@dataclasses.dataclass(frozen=True)
class Column:
    """A metric column: its header and the key it reads from the evaluation results and records.

    ``key`` is a scalar of :func:`dlhash_jax.evaluate.evaluate_model`'s output (for another kind
    of evaluation, of the dict its table's run functions return).
    """

    header: str
    key: str
    digits: int = 3


def load_config(protocol: str, method: str, bits: int, seed: int):
    """The run config of a recipe: its config file, or the shared defaults when it has none."""
    argument = f"{protocol},bits={bits},seed={seed}"
    if os.path.exists(os.path.join(EXPERIMENTS, "configs", f"{method}.py")):
        config = importlib.import_module(f"configs.{method}").get_config(argument)
    else:
        config = base.get_config(argument, method=method)
    config.progress_bar = False
    return config


def _baseline_apply(hash_function, x, *, train):
    """``apply_fn`` of a fitted baseline, so it is encoded and scored like a network."""
    del train
    return {"pre": hash_function.encode(x)}


def fit_baseline(protocol: str, method: str, bits: int, seed: int) -> dict:
    """Fits a baseline on the inputs of ``seed``'s training split and evaluates it.

    Returns:
      ``train_seconds`` (the fit) and ``results`` (of ``evaluate.evaluate_model``).
    """
    data = data_lib.load_protocol(protocol, seed=seed)
    inputs = data.train.inputs
    key = jax.random.PRNGKey(seed)
    start = time.perf_counter()
    if method == "lsh":
        fitted = baselines.fit_lsh(key, inputs, bits)
    elif method == "pcah":
        fitted = baselines.fit_pcah(inputs, bits)
    elif method == "itq":
        fitted = baselines.fit_itq(key, inputs, bits)
    else:
        fitted = baselines.fit_spectral_hashing(inputs, bits)
    fitted = jax.block_until_ready(fitted)
    train_seconds = time.perf_counter() - start
    results = evaluate.evaluate_model(
        _baseline_apply, fitted, data, evaluation=train.default_config().evaluation
    )
    return {"train_seconds": train_seconds, "results": results}


def train_recipe(protocol: str, method: str, bits: int, seed: int, workdir: str) -> dict:
    """Trains a recipe with its config in ``workdir`` and evaluates its chosen checkpoint.

    Returns:
      ``train_seconds`` (``train.fit``), ``results`` (of ``evaluate.evaluate_model``), and the
      ``step`` and ``checkpoint`` evaluated.
    """
    config = load_config(protocol, method, bits, seed)
    start = time.perf_counter()
    fitted = train.fit(config, workdir)
    train_seconds = time.perf_counter() - start
    variables, step, checkpoint = train.restore_variables(
        workdir, fitted.run, which=config.evaluation.checkpoint
    )
    results = evaluate.evaluate_model(
        fitted.run.model.apply, variables, fitted.run.data, evaluation=config.evaluation
    )
    return {
        "train_seconds": train_seconds,
        "results": results,
        "step": int(step),
        "checkpoint": checkpoint,
    }


def _by_direction(results: Mapping) -> dict:
    """Cross-modal results flattened to ``{f"{metric}_{direction}": value}`` (scalars only)."""
    return {
        f"{key}_{direction}": value
        for direction, metrics in results.items()
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def train_cross_modal_recipe(protocol: str, method: str, bits: int, seed: int,
                             workdir: str) -> dict:
    """:func:`train_recipe` for a cross-modal recipe, its metrics keyed by direction
    (``map_image_to_text``, ``map_text_to_image``, ...)."""
    outcome = train_recipe(protocol, method, bits, seed, workdir)
    return {**outcome, "results": _by_direction(outcome["results"])}


def fit_cross_modal_baseline(protocol: str, method: str, bits: int, seed: int) -> dict:
    """Fits CCA+ITQ (the only cross-modal baseline) on ``seed``'s training pairs and evaluates
    both directions; metrics keyed as :func:`train_cross_modal_recipe`'s."""
    if method != "cca_itq":
        raise ValueError(f"Unknown cross-modal baseline {method!r}; the baseline is 'cca_itq'.")
    data = data_lib.load_protocol(protocol, seed=seed)
    start = time.perf_counter()
    fitted = jax.block_until_ready(
        baselines.fit_cca_itq(
            jax.random.PRNGKey(seed), data.train.inputs["image"], data.train.inputs["text"], bits
        )
    )
    train_seconds = time.perf_counter() - start
    evaluation = train.default_config().evaluation
    results = metrics.evaluate_cross_modal(
        fitted.encode(data.query.inputs),
        fitted.encode(data.database.inputs),
        data.query.labels,
        data.database.labels,
        topk=tuple(evaluation.topk),
        ndcg_k=evaluation.ndcg_k,
        radius=evaluation.radius,
    )
    return {"train_seconds": train_seconds, "results": _by_direction(results)}


# What every table's protocol line ends with.
_RUN_NOTE = (
    "Deep methods: each recipe's config file, its best validation checkpoint. Baselines: fitted "
    "on the training split's inputs. Values are mean ± sample standard deviation over the seeds "
    "that ran; time is the training time of one run (for the deep methods `train.fit`, including "
    "compilation, which JAX's persistent cache saves for a method's later seeds, and validation; "
    "for the baselines the fit), measured with the runs spread over the worker processes."
)


@dataclasses.dataclass(frozen=True)
class Table:
    """One section of the report: which runs it holds and how they are scored and shown.

    Attributes:
      title: the section's level-1 heading, which also identifies it in an existing report.
      protocol: the ``dlhash_jax.data`` protocol of every run.
      description: what the protocol and the metrics are (``_RUN_NOTE`` follows it).
      recipes: its deep methods, in row order; the baselines follow them.
      columns: the metric columns, between ``bits`` and the training time.
      baselines: the classic baselines it runs.
      run_recipe: ``(protocol, method, bits, seed, workdir) -> {"train_seconds", "results",
        ...}``; the rest of the dict is kept in the run's record.
      run_baseline: ``(protocol, method, bits, seed) -> {"train_seconds", "results", ...}``.
      taxonomy: ``TAXONOMY`` entries that differ on this table's data.
    """

    title: str
    protocol: str
    description: str
    recipes: tuple[str, ...]
    columns: tuple[Column, ...]
    baselines: tuple[str, ...] = BASELINES
    run_recipe: Callable[..., dict] = train_recipe
    run_baseline: Callable[..., dict] = fit_baseline
    taxonomy: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def methods(self) -> tuple[str, ...]:
        return (*self.recipes, *self.baselines)

    @property
    def heading(self) -> str:
        return f"# {self.title}"


_MAP = Column("mAP (database)", "map")
_SWITCHES = "(`ties=index`, `normalize=retrieved`, `zero_relevant=zero`)"

TABLES = {
    "digits": Table(
        title="Results on digits",
        protocol="digits",
        description=(
            "Protocol `digits` (query 100, database 1,697, train 500, validation 100), split by "
            f"each seed. mAP ranks the whole database by Hamming distance {_SWITCHES}; precision "
            f"within radius {RADIUS} counts an empty ball as 0."
        ),
        # Cross-modal recipes need paired modalities, which `digits` lacks.
        recipes=tuple(name for name, recipe in methods.RECIPES.items() if not recipe.cross_modal),
        columns=(_MAP, Column(f"precision (r ≤ {RADIUS})", f"precision_within_radius_{RADIUS}")),
    ),
    "digits_mosaic": Table(
        title="Multi-label results on digits_mosaic",
        protocol="digits_mosaic",
        description=(
            "Protocol `digits_mosaic` (2,000 generated 16×16 mosaics of one to four digits, "
            "labelled by the digit classes they show; query 200, database 1,800, train 1,000, "
            "validation 200), split by each seed. Rows: the recipes whose config file has "
            "`digits_mosaic` settings, all of which train on multi-hot labels (csq: an item's "
            "hash centre combines its classes' centres). An item is relevant to a query when "
            "they share a label; mAP ranks the whole database by Hamming distance "
            f"{_SWITCHES}. NDCG@{GRADED_K} (gain 2^r − 1, log2 discount, ideal order taken over "
            f"the whole database) and ACG@{GRADED_K} (mean r) grade each of the top {GRADED_K} by "
            "r, the number of labels it shares with the query."
        ),
        recipes=("csq", "dsrh", "order_sensitive"),
        columns=(
            _MAP,
            Column(f"NDCG@{GRADED_K}", f"ndcg_at_{GRADED_K}"),
            Column(f"ACG@{GRADED_K}", f"acg_at_{GRADED_K}"),
        ),
        taxonomy={"csq": "multi × single"},
    ),
    "digits_mosaic_tags": Table(
        title="Cross-modal results on digits_mosaic_tags",
        protocol="digits_mosaic_tags",
        description=(
            "Protocol `digits_mosaic_tags`: the mosaics and splits of `digits_mosaic`, each "
            "paired with a synthetic noisy bag of tags generated from its labels (80-word "
            "vocabulary; each implied tag dropped with probability 0.2, each other tag added with "
            "probability 0.02; see dlhash_jax/data/README.md). Image → text: each query's image "
            "code ranks the database's text codes; text → image the reverse. Relevant: at least "
            f"one shared label; mAP over the whole database {_SWITCHES}; NDCG@{GRADED_K} as in "
            "the multi-label table. Baseline: CCA to L dimensions, then one ITQ rotation shared "
            "by both modalities (`baselines.fit_cca_itq`), fitted on the training pairs."
        ),
        recipes=tuple(name for name, recipe in methods.RECIPES.items() if recipe.cross_modal),
        columns=tuple(
            Column(f"{metric} {arrow}", f"{key}_{direction}")
            for metric, key in (("mAP", "map"), (f"NDCG@{GRADED_K}", f"ndcg_at_{GRADED_K}"))
            for arrow, direction in (("image → text", "image_to_text"),
                                     ("text → image", "text_to_image"))
        ),
        baselines=("cca_itq",),
        run_recipe=train_cross_modal_recipe,
        run_baseline=fit_cross_modal_baseline,
    ),
}


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value)."""
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
      table: gives the columns and the taxonomy.

    Returns:
      One dict per (method, bits), in the order methods first appear and then by bits:
      ``method``, ``taxonomy``, ``bits``, the successful runs' ``seeds``, ``train_seconds`` and
      one list per column key, and ``failed``, the seeds whose run failed.
    """
    taxonomy = {**TAXONOMY, **table.taxonomy}
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
                "taxonomy": taxonomy.get(method, "?"),
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
    """The Markdown table of :func:`aggregate`'s rows, with ``table``'s metric columns."""
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
    """One table's section: heading, command, environment, protocol, the table, the failures."""
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
        f"{table.description} {_RUN_NOTE}",
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


def merge_report(report: str, sections: Mapping[str, str]) -> str:
    """``report`` with ``sections`` (by heading line) replacing or joining its own.

    The sections of ``TABLES`` come in its order; any other section the report holds follows,
    kept as it is, and so does the text before the first heading.
    """
    preamble, merged = split_sections(report)
    merged.update(sections)
    order = [table.heading for table in TABLES.values()]
    headings = sorted(merged, key=lambda h: order.index(h) if h in order else len(order))
    return preamble + "\n".join(merged[h].rstrip("\n") + "\n" for h in headings)


def plan(
    table_names: Sequence[str],
    method_names: Sequence[str] | None,
    bits: Sequence[int],
    seeds: Sequence[int],
    workdir: str,
) -> list[tuple[str, list[dict]]]:
    """The runs of each table: every (method, bits, seed) of its rows ``method_names`` picks.

    Args:
      table_names: keys of ``TABLES``, in the order to run them.
      method_names: the rows to run (``None`` or empty: every row of each table); a table none
        of them belongs to is left out.
      bits, seeds: code lengths and seeds.
      workdir: the root of the runs; a table's runs go under ``workdir/<table>``.

    Returns:
      ``(table name, tasks)`` pairs; a task is the dict :func:`run_one` takes.

    Raises:
      ValueError: for no table, an unknown table, or a method that is a row of none of the
        tables.
    """
    if not table_names:
        raise ValueError(f"No table to produce; tables: {', '.join(TABLES)}.")
    unknown = [name for name in table_names if name not in TABLES]
    if unknown:
        raise ValueError(f"Unknown table(s) {unknown}; tables: {', '.join(TABLES)}.")
    if method_names:
        unknown = [m for m in method_names if all(m not in TABLES[t].methods for t in table_names)]
        if unknown:
            rows = "; ".join(f"{t}: {', '.join(TABLES[t].methods)}" for t in table_names)
            raise ValueError(f"Method(s) {unknown} are rows of none of the tables ({rows}).")
    plans = []
    for name in table_names:
        table = TABLES[name]
        chosen = [m for m in method_names if m in table.methods] if method_names else table.methods
        if chosen:
            tasks = [
                {"table": name, "method": method, "bits": int(length), "seed": int(seed),
                 "workdir": os.path.join(workdir, name)}
                for method in chosen
                for length in bits
                for seed in seeds
            ]
            plans.append((name, tasks))
    return plans


def run_one(task: Mapping) -> dict:
    """Trains (or fits) and evaluates one (table, method, bits, seed); never raises.

    Returns:
      The record: ``table``, ``method``, ``bits``, ``seed``, ``seconds`` (the whole run), and
      either ``train_seconds`` and the table's column keys (plus ``step`` and ``checkpoint`` for
      recipes), or ``error``.
    """
    method, bits, seed = task["method"], task["bits"], task["seed"]
    record = {"table": task["table"], "method": method, "bits": bits, "seed": seed}
    start = time.perf_counter()
    try:
        table = TABLES[task["table"]]
        if method in table.baselines:
            outcome = table.run_baseline(table.protocol, method, bits, seed)
        else:
            workdir = os.path.join(task["workdir"], f"{method}_{bits}_s{seed}")
            shutil.rmtree(workdir, ignore_errors=True)
            outcome = table.run_recipe(table.protocol, method, bits, seed, workdir)
        results = outcome.pop("results")
        record.update({c.key: float(results[c.key]) for c in table.columns}, **outcome)
    except Exception as error:  # A failed run is a row of the table, not the end of the table.
        record["error"] = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        record["traceback"] = traceback.format_exc()
    record["seconds"] = time.perf_counter() - start
    return record


def _worker_setup() -> None:
    # Orbax reports every checkpoint operation (and benign races on its metadata) below ERROR.
    logging.set_verbosity(logging.ERROR)


def environment() -> dict[str, str]:
    """JAX version and backend, CPU count and date, for the top of a section."""
    return {
        "jax": f"{jax.__version__} ({jax.default_backend()} backend, {jax.device_count()} "
        f"device(s))",
        "CPUs": f"{os.cpu_count()} ({platform.processor() or platform.machine()})",
        "Python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _run_table(pool, tasks: Sequence[Mapping], results_path: str) -> list[dict]:
    """Runs ``tasks`` on ``pool``, logging each record to ``results_path`` as it comes."""
    records = []
    first = TABLES[tasks[0]["table"]].columns[0]
    with open(results_path, "w") as log:
        for record in pool.map(run_one, tasks):
            records.append(record)
            log.write(json.dumps(record) + "\n")
            log.flush()
            status = (
                f"failed: {record['error']}"
                if record.get("error")
                else f"{first.header} {record[first.key]:.4f}, train "
                f"{record['train_seconds']:.1f} s"
            )
            print(
                f"[{record['table']} {len(records)}/{len(tasks)}] {record['method']} "
                f"{record['bits']} bits seed {record['seed']}: {status} "
                f"({record['seconds']:.1f} s)",
                flush=True,
            )
    return records


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    _worker_setup()
    try:
        plans = plan(
            _TABLES.value,
            _METHODS.value,
            [int(b) for b in _BITS.value],
            [int(s) for s in _SEEDS.value],
            _WORKDIR.value,
        )
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    # One XLA thread per worker: the workers share the cores instead of oversubscribing them.
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    ).strip()
    # Compiling (the train step, and flax's op-by-op initialisation) is most of a short run's
    # time; JAX's persistent cache lets a method's later seeds reuse its first seed's programs.
    os.environ.setdefault(
        "JAX_COMPILATION_CACHE_DIR", os.path.abspath(os.path.join(_WORKDIR.value, "jax_cache"))
    )
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    command = " ".join([".venv/bin/python", os.path.relpath(__file__), *sys.argv[1:]])
    failed = False
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=_WORKERS.value,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_setup,
    ) as pool:
        for name, tasks in plans:
            table = TABLES[name]
            os.makedirs(tasks[0]["workdir"], exist_ok=True)
            results_path = os.path.join(tasks[0]["workdir"], "results.jsonl")
            start = time.perf_counter()
            records = _run_table(pool, tasks, results_path)
            section = format_section(
                records,
                table,
                command=command,
                environment=environment(),
                seconds=time.perf_counter() - start,
            )
            report = ""
            if os.path.exists(_OUTPUT.value):
                with open(_OUTPUT.value) as f:
                    report = f.read()
            # Written after each table, so a long run keeps the tables it has finished.
            with open(_OUTPUT.value, "w") as f:
                f.write(merge_report(report, {table.heading: section}))
            print(f"{name}: section '{table.title}' of {_OUTPUT.value}; runs: {results_path}")
            failed = failed or any(r.get("error") for r in records)
    return 1 if failed else 0


if __name__ == "__main__":
    app.run(main)
