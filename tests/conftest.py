"""A tiny Fashion-MNIST in the real IDX format (gzip and raw), so tests run the real loading code offline."""

import gzip
import hashlib
import json
import struct
import urllib.error
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from fashion_lightning import sources

TRAIN_COUNT, TEST_COUNT = 320, 160


def idx_bytes(array: np.ndarray, is_images: bool) -> bytes:
    """Encode a uint8 array as an IDX file (big-endian header, then the raw bytes)."""
    if is_images:
        header = struct.pack(">IIII", sources.IMAGE_MAGIC, len(array), 28, 28)
    else:
        header = struct.pack(">II", sources.LABEL_MAGIC, len(array))
    return header + array.astype(np.uint8).tobytes()


def learnable_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise plus a bright band whose row depends on the class: a model can learn it in a few steps."""
    images = rng.integers(0, 60, size=(len(labels), 28, 28))
    for i, label in enumerate(labels):
        images[i, 2 + 2 * label : 4 + 2 * label, 4:24] = 250
    return images.astype(np.uint8)


def write_tiny_fashion(root: Path, seed: int = 0) -> dict[str, bytes]:
    """Write the four files as .gz into ``root``; return their decompressed bytes by key."""
    rng = np.random.default_rng(seed)
    train_labels = np.arange(TRAIN_COUNT) % 10
    test_labels = rng.permutation(np.arange(TEST_COUNT) % 10)
    arrays = {
        "train_images": idx_bytes(learnable_images(train_labels, rng), True),
        "train_labels": idx_bytes(train_labels, False),
        "test_images": idx_bytes(learnable_images(test_labels, rng), True),
        "test_labels": idx_bytes(test_labels, False),
    }
    root.mkdir(parents=True, exist_ok=True)
    for key, data in arrays.items():
        (root / f"{sources.RAW_FILES[key].name}.gz").write_bytes(gzip.compress(data))
    return arrays


def specs_for(arrays: dict[str, bytes]) -> dict[str, dict]:
    counts = {"train": TRAIN_COUNT, "test": TEST_COUNT}
    return {
        key: {
            "name": sources.RAW_FILES[key].name,
            "md5": hashlib.md5(data).hexdigest(),
            "count": counts[key.split("_")[0]],
            "is_images": key.endswith("images"),
        }
        for key, data in arrays.items()
    }


@pytest.fixture
def fashion(tmp_path, monkeypatch):
    """Tiny IDX files in ``source_dir``; expected specs exported through the environment; no network."""
    source_dir = tmp_path / "source"
    arrays = write_tiny_fashion(source_dir)
    specs_path = tmp_path / "specs.json"
    specs_path.write_text(json.dumps(specs_for(arrays)))
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
