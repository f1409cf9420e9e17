"""Evaluation: encode the query and database splits, compute every metric, write the report.

:func:`evaluate_run` evaluates a trained run from its workdir (saved config, split indices and
checkpoint) and writes ``WORKDIR/eval/``:

- ``metrics.json``: the output of :func:`dlhash_jax.metrics.evaluate_codes` (``map`` over the whole
  database, ``map_at_{K}``, ``precision_within_radius_{r}``, ``ndcg_at_{p}``, ... and the curves),
  the evaluation switches used (``ties``, ``normalize``, ``zero_relevant``) and which checkpoint
  was evaluated;
- ``pr_curve.png``: precision against recall of Hamming-ball retrieval, radius 0 to L;
- ``precision_at_k.png``: precision of the top K against K;
- ``report.md``: the run, a table of the scalar metrics, the switches, and both plots.

A cross-modal run (image and text inputs, e.g. DCMH on ``digits_mosaic_tags``) is evaluated in
both directions, image queries against database texts and text queries against database images:
``metrics.json`` holds ``{"image_to_text": {...}, "text_to_image": {...}}``, each the dict of
``evaluate_codes``, the report's table has one column per direction and each plot one curve per
direction.

A recipe that learns the codes of the training items as variables of its own (ADSH's database
codes ``V``, ``Recipe.discrete.train_codes``) is evaluated with those codes for the database
items that are training items (the training split is part of the database in every protocol)
and the network's codes for the other database items and the queries; ``metrics.json`` holds a
``database_codes`` line that says so, and so does the report.

The lower-level :func:`evaluate_model` and :func:`write_report` serve notebooks and custom loops.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from dlhash_jax import conventions
from dlhash_jax import metrics as metrics_lib
from dlhash_jax import models
from dlhash_jax import train

EVAL_DIR = "eval"
METRICS_JSON = "metrics.json"
REPORT_MD = "report.md"
PR_CURVE_PNG = "pr_curve.png"
PRECISION_AT_K_PNG = "precision_at_k.png"


def training_rows(data) -> np.ndarray:
    """Positions in ``data.database`` of the items of ``data.train``, in the training order.

    Most protocols draw the training items from the database (``dlhash_jax.data.protocols``),
    so each training index is found among the database indices; ``cifar10`` keeps them all out of
    its database, and then there is no row (an empty array).

    Raises:
      ValueError: if some training items are in the database and others are not.
    """
    database, train_items = np.asarray(data.database.indices), np.asarray(data.train.indices)
    if not np.isin(train_items, database).any():
        return np.zeros((0,), np.int64)
    order = np.argsort(database, kind="stable")
    found = np.searchsorted(database, train_items, sorter=order)
    rows = order[np.minimum(found, len(database) - 1)]
    missing = database[rows] != train_items
    if np.any(missing):
        raise ValueError(
            f"{int(missing.sum())} training items (e.g. index {int(train_items[missing][0])}) "
            "are not in the database split; learned training codes cannot replace their "
            "database codes."
        )
    return rows


def database_codes(apply_fn, variables, data, *, batch_size: int, train_codes=None):
    """The database's codes: the network's, with learned codes for the training items.

    Args:
      apply_fn, variables: the model (codes are ``sign(pre)``).
      data: a ``RetrievalData``.
      batch_size: rows per forward pass.
      train_codes: optional ``[N_train, L]`` ±1 codes of ``data.train``'s items, in its order
        (a recipe that learns them, ADSH's ``V``); they replace the network's codes at
        :func:`training_rows` (none when the protocol keeps the training items out of the
        database, as ``cifar10`` does). ``None``: the network encodes the whole database.

    Returns:
      ``[M, L]`` float32 codes (a dict of them for a cross-modal model without ``train_codes``).

    Raises:
      ValueError: if ``train_codes`` does not have one row per training item and the
        database's number of bits, or only some training items are in the database.
    """
    codes = models.encode(apply_fn, variables, data.database.inputs, batch_size=batch_size)
    if train_codes is None:
        return codes
    codes = np.array(codes, np.float32)
    train_codes = np.asarray(train_codes, np.float32)
    expected = (len(data.train), codes.shape[1])
    if train_codes.shape != expected:
        raise ValueError(
            f"train_codes must have shape [N_train, L] = {expected}, got {train_codes.shape}."
        )
    rows = training_rows(data)
    if rows.size:
        codes[rows] = train_codes
    return codes


def describe_database_codes(data) -> str:
    """How :func:`database_codes` built the database when a recipe learns the training codes."""
    learned = len(data.train)
    if not training_rows(data).size:
        return (
            f"the network's codes for all {len(data.database)} database items and the queries "
            f"(the protocol keeps the {learned} training items, whose codes were learned, out of "
            "the database)"
        )
    return (
        f"learned codes for the {learned} training items, the network's codes for the other "
        f"{len(data.database) - learned} database items and for the queries"
    )


def evaluate_model(
    apply_fn,
    variables,
    data,
    *,
    evaluation: Mapping[str, Any],
    per_query_ap: bool = False,
    train_codes=None,
) -> dict[str, Any]:
    """Encodes ``data.query`` and ``data.database`` and computes every retrieval metric.

    Args:
      apply_fn: the model's ``apply`` (returns a dict with ``"pre"``); codes are ``sign(pre)``.
      variables: the model variables.
      data: a ``RetrievalData`` (``query`` and ``database`` splits).
      evaluation: the ``evaluation`` block of a run config: ``topk``, ``ndcg_k``, ``radius``,
        ``ties``, ``normalize``, ``zero_relevant``, ``batch_size``.
      per_query_ap: also return the average precision of every query over the whole database
        (``metrics.average_precision`` with the same switches; its mean is ``map`` under
        ``zero_relevant="zero"``), for confidence intervals and paired tests over the queries
        (``dlhash_jax.statistics``). One more ranking pass over the database.
      train_codes: optional ``[N_train, L]`` learned codes of the training items (a recipe
        whose ``discrete.train_codes`` gives them: ADSH's ``V``, see
        ``dlhash_jax.train.restore_for_evaluation``); the database rows of those items take
        them (:func:`database_codes`), and ``results["database_codes"]`` says so.

    Returns:
      The dict of :func:`dlhash_jax.metrics.evaluate_codes`; for a cross-modal model (whose
      codes are ``{"image", "text"}``) the dict of :func:`dlhash_jax.metrics.evaluate_cross_modal`,
      ``{"image_to_text": ..., "text_to_image": ...}``. ``ndcg_k`` is capped at the database
      size, so a small database still gets its NDCG. With ``per_query_ap``, the dict (each
      direction's, cross-modal) also holds ``"per_query_ap"``: a list of Q floats in the
      order of ``data.query`` (NaN for a query without a relevant item under
      ``zero_relevant="skip"``).
    """
    batch_size = evaluation["batch_size"]
    query_codes = models.encode(apply_fn, variables, data.query.inputs, batch_size=batch_size)
    db_codes = database_codes(
        apply_fn, variables, data, batch_size=batch_size, train_codes=train_codes
    )
    cross_modal = isinstance(query_codes, Mapping)
    evaluate = metrics_lib.evaluate_cross_modal if cross_modal else metrics_lib.evaluate_codes
    switches = {name: evaluation[name] for name in conventions.SWITCHES}
    results = evaluate(
        query_codes,
        db_codes,
        data.query.labels,
        data.database.labels,
        topk=tuple(evaluation["topk"]),
        ndcg_k=min(evaluation["ndcg_k"], models.num_rows(db_codes)),
        radius=evaluation["radius"],
        **switches,
    )
    if per_query_ap:
        pairs = (
            [(results[name], query_codes[source], db_codes[target])
             for name, source, target in conventions.CROSS_MODAL_DIRECTIONS]
            if cross_modal
            else [(results, query_codes, db_codes)]
        )
        for scores, queries, database in pairs:
            scores["per_query_ap"] = metrics_lib.average_precision(
                queries, database, data.query.labels, data.database.labels, **switches
            ).tolist()
    if train_codes is not None:
        results["database_codes"] = describe_database_codes(data)
    return results


def directions(results: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """``{name: metrics}`` of each retrieval direction in ``results``.

    ``{"": results}`` for single-modality results; ``{"image_to_text": ..., "text_to_image":
    ...}`` for cross-modal ones.
    """
    named = {name: results[name] for name in conventions.DIRECTION_NAMES if name in results}
    return named or {"": results}


def map_summary(results: Mapping[str, Any]) -> str:
    """``"mAP 0.9576"``, or ``"mAP image → text 0.7331, text → image 0.7630"`` (cross-modal)."""
    named = directions(results)
    if "" in named:
        return f"mAP {results['map']:.4f}"
    return "mAP " + ", ".join(
        f"{name.replace('_to_', ' → ')} {direction['map']:.4f}" for name, direction in named.items()
    )


def _scalar_rows(results: Mapping[str, Any]) -> list[tuple[str, float]]:
    return [
        (key, float(value))
        for key, value in results.items()
        if isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
        and key not in ("step", "bits")
    ]


def _plot_pr_curve(results: Mapping[str, Any], path: str, title: str) -> None:
    fig = Figure(figsize=(5, 4), dpi=100)
    ax = fig.subplots()
    for name, direction in directions(results).items():
        curve = direction["pr_curve_radius"]
        ax.plot(curve["recall"], curve["precision"], marker="o", markersize=3,
                label=name.replace("_to_", " → ") or None)
        for radius, recall, precision in zip(curve["radius"], curve["recall"], curve["precision"]):
            if radius in (0, 2):
                ax.annotate(f"r={radius}", (recall, precision), fontsize=8, xytext=(-4, -12),
                            textcoords="offset points")
    if len(directions(results)) > 1:
        ax.legend(fontsize=8)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02),
           title=f"{title}: precision-recall by Hamming radius")
    ax.title.set_fontsize(10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def _plot_precision_at_k(results: Mapping[str, Any], path: str, title: str) -> None:
    fig = Figure(figsize=(5, 4), dpi=100)
    ax = fig.subplots()
    for name, direction in directions(results).items():
        curve = direction["precision_at_k_curve"]
        ax.plot(curve["k"], curve["precision"], marker="o", markersize=3,
                label=name.replace("_to_", " → ") or None)
    if len(directions(results)) > 1:
        ax.legend(fontsize=8)
    ax.set(xlabel="K (number of retrieved items)", ylabel="precision@K", ylim=(0, 1.02),
           title=f"{title}: precision of the top K")
    ax.title.set_fontsize(10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def write_report(
    results: Mapping[str, Any],
    out_dir: str,
    *,
    title: str,
    plot_title: str | None = None,
    details: Mapping[str, Any] = (),
) -> str:
    """Writes ``metrics.json``, ``pr_curve.png``, ``precision_at_k.png`` and ``report.md``.

    Args:
      results: a dict from :func:`evaluate_model` (or ``metrics.evaluate_codes``), possibly with
        extra JSON-ready entries.
      out_dir: directory to write into (created if needed).
      title: heading of the report.
      plot_title: short name on the plots (default ``title``).
      details: ``name -> value`` lines describing the run (method, protocol, checkpoint, ...).

    Returns:
      The path of ``report.md``.
    """
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, METRICS_JSON), "w") as f:
        json.dump(dict(results), f, indent=2, sort_keys=True)
    plot_title = plot_title or title
    _plot_pr_curve(results, os.path.join(out_dir, PR_CURVE_PNG), plot_title)
    _plot_precision_at_k(results, os.path.join(out_dir, PRECISION_AT_K_PNG), plot_title)
    lines = [f"# {title}", ""]
    for name, value in dict(details).items():
        lines.append(f"- {name}: {value}")
    named = directions(results)
    first = next(iter(named.values()))
    lines.append(
        "- evaluation switches: "
        + ", ".join(f"`{name}={first[name]}`" for name in conventions.SWITCHES if name in first)
    )
    rows = {name: dict(_scalar_rows(direction)) for name, direction in named.items()}
    header = " | ".join(name.replace("_to_", " → ") or "value" for name in named)
    lines += ["", f"| metric | {header} |", "|---|" + "---|" * len(named)]
    for metric in rows[next(iter(named))]:
        cells = " | ".join(f"{rows[name][metric]:.4f}" for name in named)
        lines.append(f"| {metric} | {cells} |")
    lines += [
        "",
        "`map` ranks the whole database; `map_at_K` the top K. Relevance: at least one shared "
        "label.",
        "",
        f"![precision-recall by Hamming radius]({PR_CURVE_PNG})",
        "",
        f"![precision at K]({PRECISION_AT_K_PNG})",
        "",
    ]
    report = os.path.join(out_dir, REPORT_MD)
    with open(report, "w") as f:
        f.write("\n".join(lines))
    return report


def evaluate_run(
    workdir: str, *, run: train.Run | None = None, checkpoint: str | None = None
) -> dict[str, Any]:
    """Evaluates a trained run on its query and database splits and writes ``WORKDIR/eval/``.

    Args:
      workdir: the run's workdir (with ``config.json``, ``split_indices.npz`` and checkpoints).
      run: the run's :class:`dlhash_jax.train.Run` when it is at hand (saves reloading the data);
        otherwise it is rebuilt from the saved config and split indices.
      checkpoint: ``"best"`` or ``"last"``; defaults to the config's ``evaluation.checkpoint``.
        ``"best"`` falls back to the last checkpoint when the run did no validation.

    Returns:
      The metrics (as written to ``metrics.json``), plus ``method``, ``protocol``, ``bits``,
      ``checkpoint`` (which one was evaluated), ``step`` and ``report`` (path of ``report.md``).

    Raises:
      FileNotFoundError: if the workdir has no config or no checkpoint.
    """
    if run is None:
        config_path = os.path.join(workdir, train.CONFIG_FILE)
        if not os.path.exists(config_path):
            raise FileNotFoundError(f"{config_path} not found: {workdir} is not a training run.")
        run = train.setup_run(train.load_config(workdir), workdir=workdir)
    config = run.config
    which = checkpoint or config.evaluation.checkpoint
    variables, train_codes, step, evaluated = train.restore_for_evaluation(
        workdir, run, which=which
    )
    results = evaluate_model(
        run.model.apply,
        variables,
        run.data,
        evaluation=config.evaluation,
        train_codes=train_codes,
    )
    results.update(
        method=config.method, protocol=config.protocol, bits=config.bits, checkpoint=evaluated,
        step=int(step),
    )
    title = f"{run.recipe.title} ({config.method.upper()}), {config.bits} bits on {config.protocol}"
    details = {
        "method": f"{config.method}: {run.recipe.citation}",
        "protocol": f"{config.protocol}, seed {config.seed}, "
        + ", ".join(f"{name} {size}" for name, size in run.data.sizes.items()),
        "checkpoint": f"{evaluated} (step {step} of {run.num_steps})",
        "workdir": os.path.abspath(workdir),
    }
    if train_codes is not None:
        details["database codes"] = results["database_codes"]
    report = write_report(
        results,
        os.path.join(workdir, EVAL_DIR),
        title=title,
        plot_title=f"{config.method.upper()} {config.bits} bits",
        details=details,
    )
    return {**results, "report": report}
