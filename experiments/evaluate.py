"""Evaluates a finished (or interrupted) run: ``python -m experiments.evaluate --workdir=...``.

Reads the run's saved config, split indices and checkpoint, and writes ``WORKDIR/eval/``
(metrics.json, report.md, pr_curve.png, precision_at_k.png). All logic lives in
``dlhash_jax.evaluate.evaluate_run``.
"""

import sys

from absl import app
from absl import flags
from absl import logging

from dlhash_jax import evaluate

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory written by experiments.train.")
_CHECKPOINT = flags.DEFINE_enum(
    "checkpoint", None, ["best", "last"], "Checkpoint to evaluate; default: the run's config."
)
flags.mark_flag_as_required("workdir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    # Orbax logs every checkpoint operation at INFO; keep the console to the progress bar.
    logging.set_verbosity(logging.WARNING)
    try:
        results = evaluate.evaluate_run(_WORKDIR.value, checkpoint=_CHECKPOINT.value)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"{evaluate.map_summary(results)} ({results['checkpoint']} checkpoint, step "
        f"{results['step']})"
    )
    print(f"report: {results['report']}")
    return 0


if __name__ == "__main__":
    app.run(main)
