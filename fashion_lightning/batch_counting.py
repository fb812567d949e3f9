"""What in a run counts training batches, not optimizer steps: the data module's automatic grouping of optimizer
steps (``steps_per_batch``) steps aside for it, one optimizer step per training batch.

Two kinds, both said in one phrase that the data module's log line and refusal use as is:

- ``acting_per_batch``: something that acts after every training batch and is meant to act after every optimizer
  step. With K steps a batch it would act once per K steps, or, for the monitors that log when Lightning's step count
  (optimizer steps here) hits a multiple of ``log_every_n_steps``, seldom or never (that count moves K at a time).
  An explicit ``steps_per_batch`` > 1 beside it is refused.
- ``options_counting_batches``: a Trainer option given as a number of batches. An explicit ``steps_per_batch`` makes
  it count groups, as ``--help`` says.
"""

from lightning.pytorch.callbacks import (
    DeviceStatsMonitor,
    LearningRateMonitor,
    SpikeDetection,
    ThroughputMonitor,
    WeightAveraging,
)

EVERY_N_STEPS = "every --trainer.log_every_n_steps training batches"


def acting_per_batch(trainer) -> str | None:
    """What acts after every training batch and means each optimizer step, in one phrase; ``None``: nothing."""
    if trainer is None:
        return None
    if any(config.interval == "step" for config in trainer.lr_scheduler_configs):
        return "a learning-rate scheduler (LearningRateFinder's) is stepped after every training batch"
    for callback in trainer.callbacks:
        name = type(callback).__name__
        if isinstance(callback, WeightAveraging):  # EMAWeightAveraging
            return f"{name} updates its average after every training batch"
        if isinstance(callback, SpikeDetection):
            return f"{name} checks the loss of every training batch"
        if isinstance(callback, (DeviceStatsMonitor, ThroughputMonitor)):
            return f"{name} logs {EVERY_N_STEPS}"
        if isinstance(callback, LearningRateMonitor) and callback.logging_interval == "step":
            return f"{name} (logging_interval step) logs {EVERY_N_STEPS}"
    return None


def options_counting_batches(trainer) -> str | None:
    """The Trainer option given in training batches, in one phrase; ``None``: none."""
    if trainer is None:
        return None
    if isinstance(trainer.limit_train_batches, int):
        option = "--trainer.limit_train_batches"
    elif isinstance(trainer.val_check_interval, int):
        option = "--trainer.val_check_interval"
    elif trainer.overfit_batches:
        option = "--trainer.overfit_batches"
    else:
        return None  # (the CLI sets 1 for --checkpoint.every_n_train_steps)
    return f"{option} counts batches"
