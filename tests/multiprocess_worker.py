"""One process of a training run spread over several processes, each with its own devices.

Run one command per process, all with the same coordinator, process count and workdir (the
README's "Several devices and hosts" section, which test_multiprocess.py runs)::

    JAX_PLATFORMS=cpu XLA_FLAGS=--xla_force_host_platform_device_count=2 .venv/bin/python \
        tests/multiprocess_worker.py --coordinator=127.0.0.1:PORT --num_processes=2 \
        --process_id=0 --workdir=WORKDIR

It connects to the others (``jax.distributed.initialize``; process 0 serves the coordinator at
``--coordinator``), then trains :func:`multiprocess_config` with ``train.fit``: the global batch
is split over every process's devices, each process feeding its own rows. A workdir holding
checkpoints is resumed. ``--pause_after=STEP`` prints "PAUSED" after that step and sleeps, so a
test can kill every process at a known point; ``--parallel=pmap`` shows the error a
multi-process run gives for it.
"""

import argparse
import time

import jax
import train_helpers

from dlhash_jax import train

# Seconds a process waits for the others to connect, and at exit for the others to finish.
_CONNECT_TIMEOUT = 60
_SHUTDOWN_TIMEOUT = 30


def multiprocess_config(num_devices: int = 0, parallel: str = "shard_map"):
    """The tiny DPSH run on 4 devices in all: 2 epochs of 10 global batches of 48 items.

    Args:
      num_devices: ``config.num_devices`` (0: every device; 4 for the single-process
        reference on 4 fake devices).
      parallel: ``config.parallel``.
    """
    return train_helpers.tiny_config(
        batch_size=48, num_epochs=2, parallel=parallel, num_devices=num_devices
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coordinator", required=True, help="HOST:PORT of process 0")
    parser.add_argument("--num_processes", type=int, required=True)
    parser.add_argument("--process_id", type=int, required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--pause_after", type=int, default=0, help="step to freeze after (0: none)")
    parser.add_argument("--parallel", default="shard_map", help="config.parallel")
    args = parser.parse_args()

    # gloo carries the collectives between the processes' CPU devices (it is jax's default on
    # CPU; said here because a GPU or TPU run uses the accelerator's own instead).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=args.coordinator,
        num_processes=args.num_processes,
        process_id=args.process_id,
        # Serve on the given address only (jax's default listens on every interface).
        coordinator_bind_address=args.coordinator,
        cluster_detection_method="deactivate",
        initialization_timeout=_CONNECT_TIMEOUT,
        shutdown_timeout_seconds=_SHUTDOWN_TIMEOUT,
    )

    def pause(step: int) -> None:
        if step == args.pause_after:
            print("PAUSED", flush=True)
            time.sleep(600)

    config = multiprocess_config(parallel=args.parallel)
    result = train.fit(config, args.workdir, hooks=[pause])
    print(
        f"process {jax.process_index()} of {jax.process_count()}: step {int(result.state.step)}, "
        f"best validation mAP {result.best_val_map:.4f} at step {result.best_step}",
        flush=True,
    )


if __name__ == "__main__":
    main()
