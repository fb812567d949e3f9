"""``TensorBoardExtras``: what ``self.log`` cannot show: confusion matrices, misclassified images, HParams.

Everything here is rendered once per validation or test (never per step), on process 0 only.
"""

import io

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image
from tensorboard.compat.proto.summary_pb2 import Summary
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from fashion_lightning._compat import tensorboard_file_writer
from fashion_lightning.data import CLASS_NAMES
from fashion_lightning.plots import confusion_matrix_image, image_grid

HPARAM_METRICS = ("val/acc_best", "test/acc", "test/loss")


class TensorBoardExtras(L.Callback):
    """Confusion matrix and misclassified images per validation/test, sample inputs, HParams.

    Args:
        max_misclassified: Misclassified validation images shown per validation.
        num_samples: Training images shown once per run.
    """

    def __init__(self, max_misclassified: int = 32, num_samples: int = 16) -> None:
        self.max_misclassified = max_misclassified
        self.num_samples = num_samples
        self._confusion: MulticlassConfusionMatrix | None = None
        self._wrong_images: list[Tensor] = []
        self._wrong_titles: list[str] = []

    @staticmethod
    def _writer(trainer):
        logger = trainer.logger
        return logger.experiment if isinstance(logger, TensorBoardLogger) else None

    def on_train_start(self, trainer, pl_module) -> None:
        # Not at fit start: a tuner (LearningRateFinder, BatchSizeFinder) changes the values in its on_fit_start.
        if self._writer(trainer) is not None and trainer.global_step == 0:  # once per run, not on resume
            self._log_hparams(trainer)
            self._log_samples(trainer)

    @rank_zero_only
    def _log_hparams(self, trainer) -> None:
        # The HParams tab pairs these hyperparameters with the last values of the metric tags named here;
        # the values themselves are ordinary scalars logged later (val/acc_best each epoch, test/* after test).
        from torch.utils.tensorboard.summary import hparams

        params = {**_flat(trainer.lightning_module.hparams, "model"), **_flat(trainer.datamodule.hparams, "data")}
        params.update({"trainer/max_epochs": trainer.max_epochs, "trainer/devices": trainer.world_size})
        writer = tensorboard_file_writer(self._writer(trainer))
        for summary in hparams(params, dict.fromkeys(HPARAM_METRICS, 0.0)):
            writer.add_summary(summary)

    @rank_zero_only
    def _log_samples(self, trainer) -> None:
        # The first training images, from the dataset itself: a loader built here would decide its grouping again.
        train = trainer.datamodule.datasets["train"]
        images, labels = train[torch.arange(min(self.num_samples, len(train)))]
        grid = image_grid(images, [CLASS_NAMES[label] for label in labels.tolist()])
        _add_image(self._writer(trainer), "samples/train", grid, step=0)

    def _start(self, pl_module) -> None:
        self._confusion = MulticlassConfusionMatrix(len(CLASS_NAMES), validate_args=False).to(pl_module.device)
        self._wrong_images, self._wrong_titles = [], []

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._start(pl_module)

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._start(pl_module)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._collect(outputs, batch, keep_wrong=True)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._collect(outputs, batch, keep_wrong=False)

    def _collect(self, outputs, batch, keep_wrong: bool) -> None:
        if not isinstance(outputs, dict) or "predicted" not in outputs:
            return
        images, labels = batch
        predicted = outputs["predicted"]
        self._confusion.update(predicted, labels)
        room = self.max_misclassified - len(self._wrong_images)
        if keep_wrong and room > 0:
            wrong = (predicted != labels).nonzero().flatten()[:room]
            self._wrong_images += list(images[wrong].cpu())
            self._wrong_titles += [
                f"pred: {CLASS_NAMES[p]}\ntrue: {CLASS_NAMES[t]}"
                for p, t in zip(predicted[wrong].tolist(), labels[wrong].tolist(), strict=True)
            ]

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        confusion = self._confusion.compute()  # on every process: it syncs under DDP
        if trainer.sanity_checking:
            return
        self._render(trainer, "val", confusion, misclassified=True)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._render(trainer, "test", self._confusion.compute(), misclassified=False)

    @rank_zero_only
    def _render(self, trainer, stage: str, confusion: Tensor, misclassified: bool) -> None:
        writer = self._writer(trainer)
        if writer is None:
            return
        step = trainer.global_step
        _add_image(writer, f"confusion_matrix/{stage}", confusion_matrix_image(confusion, title=stage), step)
        if misclassified and self._wrong_images:
            grid = image_grid(torch.stack(self._wrong_images), self._wrong_titles)
            _add_image(writer, f"misclassified/{stage}", grid, step)
        # No flush here: Lightning flushes the writer when it logs the stage's metrics, right after this hook.


def _add_image(writer, tag: str, image: Image.Image, step: int) -> None:
    """A ``PIL.Image`` (mode "L" or "RGB") as a TensorBoard image, PNG-encoded once at zlib level 1.

    ``SummaryWriter.add_image`` takes an array, converts it to float and back and encodes it at level 6: 2-3x the
    time (~10 ms a picture on a 2-core CPU, after every validation) for PNGs a tenth smaller.
    """
    png = io.BytesIO()
    image.save(png, format="PNG", compress_level=1)
    picture = Summary.Image(
        height=image.height, width=image.width, colorspace=len(image.getbands()), encoded_image_string=png.getvalue()
    )
    tensorboard_file_writer(writer).add_summary(Summary(value=[Summary.Value(tag=tag, image=picture)]), step)


def _flat(hparams, prefix: str) -> dict:
    """Hyperparameters as ``prefix/name`` -> int, float, bool or str (what the HParams tab can show)."""
    flat = {}
    for name, value in dict(hparams).items():
        if isinstance(value, bool | int | float | str):
            flat[f"{prefix}/{name}"] = value
        elif value is not None:
            flat[f"{prefix}/{name}"] = str(value)
    return flat
