"""How ``FashionClassifier`` trains: the optimizer steps of one Lightning step.

The module uses Lightning's manual optimization, so that one Lightning step can run several optimizer steps (the
data module's ``steps_per_batch``) and, on a GPU, run them as one CUDA graph. Lightning's per-step work (hooks,
callbacks, logging, the loader) is then paid once per group instead of once per update: on a 2-core CPU it
costs about as much as the MLP's step itself. What the user sees still counts optimizer steps: each update counts
in ``global_step`` (and runs Lightning's optimizer hooks where someone overrides them), per-step curves are written
at multiples of ``log_every_n_steps`` optimizer steps, and epoch values and what callbacks log (a
``LearningRateMonitor``) carry ``global_step`` as their x-axis.
"""

from collections.abc import Sequence

import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor

from fashion_lightning._compat import optimizer_step_counter, set_logging_step, updates_skipped
from fashion_lightning.compiled import compile_failures_explained, compile_network
from fashion_lightning.cuda_graph import CapturedSteps
from fashion_lightning.step_log import StepLog
from fashion_lightning.step_paths import graph_unavailable, lightning_steps_needed


def correct_predictions(logits: Tensor, labels: Tensor) -> Tensor:
    """How many of the (N, num_classes) logits pick their label, as a 0-d tensor (no host sync)."""
    return (logits.argmax(dim=-1) == labels).sum()


def correct_in_group(logits: Sequence[Tensor], batches: Sequence[tuple[Tensor, Tensor]]) -> Tensor:
    """Correct predictions of a group, from each batch's (B, num_classes) logits, as a 0-d tensor: 3 ops per group
    instead of 3 per step."""
    return correct_predictions(torch.cat(logits), torch.cat([labels for _, labels in batches]))


class TrainingSteps:
    """The optimizer steps of the module's ``training_step``, run one of three ways:

    - replayed as one CUDA graph per group (``cuda_graph``; see ``CapturedSteps``);
    - direct: ``zero_grad``, forward, ``backward``, clipping and ``step`` as plain torch calls, each update counted
      in ``global_step`` as Lightning's optimizer would (``_compat.optimizer_step_counter``);
    - through Lightning's optimizer, ``manual_backward`` and ``clip_gradients`` when those do more than the plain
      calls: DDP, mixed precision, gradient accumulation, or a hook overridden around backward or the update
      (``lightning_steps_needed`` says which).

    Args:
        module: The ``FashionClassifier`` (its ``loss_and_logits``, hyperparameters and trainer).
    """

    def __init__(self, module) -> None:
        self.module = module
        self.captured: CapturedSteps | None = None
        self.optimizer: torch.optim.Optimizer | None = None  # the real one
        self.net: torch.nn.Module | None = None  # the module's network, compiled if asked (--model.compile)
        self.through_lightning: str | None = None  # why the steps go through Lightning's optimizer, if they do
        self.step_log = StepLog(module)
        self._accumulated = 0

    def configure(self, optimizer: torch.optim.Optimizer) -> None:
        """Choose how this fit's steps run (``optimizer`` is the one handed to Lightning)."""
        hp = self.module.hparams
        self.optimizer, self.captured = optimizer, None
        self.step_log = StepLog(self.module)  # nothing left over from an interrupted fit
        self.net = compile_network(self.module.net) if hp.compile else self.module.net
        self.through_lightning = lightning_steps_needed(self.module)
        if hp.cuda_graph == "off" or (hp.cuda_graph == "auto" and self.module.device.type != "cuda"):
            return
        reason = graph_unavailable(self.module)
        if reason is None:
            self.captured = CapturedSteps(self._graph_step, optimizer, self.module.device)
            return
        message = f"The training step runs eagerly, not as a CUDA graph: {reason}."
        if hp.cuda_graph == "on":
            rank_zero_warn(f"--model.cuda_graph on: {message}")
        else:
            rank_zero_info(message)  # (Lightning's channel for its own lines: on the console, once)

    # Lightning's logging step, at which what callbacks log is written (``_compat.set_logging_step``), is set to
    # count optimizer steps as Lightning counts them under automatic optimization: before a training batch, the
    # updates done; after it, those done before its last update. Lightning adds 1 after every batch.
    def on_train_start(self) -> None:
        """Warn if no step values would be written within an epoch; start the logging step at ``global_step`` (a
        resume, a tuner's restored checkpoint)."""
        self.step_log.check_interval()
        set_logging_step(self.module.trainer, self.module.global_step)

    def after_batch(self) -> None:
        """After the callbacks' ``on_train_batch_end``: the next batch's logging step is ``global_step``."""
        set_logging_step(self.module.trainer, self.module.global_step - 1)

    def run(self, batches: Sequence[tuple[Tensor, Tensor]], last_batch: bool) -> tuple[Tensor, int]:
        """One update per batch (fewer with gradient accumulation); returns the losses, shape (len(batches),), and
        the number of updates."""
        updates_before = self.module.global_step
        self.step_log.start_group(updates_before)
        batches = self._within_max_steps(batches)
        if updates_skipped(self.module.trainer):
            losses, correct = self._forward_only(batches)
        elif self.captured is not None:
            losses, correct = self._replayed(batches)
        elif self.net is self.module.net:
            losses, correct = self._eager(batches, last_batch)
        else:
            with compile_failures_explained():
                losses, correct = self._eager(batches, last_batch)
        self._add_to_sums(losses, correct, [len(labels) for _, labels in batches])
        updates = self.module.global_step
        set_logging_step(self.module.trainer, updates - 1 if updates > updates_before else updates)
        return losses, updates - updates_before

    def _replayed(self, batches) -> tuple[Tensor, Tensor]:
        losses, correct = self.captured.run(batches)  # (K,) each, on the device
        optimizer_step_counter(self.module.trainer)(len(batches))
        self.step_log.write_due(losses, batches, correct.__getitem__)
        return losses, correct.sum()

    @torch.no_grad()
    def _forward_only(self, batches) -> tuple[Tensor, Tensor]:
        """Forward passes in training mode and no update: ``StochasticWeightAveraging``'s last epoch, in which the
        BatchNorm layers gather the statistics of the averaged weights."""
        results = [self.module.loss_and_logits(images, labels) for images, labels in batches]
        return torch.stack([loss for loss, _ in results]), correct_in_group([logits for _, logits in results], batches)

    def _eager(self, batches, last_batch: bool) -> tuple[Tensor, Tensor]:
        """Direct steps, or steps through Lightning's optimizer; returns the (K,) losses and the correct count."""
        if self.through_lightning is None:
            losses, logits = self._direct(batches)
            updated = None  # every batch ended in an update
        else:
            losses, logits, updated = self._through_lightning(batches, last_batch)
        self.step_log.write_due(losses, batches, lambda i: correct_predictions(logits[i], batches[i][1]), updated)
        return torch.stack(losses), correct_in_group(logits, batches)

    def _direct(self, batches) -> tuple[list[Tensor], list[Tensor]]:
        """Plain torch updates, counted in ``global_step`` once the group is done (also when one fails).

        The loop holds nothing but the steps: in a running fit on a 2-core CPU, counting and the logging check cost
        ~30 us a step when run between the steps (Python's caches are cold after the matrix products), so they
        follow the group.
        """
        losses, logits = [], []
        try:
            for images, labels in batches:
                loss, step_logits = self._raw_step(images, labels)
                losses.append(loss)
                logits.append(step_logits)
        finally:
            optimizer_step_counter(self.module.trainer)(len(losses))
        return losses, logits

    def _through_lightning(self, batches, last_batch: bool) -> tuple[list[Tensor], list[Tensor], list[bool]]:
        """Updates through Lightning's optimizer (each counts itself); also says which batches ended in one."""
        optimizer = self.module.optimizers()
        losses, logits, updated = [], [], []
        for index, (images, labels) in enumerate(batches):
            loss, step_logits, update = self._lightning_step(
                optimizer, images, labels, last_batch and index == len(batches) - 1
            )
            losses.append(loss)
            logits.append(step_logits)
            updated.append(update)
        return losses, logits, updated

    def _add_to_sums(self, losses: Tensor, correct: Tensor, sizes: list[int]) -> None:
        """Add a group's (K,) losses and its correct predictions (a 0-d count) to the epoch's sums."""
        # Python numbers, no tensor of sizes: a host-to-device copy would wait for the queued steps on a GPU.
        if len(set(sizes)) == 1:
            loss_sum = losses.sum() * sizes[0]
        else:  # an epoch's last group, its last batch shorter
            loss_sum = torch.stack([loss * size for loss, size in zip(losses, sizes, strict=True)]).sum()
        total = torch.full_like(loss_sum, sum(sizes))
        self.module.train_sums.add_(torch.stack((loss_sum, correct.to(loss_sum.dtype), total)))

    def _within_max_steps(self, batches):
        trainer = self.module.trainer
        if trainer.max_steps is None or trainer.max_steps < 0:
            return batches
        updates_left = trainer.max_steps - self.module.global_step  # >= 1: Lightning stops before 0
        return batches[: max(1, updates_left * self.module.hparams.accumulate_grad_batches)]

    def _lightning_step(self, optimizer, images: Tensor, labels: Tensor, last: bool) -> tuple[Tensor, Tensor, bool]:
        """Lightning's manual optimization: precision, DDP, clipping and hooks go through its public API."""
        module, hp = self.module, self.module.hparams
        if self._accumulated == 0:
            optimizer.zero_grad()
        loss, logits = module.loss_and_logits(images, labels, self.net)
        module.manual_backward(loss / hp.accumulate_grad_batches if hp.accumulate_grad_batches > 1 else loss)
        self._accumulated += 1
        if self._accumulated < hp.accumulate_grad_batches and not last:
            return loss.detach(), logits, False
        self._accumulated = 0
        if hp.gradient_clip_val:
            module.clip_gradients(
                optimizer, gradient_clip_val=hp.gradient_clip_val, gradient_clip_algorithm=hp.gradient_clip_algorithm
            )
        optimizer.step()
        return loss.detach(), logits, True

    def _raw_step(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """One update with the real optimizer and no host sync; returns the detached loss and (B, classes) logits."""
        hp, optimizer = self.module.hparams, self.optimizer
        optimizer.zero_grad(set_to_none=True)
        loss, logits = self.module.loss_and_logits(images, labels, self.net)
        loss.backward()
        if hp.gradient_clip_val:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            if hp.gradient_clip_algorithm == "value":
                torch.nn.utils.clip_grad_value_(params, hp.gradient_clip_val, foreach=True)
            else:
                torch.nn.utils.clip_grad_norm_(params, hp.gradient_clip_val, foreach=True)
        optimizer.step()
        return loss.detach(), logits

    def _graph_step(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """What the CUDA graph captures: one raw update, with its loss and correct count as device tensors."""
        loss, logits = self._raw_step(images, labels)
        return loss, correct_predictions(logits, labels)

    def log_epoch_metrics(self) -> None:
        """Log ``train/loss`` and ``train/acc`` over the epoch (all processes) and reset the sums."""
        module = self.module
        self.step_log.flush()
        sums = module.train_sums.clone()  # [loss * images, correct, images]
        if module.trainer.world_size > 1:
            sums = module.trainer.strategy.reduce(sums, reduce_op="sum")
        images = sums[2].clamp(min=1)
        # (reduced above: sync_dist=True averages the same numbers, only to keep Lightning from warning under DDP)
        module.log_dict({"train/loss": sums[0] / images, "train/acc": sums[1] / images}, prog_bar=True, sync_dist=True)
        module.train_sums.zero_()
