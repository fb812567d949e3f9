"""A tiny Fashion-MNIST in the real IDX format (gzip and raw), so tests run the real loading code offline."""

import urllib.error
from types import SimpleNamespace

import pytest

from fashion_lightning import sources
from fashion_lightning.testing import TEST_COUNT, TRAIN_COUNT, write_tiny_fashion

__all__ = ["TEST_COUNT", "TRAIN_COUNT", "cli_args"]


@pytest.fixture
def fashion(tmp_path, monkeypatch):
    """Tiny IDX files in ``source_dir``; expected specs exported through the environment; no network."""
    source_dir, arrays = write_tiny_fashion(tmp_path, set_env=False)
    specs_path = tmp_path / "specs.json"
    monkeypatch.setenv(sources.SPECS_ENV_VAR, str(specs_path))
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


def cli_args(fashion, *extra: str, val_size: int = 64, batch_size: int = 32) -> list[str]:
    """Arguments after the subcommand that point the CLI at the tiny data and keep it quiet and on CPU."""
    return [
        f"--data.data_dir={fashion.data_dir}",
        f"--data.source_dir={fashion.source_dir}",
        "--data.download=false",
        f"--data.val_size={val_size}",
        f"--data.batch_size={batch_size}",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--trainer.default_root_dir={fashion.root}",
        f"--trainer.logger.init_args.save_dir={fashion.logs}",
        *extra,
    ]
