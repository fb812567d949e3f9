"""``FashionClassifier``: the LightningModule around a plain network (loss, metrics, optimizer, prediction)."""

import copy
import math
from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MaxMetric

from fashion_lightning.data import step_batches
from fashion_lightning.hparam_checks import TAKES_EFFECT_WITH, check_hparams, warn_unused
from fashion_lightning.metrics import stage_metrics, unshare_metric_states
from fashion_lightning.model import net_from_hparams
from fashion_lightning.optimizers import build_optimizer
from fashion_lightning.training import TrainingSteps

STAGES = ("val", "test")  # training keeps device-side sums instead (see TrainingSteps)


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
        gradient_clip_val: Clip gradients to this norm (or value); ``None``: no clipping. (The training step
            optimizes itself, so Lightning's ``--trainer.gradient_clip_val`` does not apply.)
        gradient_clip_algorithm: "norm" (total 2-norm, like ``clip_grad_norm_``) or "value".
        accumulate_grad_batches: Batches whose gradients are summed (each scaled by 1/n) per optimizer update.
        cuda_graph: Run the training step (forward, loss, backward, clipping, update) as one replayed CUDA graph:
            "auto" on a single CUDA device where it can, "on" (a warning says why when it cannot), "off" eager.
            Not supported, with a log line: DDP, mixed precision, accumulate_grad_batches > 1, ``compile``, a
            callback on ``on_before_backward``/``on_after_backward``/``on_before_optimizer_step``.
        compile: Run the training steps' network through ``torch.compile`` (forward and backward; evaluation and
            the checkpoint's keys stay the plain network's). For long runs only: compiling the MLP takes ~20 s on a
            2-core CPU, and its gain there was not clear (README, Performance). On a GPU the CUDA-graph step steps
            aside for it.
        num_classes: Number of classes (linked from the data module).
        image_shape: Input shape (C, H, W) (linked from the data module).
    """

    LOGGED_BY_VALIDATION = ("val/loss", "val/acc", "val/images", "val/acc_best")  # (val/acc_best not in sanity checks)
    LOGGED_BY_TRAINING = ("train/loss", "train/acc", "train/lr")  # at each training epoch's end (a monitor may name)

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
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: Literal["norm", "value"] = "norm",
        accumulate_grad_batches: int = 1,
        cuda_graph: Literal["auto", "on", "off"] = "auto",
        compile: bool = False,
        num_classes: int = 10,
        image_shape: list[int] | tuple[int, int, int] = (1, 28, 28),
    ) -> None:
        super().__init__()
        hidden_dims, image_shape = list(hidden_dims), list(image_shape)  # primitives only in the checkpoint
        self.save_hyperparameters()
        check_hparams(self.hparams)
        # The training step runs the optimizer itself: several updates per Lightning step, or a CUDA graph.
        self.automatic_optimization = False
        self.net = net_from_hparams(self.hparams)
        self.example_input_array = torch.zeros(1, *image_shape)
        # The epoch's training sums [loss * images, correct, images] on the device: added to once per training
        # batch, read once an epoch, saved in checkpoints (a resume mid-epoch reports the whole epoch).
        self.register_buffer("train_sums", torch.zeros(3))
        self.steps = TrainingSteps(self)
        # One metric collection per evaluation stage: validation runs inside a training epoch.
        self.metrics = torch.nn.ModuleDict({f"{stage}_metrics": stage_metrics(stage, num_classes) for stage in STAGES})
        # The best validation accuracy so far: part of the state_dict, so a resumed run keeps its best.
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)
        self.evaluated_images: dict[str, int] = {}  # images behind the last epoch metrics, all processes
        self.latest_step_values: dict[str, float] = {}  # the last train/loss_step and train/acc_step written

    @staticmethod
    def upgrade_checkpoint(checkpoint: dict) -> dict:
        """Let checkpoints of earlier versions load and resume: states added since (``val_acc_best``, the training
        sums) start afresh, and the optimizer-step count of automatic optimization becomes the manual one."""
        checkpoint["state_dict"].setdefault("val_acc_best.max_value", torch.tensor(-math.inf))
        checkpoint["state_dict"].setdefault("train_sums", torch.zeros(3))
        loops = checkpoint.get("loops", {}).get("fit_loop", {})
        automatic = loops.get("epoch_loop.automatic_optimization.optim_progress", {}).get("optimizer", {}).get("step")
        manual = loops.get("epoch_loop.manual_optimization.optim_step_progress")
        if automatic and manual and manual["total"]["completed"] == 0:
            loops["epoch_loop.manual_optimization.optim_step_progress"] = copy.deepcopy(automatic)  # global_step
        for state in checkpoint.get("optimizer_states", []):
            for group in state.get("param_groups", []):
                if group.get("capturable"):  # set by the CUDA-graph step on a GPU; eager steps anywhere need False
                    group["capturable"] = False
        return checkpoint

    def setup(self, stage: str) -> None:
        unshare_metric_states(self)  # (in each process, before any metric is updated)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.upgrade_checkpoint(checkpoint)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The step values held back for the host (StepLog) go to the loggers before a checkpoint of their steps:
        # a resume from it never logs those steps again.
        self.steps.step_log.flush()

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)

    def _shared_step(self, batch: tuple[Tensor, Tensor], stage: str) -> tuple[Tensor, Tensor]:
        images, labels = batch
        logits = self.net(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        metrics = self.metrics[f"{stage}_metrics"]
        metrics["acc"].update(logits.detach(), labels)
        metrics["loss"].update(loss.detach(), weight=torch.full_like(loss.detach(), len(labels)))  # no host copy
        metrics["images"].update(len(labels))
        return loss, logits

    def loss_and_logits(self, images: Tensor, labels: Tensor, net=None) -> tuple[Tensor, Tensor]:
        """Training loss of one batch and its detached (B, num_classes) logits (no host sync); ``net``: the network
        to run, if not ``self.net`` (its compiled form)."""
        logits = (self.net if net is None else net)(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        return loss, logits.detach()

    def training_step(self, batch, batch_idx: int) -> Tensor:
        """One optimizer step per ``(images, labels)`` in the batch (a list of them when steps are grouped)."""
        last_batch = batch_idx + 1 == self.trainer.num_training_batches
        losses, updates = self.steps.run(step_batches(batch), last_batch=last_batch)
        self._step_lr_schedulers("step", updates)
        return losses.mean()  # NaN if any step's loss was (FiniteLossGuard reads it)

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

    def on_fit_start(self) -> None:
        warn_unused(self.hparams, FashionClassifier, TAKES_EFFECT_WITH, "model")

    def on_train_start(self) -> None:
        self.steps.on_train_start()

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.steps.after_batch()

    def on_train_epoch_end(self) -> None:
        self.steps.log_epoch_metrics()
        # sync_dist: the same number on every process (it only keeps Lightning from warning under DDP)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], sync_dist=True)
        self.log("step", float(self.global_step), sync_dist=True)  # the x-axis of epoch values: optimizer steps
        self._step_lr_schedulers("epoch")  # before last.ckpt is written, so a resume continues the schedule

    def _step_lr_schedulers(self, interval: str, times: int = 1) -> None:
        """Step the schedulers of ``interval`` ("step": once per optimizer step; "epoch"), as Lightning does only
        under automatic optimization. Those made here are per epoch; per step is ``LearningRateFinder``'s."""
        for config in self.trainer.lr_scheduler_configs:
            if config.interval == interval:
                for _ in range(times):
                    config.scheduler.step()

    def on_validation_epoch_end(self) -> None:
        values = self._log_epoch_metrics("val")
        if not self.trainer.sanity_checking:  # the untrained sanity check is no result
            self.val_acc_best.update(values["val/acc"])
            self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True)
            if self.trainer.state.fn == "fit":  # x-axis: optimizer steps, as for the training curves
                self.log("step", float(self.global_step), sync_dist=True)

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

    def configure_optimizers(self):
        optimizer, scheduler = build_optimizer(self.net.parameters(), self.hparams, self.trainer.max_epochs)
        self.steps.configure(optimizer)  # direct, CUDA-graph or Lightning-optimizer steps (see TrainingSteps)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler(optimizer), "interval": "epoch"}}
