"""Fashion-MNIST as in-memory uint8 tensors: decoding, the tensor cache, the split, the resumable loader."""

import itertools
import logging
import os
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from torchdata.stateful_dataloader import StatefulDataLoader

from fashion_lightning.atomic import atomic_torch_save
from fashion_lightning.errors import ConfigurationError, DataUnavailableError
from fashion_lightning.sources import RawFile, check_raw_bytes, raw_dir, raw_files

log = logging.getLogger(__name__)

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# Mean and std of the 60,000 training images scaled to [0, 1] (for users who normalise; the seed does not).
MEAN, STD = 0.2860, 0.3530
SPLITS = ("train", "test")


class FashionMNISTTensors(Dataset):
    """One split held as tensors: ``images`` (N, 28, 28) uint8 and ``labels`` (N,) int64.

    ``__getitems__`` serves a whole batch with one index operation, so the ``DataLoader`` never touches a
    single sample (no PIL, no per-sample transform, no collate of 64 tensors).
    """

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        images, labels = self.__getitems__([index])
        return images[0], labels[0]

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(indices, device=self.images.device)
        # (B, 28, 28) uint8 -> (B, 1, 28, 28) float in [0, 1], bit-identical to torchvision's ToTensor.
        images = self.images[index].unsqueeze(1).to(torch.float32).div_(255)
        return images, self.labels[index]

    def to(self, device: torch.device | str) -> "FashionMNISTTensors":
        return FashionMNISTTensors(self.images.to(device), self.labels.to(device))


def batch_as_is(batch):
    """``collate_fn`` for datasets whose ``__getitems__`` already returns a batch."""
    return batch


def cache_path(data_dir: str | os.PathLike, split: str) -> Path:
    """Decoded tensors live beside the raw files."""
    return raw_dir(data_dir).parent / "cache" / f"{split}.pt"


def decode_idx(data: bytes, spec: RawFile) -> Tensor:
    """Decode an IDX file's bytes: images to (N, 28, 28) uint8, labels to (N,) int64."""
    values = torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=spec.header_size)
    return values.view(-1, 28, 28) if spec.is_images else values.to(torch.int64)


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
        and tuple(images.shape) == (count, 28, 28)
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


def split_train_val(num_items: int, val_size: int, seed: int) -> tuple[Tensor, Tensor]:
    """Indices of train and held-out validation items; train keeps the files' order (the seed's, unshuffled)."""
    if not 0 <= val_size < num_items:
        raise ConfigurationError(
            f"--data.val_size must be between 0 and {num_items - 1} (the training images), got {val_size}."
        )
    order = torch.randperm(num_items, generator=torch.Generator().manual_seed(seed))
    return order[val_size:].sort().values, order[:val_size].sort().values


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (one shard per process, a new order per epoch from ``(seed, epoch)``) that can resume.

    Its epoch and position are part of the loader's ``state_dict``, which Lightning saves in checkpoints: a
    run restored mid-epoch continues with exactly the images the interrupted run had not seen yet. With one
    process it is a plain shuffled (or, with ``shuffle=False``, sequential) sampler. Being a
    ``DistributedSampler``, Lightning keeps it instead of injecting its own under DDP.

    Args:
        dataset: The dataset.
        num_replicas: Number of processes sharing the data.
        rank: This process's shard.
        shuffle: New random order each epoch; ``False`` keeps the files' order.
        seed: Base seed of the permutations; defaults to the run's seed (``PL_GLOBAL_SEED``).
    """

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed=None):
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) if seed is None else seed
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.yielded = 0
        self._resume_at = 0

    def __iter__(self):
        start, self._resume_at = self._resume_at, 0
        self.yielded = start
        for index in itertools.islice(super().__iter__(), start, None):
            self.yielded += 1
            yield index

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "yielded": self.yielded}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self._resume_at = state["epoch"], state["yielded"]


def make_loader(dataset: Dataset, batch_size: int, sampler: ResumableSampler, num_workers: int) -> DataLoader:
    """A ``StatefulDataLoader``: Lightning stores its position in checkpoints, so a resume continues exactly."""
    on_cpu = not (isinstance(dataset, FashionMNISTTensors) and dataset.images.is_cuda)
    return StatefulDataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        # Its own generator (worker base seeds only): creating an iterator never advances the global RNG,
        # whose state a resumed run restores.
        generator=torch.Generator().manual_seed(0),
        collate_fn=batch_as_is,
        # Batches are one index op on memory-resident tensors: workers only add IPC, so 0 is the default.
        num_workers=num_workers if on_cpu else 0,
        persistent_workers=num_workers > 0 and on_cpu,
        pin_memory=False,
    )
