"""``LastCheckpoint``: the one writer of ``last.ckpt`` (every epoch, optionally every n steps)."""

import contextlib
from pathlib import Path

from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from fashion_lightning.atomic import rename_into_place, temporary_path


class LastCheckpoint(Checkpoint):
    """``last.ckpt``: written at the end of every epoch (after validation) and, optionally, every n steps.

    Lightning's ``ModelCheckpoint(save_top_k=0, save_last=True)`` writes nothing at epoch ends, so "last" is
    this small callback. ``fashion-lightning fit --ckpt_path last`` resumes from its file.

    A file becomes ``last.ckpt`` only once the values logged for the steps it holds are on disk: a resume from it
    drops what was logged after its step and never logs its own steps again, so a kill in between would leave a
    gap in the curves. The epoch's file is written beside it after validation and renamed when the next epoch
    starts (or training ends), since Lightning writes the epoch's training values after this callback's hook.

    Args:
        every_n_train_steps: Also write ``last.ckpt`` every n optimizer steps inside an epoch, so a killed run
            loses at most n steps. ``None``: only at the end of each epoch.
        dirpath: Directory of the checkpoint; ``None``: the run's ``checkpoints/`` folder (beside ``best.ckpt``).
    """

    FILE_NAME = "last.ckpt"

    def __init__(self, every_n_train_steps: int | None = None, dirpath: str | None = None) -> None:
        self.every_n_train_steps = every_n_train_steps
        self.dirpath = dirpath
        self._resolved_dir: Path | None = None
        self._saved_step = 0
        self._waiting = False  # a file written beside last.ckpt waits to be renamed into place

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.dirpath:
            self._resolved_dir = Path(self.dirpath)
            return
        # Beside best.ckpt: the ModelCheckpoint before this callback has resolved its folder (the run's own, also
        # for loggers without version_N folders, such as W&B's). Else the run's log_dir, a collective under DDP:
        # read here, where every process runs, and only here.
        best = [cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint) and cb.dirpath]
        if best:
            self._resolved_dir = Path(best[0].dirpath)
        else:
            self._resolved_dir = Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints"

    def path(self) -> Path:
        if self._resolved_dir is None:
            raise RuntimeError("LastCheckpoint.path() is known once the trainer has called setup()")
        return self._resolved_dir / self.FILE_NAME

    def on_train_start(self, trainer, pl_module) -> None:
        self._saved_step = trainer.global_step  # (after a resume: the checkpoint's step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        n = self.every_n_train_steps
        # A training batch may hold several optimizer steps (--data.steps_per_batch): save when a multiple of n
        # was passed. The epoch's last batch is covered by the end-of-epoch save: Lightning resumes a checkpoint
        # taken between the last batch and the end of the epoch by skipping an epoch.
        if n and trainer.global_step // n > self._saved_step // n and batch_idx + 1 < trainer.num_training_batches:
            self.save(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.save(trainer, now=False)  # validation of this epoch has run and logged by now

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.commit(trainer)  # (the previous epoch's training values were logged in between)

    def on_train_end(self, trainer, pl_module) -> None:
        self.commit(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        with contextlib.suppress(OSError):  # (the exception being handled says more than a failed rename)
            self.commit(trainer)  # a finished epoch's file is worth more than the gap it may leave

    def save(self, trainer, now: bool = True) -> bool:
        """Write the trainer's state (not in ``fast_dev_run`` or the sanity check: ``False``); it becomes
        ``last.ckpt`` at once (``now``) or when the next epoch starts or training ends."""
        if trainer.fast_dev_run or trainer.sanity_checking:
            return False
        # The module's on_save_checkpoint hands the step values it holds back to the loggers (StepLog).
        trainer.save_checkpoint(temporary_path(self.path()), weights_only=False)
        self._saved_step = trainer.global_step
        self._waiting = True
        if now:
            self.commit(trainer)
        return True

    def commit(self, trainer) -> bool:
        """Make the file waiting beside ``last.ckpt`` (an epoch's, see ``save``) ``last.ckpt``; ``False``: none."""
        if not self._waiting:
            return False
        self._waiting = False
        for logger in trainer.loggers:
            logger.save()  # (CSVLogger writes its rows here)
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.flush()  # (its events are written by a thread: wait for it)
        if trainer.is_global_zero:  # (the process that wrote the file)
            rename_into_place(temporary_path(self.path()), self.path())
        return True


def last_checkpoint_path(trainer) -> Path | None:
    """Where the run's ``last.ckpt`` goes (from its ``LastCheckpoint`` or ``ModelCheckpoint`` callback)."""
    last = last_checkpoint_callback(trainer)
    if last is not None:
        return last.path()
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath:
            return Path(callback.dirpath) / LastCheckpoint.FILE_NAME
    return None


def last_checkpoint_callback(trainer) -> LastCheckpoint | None:
    """The trainer's ``LastCheckpoint``, if it has one."""
    return next((cb for cb in trainer.checkpoint_callbacks if isinstance(cb, LastCheckpoint)), None)
