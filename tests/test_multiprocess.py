"""Multi-process training: 2 processes of 2 CPU devices train as 1 process of 4 devices.

The processes run the commands of README.md's "Several devices and hosts" section, read from the
README itself, talk over 127.0.0.1 only (coordinator on a free port, gloo collectives), and are
killed by the test whatever happens.
"""

import dataclasses
import itertools
import json
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
import time

import jax
import multiprocess_worker
import numpy as np
import pytest

from dlhash_jax import data as data_lib
from dlhash_jax import train
from dlhash_jax.train import checkpoints as train_checkpoints
from dlhash_jax.train import loop as train_loop
from dlhash_jax.train import run as train_run

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)
README = os.path.join(REPO_ROOT, "README.md")
README_PYTHON = ".venv/bin/python"
# Seconds one set of processes may take to start, train and stop (10 to 40 on 2 shared cores).
DEADLINE = 180


def readme_commands() -> list[list[str]]:
    """The README's command per process, as words: ``NAME=value`` assignments, then argv."""
    with open(README) as f:
        section = f.read().split("### Several devices and hosts", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```sh\n(.*?)```", section, re.S)
    lines = block.replace("\\\n", " ").splitlines()
    return [
        [word for word in shlex.split(line) if word != "&"]
        for line in lines
        if "multiprocess_worker.py" in line
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(workdir, log_dir, name, extra=()) -> list[subprocess.Popen]:
    """Starts the README's processes on a fresh port, stderr to ``log_dir/name.<i>.log``."""
    port = _free_port()
    processes = []
    for i, words in enumerate(readme_commands()):
        env = dict(os.environ)
        while re.fullmatch(r"[A-Z_]+=.*", words[0]):
            key, value = words.pop(0).split("=", 1)
            env[key] = value
        argv = [sys.executable if w == README_PYTHON else w for w in words]
        argv = [w.replace("$PORT", str(port)).replace("$WORKDIR", str(workdir)) for w in argv]
        with open(log_dir / f"{name}.{i}.log", "w") as log:
            processes.append(
                subprocess.Popen(
                    [*argv, *extra], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                    stderr=log, bufsize=0,
                )
            )
    return processes


def _stop(processes) -> None:
    for proc in processes:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()


def _printed(proc, expected: str, deadline: float) -> bool:
    """Whether ``proc`` prints the line ``expected`` before ``deadline``.

    gloo writes its connections to stdout too, so lines are read until the one expected; the
    pipe is read unbuffered, so ``select`` sees every byte not yet read.
    """
    seen = b""
    while True:
        ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.time(), 0))
        chunk = os.read(proc.stdout.fileno(), 4096) if ready else b""
        if not chunk:
            return False
        seen += chunk
        if expected.encode() in seen.splitlines():
            return True


def _logs(log_dir, name) -> str:
    return "\n".join(
        f"--- {path.name}\n{path.read_text()[-3000:]}" for path in sorted(log_dir.glob(f"{name}.*"))
    )


def _close(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), a, b)


def _read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_two_processes_train_as_one_with_four_devices_and_resume_after_sigkill(tmp_path):
    assert len(readme_commands()) == 2
    config = multiprocess_worker.multiprocess_config(num_devices=4)
    reference = train.fit(config, str(tmp_path / "reference"))
    assert int(reference.state.step) == 20

    # Both processes freeze after step 16; the checkpoint of step 14 (mid-epoch) is written
    # asynchronously, so wait until its directory is committed too, then kill both.
    workdir = tmp_path / "multi"
    killed = _start(workdir, tmp_path, "killed", extra=["--pause_after=16"])
    try:
        deadline = time.time() + DEADLINE
        for proc in killed:
            assert _printed(proc, "PAUSED", deadline), _logs(tmp_path, "killed")
        while not (workdir / "checkpoints" / "14").is_dir():
            assert time.time() < deadline, "the checkpoint of step 14 never appeared"
            time.sleep(0.1)
    finally:
        _stop(killed)
    assert [proc.returncode for proc in killed] == [-signal.SIGKILL] * 2
    assert not (workdir / "checkpoints" / "20").exists()
    first_checkpoint = (workdir / "checkpoints" / "7").stat().st_mtime_ns

    resumed = _start(workdir, tmp_path, "resumed")
    try:
        deadline = time.time() + DEADLINE
        for proc in resumed:
            proc.wait(timeout=max(deadline - time.time(), 1))
        printed = [proc.stdout.read().decode() for proc in resumed]
    finally:
        _stop(resumed)
    assert [proc.returncode for proc in resumed] == [0, 0], _logs(tmp_path, "resumed")
    # Both processes end at step 20 and agree on the best step; they resumed from step 14, so
    # the checkpoint of step 7 was not written again.
    for i, out in enumerate(printed):
        assert f"process {i} of 2: step 20, " in out and f"at step {reference.best_step}" in out
    assert (workdir / "checkpoints" / "7").stat().st_mtime_ns == first_checkpoint

    run = train.setup_run(config, workdir=str(workdir))
    state, meta, step = train_checkpoints.restore_latest(
        str(workdir), train_run.initial_state(run, fill_bank=False)
    )
    assert step == 20
    _close(state.params, reference.state.params)
    _close(state.opt_state, reference.state.opt_state)
    _close(state.bank.outputs, reference.state.bank.outputs)
    assert meta["best_step"] == reference.best_step
    assert meta["best_val_map"] == pytest.approx(reference.best_val_map, rel=1e-6)

    # Process 0 alone wrote the log; the killed run's lines past step 14 were dropped and redone.
    log = _read_jsonl(workdir / "metrics.jsonl")
    reference_log = _read_jsonl(tmp_path / "reference" / "metrics.jsonl")
    assert [r["step"] for r in log] == [r["step"] for r in reference_log]
    for mine, theirs in zip(log, reference_log):
        assert mine.keys() == theirs.keys()
        for key in mine.keys() - {"steps_per_sec"}:
            assert mine[key] == pytest.approx(theirs[key], rel=1e-5), (mine, theirs)


def test_pmap_across_processes_is_refused_with_a_clear_error(tmp_path):
    processes = _start(tmp_path / "pmap", tmp_path, "pmap", extra=["--parallel=pmap"])
    try:
        deadline = time.time() + DEADLINE
        for proc in processes:
            proc.wait(timeout=max(deadline - time.time(), 1))
    finally:
        _stop(processes)
    assert [proc.returncode for proc in processes] == [1, 1], _logs(tmp_path, "pmap")
    for i in range(2):
        assert (
            "config.parallel='pmap' maps over one process's devices, but the run's devices "
            "belong to 2 processes; use config.parallel='shard_map'"
        ) in (tmp_path / f"pmap.{i}.log").read_text()


class _RowReads(np.ndarray):
    """An array that records the rows read from it (``reads``, one index array per read)."""

    def __getitem__(self, key):
        self.reads.append(np.asarray(key))
        return np.asarray(self)[key]


def test_each_process_reads_only_its_rows_of_every_global_batch():
    config = multiprocess_worker.multiprocess_config(num_devices=4)
    run = train.setup_run(config)
    inputs = np.asarray(run.data.train.inputs).view(_RowReads)
    inputs.reads = []
    run = dataclasses.replace(
        run, data=dataclasses.replace(
            run.data, train=dataclasses.replace(run.data.train, inputs=inputs))
    )
    # Epoch 1 from its 4th batch, as a run resumed from the checkpoint of step 14 reads it.
    whole = list(
        itertools.islice(data_lib.batches(run.data.train, 48, seed=config.seed, epoch=1), 3, None)
    )
    inputs.reads.clear()
    share = 24
    for process in range(2):
        rows = np.arange(process * share, (process + 1) * share)
        got = list(train_loop._epoch_batches(run, 1, 3, rows))
        assert len(got) == len(whole) == 7
        for mine, batch in zip(got, whole):
            jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b[rows]), mine, batch)
        read = np.concatenate(inputs.reads)
        np.testing.assert_array_equal(read, np.concatenate([b["index"][rows] for b in whole]))
        inputs.reads.clear()


def test_a_single_process_feeds_every_row_and_the_batch_must_split_over_the_devices():
    runner = train.ReplicatedStep(
        lambda state, batch: (state, {}), parallel="shard_map", devices=jax.devices()[:4]
    )
    np.testing.assert_array_equal(runner.process_rows(48), np.arange(48))
    with pytest.raises(ValueError, match="batch size 50 is not divisible by the run's 4 devices"):
        runner.process_rows(50)
