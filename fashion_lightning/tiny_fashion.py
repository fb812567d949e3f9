"""A tiny Fashion-MNIST in the real IDX format, for tests and demos that must run offline in seconds.

``write_tiny_fashion(directory)`` writes the four ``.gz`` files and a specs JSON, and points
``$FASHION_LIGHTNING_SPECS`` at it, so the real loading code accepts them (their own sizes and checksums).
"""

import gzip
import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np

from fashion_lightning import raw_files

TRAIN_COUNT, TEST_COUNT = 320, 160


def idx_bytes(array: np.ndarray, is_images: bool) -> bytes:
    """Encode a uint8 array as an IDX file (big-endian header, then the raw bytes)."""
    if is_images:
        header = struct.pack(">IIII", raw_files.IMAGE_MAGIC, len(array), 28, 28)
    else:
        header = struct.pack(">II", raw_files.LABEL_MAGIC, len(array))
    return header + array.astype(np.uint8).tobytes()


def learnable_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise plus a bright band whose row depends on the class: a model can learn it in a few steps."""
    images = rng.integers(0, 60, size=(len(labels), 28, 28))
    for i, label in enumerate(labels):
        images[i, 2 + 2 * label : 4 + 2 * label, 4:24] = 250
    return images.astype(np.uint8)


def tiny_arrays(seed: int = 0) -> dict[str, bytes]:
    """The decompressed bytes of the four tiny files, by key of ``raw_files.RAW_FILES``."""
    rng = np.random.default_rng(seed)
    train_labels = np.arange(TRAIN_COUNT) % 10
    test_labels = rng.permutation(np.arange(TEST_COUNT) % 10)
    return {
        "train_images": idx_bytes(learnable_images(train_labels, rng), True),
        "train_labels": idx_bytes(train_labels, False),
        "test_images": idx_bytes(learnable_images(test_labels, rng), True),
        "test_labels": idx_bytes(test_labels, False),
    }


def specs_for(arrays: dict[str, bytes]) -> dict[str, dict]:
    """What ``sources`` must expect of these files: names, md5 of the decompressed bytes, counts."""
    counts = {"train": TRAIN_COUNT, "test": TEST_COUNT}
    return {
        key: {
            "name": raw_files.RAW_FILES[key].name,
            "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
            "count": counts[key.split("_")[0]],
            "is_images": key.endswith("images"),
        }
        for key, data in arrays.items()
    }


def write_tiny_fashion(directory: str | Path, set_env: bool = True) -> tuple[Path, dict[str, bytes]]:
    """Write the tiny files (``.gz``) into ``directory/source`` and their specs; return (source_dir, arrays)."""
    directory = Path(directory)
    source_dir = directory / "source"
    source_dir.mkdir(parents=True, exist_ok=True)
    arrays = tiny_arrays()
    for key, data in arrays.items():
        (source_dir / f"{raw_files.RAW_FILES[key].name}.gz").write_bytes(gzip.compress(data))
    specs_path = directory / "specs.json"
    specs_path.write_text(json.dumps(specs_for(arrays)))
    if set_env:
        os.environ[raw_files.SPECS_ENV_VAR] = str(specs_path)
    return source_dir, arrays
