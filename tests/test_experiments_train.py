"""experiments.train and experiments.evaluate as a user runs them: subprocesses started outside
the repository (the installed package), with one-line errors for the usual config mistakes."""

import os
import subprocess
import sys

from experiments import configs

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DSH = os.path.join(configs.CONFIGS_DIR, "dsh.py")


def _run(cwd, *args):
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=cwd,
        check=False,
    )


def test_help_works_from_any_directory(tmp_path):
    shown = _run(tmp_path, "-m", "experiments.train", "--help")
    assert shown.stderr == ""  # absl's --help exits with status 1, so the status says nothing
    assert "--config: Config file and argument" in shown.stdout
    assert f"(default: '{configs.CONFIGS_DIR}{os.sep}dpsh.py:digits,bits=32')" in shown.stdout


def test_mistyped_field_is_one_line_naming_the_close_match(tmp_path):
    workdir = tmp_path / "run"
    top = _run(tmp_path, "-m", "experiments.train", "--config.learning_rat=0.1",
               f"--workdir={workdir}")
    assert top.returncode == 1
    assert top.stderr == (
        "error: --config.learning_rat: unknown config field 'learning_rat' (did you mean "
        "'optimizer.learning_rate'?).\n")
    # Every mistyped field of a config file's config is named, one line each; one without a
    # close match is named alone. (One process for the three: each launch imports jax.)
    nested = _run(tmp_path, "-m", "experiments.train", f"--config={DSH}:digits",
                  "--config.optimizer.learning_rte=0.1", "--config.modle.features=(8,)",
                  "--config.zzz=1")
    assert nested.returncode == 1
    assert nested.stderr.splitlines() == [
        "error: --config.optimizer.learning_rte: unknown config field "
        "'optimizer.learning_rte' (did you mean 'optimizer.learning_rate'?).",
        "error: --config.modle.features: unknown config field 'modle.features' (did you mean "
        "'model.features'?).",
        "error: --config.zzz: unknown config field 'zzz'.",
    ]
    assert not workdir.exists()


def test_missing_config_file_names_it_and_lists_the_config_files(tmp_path):
    relative = _run(tmp_path, "-m", "experiments.train", "--config=experiments/configs/zzqx.py")
    assert relative.returncode == 1
    lines = relative.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in relative.stderr
    assert lines[0].startswith(
        f"error: config file 'experiments/configs/zzqx.py' does not exist (relative to "
        f"{tmp_path}); the config files in {configs.CONFIGS_DIR}: adsh.py, ")
    assert " dpsh.py, " in lines[0] and "base.py" not in lines[0]
    typo = _run(tmp_path, "-m", "experiments.train",
                f"--config={os.path.join(configs.CONFIGS_DIR, 'dpsj.py')}:digits")
    assert typo.returncode == 1
    assert typo.stderr.startswith(
        f"error: config file '{configs.CONFIGS_DIR}{os.sep}dpsj.py' does not exist (did you "
        f"mean 'dpsh.py'?); the config files in ")


def test_config_errors_fail_before_training(tmp_path):
    workdir = tmp_path / "run"
    # Run by path from the repository root, as before experiments was a package.
    unknown_protocol = _run(REPO_ROOT, "experiments/train.py",
                            "--config=experiments/configs/dsh.py:digitz", f"--workdir={workdir}")
    assert unknown_protocol.returncode == 1
    assert "Unknown protocol 'digitz'" in unknown_protocol.stderr
    assert "Did you mean 'digits'?" in unknown_protocol.stderr
    bad_value = _run(tmp_path, "-m", "experiments.train", "--config.bits=abc")
    assert bad_value.returncode == 1
    assert "flag --config.bits=abc: invalid literal for int()" in bad_value.stderr
    assert not workdir.exists()


def test_trains_then_evaluates_from_outside_the_repository(tmp_path):
    workdir = tmp_path / "run"
    trained = _run(
        tmp_path, "-m", "experiments.train", f"--workdir={workdir}", "--config.num_epochs=2",
        "--config.eval_every=0", "--config.progress_bar=False", "--config.num_devices=1",
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    lines = trained.stdout.strip().splitlines()
    assert lines[-2].startswith("dpsh 32 bits on digits: mAP 0.")
    assert "(whole database, last checkpoint, step 20)" in lines[-2]
    assert lines[-1] == f"report: {workdir / 'eval' / 'report.md'}"
    evaluated = _run(tmp_path, "-m", "experiments.evaluate", f"--workdir={workdir}",
                     "--checkpoint=last")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert evaluated.stdout.splitlines()[0] == lines[-2].split(": ", 1)[1].replace(
        "whole database, ", "")


def test_reproduce_help_works_from_any_directory(tmp_path):
    shown = _run(tmp_path, "-m", "experiments.reproduce", "--help")
    assert shown.stderr == ""
    assert "--tables: Tables to produce" in shown.stdout


def test_readme_config_paths_resolve_to_the_installed_configs_from_any_directory(tmp_path):
    # No experiments/ under tmp_path: the README's relative path and a bare file name both reach
    # the installed dsh.py, whose config then fails validation on the protocol (before training),
    # whether the flag's value follows "=" or comes as the next argument (one launch each way).
    for flag in (["--config=experiments/configs/dsh.py:digitz"], ["--config", "dsh.py:digitz"]):
        run = _run(tmp_path, "-m", "experiments.train", *flag, f"--workdir={tmp_path / 'run'}")
        assert run.returncode == 1
        assert "Unknown protocol 'digitz'" in run.stderr, run.stderr[-2000:]
    assert not (tmp_path / "run").exists()
