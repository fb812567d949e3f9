"""``FashionClassifier``: the LightningModule around a plain network (loss, metrics, optimizer, prediction)."""

import math
from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MaxMetric, MeanMetric, MetricCollection, SumMetric
from torchmetrics.classification import MulticlassAccuracy

from fashion_lightning.model import net_from_hparams

STAGES = ("train", "val", "test")


def stage_metrics(stage: str, num_classes: int) -> MetricCollection:
    """Accuracy and mean loss for one stage; evaluation stages also count their images (exactly once under DDP)."""
    # validate_args=False skips per-update input checks: the data module guarantees int64 labels in range.
    # nan_strategy="disable": a NaN check would sync the GPU every step; FiniteLossGuard watches the loss instead.
    metrics = {
        "acc": MulticlassAccuracy(num_classes, average="micro", validate_args=False),
        "loss": MeanMetric(nan_strategy="disable"),
    }
    if stage != "train":
        metrics["images"] = SumMetric()
    return MetricCollection(metrics, prefix=f"{stage}/", compute_groups=False)


class FashionClassifier(L.LightningModule):
    """Classify Fashion-MNIST images; the defaults are the seed's recipe (MLP 784-512-512-10, SGD lr 1e-3).

    Every argument is a primitive saved by ``save_hyperparameters``, so ``load_from_checkpoint(path)`` alone
    rebuilds the model, and checkpoints load with ``weights_only=True``.

    Args:
        net: Network: "mlp" (the seed's) or "cnn" (a small convolutional net).
        hidden_dims: Hidden layer widths of the MLP.
        dropout: Dropout probability (MLP: after each hidden layer; CNN: before each Linear).
        optimizer: "sgd", "adam" or "adamw".
        lr: Learning rate.
        momentum: SGD momentum (the seed: 0).
        nesterov: Nesterov momentum (SGD, needs momentum > 0).
        weight_decay: L2 penalty (SGD, Adam) or decoupled weight decay (AdamW).
        lr_scheduler: "none", "cosine" (to 0 over ``max_epochs``, stepped per epoch) or "step".
        lr_step_size: Epochs between decays for the "step" scheduler.
        lr_gamma: Decay factor for the "step" scheduler.
        label_smoothing: Cross-entropy label smoothing.
        num_classes: Number of classes (linked from the data module).
        image_shape: Input shape (C, H, W) (linked from the data module).
    """

    def __init__(
        self,
        net: Literal["mlp", "cnn"] = "mlp",
        hidden_dims: list[int] | tuple[int, ...] = (512, 512),
        dropout: float = 0.0,
        optimizer: Literal["sgd", "adam", "adamw"] = "sgd",
        lr: float = 1e-3,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        lr_scheduler: Literal["none", "cosine", "step"] = "none",
        lr_step_size: int = 10,
        lr_gamma: float = 0.1,
        label_smoothing: float = 0.0,
        num_classes: int = 10,
        image_shape: list[int] | tuple[int, int, int] = (1, 28, 28),
    ) -> None:
        super().__init__()
        hidden_dims, image_shape = list(hidden_dims), list(image_shape)  # primitives only in the checkpoint
        self.save_hyperparameters()
        self.net = net_from_hparams(self.hparams)
        self.example_input_array = torch.zeros(1, *image_shape)
        # One metric collection per stage: their states never mix (validation runs inside a training epoch).
        self.metrics = torch.nn.ModuleDict({f"{stage}_metrics": stage_metrics(stage, num_classes) for stage in STAGES})
        # The best validation accuracy so far: part of the state_dict, so a resumed run keeps its best.
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)
        self.evaluated_images: dict[str, int] = {}  # images behind the last epoch metrics, all processes

    @staticmethod
    def upgrade_checkpoint(checkpoint: dict) -> dict:
        """Let checkpoints of earlier versions load: those written before ``val_acc_best`` was the module's metric
        lack its state, which then starts afresh."""
        checkpoint["state_dict"].setdefault("val_acc_best.max_value", torch.tensor(-math.inf))
        return checkpoint

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.upgrade_checkpoint(checkpoint)

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)

    def _shared_step(self, batch: tuple[Tensor, Tensor], stage: str) -> tuple[Tensor, Tensor]:
        images, labels = batch
        logits = self.net(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        metrics = self.metrics[f"{stage}_metrics"]
        metrics["acc"].update(logits.detach(), labels)
        metrics["loss"].update(loss.detach(), weight=torch.full_like(loss.detach(), len(labels)))  # no host copy
        if stage != "train":
            metrics["images"].update(len(labels))
        return loss, logits

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss, logits = self._shared_step(batch, "train")
        # Per-step curves and progress bar. Lightning writes them every `log_every_n_steps`; calling self.log on
        # the other steps would only cost time.
        if self._is_logging_step():
            batch_acc = (logits.detach().argmax(dim=-1) == batch[1]).float().mean()
            self.log_dict({"train/loss_step": loss.detach(), "train/acc_step": batch_acc}, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        _, logits = self._shared_step(batch, "val")
        return {"predicted": logits.argmax(dim=-1)}  # for the confusion matrix and misclassified images

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        _, logits = self._shared_step(batch, "test")
        return {"predicted": logits.argmax(dim=-1)}

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Tensor]:
        """Return the predicted class index, its probability, all probabilities and the labels if known."""
        images, labels = batch if isinstance(batch, (tuple, list)) else (batch, None)
        probabilities = self.net(images).softmax(dim=-1)
        confidence, predicted = probabilities.max(dim=-1)
        result = {"predicted": predicted, "probability": confidence, "probabilities": probabilities}
        if labels is not None:
            result["label"] = labels
        return result

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])

    def on_validation_epoch_end(self) -> None:
        values = self._log_epoch_metrics("val")
        if not self.trainer.sanity_checking:  # the untrained sanity check is no result
            self.val_acc_best.update(values["val/acc"])
            self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True)

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def _log_epoch_metrics(self, stage: str) -> dict[str, Tensor]:
        # compute() syncs the states across DDP processes, so every process logs the same global value
        # (sync_dist then averages identical numbers: it only keeps Lightning from warning).
        metrics = self.metrics[f"{stage}_metrics"]
        values = metrics.compute()
        if f"{stage}/images" in values:
            self.evaluated_images[stage] = int(values[f"{stage}/images"])
        metrics.reset()
        for name, value in values.items():
            self.log(name, value, prog_bar=stage != "test" and not name.endswith("/images"), sync_dist=True)
        return values

    def _is_logging_step(self) -> bool:
        # The steps at which Lightning writes logged values (before this step's optimizer update counts).
        try:
            every = self.trainer.log_every_n_steps
        except RuntimeError:  # not attached to a Trainer (a step called directly): log
            return True
        return every > 0 and (self.global_step + 1) % every == 0

    def configure_optimizers(self):
        hp = self.hparams
        params = self.net.parameters()
        if hp.optimizer == "sgd":
            optimizer = torch.optim.SGD(
                params, lr=hp.lr, momentum=hp.momentum, nesterov=hp.nesterov, weight_decay=hp.weight_decay
            )
        elif hp.optimizer == "adam":
            optimizer = torch.optim.Adam(params, lr=hp.lr, weight_decay=hp.weight_decay)
        else:
            optimizer = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.lr_scheduler == "none":
            return optimizer
        if hp.lr_scheduler == "cosine":
            # Per epoch, from max_epochs: reading trainer.estimated_stepping_batches here would drop the
            # loader's resume state (Lightning #20550).
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, self.trainer.max_epochs))
        else:
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=hp.lr_step_size, gamma=hp.lr_gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
