"""``StepLog``: a group's per-step training values, written at optimizer steps (see ``TrainingSteps``)."""

from collections.abc import Callable, Sequence

from torch import Tensor


class StepLog:
    """The per-step values of one group of optimizer steps: ``train/loss_step`` and ``train/acc_step`` written to
    the loggers at every ``log_every_n_steps``-th optimizer step, the last ones kept in the module's
    ``latest_step_values`` for the progress bar (``StepProgressBar`` shows them).

    Lightning's own step logging runs once per Lightning step, at its count; this one runs at optimizer steps. It
    reads ``global_step`` and ``log_every_n_steps`` once per group and counts on from there: checked after every
    step, they cost ~17 us a step in a running fit on a 2-core CPU (Python's caches are cold after the step's
    matrix products). Nor does it go through ``self.log``, which costs ~0.6 ms a value there (Lightning moves its
    whole result record to the device on every call), as much as the rest of the group's bookkeeping.

    Args:
        module: The ``FashionClassifier`` whose trainer counts the steps.
    """

    def __init__(self, module) -> None:
        self.module = module
        self.every = module.trainer.log_every_n_steps
        self.step = module.global_step  # optimizer steps counted before the group

    def write_due(
        self,
        losses: Sequence[Tensor],
        batches: Sequence[tuple[Tensor, Tensor]],
        correct_of: Callable[[int], Tensor],
        updated: Sequence[bool] | None = None,
    ) -> None:
        """Count the group's updates and write the values of each ``log_every_n_steps``-th.

        Args:
            losses: The group's 0-d losses, one per batch (a list, or a (K,) tensor).
            batches: The group's ``(images, labels)``.
            correct_of: The correct predictions of the i-th batch (0-d tensor); called for the written steps only.
            updated: Which batches ended in an update (with gradient accumulation); ``None``: all.
        """
        for index, (_, labels) in enumerate(batches):
            if updated is not None and not updated[index]:
                continue
            self.step += 1
            if self.every > 0 and self.step % self.every == 0:
                self.write(losses[index], correct_of(index), len(labels))

    def write(self, loss: Tensor, correct: Tensor, images: int) -> None:
        """Write one step's loss and accuracy at its optimizer step (``correct`` of ``images``, 0-d tensors)."""
        values = {"train/loss_step": float(loss), "train/acc_step": float(correct) / images}
        for logger in self.module.loggers:
            logger.log_metrics(values, step=self.step)
        self.module.latest_step_values = values
