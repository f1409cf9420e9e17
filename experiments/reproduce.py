"""The results table: every recipe and the classic baselines on ``digits``, by length and seed.

Command (the full table; about 20 minutes on 2 CPU cores):

    .venv/bin/python experiments/reproduce.py

A subset, e.g. two methods and LSH at 32 bits with one seed:

    .venv/bin/python experiments/reproduce.py --methods=dpsh,dnnh,lsh --bits=32 --seeds=0 \
        --output=/tmp/results.md

Every recipe of ``dlhash_jax.methods.RECIPES`` trains with its own config file
(``experiments/configs/<name>.py:digits,bits=<L>,seed=<s>``; the shared defaults of
``configs/base.py`` when a recipe has no file) through ``dlhash_jax.train.fit`` in this process's
workers, and is evaluated on the query and database splits with its best validation checkpoint
by ``dlhash_jax.evaluate.evaluate_model``. The baselines LSH, PCAH, ITQ and SH
(``dlhash_jax.baselines``) are fitted on the inputs of the same seed's training split and
evaluated by the same function, so every row shares one protocol and one set of metric switches.

Runs go to ``--workdir/<method>_<bits>_s<seed>`` (cleared first, so times are never those of a
resumed run), one JSON line per run to ``--workdir/results.jsonl``, and the table to
``--output``. Runs are spread over ``--workers`` processes (2: one per core of the reference
machine), each with single-threaded XLA so two runs do not fight over the cores, and compiled
programs are kept in JAX's persistent cache (``--workdir/jax_cache``), so the seeds of a method
after the first skip most compilation. A run that fails is a row saying so, with its error listed
under the table; the other runs go on.
"""

from __future__ import annotations

import concurrent.futures
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
from collections.abc import Iterable, Mapping, Sequence

import jax
import numpy as np
from absl import app
from absl import flags
from absl import logging

from dlhash_jax import baselines
from dlhash_jax import data as data_lib
from dlhash_jax import evaluate
from dlhash_jax import methods
from dlhash_jax import train

EXPERIMENTS = os.path.dirname(os.path.abspath(__file__))
if EXPERIMENTS not in sys.path:
    sys.path.insert(0, EXPERIMENTS)

from configs import base  # noqa: E402  (experiments/ is not a package)

BASELINES = ("lsh", "pcah", "itq", "sh")
PROTOCOL = "digits"
RADIUS = 2

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
}

_METHODS = flags.DEFINE_list(
    "methods", None, "Recipes and baselines to run (default: every recipe, then the baselines)."
)
_BITS = flags.DEFINE_list("bits", ["16", "32", "64"], "Code lengths.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (splits, initialisation, data order).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/reproduce", "Where the runs are written.")
_OUTPUT = flags.DEFINE_string("output", "RESULTS.md", "The Markdown table to write.")
_WORKERS = flags.DEFINE_integer("workers", 2, "Worker processes (runs in parallel).")


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


def aggregate(records: Iterable[Mapping]) -> list[dict]:
    """Groups per-run records by (method, bits) into table rows.

    Args:
      records: dicts with ``method``, ``bits``, ``seed``, and either ``error`` (a failed run) or
        ``map``, ``precision_within_radius`` and ``train_seconds``.

    Returns:
      One dict per (method, bits), in the order methods first appear and then by bits:
      ``method``, ``taxonomy``, ``bits``, the successful runs' ``seeds``, ``map``,
      ``precision_within_radius`` and ``train_seconds`` lists, and ``failed``, the seeds whose
      run failed.
    """
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
                "taxonomy": TAXONOMY.get(method, "?"),
                "bits": bits,
                "seeds": [],
                "map": [],
                "precision_within_radius": [],
                "train_seconds": [],
                "failed": [],
            },
        )
        if record.get("error"):
            row["failed"].append(record["seed"])
            continue
        row["seeds"].append(record["seed"])
        for key in ("map", "precision_within_radius", "train_seconds"):
            row[key].append(float(record[key]))
    return [rows[key] for key in sorted(rows, key=lambda k: (order.index(k[0]), k[1]))]


def format_table(rows: Sequence[Mapping]) -> str:
    """The Markdown table of :func:`aggregate`'s rows."""
    lines = [
        f"| method | labels × input | bits | mAP (database) | precision (r ≤ {RADIUS}) | "
        "train time / run (s) | runs |",
        "|---|---|---:|---|---|---|---|",
    ]
    for row in rows:
        runs = f"{len(row['seeds'])}"
        if row["failed"]:
            runs += f", failed: seed {', '.join(str(s) for s in row['failed'])}"
        lines.append(
            f"| {row['method']} | {row['taxonomy']} | {row['bits']} | "
            f"{format_mean_std(row['map'])} | {format_mean_std(row['precision_within_radius'])} | "
            f"{format_mean_std(row['train_seconds'], digits=1)} | {runs} |"
        )
    return "\n".join(lines)


def format_report(
    records: Sequence[Mapping], *, command: str, environment: Mapping[str, str], seconds: float
) -> str:
    """The whole RESULTS.md: command, environment, protocol, the table and the failures."""
    lines = [
        "# Results on digits",
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
        "Protocol `digits` (query 100, database 1,697, train 500, validation 100), split by "
        "each seed. mAP ranks the whole database by Hamming distance (`ties=index`, "
        "`normalize=retrieved`, `zero_relevant=zero`); precision within radius 2 counts an "
        "empty ball as 0. Deep methods: each recipe's config file, its best validation "
        "checkpoint. Baselines: fitted on the training split's inputs. Values are mean ± sample "
        "standard deviation over the seeds that ran; time is the training time of one run "
        "(for the deep methods `train.fit`, including compilation, which JAX's persistent cache "
        "saves for a method's later seeds, and validation; for the baselines the fit), measured "
        "with the runs spread over the worker processes.",
        "",
        format_table(aggregate(records)),
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


def load_config(method: str, bits: int, seed: int):
    """The run config of a recipe: its config file, or the shared defaults when it has none."""
    argument = f"{PROTOCOL},bits={bits},seed={seed}"
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


def _run_baseline(method: str, bits: int, seed: int) -> dict:
    data = data_lib.load_protocol(PROTOCOL, seed=seed)
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


def _run_recipe(method: str, bits: int, seed: int, workdir: str) -> dict:
    config = load_config(method, bits, seed)
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


def run_one(task: Mapping) -> dict:
    """Trains (or fits) and evaluates one (method, bits, seed); never raises.

    Returns:
      The record: ``method``, ``bits``, ``seed``, ``seconds`` (the whole run), and either
      ``map``, ``precision_within_radius``, ``train_seconds`` (plus ``step`` and ``checkpoint``
      for recipes), or ``error``.
    """
    method, bits, seed = task["method"], task["bits"], task["seed"]
    record = {"method": method, "bits": bits, "seed": seed}
    start = time.perf_counter()
    try:
        if method in BASELINES:
            outcome = _run_baseline(method, bits, seed)
        else:
            workdir = os.path.join(task["workdir"], f"{method}_{bits}_s{seed}")
            shutil.rmtree(workdir, ignore_errors=True)
            outcome = _run_recipe(method, bits, seed, workdir)
    except Exception as error:  # A failed run is a row of the table, not the end of the table.
        record["error"] = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        record["traceback"] = traceback.format_exc()
    else:
        results = outcome.pop("results")
        record.update(
            map=float(results["map"]),
            precision_within_radius=float(results[f"precision_within_radius_{RADIUS}"]),
            **outcome,
        )
    record["seconds"] = time.perf_counter() - start
    return record


def _worker_setup() -> None:
    # Orbax reports every checkpoint operation (and benign races on its metadata) below ERROR.
    logging.set_verbosity(logging.ERROR)


def environment() -> dict[str, str]:
    """JAX version and backend, CPU count and date, for the top of the report."""
    return {
        "jax": f"{jax.__version__} ({jax.default_backend()} backend, {jax.device_count()} "
        f"device(s))",
        "CPUs": f"{os.cpu_count()} ({platform.processor() or platform.machine()})",
        "Python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    _worker_setup()
    names = _METHODS.value or [*methods.RECIPES, *BASELINES]
    unknown = [name for name in names if name not in methods.RECIPES and name not in BASELINES]
    if unknown:
        raise app.UsageError(
            f"Unknown method(s) {unknown}; recipes: {', '.join(methods.RECIPES)}; baselines: "
            f"{', '.join(BASELINES)}."
        )
    tasks = [
        {"method": name, "bits": int(bits), "seed": int(seed), "workdir": _WORKDIR.value}
        for name in names
        for bits in _BITS.value
        for seed in _SEEDS.value
    ]
    os.makedirs(_WORKDIR.value, exist_ok=True)
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
    start = time.perf_counter()
    records = []
    results_path = os.path.join(_WORKDIR.value, "results.jsonl")
    with open(results_path, "w") as log, concurrent.futures.ProcessPoolExecutor(
        max_workers=_WORKERS.value,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_setup,
    ) as pool:
        for record in pool.map(run_one, tasks):
            records.append(record)
            log.write(json.dumps(record) + "\n")
            log.flush()
            status = (
                f"failed: {record['error']}"
                if record.get("error")
                else f"mAP {record['map']:.4f}, train {record['train_seconds']:.1f} s"
            )
            print(
                f"[{len(records)}/{len(tasks)}] {record['method']} {record['bits']} bits seed "
                f"{record['seed']}: {status} ({record['seconds']:.1f} s)",
                flush=True,
            )
    report = format_report(
        records, command=command, environment=environment(), seconds=time.perf_counter() - start
    )
    with open(_OUTPUT.value, "w") as f:
        f.write(report)
    print(f"table: {_OUTPUT.value}; runs: {results_path}")
    return 1 if any(r.get("error") for r in records) else 0


if __name__ == "__main__":
    app.run(main)
