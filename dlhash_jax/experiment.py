"""Experiments from Python: one run end to end, and the runs a results table is made of.

- :func:`train_and_evaluate` trains (or resumes) a run in its workdir, then writes its evaluation
  report; ``python -m experiments.train`` runs it, and so can a notebook.
- :func:`run_recipe` trains a recipe and scores its chosen checkpoint, timing the training;
  :func:`evaluate_baseline` fits a classic baseline, named in :data:`BASELINES`, on a protocol's
  training split and scores it with the same metrics. A row of a results table
  (``dlhash_jax.results_table``, ``experiments.reproduce``) is made of these.

Configs come in as ``ml_collections.ConfigDict`` objects: the config files live in the
``experiments`` package, which builds on this library, never the reverse.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import ml_collections

from dlhash_jax import _checks
from dlhash_jax import baselines
from dlhash_jax import conventions
from dlhash_jax import data as data_lib
from dlhash_jax import evaluate
from dlhash_jax import methods
from dlhash_jax import train
from dlhash_jax.data.image_pipeline import ImageSource


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, *, recipe: methods.Recipe | None = None
) -> dict[str, Any]:
    """Trains (or resumes) a run, then evaluates it on the query and database splits.

    Args:
      config: a run config (``dlhash_jax.train.default_config``'s schema).
      workdir: the run directory; one holding checkpoints is resumed.
      recipe: a recipe to use instead of ``methods.RECIPES[config.method]`` (a custom one).

    Returns:
      The evaluation metrics (``dlhash_jax.evaluate.evaluate_run``), also written to
      ``workdir/eval/metrics.json`` with ``report.md`` and the plots.
    """
    result = train.fit(config, workdir, recipe=recipe)
    return evaluate.evaluate_run(workdir, run=result.run)


def run_recipe(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    recipe: methods.Recipe | None = None,
    per_query_ap: bool = False,
) -> dict[str, Any]:
    """Trains a run in ``workdir`` and scores its ``config.evaluation.checkpoint`` checkpoint.

    Unlike :func:`train_and_evaluate` it writes no report: a results table keeps the metrics and
    the training time of many runs.

    Args:
      config: a run config (for a table row: the method's config file for the protocol, code
        length and seed).
      workdir: the run directory (an empty one for a timing that includes no resumed steps).
      recipe: a recipe to use instead of ``methods.RECIPES[config.method]``.
      per_query_ap: also score every query (``results["per_query_ap"]``, a list of Q floats,
        in each direction's dict for a cross-modal recipe; see ``evaluate.evaluate_model``).

    Returns:
      ``train_seconds`` (``train.fit``, compilation and validation included), ``results`` (of
      ``evaluate.evaluate_model``; by direction for a cross-modal recipe), and the ``step`` and
      ``checkpoint`` (``"best"`` or ``"last"``) scored.
    """
    start = time.perf_counter()
    fitted = train.fit(config, workdir, recipe=recipe)
    train_seconds = time.perf_counter() - start
    variables, train_codes, step, checkpoint = train.restore_for_evaluation(
        workdir, fitted.run, which=config.evaluation.checkpoint
    )
    results = evaluate.evaluate_model(
        fitted.run.model.apply,
        variables,
        fitted.run.data,
        evaluation=config.evaluation,
        per_query_ap=per_query_ap,
        train_codes=train_codes,
    )
    return {
        "train_seconds": train_seconds,
        "results": results,
        "step": int(step),
        "checkpoint": checkpoint,
    }


@dataclasses.dataclass(frozen=True)
class Baseline:
    """A classic (non-deep) hashing method of ``dlhash_jax.baselines``, fitted by name.

    Attributes:
      fit: ``(key, inputs, bits) -> hash function`` whose ``encode(inputs)`` gives ±1 codes
        ``[N, L]``; ``inputs`` is ``[N, ...]``, or ``{"image": [N, ...], "text": [N, V]}`` for a
        cross-modal baseline (whose codes are then a dict per modality).
      taxonomy: its place among the methods of a results table ("labels × input" column).
      cross_modal: whether it takes ``{"image", "text"}`` inputs (a cross-modal protocol).
    """

    fit: Callable[[jax.Array, Any, int], Any]
    taxonomy: str
    cross_modal: bool = False


BASELINES = {
    "lsh": Baseline(baselines.fit_lsh, "classic, data-independent"),
    "pcah": Baseline(lambda key, x, bits: baselines.fit_pcah(x, bits), "classic, unsupervised"),
    "itq": Baseline(baselines.fit_itq, "classic, unsupervised"),
    "sh": Baseline(
        lambda key, x, bits: baselines.fit_spectral_hashing(x, bits), "classic, unsupervised"
    ),
    "cca_itq": Baseline(
        lambda key, x, bits: baselines.fit_cca_itq(
            key, x[conventions.IMAGE], x[conventions.TEXT], bits
        ),
        "classic, paired modalities",
        cross_modal=True,
    ),
}


def fit_baseline(name: str, key: jax.Array, inputs, bits: int):
    """Fits the baseline ``name`` (a key of :data:`BASELINES`) on ``inputs``.

    Args:
      name: ``"lsh"``, ``"pcah"``, ``"itq"``, ``"sh"`` or ``"cca_itq"``.
      key: PRNG key of the random parts (LSH's projection, ITQ's initial rotation); PCAH and
        spectral hashing are deterministic and ignore it.
      inputs: training inputs ``[N, ...]``, or ``{"image": [N, ...], "text": [N, V]}`` for
        ``cca_itq``.
      bits: the code length ``L``.

    Returns:
      The fitted hash function (a ``dlhash_jax.baselines`` tuple with ``encode``).

    Raises:
      ValueError: for an unknown name, or the errors of the ``baselines.fit_*`` function.
    """
    _checks.check_choice(name, BASELINES, "baseline")
    return BASELINES[name].fit(key, inputs, bits)


def _apply_baseline(hash_function, inputs, *, train):
    """A fitted baseline as a model's ``apply``, so it is encoded and scored like a network."""
    del train  # A fitted baseline has no training mode.
    return {"pre": hash_function.encode(inputs)}


def evaluate_baseline(
    name: str,
    protocol: str,
    bits: int,
    seed: int,
    *,
    evaluation: Mapping[str, Any] | None = None,
    per_query_ap: bool = False,
) -> dict[str, Any]:
    """Fits a baseline on the inputs of ``seed``'s training split and scores it.

    Args:
      name: a key of :data:`BASELINES`.
      protocol: a ``dlhash_jax.data`` protocol, single-modality or cross-modal as the baseline.
      bits: the code length ``L``.
      seed: the protocol's split seed, also the seed of the fit's PRNG key.
      evaluation: the ``evaluation`` block of a run config; ``None``: the library default's.
      per_query_ap: also score every query (``results["per_query_ap"]``, a list of Q floats,
        in each direction's dict for ``cca_itq``; see ``evaluate.evaluate_model``).

    Returns:
      ``train_seconds`` (the fit, compilation included) and ``results`` (of
      ``evaluate.evaluate_model``; by direction for ``cca_itq``).

    Raises:
      ValueError: for an unknown baseline or protocol, a baseline whose modality does not
        match the protocol's, or a protocol that reads image files.
    """
    _checks.check_choice(name, BASELINES, "baseline")
    seed = _checks.check_int(seed, "seed", minimum=0)
    data = data_lib.load_protocol(protocol, seed=seed)
    if BASELINES[name].cross_modal != data.cross_modal:
        kind = "cross-modal" if data.cross_modal else "single-modality"
        usable = [n for n, b in BASELINES.items() if b.cross_modal == data.cross_modal]
        raise ValueError(
            f"Baseline {name!r} does not fit {kind} protocol {protocol!r}; its baselines: "
            f"{', '.join(usable)}."
        )
    if isinstance(data.train.inputs, ImageSource):
        raise ValueError(
            f"Baseline {name!r} fits in-memory input vectors, but protocol {protocol!r} reads "
            "image files; extract features first (python -m experiments.extract_features "
            "--backbone=... --weights=... --protocol=... --out=features.npz) and fit it on "
            "'features:features.npz'."
        )
    start = time.perf_counter()
    fitted = jax.block_until_ready(
        fit_baseline(name, jax.random.PRNGKey(seed), data.train.inputs, bits)
    )
    train_seconds = time.perf_counter() - start
    if evaluation is None:
        evaluation = train.default_config().evaluation
    results = evaluate.evaluate_model(
        _apply_baseline, fitted, data, evaluation=evaluation, per_query_ap=per_query_ap
    )
    return {"train_seconds": train_seconds, "results": results}
