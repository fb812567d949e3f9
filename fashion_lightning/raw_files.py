"""The four IDX files of Fashion-MNIST: what they are, how they are checked, decoded and cached.

``load_split`` is the one way in for the rest of the package: it returns a split as uint8 image and int64 label
tensors, decoded once from the verified raw files and cached beside them (``sources`` finds and fetches those).
"""

import hashlib
import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from fashion_lightning.atomic import atomic_torch_save
from fashion_lightning.errors import DataUnavailableError

log = logging.getLogger(__name__)

SPECS_ENV_VAR = "FASHION_LIGHTNING_SPECS"
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
IMAGE_SIZE = 28
SPLITS = ("train", "test")


@dataclass(frozen=True)
class RawFile:
    """One IDX file of the official release, described by its decompressed bytes."""

    name: str
    md5: str
    count: int
    is_images: bool

    @property
    def header_size(self) -> int:
        return 16 if self.is_images else 8

    @property
    def num_bytes(self) -> int:
        per_item = IMAGE_SIZE * IMAGE_SIZE if self.is_images else 1
        return self.header_size + self.count * per_item


# md5 of the *decompressed* files: mirrors recompress the .gz (Debian's differ from torchvision's), the payload not.
RAW_FILES = {
    "train_images": RawFile("train-images-idx3-ubyte", "f4a8712d7a061bf5bd6d2ca38dc4d50a", 60_000, True),
    "train_labels": RawFile("train-labels-idx1-ubyte", "9018921c3c673c538a1fc5bad174d6f9", 60_000, False),
    "test_images": RawFile("t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a", 10_000, True),
    "test_labels": RawFile("t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965", 10_000, False),
}


def raw_files() -> dict[str, RawFile]:
    """The expected files: the official release, or the specs in the JSON file named by ``$FASHION_LIGHTNING_SPECS``.

    The override exists for the test suite (tiny IDX files with their own sizes and checksums) and for
    datasets in the same format; an environment variable reaches every process of a DDP run.
    """
    path = os.environ.get(SPECS_ENV_VAR)
    if not path:
        return RAW_FILES
    with open(path) as handle:
        return {key: RawFile(**fields) for key, fields in json.load(handle).items()}


def raw_dir(data_dir: str | os.PathLike) -> Path:
    """Where the verified raw files live: torchvision's ``<data_dir>/FashionMNIST/raw``."""
    return Path(data_dir) / "FashionMNIST" / "raw"


def check_raw_bytes(data: bytes, spec: RawFile, verify_md5: bool = True) -> str | None:
    """Return what is wrong with ``data`` as the file ``spec``, or ``None`` when it is the official file."""
    if len(data) != spec.num_bytes:
        return f"has {len(data):,} bytes, expected {spec.num_bytes:,} (truncated or not this file)"
    magic, count = struct.unpack(">II", data[:8])
    expected_magic = IMAGE_MAGIC if spec.is_images else LABEL_MAGIC
    if magic != expected_magic or count != spec.count:
        return f"has header magic={magic} count={count}, expected magic={expected_magic} count={spec.count}"
    if spec.is_images and struct.unpack(">II", data[8:16]) != (IMAGE_SIZE, IMAGE_SIZE):
        return f"does not hold {IMAGE_SIZE}x{IMAGE_SIZE} images"
    if verify_md5 and hashlib.md5(data, usedforsecurity=False).hexdigest() != spec.md5:
        return "has the right size but the wrong checksum (corrupt, or another dataset such as MNIST)"
    return None


def cache_path(data_dir: str | os.PathLike, split: str) -> Path:
    """Decoded tensors live beside the raw files."""
    return raw_dir(data_dir).parent / "cache" / f"{split}.pt"


def decode_idx(data: bytes, spec: RawFile) -> Tensor:
    """Decode an IDX file's bytes: images to (N, 28, 28) uint8, labels to (N,) int64."""
    values = torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=spec.header_size)
    return values.view(-1, IMAGE_SIZE, IMAGE_SIZE) if spec.is_images else values.to(torch.int64)


def read_raw(data_dir: str | os.PathLike, spec: RawFile) -> Tensor:
    """Read and decode one prepared raw file, refusing one that is missing or has the wrong header or size."""
    path = raw_dir(data_dir) / spec.name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = None
    problem = "is missing" if data is None else check_raw_bytes(data, spec, verify_md5=False)
    if problem:
        raise DataUnavailableError(
            f"{path} {problem}. Run `fashion-lightning fit` (its prepare step finds, verifies and replaces the "
            "files) or call FashionMNISTDataModule.prepare_data() before setup()."
        )
    return decode_idx(data, spec)


def read_cache(data_dir: str | os.PathLike, split: str) -> tuple[Tensor, Tensor] | None:
    """The decoded tensors of ``split`` if the cache holds them for the expected files, else ``None``.

    The cache is written only from raw files that passed the checks, and records their md5.
    """
    path = cache_path(data_dir, split)
    specs = raw_files()
    count = specs[f"{split}_labels"].count
    try:
        cached = torch.load(path, weights_only=True)
        images, labels = cached["images"], cached["labels"]
    except Exception:  # noqa: BLE001 (a missing or damaged cache is rebuilt from the raw files)
        return None
    ok = (
        cached.get("md5") == specs[f"{split}_images"].md5
        and images.dtype == torch.uint8
        and tuple(images.shape) == (count, IMAGE_SIZE, IMAGE_SIZE)
        and labels.dtype == torch.int64
        and tuple(labels.shape) == (count,)
    )
    return (images, labels) if ok else None


def load_split(data_dir: str | os.PathLike, split: str) -> tuple[Tensor, Tensor]:
    """Images and labels of ``split`` ("train" or "test"), decoded once and cached as a tensor file."""
    cached = read_cache(data_dir, split)
    if cached is not None:
        return cached
    specs = raw_files()
    images_spec, labels_spec = specs[f"{split}_images"], specs[f"{split}_labels"]
    images, labels = read_raw(data_dir, images_spec), read_raw(data_dir, labels_spec)
    try:
        atomic_torch_save(
            {"images": images.clone(), "labels": labels, "md5": images_spec.md5}, cache_path(data_dir, split)
        )
    except OSError as err:  # the cache only saves decoding time: a read-only data folder works without it
        log.debug("could not write the decoded cache of %s: %s", split, err)
    return images, labels
