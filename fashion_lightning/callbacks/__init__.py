"""The Trainer callbacks, one concern per module; the CLI always installs all but the prediction writer (for
`predict` only), the progress bar (unless another is configured) and the matmul precision (when it is given)."""

from fashion_lightning.callbacks.last_checkpoint import LastCheckpoint
from fashion_lightning.callbacks.matmul_precision import MatmulPrecision
from fashion_lightning.callbacks.monitoring import EpochTimer, FiniteLossGuard, RunSummary
from fashion_lightning.callbacks.prediction_writer import PredictionWriter
from fashion_lightning.callbacks.progress_bar import StepProgressBar
from fashion_lightning.callbacks.resume import ResumableRun
from fashion_lightning.callbacks.tensorboard_extras import TensorBoardExtras

__all__ = [
    "EpochTimer",
    "FiniteLossGuard",
    "LastCheckpoint",
    "MatmulPrecision",
    "PredictionWriter",
    "ResumableRun",
    "RunSummary",
    "StepProgressBar",
    "TensorBoardExtras",
]
