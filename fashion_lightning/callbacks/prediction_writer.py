"""``PredictionWriter``: ``predict`` results as a CSV with class names (joins only the runs that predict)."""

import csv
from pathlib import Path

from lightning.pytorch.callbacks import BasePredictionWriter

from fashion_lightning.data import CLASS_NAMES


class PredictionWriter(BasePredictionWriter):
    """Write ``predict`` results to a CSV: index, predicted class, its probability, true class when known.

    Args:
        path: CSV file to write; ``None``: ``predictions.csv`` in the run's log folder (the checkpoint's run).
            Under DDP each process writes ``<stem>.rank<N>.csv``.
    """

    def __init__(self, path: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.path = path

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        path = Path(self.path or Path(trainer.log_dir or ".") / "predictions.csv")
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["index", "predicted", "probability", "actual"])
            for batch, indices in zip(predictions, batch_indices[0] if batch_indices else [], strict=False):
                labels = batch.get("label")
                for row, index in enumerate(indices):
                    actual = CLASS_NAMES[int(labels[row])] if labels is not None else ""
                    probability = float(batch["probability"][row])
                    writer.writerow([index, CLASS_NAMES[int(batch["predicted"][row])], f"{probability:.6f}", actual])
        print(f"Wrote {sum(len(b['predicted']) for b in predictions):,} predictions to {path}")
