"""Checkpoint files: crash-safe writes, safe loading with clear errors, compatibility with a model."""

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from fashion_lightning.atomic import atomic_torch_save
from fashion_lightning.errors import CheckpointError, first_line


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file in its own directory, fsync it, then rename it into place.

    Lightning's default goes through a temporary file in ``$TMPDIR``: across filesystems a kill during the
    final copy leaves a truncated checkpoint with the previous one already gone, and nothing is fsynced.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        try:
            atomic_torch_save(checkpoint, path)  # leftovers of a killed write are removed at the next fit start
        except OSError as err:
            raise CheckpointError(
                f"Could not write the checkpoint '{path}': {err.strerror or err}. Nothing was replaced: the "
                f"previous checkpoints in {Path(path).parent} are intact. Free space (or make the folder writable), "
                "then resume with --ckpt_path last."
            ) from err


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; raise ``CheckpointError`` saying what is wrong and what to do."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"No checkpoint at '{path}'. A run's checkpoints are in lightning_logs/<name>/version_N/checkpoints/ "
            "(best.ckpt, last.ckpt); use --ckpt_path last to resume the newest run."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - whatever fails to decode (a text file gives an IndexError)
        if not zipfile.is_zipfile(path):  # torch.save writes a zip archive: these bytes are something else
            raise CheckpointError(_damaged(path, "not the zip archive that torch.save writes")) from err
        if isinstance(err, pickle.UnpicklingError):
            raise CheckpointError(
                f"'{path}' contains pickled Python objects that a weights-only load refuses (they could run code "
                f"when loaded), so nothing was loaded from it. Use checkpoints written by fashion-lightning; if you "
                f"wrote this file yourself and trust it, re-save it without custom objects. ({first_line(err)})"
            ) from err
        raise CheckpointError(_damaged(path, err)) from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"'{path}' is not a Lightning checkpoint (it has no 'state_dict'). A plain model.pth holds only the "
            "MLP's weights: load it with MLP().load_state_dict(torch.load(path, weights_only=True))."
        )
    return checkpoint


def check_compatible(checkpoint: dict[str, Any], model: torch.nn.Module, path: str | Path) -> None:
    """Raise ``CheckpointError`` when the checkpoint's weights do not fit ``model``'s parameter names and shapes."""
    expected = model.state_dict()
    found = checkpoint["state_dict"]
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong_shape = [
        f"{name} {tuple(found[name].shape)} vs {tuple(expected[name].shape)}"
        for name in sorted(set(found) & set(expected))
        if tuple(found[name].shape) != tuple(expected[name].shape)
    ]
    if missing or unexpected or wrong_shape:
        details = "; ".join(
            part
            for part in (
                f"missing: {', '.join(missing[:4])}" if missing else "",
                f"unexpected: {', '.join(unexpected[:4])}" if unexpected else "",
                f"shape (checkpoint vs model): {', '.join(wrong_shape[:4])}" if wrong_shape else "",
            )
            if part
        )
        raise CheckpointError(
            f"'{path}' belongs to another model: its weights do not fit this one ({details}). Use a checkpoint "
            "of the same --model.net and --model.hidden_dims, or drop the --model flags so the checkpoint's own "
            "hyperparameters are used."
        )


def _damaged(path: Path, err: BaseException | str) -> str:
    return (
        f"'{path}' is damaged or not a PyTorch checkpoint ({first_line(err)}; truncated by a crash or a partial "
        "copy?). Use another checkpoint of the run, e.g. best.ckpt or last.ckpt beside it."
    )
