"""Helpers shared by the tests: CLI arguments for the tiny fixture, run-folder paths, weight comparisons, callbacks
that interrupt a run, and ``CapturedSteps`` planning on a CPU."""

import os
import signal
import socket
import sys
import time
import zlib

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.loggers import Logger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fashion_lightning.cuda_graph import CapturedSteps
from fashion_lightning.tiny_fashion import TEST_COUNT, TRAIN_COUNT

__all__ = [
    "CtrlCInSetup",
    "PlannedOnly",
    "SignalInEpochOne",
    "SigkillAfterLastCheckpoint",
    "VersionedElsewhere",
    "TEST_COUNT",
    "TRAIN_COUNT",
    "assert_same_weights",
    "cli_args",
    "fit_command",
    "free_port",
    "last_ckpt",
    "png_bomb",
    "scalar_steps",
    "wait_for",
    "weights",
    "without_logger",
]


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


def without_logger_dir(args: list[str]) -> list[str]:
    """``args`` without the logger's ``save_dir``: the logger then writes under ``--trainer.default_root_dir``."""
    return [a for a in args if not a.startswith("--trainer.logger.init_args.save_dir")]


def without_logger(fashion, root, *extra: str) -> list[str]:
    """``cli_args`` for a fit with no logger: Lightning then writes its checkpoints to ``<root>/checkpoints``."""
    args = [a for a in cli_args(fashion) if not a.startswith(("--trainer.logger", "--trainer.default_root_dir"))]
    return [*args, "--trainer.logger=false", f"--trainer.default_root_dir={root}", *extra]


# Dropout and augmentation make the global RNG matter: a resume is exact only if its state comes back too.
# Two optimizer steps per training batch: last.ckpt is written mid-epoch, between groups of steps.
RANDOM_RUN = ["--model.dropout=0.2", "--data.augment=true", "--last.every_n_train_steps=1", "--data.steps_per_batch=2"]


def fit_command(fashion, logs, *extra):
    args = cli_args(fashion, *RANDOM_RUN, *extra)
    args = [a.replace(str(fashion.logs), str(logs)) for a in args]
    return [sys.executable, "-m", "fashion_lightning", "fit", *args]


def last_ckpt(logs, version=0):
    return logs / "fashion" / f"version_{version}" / "checkpoints" / "last.ckpt"


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def assert_same_weights(path_a, path_b):
    a, b = weights(path_a), weights(path_b)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def scalar_steps(logs, tag, version=0):
    events = EventAccumulator(str(logs / "fashion" / f"version_{version}"))
    events.Reload()
    return [event.step for event in events.Scalars(tag)]


def wait_for(path, process, timeout=120):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, "the run ended before writing a checkpoint"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A real, valid 8-bit grayscale PNG of width x height black pixels (~400 MB decoded, ~0.4 MB encoded)."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + pixels
    payload = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", payload) + chunk(b"IEND", b"")


class SignalInEpochOne(L.Callback):
    """Send ``signal_name`` to this process in epoch 1: as training batch ``batch_idx`` starts (-1: the epoch's last),
    or, with ``in_validation``, as the epoch's validation starts. (``--trainer.callbacks+=tests.helpers...``)"""

    def __init__(self, signal_name: str = "SIGINT", batch_idx: int = -1, in_validation: bool = False) -> None:
        self.signum, self.batch_idx, self.in_validation = getattr(signal, signal_name), batch_idx, in_validation

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        chosen = self.batch_idx % trainer.num_training_batches
        if not self.in_validation and trainer.current_epoch == 1 and batch_idx == chosen:
            os.kill(os.getpid(), self.signum)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.in_validation and trainer.current_epoch == 1 and batch_idx == 0 and not trainer.sanity_checking:
            os.kill(os.getpid(), self.signum)


class ImagesPerEpoch(L.Callback):
    """Counts the training images of each epoch (``images[epoch]``), whatever the batches' grouping."""

    def __init__(self) -> None:
        self.images: dict[int, int] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        steps = batch if isinstance(batch, list) else [batch]  # a group of (images, labels), or one
        epoch = trainer.current_epoch
        self.images[epoch] = self.images.get(epoch, 0) + sum(len(labels) for _, labels in steps)


class SigkillAfterLastCheckpoint(Checkpoint):
    """SIGKILL in epoch 1 right after the checkpoint callbacks' ``on_train_batch_end`` of batch ``batch_idx`` (where
    ``--last.every_n_train_steps`` writes last.ckpt), or with -1 right after their ``on_train_epoch_end`` (where
    last.ckpt was written at the epoch's end), before Lightning writes the epoch's training values."""

    def __init__(self, batch_idx: int = -1) -> None:
        self.batch_idx = batch_idx

    def on_fit_start(self, trainer, pl_module) -> None:
        # Last among the callbacks, so after LastCheckpoint (a new list: Lightning is iterating the old one).
        trainer.callbacks = [callback for callback in trainer.callbacks if callback is not self] + [self]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.current_epoch == 1 and batch_idx == self.batch_idx:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 1 and self.batch_idx == -1:
            os.kill(os.getpid(), signal.SIGKILL)


class LogsGradientNorm(L.Callback):
    """Lightning's recipe for watching gradients: their norm logged in ``on_before_optimizer_step``, at every step."""

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        pl_module.log("grad/norm", torch.cat([p.grad.flatten() for p in pl_module.parameters()]).norm())


class RecordMatmulPrecision(L.Callback):
    """Appends the float32 matmul precision that each process trains with to ``path`` (a spawned worker's too)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_start(self, trainer, pl_module) -> None:
        with open(self.path, "a") as record:
            record.write(torch.get_float32_matmul_precision() + "\n")


class CtrlCInSetup(L.Callback):
    """Ctrl-C while a fit sets up, before training (Lightning turns it into an exit with status 1): the ``at_fit``-th
    fit of this process since ``fits`` was set to 0 (2: a sweep's second trial, each trial building its own)."""

    fits = 0

    def __init__(self, at_fit: int = 1) -> None:
        self.at_fit = at_fit

    def setup(self, trainer, pl_module, stage: str) -> None:
        type(self).fits += 1
        if type(self).fits == self.at_fit:
            os.kill(os.getpid(), signal.SIGINT)


class VersionedElsewhere(Logger):
    """A logger like W&B's or MLflow's: it takes ``save_dir``, ``name`` and ``version`` but keeps no version_N
    folders."""

    def __init__(self, save_dir: str = ".", name: str = "fashion", version: str | None = None) -> None:
        super().__init__()
        self._save_dir, self._name, self._version = save_dir, name, version

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str | None:
        return self._version

    @property
    def save_dir(self) -> str:
        return self._save_dir

    def log_metrics(self, metrics, step=None) -> None:
        pass

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass


class PlannedOnly(CapturedSteps):
    """``CapturedSteps``' real planning (warm-ups, captures, replays) with every group run eagerly, on a CPU; a
    capture only records what a real one would. ``seen`` lists the plans (the class's list: instances made inside a
    fit append to it)."""

    seen: list[str] = []

    def plan(self, batches):
        PlannedOnly.seen.append(super().plan(batches))
        return PlannedOnly.seen[-1]

    def _eager(self, batches, side_stream=False):
        return super()._eager(batches)

    def _capture(self, batches):
        self.graph, self._lrs = "captured", self._current_lrs()

    def _replay(self, batches):
        self.replays += 1
        return self._eager(batches)
