"""Subprocess for the resume test: trains the tiny config and freezes after a given step.

Usage: python tests/resume_worker.py WORKDIR PAUSE_AFTER_STEP

After step PAUSE_AFTER_STEP it prints "PAUSED" and sleeps, so the test can SIGKILL it at a known
point (after its first checkpoint, before the end of training).
"""

import sys
import time

import train_helpers

from dlhash_jax import train


def main(workdir: str, pause_after: int) -> None:
    def pause(step: int) -> None:
        if step == pause_after:
            print("PAUSED", flush=True)
            time.sleep(600)

    train.fit(train_helpers.tiny_config(), workdir, hooks=[pause])


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
