"""Executes every notebook in colab/ top to bottom, as a user would, on small settings.

Each notebook reads ``DLHASH_NOTEBOOK_TEST=1`` in its settings cell and trains a few steps only.
The kernel is this interpreter (``sys.executable``), through a kernelspec written to a temporary
directory, so the notebooks import the dlhash_jax under test; a cell appended to each notebook
checks that. Notebooks are stored without outputs, which the fast test below checks.
"""

import json
import pathlib
import sys
import time

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
jupyter_client = pytest.importorskip("jupyter_client")
pytest.importorskip("ipykernel")

COLAB = pathlib.Path(__file__).resolve().parents[1] / "colab"
NOTEBOOKS = ("quickstart", "loss_terms", "multi_device", "compare_methods")
KERNEL_NAME = "dlhash-jax-test"
CELL_TIMEOUT_S = 300


def _read(name: str):
    with open(COLAB / f"{name}.ipynb") as f:
        return nbformat.read(f, as_version=4)


def test_notebooks_are_listed_and_stored_without_outputs():
    assert sorted(p.stem for p in COLAB.glob("*.ipynb")) == sorted(NOTEBOOKS)
    for name in NOTEBOOKS:
        notebook = _read(name)
        nbformat.validate(notebook)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(not cell.outputs and cell.execution_count is None for cell in code), name
        # The first code cell installs the package in Colab and does nothing elsewhere.
        assert 'if "google.colab" in sys.modules:' in code[0].source, name
        assert "%pip install" in code[0].source, name
        assert "DLHASH_NOTEBOOK_TEST" in "".join(cell.source for cell in code), name


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory):
    """A kernelspec whose kernel runs this Python."""
    root = tmp_path_factory.mktemp("kernels")
    spec_dir = root / KERNEL_NAME
    spec_dir.mkdir()
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "dlhash_jax tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return root


def _stream_text(cell) -> str:
    return "".join(out.get("text", "") for out in cell.outputs if out.output_type == "stream")


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, kernel_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DLHASH_NOTEBOOK_TEST", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebooks' workdirs go here
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = _read(name)
    # Reports the kernel's interpreter and its CPU time (a load-independent cost measure).
    report = "import os, sys\nprint(sys.executable)\nprint(sum(os.times()[:2]))"
    notebook.cells.append(nbformat.v4.new_code_cell(report))
    manager = jupyter_client.KernelManager(
        kernel_name=KERNEL_NAME,
        kernel_spec_manager=jupyter_client.kernelspec.KernelSpecManager(
            kernel_dirs=[str(kernel_dir)]
        ),
    )
    client = nbclient.NotebookClient(
        notebook,
        km=manager,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(COLAB)}},
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the failing cell and traceback
    elapsed = time.perf_counter() - start
    executable, cpu_seconds = _stream_text(notebook.cells[-1]).strip().splitlines()
    print(f"{name}.ipynb ran in {elapsed:.1f} s ({float(cpu_seconds):.1f} s of kernel CPU time)")
    assert executable == sys.executable
