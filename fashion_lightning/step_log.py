"""``StepLog``: a group's per-step training values, written at optimizer steps (see ``TrainingSteps``)."""

from torch import Tensor


class StepLog:
    """The per-step values of one group of optimizer steps: ``train/loss_step`` and ``train/acc_step`` written to
    the loggers at every ``log_every_n_steps``-th optimizer step, the group's last ones shown on the progress bar.

    Lightning's own step logging runs once per Lightning step, at its count; this one runs at optimizer steps. It
    reads ``global_step`` and ``log_every_n_steps`` once per group and counts on from there: checked after every
    step, they cost ~17 us a step in a running fit on a 2-core CPU (Python's caches are cold after the step's
    matrix products). It calls ``log_dict`` (~0.6 ms a value there) at most once per group.

    Args:
        module: The ``FashionClassifier`` whose trainer counts the steps.
    """

    def __init__(self, module) -> None:
        self.module = module
        self.every = module.trainer.log_every_n_steps
        self.step = module.global_step  # optimizer steps counted before the group
        self.latest: dict[str, Tensor] | None = None

    def next_is_due(self) -> bool:
        """Count the optimizer step just taken; whether its values are to be written."""
        self.step += 1
        return self.every > 0 and self.step % self.every == 0

    def write(self, loss: Tensor, correct: Tensor, images: int) -> None:
        """Write one step's loss and accuracy at its optimizer step (``correct`` of ``images``, 0-d tensors)."""
        values = {"train/loss_step": loss.clone(), "train/acc_step": correct / images}  # clone: graph outputs change
        for logger in self.module.loggers:
            logger.log_metrics({name: float(value) for name, value in values.items()}, step=self.step)
        self.latest = values

    def show(self) -> None:
        """Put the group's last written values on the progress bar (``logger=False``: they are written above)."""
        if self.latest is not None:
            self.module.log_dict(self.latest, prog_bar=True, logger=False)
