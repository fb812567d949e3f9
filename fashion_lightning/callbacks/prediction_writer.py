"""``PredictionWriter``: ``predict`` results as a CSV with class names (joins only the runs that predict)."""

import csv
import io
import tempfile
from pathlib import Path

from lightning.pytorch.callbacks import BasePredictionWriter

from fashion_lightning.atomic import atomic_write_bytes
from fashion_lightning.data import CLASS_NAMES
from fashion_lightning.errors import ConfigurationError


class PredictionWriter(BasePredictionWriter):
    """Write ``predict`` results to a CSV: index, predicted class, its probability, true class when known.

    Args:
        path: CSV file to write; ``None``: ``predictions.csv`` in the run's log folder (the checkpoint's run).
            Under DDP each process writes ``<stem>.rank<N>.csv``.
        overwrite: Replace the file if it exists (otherwise that is an error, raised before predicting).
    """

    def __init__(self, path: str | None = None, overwrite: bool = False) -> None:
        super().__init__(write_interval="epoch")
        self.path = path
        self.overwrite = overwrite

    def csv_path(self, trainer) -> Path:
        """Where this process writes its predictions."""
        path = Path(self.path or Path(trainer.log_dir or ".") / "predictions.csv")
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        return path

    def on_predict_start(self, trainer, pl_module) -> None:
        path = self.csv_path(trainer)
        if path.is_dir():
            raise ConfigurationError(
                f"--predictions.path {path} is a folder; nothing was predicted. Give a file in it, e.g. "
                f"--predictions.path {path / 'predictions.csv'}."
            )
        if path.exists() and not self.overwrite:
            raise ConfigurationError(
                f"{path} already exists (an earlier predict's); nothing was predicted or written. Pass "
                "--predictions.overwrite true to replace it, or --predictions.path FILE to write elsewhere."
            )
        try:  # an unwritable place fails now, not after the predictions are made
            path.parent.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=path.parent).close()
        except OSError as err:
            raise _not_written(path, err, "nothing was predicted") from None

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        text = io.StringIO(newline="")
        writer = csv.writer(text)
        writer.writerow(["index", "predicted", "probability", "actual"])
        for batch, indices in zip(predictions, batch_indices[0] if batch_indices else [], strict=False):
            labels = batch.get("label")
            for row, index in enumerate(indices):
                actual = CLASS_NAMES[int(labels[row])] if labels is not None else ""
                probability = float(batch["probability"][row])
                writer.writerow([index, CLASS_NAMES[int(batch["predicted"][row])], f"{probability:.6f}", actual])
        path = self.csv_path(trainer)
        try:
            atomic_write_bytes(path, text.getvalue().encode())  # a crash mid-write leaves the old file, if any
        except OSError as err:
            raise _not_written(path, err, "nothing was replaced") from None
        print(f"Wrote {sum(len(b['predicted']) for b in predictions):,} predictions to {path}")


def _not_written(path: Path, err: OSError, what_happened: str) -> ConfigurationError:
    return ConfigurationError(
        f"Cannot write the predictions to {path} ({err.strerror or err}); {what_happened}. Pass a writable "
        "--predictions.path FILE with free space."
    )
