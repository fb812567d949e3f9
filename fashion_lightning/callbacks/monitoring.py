"""Small project callbacks: epoch timing, a non-finite-loss guard, and the end-of-run summary."""

import difflib
import math
import time

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

from fashion_lightning.callbacks.last_checkpoint import last_checkpoint_path
from fashion_lightning.data import step_batches
from fashion_lightning.errors import ConfigurationError, NonFiniteLossError
from fashion_lightning.host_copy import HostCopy
from fashion_lightning.runs import resume_flag


class EpochTimer(L.Callback):
    """Time each training epoch (validation and checkpointing excluded, also mid-epoch ones) and log its throughput.

    Logs ``time/train_epoch_s`` and ``time/samples_per_s``; ``train_epoch_seconds`` keeps the raw list.
    """

    def __init__(self) -> None:
        self.train_epoch_seconds: list[float] = []
        self._start: float | None = None
        self._paused_at: float | None = None  # when a validation inside the epoch began
        self._excluded = 0.0  # seconds of validations (and the checkpoints after them) in this epoch
        self._samples = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._sync(pl_module)
        self._start, self._paused_at, self._excluded, self._samples = time.perf_counter(), None, 0.0, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._paused_at is not None:  # the first batch after a validation (--trainer.val_check_interval)
            self._sync(pl_module)
            self._excluded += time.perf_counter() - self._paused_at
            self._paused_at = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._samples += sum(len(labels) for _, labels in step_batches(batch))

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if self._start is not None and not trainer.sanity_checking and self._paused_at is None:
            self._sync(pl_module)
            self._paused_at = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._start is None:
            return
        self._sync(pl_module)
        now = time.perf_counter()
        seconds = now - self._start - self._excluded - (now - self._paused_at if self._paused_at is not None else 0)
        self._start = None
        self.train_epoch_seconds.append(seconds)
        samples_per_s = self._samples * trainer.world_size / seconds
        # sync_dist: under DDP, the mean over processes of their epoch times (samples_per_s counts all processes)
        pl_module.log_dict({"time/train_epoch_s": seconds, "time/samples_per_s": samples_per_s}, sync_dist=True)

    @staticmethod
    def _sync(pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)


class FiniteLossGuard(L.Callback):
    """Stop training on a NaN or infinite loss, naming the step, before a bad checkpoint can be written.

    On CPU every step is checked. On a GPU reading the loss would stall the pipeline, so the first non-finite
    step is kept on the device, sent to the host every ``check_every_n_steps`` steps without waiting (read at a
    later batch, once there) and read at once before every checkpoint.

    Args:
        check_every_n_steps: How often the device-side flag is sent to the host on GPUs.
    """

    NONE = torch.iinfo(torch.int64).max  # the first bad step while there is none

    def __init__(self, check_every_n_steps: int = 50) -> None:
        self.check_every_n_steps = check_every_n_steps
        self._first_bad_step: torch.Tensor | None = None  # 0-d int64 on the device
        self._sent: HostCopy | None = None  # the flag on its way to the host
        self._sent_at = 0  # the global_step when it was last sent

    def on_train_start(self, trainer, pl_module) -> None:
        self._first_bad_step, self._sent, self._sent_at = None, None, trainer.global_step  # (a resumed run's step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        step = trainer.global_step  # already counts this step's optimizer update
        if loss.device.type == "cpu":
            if not math.isfinite(loss.item()):
                self._raise(trainer, step)
            return
        bad_step = torch.where(torch.isfinite(loss.detach()), self.NONE, step)
        self._first_bad_step = bad_step if self._first_bad_step is None else self._first_bad_step.minimum(bad_step)
        if self._sent is not None and self._sent.ready():
            self._raise_if_bad(trainer, int(self._sent.wait()))
            self._sent = None
        # A training batch may hold several optimizer steps (--data.steps_per_batch): send when a multiple of n was
        # passed (with 16 a batch, "step % n == 0" would hold every 400 steps)
        if self._sent is None and step // self.check_every_n_steps > self._sent_at // self.check_every_n_steps:
            self._sent_at = step
            self._sent = HostCopy(self._first_bad_step)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self.check(trainer)

    def check(self, trainer) -> None:
        """Raise if a non-finite loss was seen since the start (waits for the GPU)."""
        if self._first_bad_step is not None:
            self._raise_if_bad(trainer, int(self._first_bad_step))

    def _raise_if_bad(self, trainer, first_bad_step: int) -> None:
        if first_bad_step != self.NONE:
            self._raise(trainer, first_bad_step)

    @staticmethod
    def _raise(trainer, step: int) -> None:
        raise NonFiniteLossError(
            f"The training loss became NaN or infinite at step {step} (epoch {trainer.current_epoch}). Training "
            "stopped and no checkpoint was written after that step: the last good one is kept. Lower the "
            "learning rate, add gradient clipping (--model.gradient_clip_val 1.0) or check the data, then "
            "resume with --ckpt_path last."
        )


class RunSummary(L.Callback):
    """Print where a run's checkpoints and logs went, with its best and final metrics; after a fit's first validation
    (the sanity check's, before any training), refuse a monitor that the model does not log (``check_monitored_keys``;
    without a sanity check, a warning says so when training starts).

    Args:
        resume: How to resume the run, shown beside ``last.ckpt``; ``None``: ``--ckpt_path last`` (or the file's
            path, when the run has no ``version_N`` folder for ``last`` to find).
    """

    def __init__(self, resume: str | None = None) -> None:
        self.resume = resume
        self._monitors_checked = True  # (until a fit starts)

    def on_fit_start(self, trainer, pl_module) -> None:
        self._monitors_checked = False

    def on_train_start(self, trainer, pl_module) -> None:
        if not self._monitors_checked:  # no sanity check ran: warn now, from the names the model declares
            for flag, monitor, problem in unlogged_monitors(trainer, pl_module):
                rank_zero_warn(
                    f"{flag} {monitor}: {problem} Unless a callback of yours logs {monitor}, the run stops at its "
                    f"first validation: stop it now and set {flag} to one of them."
                )

    def on_validation_end(self, trainer, pl_module) -> None:
        if not self._monitors_checked:  # the sanity check's validation, or the first one when there was none
            self._monitors_checked = True
            check_monitored_keys(trainer, pl_module)

    @rank_zero_only
    def on_fit_end(self, trainer, pl_module) -> None:
        if trainer.fast_dev_run:
            print("\nfast_dev_run: nothing was logged or saved (it checks that the code runs, on a few batches).")
            return
        lines = ["", "Run summary"]
        if trainer.limit_train_batches == 0:  # (Lightning skips the training without a word)
            lines.append("  trained: nothing (no training batch: --trainer.limit_train_batches is 0)")
        checkpoint = trainer.checkpoint_callback
        if checkpoint is not None and checkpoint.best_model_score is not None:
            lines.append(f"  best {checkpoint.monitor}: {float(checkpoint.best_model_score):.4f}")
            lines.append(f"  best checkpoint: {checkpoint.best_model_path}")
        elif "val/acc" in trainer.callback_metrics:
            lines.append(f"  last val/acc: {float(trainer.callback_metrics['val/acc']):.4f}")
        elif checkpoint is not None and checkpoint.monitor:
            lines.append(f"  best checkpoint: none (no validation ran: no {checkpoint.monitor} to choose it by)")
        last = last_checkpoint_path(trainer)
        if last is not None and last.is_file():
            lines.append(f"  last checkpoint: {last}  (resume: {self.resume or resume_flag(last)})")
        if not trainer.checkpoint_callbacks:
            lines.append("  checkpoints: none (--trainer.enable_checkpointing false)")
        if trainer.logger is not None and trainer.logger.log_dir:
            lines.append(f"  logs: {trainer.logger.log_dir}")
        tensorboard = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        if tensorboard:
            lines.append(f"  watch: tensorboard --logdir {tensorboard[0].save_dir}")
        print("\n".join(lines))

    @rank_zero_only
    def on_test_end(self, trainer, pl_module) -> None:
        test_acc = trainer.callback_metrics.get("test/acc")
        if test_acc is not None:
            images = getattr(pl_module, "evaluated_images", {}).get("test")
            print(f"test/acc: {float(test_acc):.4f} on {images:,} images")


def check_monitored_keys(trainer, pl_module) -> None:
    """``ConfigurationError`` for a checkpoint's or early stopping's monitor that names a validation or training
    value the model does not log; called after the first validation (the sanity check's, before any training step).

    Lightning refuses such a monitor only after the first epoch's validation, having saved nothing.
    """
    problems = unlogged_monitors(trainer, pl_module)
    if problems:
        flag, monitor, problem = problems[0]
        raise ConfigurationError(
            f"{flag} {monitor}: {problem} Set {flag} to one of them (its mode: max for accuracies, min for losses)."
        )


def unlogged_monitors(trainer, pl_module) -> list[tuple[str, str, str]]:
    """``(flag, monitor, what is wrong)`` for each checkpoint's or early stopping's monitor that ``unlogged_key``
    finds unlogged."""
    found = []
    for callback in [*trainer.checkpoint_callbacks, *trainer.early_stopping_callbacks]:
        monitor = getattr(callback, "monitor", None)
        problem = monitor and unlogged_key(trainer, pl_module, monitor)
        if problem:
            mine = callback is trainer.checkpoint_callback
            found.append(("--checkpoint.monitor" if mine else f"{type(callback).__name__}'s monitor", monitor, problem))
    return found


def unlogged_key(trainer, pl_module, key: str) -> str | None:
    """For a key in the validation's or the training's namespace (``val/accuracy``, ``val_loss``, ``train/los``)
    that neither the model names nor a validation has logged, what they log and the closest; ``None`` for a logged
    key or one outside both (a callback's own, ``lr-SGD``: logged later, by whom is not known here)."""
    if key.startswith("val"):
        stage, namespace = "validation", "val/"
        logged = set(trainer.callback_metrics) | set(getattr(pl_module, "LOGGED_BY_VALIDATION", ()))
    elif key.startswith("train") and hasattr(pl_module, "LOGGED_BY_TRAINING"):
        stage, namespace = "training", "train/"
        logged = set(pl_module.LOGGED_BY_TRAINING)  # not logged yet: the module names them
    else:
        return None
    if key in logged:
        return None
    stage_keys = sorted(k for k in logged if k.startswith(namespace))
    close = difflib.get_close_matches(key, stage_keys, n=1, cutoff=0.6)
    return (
        f"the {stage} logs no such value{f'. Did you mean {close[0]}?' if close else '.'} "
        f"It logs {', '.join(stage_keys)}."
    )
