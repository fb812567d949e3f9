"""``StepLog``: the per-step training values, written at optimizer steps (see ``TrainingSteps``)."""

import math
from collections.abc import Callable, Sequence

import torch
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch import Tensor

from fashion_lightning.host_copy import HostCopy


class StepLog:
    """The per-step values of the training steps: ``train/loss_step`` and ``train/acc_step`` written to the loggers
    at every ``log_every_n_steps``-th optimizer step, the last ones kept in the module's ``latest_step_values`` for
    the progress bar (``StepProgressBar`` shows them).

    Lightning's own step logging runs once per Lightning step, at its count; this one runs at optimizer steps. It
    reads ``global_step`` and ``log_every_n_steps`` once per group and counts on from there: checked after every
    step, they cost ~17 us a step in a running fit on a 2-core CPU (Python's caches are cold after the step's
    matrix products). Nor does it go through ``self.log``, which costs ~0.6 ms a value there (Lightning moves its
    whole result record to the device on every call), as much as the rest of the group's bookkeeping.

    Values are read a group late: on a GPU, reading a loss at once would wait for the steps queued before it, so a
    group's values travel as a ``HostCopy`` and are written once a later group finds them on the host, at the
    epoch's end, or before a checkpoint (``flush``), which a resume continues from. A run stopped by an error may
    leave the values of its steps after the last checkpoint unwritten; a resume runs those steps again.

    Args:
        module: The ``FashionClassifier`` whose trainer counts the steps.
    """

    def __init__(self, module) -> None:
        self.module = module
        self.every = 0
        self.step = 0
        # (optimizer steps, images per step, their (n, 2) [loss, correct] on their way to the host)
        self._pending: list[tuple[list[int], list[int], HostCopy]] = []

    def start_group(self, step: int) -> None:
        """Count on from ``step``, ``global_step`` before a group's updates; read ``log_every_n_steps``."""
        self.every = self.module.trainer.log_every_n_steps
        self.step = step

    def check_interval(self) -> None:
        """Warn when an epoch holds fewer optimizer steps than ``log_every_n_steps`` (no step values within it)."""
        trainer = self.module.trainer
        steps_in = getattr(trainer.datamodule, "train_steps_in", None)  # (a data module of one step a batch: None)
        batches = steps_in(trainer.num_training_batches) if steps_in else trainer.num_training_batches
        # One update per accumulate_grad_batches batches, and one for the epoch's last, incomplete accumulation.
        steps = math.ceil(batches / self.module.hparams.accumulate_grad_batches)
        every = trainer.log_every_n_steps
        if trainer.loggers and not trainer.fast_dev_run and steps < every:
            rank_zero_warn(
                f"An epoch holds {steps} optimizer steps, fewer than --trainer.log_every_n_steps {every}: "
                f"train/loss_step and train/acc_step are written every {every} optimizer steps. Set a lower "
                "--trainer.log_every_n_steps to see them within an epoch.",
                category=PossibleUserWarning,
            )

    def write_due(
        self,
        losses: Sequence[Tensor],
        batches: Sequence[tuple[Tensor, Tensor]],
        correct_of: Callable[[int], Tensor],
        updated: Sequence[bool] | None = None,
    ) -> None:
        """Count the group's updates, keep the values of each ``log_every_n_steps``-th, and write the values of
        earlier groups that have reached the host.

        Args:
            losses: The group's 0-d losses, one per batch (a list, or a (K,) tensor).
            batches: The group's ``(images, labels)``.
            correct_of: The correct predictions of the i-th batch (0-d tensor); called for the kept steps only.
            updated: Which batches ended in an update (with gradient accumulation); ``None``: all.
        """
        self.flush(wait=False)
        steps, images, values = [], [], []
        for index, (_, labels) in enumerate(batches):
            if updated is not None and not updated[index]:
                continue
            self.step += 1
            if self.every > 0 and self.step % self.every == 0:
                steps.append(self.step)
                images.append(len(labels))
                values.append(torch.stack((losses[index].float(), correct_of(index).float())))
        if steps:
            self._pending.append((steps, images, HostCopy(torch.stack(values))))

    def flush(self, wait: bool = True) -> None:
        """Write the kept values in step order; with ``wait=False`` only those already on the host."""
        while self._pending:
            steps, images, values = self._pending[0]
            if not (wait or values.ready()):
                return
            del self._pending[0]
            for step, count, (loss, correct) in zip(steps, images, values.wait().tolist(), strict=True):
                self._write(step, {"train/loss_step": loss, "train/acc_step": correct / count})

    def _write(self, step: int, values: dict[str, float]) -> None:
        for logger in self.module.loggers:
            logger.log_metrics(values, step=step)
        self.module.latest_step_values = values
