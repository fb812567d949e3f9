"""``FashionMNISTDataModule``: finds and verifies the files, splits train/val, serves batch-64 loaders."""

import logging
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader, SequentialSampler

from fashion_lightning.augmentation import random_crop_flip
from fashion_lightning.batch_counting import Grouping, choose_grouping, steps_per_epoch
from fashion_lightning.data import (
    CLASS_NAMES,
    IMAGE_SHAPE,
    FashionMNISTTensors,
    ResumableSampler,
    batch_as_is,
    make_loader,
    split_into_steps,
    split_train_val,
    step_batches,
)
from fashion_lightning.errors import DataUnavailableError
from fashion_lightning.hparam_checks import check_values, warn_unused
from fashion_lightning.raw_files import SPLITS, cache_path, load_split, read_cache
from fashion_lightning.sources import ensure_raw_files

log = logging.getLogger(__name__)
# name: (what it takes effect with, test of the hyperparameters): see hparam_checks.warn_unused
TAKES_EFFECT_WITH = {"augment_shift": ("--data.augment true", lambda hp: hp["augment"])}
# name: (test of a value that is set, what it must be): see hparam_checks.check_values
AT_LEAST_1 = (lambda v: isinstance(v, int) and v >= 1, "an integer of at least 1")
AT_LEAST_0 = (lambda v: isinstance(v, int) and v >= 0, "an integer of at least 0")
VALID_VALUES = {
    **dict.fromkeys(("batch_size", "eval_batch_size", "steps_per_batch"), AT_LEAST_1),
    **dict.fromkeys(("num_workers", "augment_shift"), AT_LEAST_0),
}


class FashionMNISTDataModule(L.LightningDataModule):
    """Fashion-MNIST (60,000 train and 10,000 test images of 28x28 clothing, 10 classes).

    ``prepare_data`` finds, verifies and if needed downloads the four files (once per node); ``setup`` holds
    out ``val_size`` training images with a fixed generator and keeps the official 10,000 as the test split.

    Args:
        data_dir: Directory holding (or receiving) ``FashionMNIST/raw`` and the decoded tensor cache.
        batch_size: Training batch size per device (the seed's 64). Under DDP the global batch is
            ``batch_size * world_size``.
        val_size: Training images held out for validation; ``0`` validates on the test split like the seed.
        shuffle: Reshuffle the training images every epoch (the seed does not).
        num_workers: Worker processes of the training loader, for a dataset on the host. Batches are one index
            operation on in-memory tensors, so 0 is fastest here; workers only help when augmentation is expensive.
        eval_batch_size: Batch size for validation, test and predict (no gradients, so larger is faster).
        source_dir: A directory with a copy of the four files (``.gz`` or raw), tried before downloading.
            ``$FASHION_MNIST_DIR`` and ``/usr/share/datasets/fashion-mnist`` are tried after it.
        download: Download from torchvision's mirror when no local copy is found.
        on_device: Keep the whole dataset on the accelerator (55 MB of bytes), so no batch crosses PCIe.
            ``None``: on for GPUs, off for CPU.
        split_seed: Seed of the generator that picks the validation images (independent of the run's seed).
        augment: Augment training batches on their device: random horizontal flips and shifts.
        augment_shift: Largest random shift in pixels when ``augment`` is on (0: flips only, which suits
            the MLP, whose inputs are not translation-invariant).
        predict_split: Which images ``predict`` runs on.
        steps_per_batch: Optimizer steps per Lightning training step: each training batch is a list of this many
            batches of ``batch_size`` (same images, order and updates as one step each), so Lightning's per-step
            work is paid once per group. ``global_step``, ``--trainer.max_steps``, ``--trainer.log_every_n_steps``
            and ``--last.every_n_train_steps`` still count optimizer steps; the progress bar and the options that
            count batches (``limit_train_batches``, ``overfit_batches``, ``val_check_interval``,
            ``--checkpoint.every_n_train_steps``) count groups, and a stop signal or ``last.ckpt`` every n steps
            takes effect at a group's end. ``None``: 16 on a GPU, 64 on a CPU (with a fractional
            ``val_check_interval``, laid out to validate after the same steps as without groups), and 1 when an
            option that counts batches is set or a callback acts on every training batch (a learning-rate search,
            weight averaging, SpikeDetection, the monitors that log every ``log_every_n_steps`` batches, or your
            own with a training-batch or optimizer-step hook).
    """

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 64,
        val_size: int = 5000,
        shuffle: bool = True,
        num_workers: int = 0,
        eval_batch_size: int = 1000,
        source_dir: str | None = None,
        download: bool = True,
        on_device: bool | None = None,
        split_seed: int = 42,
        augment: bool = False,
        augment_shift: int = 2,
        predict_split: Literal["test", "val", "train"] = "test",
        steps_per_batch: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_values(self.hparams, VALID_VALUES, "data")
        self.datasets: dict[str, FashionMNISTTensors] = {}
        self.train_grouping = Grouping(1)  # how the training loader groups the steps, once it is built
        self._train_steps = 0  # this process's optimizer steps in a whole epoch, once the loader is built
        self._said: set[str] = set()  # the lines said this fit (a loader reloaded each epoch decides again)

    @property
    def num_classes(self) -> int:
        return len(CLASS_NAMES)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return IMAGE_SHAPE

    def prepare_data(self) -> None:
        hp = self.hparams
        try:
            ensure_raw_files(hp.data_dir, hp.source_dir, hp.download)
        except DataUnavailableError as err:
            # A raw file went bad and nothing can replace it; the decoded tensors, written from verified files
            # and checked against their md5, still hold the whole dataset.
            if not all(read_cache(hp.data_dir, split) is not None for split in SPLITS):
                raise
            log.warning(
                "%s\nUsing the decoded cache in %s instead (it was written from verified files).",
                err,
                cache_path(hp.data_dir, "train").parent,
            )
            return
        for split in SPLITS:
            load_split(hp.data_dir, split)  # decode once and write the cache, on one process per node

    def setup(self, stage: str) -> None:
        if stage == "fit":
            warn_unused(self.hparams, FashionMNISTDataModule, TAKES_EFFECT_WITH, "data")
            self._said = set()
        if self.datasets:
            return
        hp = self.hparams
        train_images, train_labels = load_split(hp.data_dir, "train")
        test_images, test_labels = load_split(hp.data_dir, "test")
        train_idx, val_idx = split_train_val(len(train_labels), hp.val_size, hp.split_seed)
        test = FashionMNISTTensors(test_images, test_labels)
        self.datasets = {
            "train": FashionMNISTTensors(train_images[train_idx], train_labels[train_idx]),
            "val": FashionMNISTTensors(train_images[val_idx], train_labels[val_idx]) if hp.val_size else test,
            "test": test,
        }
        if self._keep_on_device():
            device = self.trainer.strategy.root_device
            self.datasets = {name: ds.to(device) for name, ds in self.datasets.items()}
        self._log_layout()

    def _keep_on_device(self) -> bool:
        if self.trainer is None:
            return False
        accelerator_is_gpu = self.trainer.strategy.root_device.type == "cuda"
        return accelerator_is_gpu if self.hparams.on_device is None else self.hparams.on_device

    def _log_layout(self) -> None:
        sizes = ", ".join(f"{name} {len(ds):,}" for name, ds in self.datasets.items())
        world = self.trainer.world_size if self.trainer is not None else 1
        global_batch = f"; global batch {self.hparams.batch_size * world} over {world} devices" if world > 1 else ""
        rank_zero_info(f"Fashion-MNIST: {sizes} images; batch {self.hparams.batch_size}{global_batch}.")

    def train_dataloader(self) -> DataLoader:
        hp, dataset = self.hparams, self.datasets["train"]
        grouping = self.train_grouping = self.grouping()  # (decided once per loader: it may say why)
        self._train_steps = steps_per_epoch(len(dataset), self._shard()[0], hp.batch_size)
        if self.trainer is not None and self.trainer.overfit_batches:
            # Lightning's overfit mode swaps any sampler but a SequentialSampler for one of single indices: serve
            # the first batches in order its way (a debugging run: no grouping, no mid-epoch resume).
            return DataLoader(dataset, hp.batch_size, sampler=SequentialSampler(dataset), collate_fn=batch_as_is)
        workers = hp.num_workers
        if workers and dataset.images.is_cuda:  # (workers cannot hand out CUDA tensors)
            rank_zero_warn(
                f"--data.num_workers {workers} has no effect with the dataset on the GPU: a batch is one index "
                "operation there, done in the main process. --data.on_device false keeps the dataset on the host."
            )
            workers = 0
        return make_loader(dataset, self._train_sampler(grouping), workers)  # one (images, labels) pair per group

    def _train_sampler(self, grouping: Grouping) -> ResumableSampler:
        hp, (world, rank) = self.hparams, self._shard()
        sizes = None if grouping.layout is None else [group * hp.batch_size for group in grouping.layout]
        return ResumableSampler(
            self.datasets["train"], hp.batch_size * grouping.steps, world, rank, shuffle=hp.shuffle, sizes=sizes
        )

    def train_batches_within(self, images: int) -> int:
        """Training batches of this fit's layout that end within the first ``images`` of this process's epoch:
        Lightning's count of batches for an epoch resumed at that point (``ResumableRun``)."""
        return self._train_sampler(self.grouping()).batches_within(images)

    def steps_per_batch(self) -> int:
        """Optimizer steps per training batch (the most, where they differ): the option, or the automatic choice."""
        return self.grouping().steps

    def grouping(self) -> Grouping:
        """How the optimizer steps are grouped into training batches (``batch_counting.choose_grouping``)."""
        images = len(self.datasets["train"]) if self.datasets else 0
        hp = self.hparams
        return choose_grouping(self.trainer, hp.steps_per_batch, images, hp.batch_size, self._say_once)

    def train_steps_in(self, batches: int) -> int:
        """Optimizer steps in the first ``batches`` training batches of an epoch, on this process."""
        if self.train_grouping.layout is not None:
            return sum(self.train_grouping.layout[:batches])
        return min(batches * self.train_grouping.steps, self._train_steps)  # (an epoch's last group: what is left)

    def _say_once(self, line: str) -> None:
        if line not in self._said:
            self._said.add(line)
            rank_zero_info(line)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.datasets["val"])

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.datasets["test"])

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader(self.datasets[self.hparams.predict_split])

    def _eval_loader(self, dataset: FashionMNISTTensors) -> DataLoader:
        # Under DDP, Lightning's default sampler pads the last shard with repeated images; this one does not,
        # so test metrics are over exactly the 10,000 official images.
        world, rank = self._shard()
        sampler = (
            UnrepeatedDistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=False) if world > 1 else None
        )
        return DataLoader(
            dataset,
            batch_size=self.hparams.eval_batch_size,
            sampler=sampler,
            collate_fn=batch_as_is,
            generator=torch.Generator(),  # like the training loader: evaluation never advances the global RNG
        )

    def _shard(self) -> tuple[int, int]:
        """(processes, this process's rank): (1, 0) without a trainer."""
        return (self.trainer.world_size, self.trainer.global_rank) if self.trainer is not None else (1, 0)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Cut a training batch into its optimizer steps (after the transfer, which then moves two tensors, not
        2 x steps) and augment each step's images."""
        training_batch = self.trainer is not None and self.trainer.training and isinstance(batch, (tuple, list))
        if not training_batch:  # (nor the model summary's example input)
            return batch
        batch = split_into_steps(batch, self.hparams.batch_size)
        if not self.hparams.augment:
            return batch
        grouped = step_batches(batch) is batch  # a list of optimizer-step batches
        shift = self.hparams.augment_shift
        augmented = [(random_crop_flip(images, padding=shift), labels) for images, labels in step_batches(batch)]
        return augmented if grouped else augmented[0]
