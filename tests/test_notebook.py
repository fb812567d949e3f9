"""The quickstart notebook executes top to bottom (real data when installed, the tiny set otherwise)."""

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")  # the dev extras (a GPU machine may run the `gpu` tests without them)
NotebookClient = pytest.importorskip("nbclient").NotebookClient

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "quickstart.ipynb"


def test_notebook_is_committed_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells
    assert all(not cell.outputs and cell.execution_count is None for cell in code_cells)


@pytest.mark.slow
def test_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the kernel's mkdtemp workdir (~130 MB) goes where pytest cleans up
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3").execute()
    outputs = "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )
    assert "Predicted: " in outputs
    stderr = "".join(
        o.get("text", "") for cell in notebook.cells for o in cell.get("outputs", []) if o.get("name") == "stderr"
    )
    # A quiet console in a notebook too: no warning (Python's and Lightning's both start with "file.py:line: ").
    assert not re.search(r"\.py:\d+: ", stderr), stderr
    assert "test accuracy:" in outputs
    images = [o for cell in notebook.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # samples, curves, confusion matrix
    assert [p.name[:17] for p in tmp_path.glob("fashion-notebook-*")] == ["fashion-notebook-"]
