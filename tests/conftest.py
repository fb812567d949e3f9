"""A tiny Fashion-MNIST in the real IDX format (gzip and raw), so tests run the real loading code offline."""

import signal
import subprocess
import urllib.error
from types import SimpleNamespace

import pytest

from fashion_lightning import raw_files, sources
from fashion_lightning.tiny_fashion import write_tiny_fashion
from tests.helpers import fit_command, last_ckpt


def pytest_configure(config):
    # The tests deliver Ctrl-C as a terminal does. A CI script that starts pytest as a background job (no job
    # control) hands it SIGINT ignored, which the code under test rightly keeps ignoring (as would the processes the
    # tests start): give this process Python's usual handler, which those processes inherit as SIGINT's default.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def fashion(tmp_path, monkeypatch):
    """Tiny IDX files in ``source_dir``; expected specs exported through the environment; no network."""
    source_dir, arrays = write_tiny_fashion(tmp_path, set_env=False)
    specs_path = tmp_path / "specs.json"
    monkeypatch.setenv(raw_files.SPECS_ENV_VAR, str(specs_path))
    monkeypatch.delenv(sources.ENV_VAR, raising=False)
    monkeypatch.setattr(sources, "SYSTEM_COPY_DIRS", ())

    def no_network(url):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(sources, "_fetch_url", no_network)
    return SimpleNamespace(
        root=tmp_path,
        source_dir=source_dir,
        data_dir=tmp_path / "data",
        logs=tmp_path / "lightning_logs",
        arrays=arrays,
        specs_path=specs_path,
    )


@pytest.fixture
def reference(fashion):
    """The same run, never interrupted: 12 epochs of 8 steps."""
    logs = fashion.root / "reference"
    subprocess.run(fit_command(fashion, logs, "--trainer.max_epochs=12"), check=True, capture_output=True)
    return last_ckpt(logs)
