"""What in a run counts training batches, not optimizer steps: the data module's automatic grouping of optimizer
steps (``steps_per_batch``) steps aside for it, one optimizer step per training batch.

Three kinds, each said in one phrase that the data module's log line (and refusal) use as is:

- ``acting_per_batch``: something that acts after every training batch and is meant to act after every optimizer
  step. With K steps a batch it would act once per K steps, or, for the monitors that log when Lightning's step count
  (optimizer steps here) hits a multiple of ``log_every_n_steps``, seldom or never (that count moves K at a time).
  An explicit ``steps_per_batch`` > 1 beside it is refused.
- ``options_counting_batches``: a Trainer option given as a number of batches (or ``limit_train_batches`` as a
  fraction of them). An explicit ``steps_per_batch`` makes it count groups, as ``--help`` says.
- ``hooks_written_elsewhere``: a training-batch or optimizer-step hook written outside Lightning and this package (a
  callback of the user's). Lightning hands a batch hook one optimizer step's ``(images, labels)``; in a group it would
  be called once per K steps with a list of K such pairs. A step hook still runs at every step, but what it logs with
  ``self.log`` is written per training batch, at Lightning's count, seldom or never. An explicit ``steps_per_batch``
  says the user wrote them for groups.

A fractional ``--trainer.val_check_interval`` counts batches too, but only needs the groups laid out so that its count
falls where it would without them: ``groups_fitting_validation``. ``choose_grouping`` puts it all together.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

from lightning.pytorch.callbacks import (
    DeviceStatsMonitor,
    LearningRateMonitor,
    SpikeDetection,
    ThroughputMonitor,
    WeightAveraging,
)
from lightning.pytorch.utilities import rank_zero_info

from fashion_lightning.errors import ConfigurationError
from fashion_lightning.step_paths import STEP_HOOKS

EVERY_N_STEPS = "every --trainer.log_every_n_steps training batches"
BATCH_HOOKS = ("on_train_batch_start", "on_train_batch_end")
# Where the hooks written for groups live: Lightning's (the defaults, which do nothing, and its callbacks, whose
# per-batch acting ones ``acting_per_batch`` names) and this package's.
GROUP_AWARE_PACKAGES = ("lightning.", "pytorch_lightning.", "fashion_lightning.")
# The automatic group size by accelerator (others: as GPUs). Lightning's work per training batch (fetch loop,
# transfer, callback hooks, the call into training_step) costs ~1 ms on a 2-core CPU, where the MLP's step takes
# ~3 ms: all around the steps came to 4.5% of their time at 16 steps a batch and 2.6% at 64
# (benchmarks/step_overhead.py; README, Performance). On an H100's host it costs ~1 ms, and a group of 16 is one
# CUDA graph (0.23 s an epoch there).
AUTO_STEPS_PER_BATCH = {"cuda": 16, "cpu": 64}


class Grouping(NamedTuple):
    """How a fit's optimizer steps are grouped into training batches.

    Attributes:
        steps: Optimizer steps per training batch (the most, where they differ).
        layout: Each training batch's optimizer steps over one epoch of this process, where they differ (see
            ``groups_fitting_validation``); ``None``: ``steps`` each, the epoch's last batch holding what is left.
    """

    steps: int
    layout: tuple[int, ...] | None = None


def choose_grouping(
    trainer, given: int | None, images: int, batch_size: int, say: Callable[[str], None] = rank_zero_info
) -> Grouping:
    """Optimizer steps per training batch: ``given`` (``--data.steps_per_batch``) unless something acts per batch,
    else the automatic choice, saying in one line why it is not the device's default.

    Args:
        trainer: The run's Trainer (``None``: outside a fit, 1).
        given: The user's ``--data.steps_per_batch``, or ``None`` for the automatic choice.
        images: Training images in the whole split (all processes).
        batch_size: Images per optimizer step.
        say: Where the line goes (the data module says a line once per fit, not at each reloaded loader).
    """
    per_batch = acting_per_batch(trainer)
    if given is not None:
        if per_batch and given > 1:
            raise ConfigurationError(
                f"--data.steps_per_batch {given} puts that many optimizer steps in each training batch, but "
                f"{per_batch}: it would see one training batch per {given} optimizer steps. Leave "
                "--data.steps_per_batch unset (or 1) for this run."
            )
        return Grouping(given)
    why = per_batch or options_counting_batches(trainer) or hooks_written_elsewhere(trainer)
    if why:
        say(f"One optimizer step per training batch, because {why}.")
        return Grouping(1)
    if trainer is None:
        return Grouping(1)
    device = trainer.strategy.root_device.type
    most = AUTO_STEPS_PER_BATCH.get(device, AUTO_STEPS_PER_BATCH["cuda"])
    return groups_fitting_validation(trainer, images, batch_size, most, say)


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
    limit = trainer.limit_train_batches
    # (fast_dev_run and overfit_batches set limit_train_batches: name the option given)
    if trainer.fast_dev_run:
        option = "--trainer.fast_dev_run"
    elif trainer.overfit_batches:
        option = "--trainer.overfit_batches"
    elif isinstance(limit, int) or limit < 1.0:  # (a fraction of groups: rounded to whole groups, refused under one)
        option = "--trainer.limit_train_batches"
    elif isinstance(getattr(trainer, "val_check_interval", None), int):  # (unset when it is a duration)
        option = "--trainer.val_check_interval"
    else:
        return None  # (the CLI sets 1 for --checkpoint.every_n_train_steps)
    return f"{option} counts batches"


def hooks_written_elsewhere(trainer) -> str | None:
    """The first training-batch or optimizer-step hook of a callback (or of the module) written outside Lightning
    and this package, in one phrase; ``None``: none."""
    if trainer is None:
        return None
    for owner in [*trainer.callbacks, trainer.lightning_module]:
        for hook in (*BATCH_HOOKS, *STEP_HOOKS):
            written_in = getattr(getattr(type(owner), hook, None), "__module__", None) or "lightning."
            if written_in.startswith(GROUP_AWARE_PACKAGES):
                continue
            written = f"{type(owner).__name__}.{hook} ({written_in})"
            if hook in BATCH_HOOKS:
                return (
                    f"{written} is written for one optimizer step's batch (with --data.steps_per_batch N it is called "
                    "once per N steps, with a list of N (images, labels))"
                )
            return (
                f"{written} runs at every optimizer step, and Lightning writes what it logs once per training batch at "
                "most (with --data.steps_per_batch N, once per N steps or less often)"
            )
    return None


def groups_fitting_validation(
    trainer, images: int, batch_size: int, most: int, say: Callable[[str], None] = rank_zero_info
) -> Grouping:
    """Training batches of at most ``most`` optimizer steps, laid out so that validating every
    ``--trainer.val_check_interval`` of an epoch (a fraction) happens after the optimizer steps it would with one step
    a batch (``images``: the training split's; ``batch_size``: per step); ``most`` each for any other interval.

    Lightning validates every ``int(batches * fraction)`` training batches (and not at an epoch's end unless that
    count falls there). In groups of 64 that is every few groups: on a CPU, ``0.1`` of 860 steps would validate every
    64 steps, not 86. So each stretch of ``every`` steps between two validations is cut into the fewest batches (the
    same number in each stretch) that Lightning's count puts a validation after, and the steps after the last
    validation into fewer batches than that.
    """
    fraction = getattr(trainer, "val_check_interval", None)  # (unset when it is a duration: validating by time)
    if not isinstance(fraction, float) or fraction >= 1.0:
        return Grouping(most)
    steps = steps_per_epoch(images, trainer.world_size, batch_size)
    every = max(1, int(steps * fraction))  # optimizer steps between validations, as without groups
    stretches, tail = divmod(steps, every)
    # Ends at one step a batch at the latest (per_stretch = every, in_tail = tail: Lightning's count without groups).
    for per_stretch in range(math.ceil(every / most), every + 1):
        for in_tail in range(math.ceil(tail / most), min(tail, per_stretch - 1) + 1):  # (no validation in the tail)
            if max(1, int((stretches * per_stretch + in_tail) * fraction)) == per_stretch:  # (Lightning's sum)
                layout = split_evenly(every, per_stretch) * stretches + split_evenly(tail, in_tail)
                return _said_grouping(layout, most, f"--trainer.val_check_interval {fraction}", every, say)
    raise AssertionError("unreachable: one step a batch always fits")


def steps_per_epoch(images: int, processes: int, batch_size: int) -> int:
    """One process's optimizer steps in an epoch: its share of ``images`` (as ``DistributedSampler`` pads them), in
    steps of ``batch_size``."""
    return math.ceil(math.ceil(images / processes) / batch_size)


def split_evenly(steps: int, groups: int) -> list[int]:
    """``steps`` in ``groups`` groups, all of the first one's size but the last where they can be (a CUDA graph replays
    one shape), else of sizes that differ by one."""
    if groups == 0:
        return []
    size = math.ceil(steps / groups)
    if steps - size * (groups - 1) >= 1:
        return [size] * (groups - 1) + [steps - size * (groups - 1)]
    low, more = divmod(steps, groups)
    return [low + 1] * more + [low] * (groups - more)


def _said_grouping(layout: list[int], most: int, option: str, every: int, say: Callable[[str], None]) -> Grouping:
    """The grouping of ``layout``, and the line that says why it is not ``most`` steps a batch."""
    if all(steps == most for steps in layout[:-1]):
        return Grouping(most)
    sizes = sorted(set(layout[:-1] or layout))  # (the epoch's last batch holds what is left)
    if len(sizes) == 1:
        what = f"{sizes[0]} optimizer step{'s' if sizes[0] > 1 else ''} per training batch, not {most}"
    else:
        what = f"Training batches of {sizes[0]} to {sizes[-1]} optimizer steps, not {most} each"
    say(
        f"{what}, so that {option} validates every {every} optimizer steps, as with one step a batch "
        "(--data.steps_per_batch N groups anyway, validating at the end of a group)."
    )
    if len(sizes) == 1 and layout[-1] <= sizes[0]:
        return Grouping(sizes[0])  # (evenly grouped: the sampler's plain slices)
    return Grouping(max(layout), tuple(layout))
