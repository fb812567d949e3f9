"""``StepProgressBar``: Lightning's TQDM bar, redrawn every so many optimizer steps whatever their grouping."""

from lightning.pytorch.callbacks import TQDMProgressBar

from fashion_lightning.data import step_batches


class StepProgressBar(TQDMProgressBar):
    """Lightning's ``TQDMProgressBar``, redrawn about every ``refresh_steps`` optimizer steps.

    Lightning's default bar redraws every training batch, ~0.3 ms a redraw. Its bar counts batches, and a batch here
    holds ``--data.steps_per_batch`` optimizer steps (by default 16 on a GPU, where an epoch takes ~0.25 s, and 64
    on a CPU), so no fixed ``refresh_rate`` suits both: this one follows the batches it sees. Beside the values
    logged with ``prog_bar=True`` it shows the module's ``latest_step_values`` (``train/loss_step``,
    ``train/acc_step``; see ``StepLog``).

    Args:
        refresh_steps: Optimizer steps between two redraws (where a batch holds more, every batch is drawn).
        process_position: As ``TQDMProgressBar``'s.
        leave: As ``TQDMProgressBar``'s.
    """

    def __init__(self, refresh_steps: int = 320, process_position: int = 0, leave: bool = False) -> None:
        super().__init__(process_position=process_position, leave=leave)
        self.refresh_steps = refresh_steps
        self.steps_per_batch = 1  # the most optimizer steps seen in one training batch

    @property
    def refresh_rate(self) -> int:
        """Batches between two redraws."""
        return max(1, self.refresh_steps // self.steps_per_batch)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.steps_per_batch = max(self.steps_per_batch, len(step_batches(batch)))
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def get_metrics(self, trainer, pl_module) -> dict[str, int | str | float | dict[str, float]]:
        return {**super().get_metrics(trainer, pl_module), **getattr(pl_module, "latest_step_values", {})}
