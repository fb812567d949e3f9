"""The one place for non-public APIs this project cannot do without; each use says why and has a test.

- ``tensorboard_file_writer``: TensorBoard's HParams tab needs an experiment summary naming the metric tags
  (``val/acc_best``, ``test/acc``, ``test/loss``) in the run's own event file. The public ways write it
  elsewhere or wrongly: ``SummaryWriter.add_hparams`` opens a separate sub-run, and Lightning's
  ``TensorBoardLogger.log_hyperparams(params, metrics)`` also logs those metrics as scalars at step 0, which would
  put a false 0 at the start of every curve. Lightning's logger itself uses the same private call. The pictures
  go the same way, as PNGs encoded once (``SummaryWriter.add_image`` re-encodes an array, 2-3x slower).
- ``optimizer_step_counter``: under manual optimization, Lightning counts an optimizer step (``global_step``) only
  when ``LightningOptimizer.step()`` runs, which also dispatches ``on_before_optimizer_step`` to every callback and
  the module and wraps the update in a closure: ~0.15 ms a step on a 2-core CPU (~8% of the MLP's step) and more
  than the whole step's GPU work in a CUDA graph. When nobody overrides those hooks (checked by ``TrainingSteps``),
  the training step updates the weights itself and counts each update here, as ``LightningOptimizer.step`` does.
  ``tests/test_training_steps.py`` checks ``global_step``, logging steps and resume against Lightning's own path.
- ``set_logging_step``: Lightning's loggers write what callbacks log (``LearningRateMonitor``, ``DeviceStatsMonitor``,
  ``ThroughputMonitor``, a ``self.log`` with ``on_step``) at its count of training batches that stepped the
  optimizer. Under manual optimization it counts every training batch, so with grouped steps or gradient
  accumulation that count is not ``global_step``, and those curves would lie at other x than the training curves
  (``lr-SGD`` at 0, 1, 2 where the epochs end at 860, 1720). Nothing public sets it; ``TrainingSteps`` sets it around
  each group as Lightning counts under automatic optimization (``tests/test_training_steps.py`` checks both).
- ``updates_skipped``: ``StochasticWeightAveraging`` ends with one epoch that only recomputes the BatchNorm
  statistics of the averaged weights: it tells Lightning's loop to skip backward and the update, which only
  automatic optimization obeys. The module's own steps read the same flag; without it they trained that epoch on,
  away from the average (``tests/test_tuners.py``).
- ``saved_train_position``, ``set_epoch_batches_done``: a checkpoint taken inside an epoch holds Lightning's count
  of the epoch's training batches and the sampler's position in images (inside torchdata's loader state). A fit
  resumed in another batch layout (another batch size, steps per batch, ``val_check_interval`` or number of
  processes; a CPU run resumed on a GPU groups 16 steps, not 64) continues from the images' position, but
  Lightning would count its batches on from the old count: the epoch ended early, its rest never trained, or
  validation fell at other steps. Nothing public sets that count; ``ResumableRun`` recounts it in the new layout
  before Lightning restores its loops (``tests/test_resume.py``).
- ``spawned_processes``: under ``ddp_spawn``, ``ddp_fork`` and ``ddp_notebook`` Lightning's multiprocessing launcher
  runs the fit in worker processes that call no ``on_exception`` hook, and a worker that ends by Lightning's own stop
  (``SIGTERMException``) hands the launcher no result, so it waited for ever. A stop signal is handled differently
  there (``spawn_stop``), which needs to know the launcher and its processes; nothing public tells either
  (``tests/test_resume.py``).
"""

from collections.abc import Callable

from torch.utils.tensorboard import SummaryWriter


def tensorboard_file_writer(writer: SummaryWriter):
    """The ``FileWriter`` behind a ``SummaryWriter`` (re-opened if the writer was closed)."""
    return writer._get_file_writer()


def _epoch_loop(trainer):
    """Lightning's training-epoch loop, or ``None`` where this version has none there."""
    return getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)


def optimizer_step_counter(trainer) -> Callable[[int], None] | None:
    """A function counting optimizer steps (``steps``, default 1) in ``trainer.global_step`` under manual
    optimization, as ``LightningOptimizer.step`` would; ``None`` where this Lightning version keeps no such count."""
    progress = getattr(getattr(_epoch_loop(trainer), "manual_optimization", None), "optim_step_progress", None)
    if not (hasattr(progress, "increment_ready") and hasattr(progress, "increment_completed")):
        return None

    def count(steps: int = 1) -> None:
        for _ in range(steps):
            progress.increment_ready()
            progress.increment_completed()

    return count


def set_logging_step(trainer, step: int) -> None:
    """Set Lightning's logging step (its count of training batches that stepped the optimizer) to ``step``; it adds
    one after each training batch. Does nothing where this Lightning version keeps no such count."""
    loop = _epoch_loop(trainer)
    if hasattr(loop, "_batches_that_stepped"):
        loop._batches_that_stepped = step


def updates_skipped(trainer) -> bool:
    """Whether Lightning's loop runs this epoch without backward and updates (``StochasticWeightAveraging``'s
    BatchNorm pass); ``False`` where this Lightning version has no such flag."""
    return bool(getattr(getattr(trainer, "fit_loop", None), "_skip_backward", False))


def saved_train_position(checkpoint: dict) -> int | None:
    """Images of the epoch the training sampler had handed out when the checkpoint was taken (``ResumableSampler``'s
    ``yielded``, in the loader state of Lightning's fit loop), or ``None`` where the checkpoint holds none."""
    loop = checkpoint.get("loops", {}).get("fit_loop", {})
    loaders = loop.get("state_dict", {}).get("combined_loader") or [None]
    state = loaders[0].get("_index_sampler_state") if isinstance(loaders[0], dict) else None
    position = state.get("yielded") if isinstance(state, dict) else None
    return position if isinstance(position, int) and "epoch_loop.batch_progress" in loop else None


def set_epoch_batches_done(checkpoint: dict, batches: int) -> None:
    """Make Lightning's count of the epoch's training batches (its ``ready``) ``batches``, shifting its other counts
    alike (they differ where the checkpoint was taken at a batch's end)."""
    progress = checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"]
    shift = batches - progress["current"]["ready"]
    for counts in (progress["current"], progress["total"]):
        for key in ("ready", "started", "processed", "completed"):
            counts[key] += shift


def spawned_processes(trainer) -> list | None:
    """The worker processes of Lightning's multiprocessing launcher (``ddp_spawn``, ``ddp_fork``, ``ddp_notebook``):
    a list, empty before they start and in the workers themselves; ``None`` under any other launcher."""
    from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher

    launcher = getattr(trainer.strategy, "launcher", None)
    return list(getattr(launcher, "procs", [])) if isinstance(launcher, _MultiProcessingLauncher) else None
