"""Which callbacks the trainer that the CLI builds gets, beside the configured ones, and in what order."""

from lightning.pytorch.callbacks import Checkpoint, LearningRateFinder, ProgressBar
from lightning.pytorch.utilities import rank_zero_info

from fashion_lightning.callbacks.prediction_writer import PredictionWriter
from fashion_lightning.callbacks.progress_bar import StepProgressBar


def trainer_kwargs(trainer_config: dict, kwargs: dict) -> dict:
    """``kwargs`` for ``LightningCLI.instantiate_trainer``, with this project's progress bar and checkpointing.

    Args:
        trainer_config: The instantiated ``trainer`` section of the subcommand's config.
        kwargs: What the CLI passes on to the trainer.
    """
    configured = trainer_config.get("callbacks") or []
    configured = configured if isinstance(configured, list) else [configured]
    kwargs = dict(kwargs)
    # Lightning's default bar redraws every batch (RichProgressBar when `rich` is installed): ~0.3 ms a redraw.
    # This one redraws every 320 optimizer steps, several times a second. A bar the user configures, or
    # --trainer.enable_progress_bar false, is left alone.
    wants_bar = trainer_config.get("enable_progress_bar") is not False
    if wants_bar and not any(isinstance(callback, ProgressBar) for callback in configured):
        kwargs["callbacks"] = [*configured, StepProgressBar()]
    # --trainer.enable_checkpointing false: Lightning refuses it beside a ModelCheckpoint, and this CLI always adds
    # two (--checkpoint, --last). They are built, then left out (arrange_callbacks), so the run writes none.
    if no_checkpoints(trainer_config) and not any(isinstance(callback, Checkpoint) for callback in configured):
        kwargs["enable_checkpointing"] = True  # (with its callbacks present, Lightning adds none of its own)
    return kwargs


def no_checkpoints(trainer_config: dict) -> bool:
    return trainer_config.get("enable_checkpointing") is False


def arrange_callbacks(trainer, trainer_config: dict, best: Checkpoint | None, subcommand: str, resuming: bool) -> None:
    """Leave out what this run does not use, and make ``best`` (``--checkpoint``, best.ckpt) the trainer's
    ``checkpoint_callback``; ``resuming``: a fit with ``--ckpt_path``."""
    if resuming and any(isinstance(cb, LearningRateFinder) for cb in trainer.callbacks):
        # The resumed optimizer's learning rate comes from the checkpoint: a new search would cost time, and set the
        # module's lr to a rate that the optimizer would then not use.
        rank_zero_info("Resuming: LearningRateFinder is skipped (the run's learning rate is in its checkpoint).")
        trainer.callbacks = [cb for cb in trainer.callbacks if not isinstance(cb, LearningRateFinder)]
    if no_checkpoints(trainer_config):
        trainer.callbacks = [cb for cb in trainer.callbacks if not isinstance(cb, Checkpoint)]
    if subcommand != "predict":
        # Lightning calls every hook of every callback each step (~30 us a callback on a small CPU), so the
        # prediction writer only joins the runs that predict.
        trainer.callbacks = [cb for cb in trainer.callbacks if not isinstance(cb, PredictionWriter)]
    # Lightning's checkpoint_callback is the first Checkpoint callback: one given with --trainer.callbacks came
    # first (an OnExceptionCheckpoint, which has no best model to report or test).
    checkpoints = trainer.checkpoint_callbacks
    if best in checkpoints and checkpoints[0] is not best:
        others = [callback for callback in trainer.callbacks if callback is not best]
        at = others.index(checkpoints[0])  # (Lightning keeps checkpoints after the other callbacks)
        trainer.callbacks = [*others[:at], best, *others[at:]]
