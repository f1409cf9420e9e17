"""Subprocess for the resume test: trains the tiny config and freezes after a given step.

Usage: python tests/resume_worker.py WORKDIR PAUSE_AFTER_STEP [METHOD]

METHOD (default dpsh) picks the tiny config's changes in ``train_helpers.RESUME_CHANGES``.

After step PAUSE_AFTER_STEP it prints "PAUSED" and sleeps, so the test can SIGKILL it at a known
point (after its first checkpoint, before the end of training).
"""

import sys
import time

import train_helpers

from dlhash_jax import train


def main(workdir: str, pause_after: int, method: str = "dpsh") -> None:
    def pause(step: int) -> None:
        if step == pause_after:
            print("PAUSED", flush=True)
            time.sleep(600)

    config = train_helpers.tiny_config(**train_helpers.RESUME_CHANGES[method])
    train.fit(config, workdir, hooks=[pause])


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:])
