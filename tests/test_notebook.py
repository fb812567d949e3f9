"""The quickstart notebook executes top to bottom (real data when installed, the tiny set otherwise); a fit in a
real kernel stops on Jupyter's interrupt and resumes there."""

import queue
import re
import time
from pathlib import Path

import pytest
import torch

from fashion_lightning.runs import versions
from tests.helpers import cli_args, last_ckpt

nbformat = pytest.importorskip("nbformat")  # the dev extras (a GPU machine may run the `gpu` tests without them)
NotebookClient = pytest.importorskip("nbclient").NotebookClient

jupyter_client = pytest.importorskip("jupyter_client")
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


def run_cell(client, manager, code: str, interrupt_when=None, timeout: float = 240) -> tuple[str, list[str]]:
    """Execute ``code`` in the kernel; interrupt it as Jupyter does once ``interrupt_when()`` is true. Returns the
    cell's printed text and its errors (``"SystemExit: 130"``)."""
    cell, text, errors, deadline = client.execute(code), [], [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        if interrupt_when is not None and interrupt_when():
            manager.interrupt_kernel()  # SIGINT to the kernel's process group, as the notebook's stop button
            interrupt_when = None
        try:
            message = client.get_iopub_msg(timeout=0.2)
        except queue.Empty:
            continue
        kind, content = message["msg_type"], message["content"]
        if message["parent_header"].get("msg_id") != cell:
            continue
        if kind == "stream":
            text.append(content["text"])
        elif kind == "error":
            errors.append(f"{content['ename']}: {content['evalue']}")
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(text), errors
    raise AssertionError(f"the cell did not finish within {timeout} s: {''.join(text)[-2000:]}")


@pytest.mark.slow
def test_jupyters_interrupt_stops_a_ddp_notebook_fit_that_resumes_in_the_same_kernel(fashion, monkeypatch):
    monkeypatch.chdir(fashion.root)
    manager, client = jupyter_client.manager.start_new_kernel(kernel_name="python3")
    try:
        args = cli_args(fashion, "--trainer.devices=2", "--trainer.strategy=ddp_notebook")
        args += ["--last.every_n_train_steps=1", "--trainer.max_epochs=500"]
        run_cell(client, manager, "from fashion_lightning.cli import cli_main")
        text, errors = run_cell(
            client, manager, f"cli_main({['fit', *args]!r})", interrupt_when=last_ckpt(fashion.logs).is_file
        )
        stopped = re.search(r"Stopped by SIGINT at step (\d+): saved .*last\.ckpt", text)
        assert stopped, text[-3000:]
        assert errors == ["SystemExit: 130"]  # (IPython shows sys.exit's status; no traceback)
        assert "Traceback" not in text
        assert "To exit: use" not in text  # (IPython's warning after a SystemExit)
        step = int(stopped.group(1))
        assert torch.load(last_ckpt(fashion.logs), weights_only=True)["global_step"] == step
        resume = ["fit", *args, "--ckpt_path=last", f"--trainer.max_steps={step + 2}"]
        text, errors = run_cell(client, manager, f"cli_main({resume!r}) and None")
        assert errors == [], text[-3000:]
        assert torch.load(last_ckpt(fashion.logs), weights_only=True)["global_step"] == step + 2
        assert versions(fashion.logs / "fashion") == [0]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
