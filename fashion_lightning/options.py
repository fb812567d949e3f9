"""Checks of option values that look across the config, made before anything is created on disk, and the flags
given on a command line."""

import sys
from argparse import ArgumentError

import torch
import yaml
from lightning.pytorch.callbacks import GradientAccumulationScheduler, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_info

from fashion_lightning.errors import ConfigurationError
from fashion_lightning.logger_layout import is_entry_of, loggers
from fashion_lightning.optimizers import cosine_epochs
from fashion_lightning.trainer_checks import check_trainer_values


def follow_monitor(config, explicit: dict) -> None:
    """``--checkpoint.monitor`` given without ``--checkpoint.mode``: keep the highest value of an accuracy and the
    lowest of anything else (Lightning's default, ``min``); the project's ``max`` is for its default, ``val/acc``."""
    given = explicit.get("checkpoint") or {}
    if config.get("checkpoint") and "monitor" in given and "mode" not in given and config.checkpoint.monitor:
        config.checkpoint.mode = "max" if "acc" in config.checkpoint.monitor.rpartition("/")[2] else "min"


def check_run_options(config) -> None:
    """Refuse option values that cannot work, before anything is created on disk."""
    check_trainer_values(config.trainer)
    accelerator = config.trainer.get("accelerator")
    any_gpu = torch.cuda.is_available() or (accelerator == "gpu" and torch.backends.mps.is_available())
    if accelerator in ("gpu", "cuda") and not any_gpu:
        raise ConfigurationError(
            f"--trainer.accelerator {accelerator}: this machine has no CUDA GPU that PyTorch can use "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}). Leave the option out (auto: "
            "the GPU when there is one, else the CPU) or pass --trainer.accelerator cpu; on a GPU machine, check "
            "nvidia-smi and $CUDA_VISIBLE_DEVICES."
        )
    if config.trainer.get("barebones"):
        raise ConfigurationError(
            "--trainer.barebones turns off the logger, checkpoints, progress bar and sanity check, which this CLI "
            "keeps for every run (Lightning refuses them beside it). For a lean run: --trainer.logger false "
            "--trainer.enable_checkpointing false --trainer.enable_progress_bar false "
            "--trainer.num_sanity_val_steps 0; for Lightning's bare loop, from Python: "
            "Trainer(barebones=True).fit(FashionClassifier(), FashionMNISTDataModule()); for what fit costs over a "
            "framework-free loop: python benchmarks/epoch_time.py."
        )
    if config.get("checkpoint") and config.checkpoint.get("save_last"):
        raise ConfigurationError(
            "--checkpoint.save_last would make Lightning's ModelCheckpoint write a second last.ckpt beside the one "
            "this project writes (after every epoch, and every n steps with --last.every_n_train_steps N). Remove "
            "checkpoint.save_last from the command or config file; last.ckpt is always written."
        )
    for logger in loggers(config):
        every = logger.init_args.get("flush_logs_every_n_steps") if is_entry_of(logger, CSVLogger) else None
        if every is not None and every < 1:  # (Lightning divides by it when it logs: a ZeroDivisionError in fit)
            raise ConfigurationError(
                f"--trainer.logger CSVLogger: flush_logs_every_n_steps must be at least 1 (metrics.csv is written "
                f"every that many logged steps), got {every}."
            )


def check_optimization_options(config) -> None:
    """Point Lightning's optimization flags to the module's own (its training step runs the optimizer itself), refuse
    a cosine schedule without an epoch limit, and make ``every_n_train_steps`` of ``--checkpoint`` and of any other
    ModelCheckpoint exact (one optimizer step per training batch)."""
    trainer = config.trainer
    if trainer.get("gradient_clip_val"):
        raise ConfigurationError(
            "--trainer.gradient_clip_val does not apply here: the training step runs the optimizer itself (several "
            "steps per Lightning step, or one CUDA graph), where Lightning's clipping cannot reach. Use "
            f"--model.gradient_clip_val {trainer.gradient_clip_val} (and --model.gradient_clip_algorithm norm|value)."
        )
    if (trainer.get("accumulate_grad_batches") or 1) != 1:
        raise ConfigurationError(
            "--trainer.accumulate_grad_batches does not apply here: the training step runs the optimizer itself. "
            f"Use --model.accumulate_grad_batches {trainer.accumulate_grad_batches}."
        )
    callbacks = trainer.get("callbacks") or []
    callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
    if any(is_entry_of(callback, GradientAccumulationScheduler) for callback in callbacks):
        raise ConfigurationError(
            "GradientAccumulationScheduler does not apply here: the training step runs the optimizer itself "
            "(Lightning's manual optimization), where the callback cannot reach. Use --model.accumulate_grad_batches "
            "N (one value for the whole run)."
        )
    if config.get("model") and config.model.get("lr_scheduler") == "cosine":
        epochs = trainer.get("max_epochs")  # Lightning's None: 1000, or no limit beside max_steps or max_time
        limited = trainer.get("max_steps") in (None, -1) and trainer.get("max_time") is None
        cosine_epochs(epochs if epochs is not None else (1000 if limited else -1))
    every = [config.checkpoint.get("every_n_train_steps")] if config.get("checkpoint") else []
    every += [
        (c.get("init_args") or {}).get("every_n_train_steps") for c in callbacks if is_entry_of(c, ModelCheckpoint)
    ]
    if any(every) and config.get("data") and config.data.get("steps_per_batch") is None:
        # Lightning's ModelCheckpoint saves when global_step is a multiple of n, which groups of steps can skip.
        config.data.steps_per_batch = 1


HOW_TO_RUN = {"cuda_graph", "compile"}  # model options that change how a step runs, not what it computes


def check_explicit_model_options(explicit: dict, checkpoint: dict, path: str) -> None:
    """Refuse ``--model.*`` values the user gave that differ from what the checkpoint was trained with.

    A checkpoint rebuilds its own model (its hyperparameters replace the config's), so such a flag would be
    silently ignored; an error names both values instead.
    """
    saved = checkpoint.get("hyper_parameters", {})
    clashes = [
        f"{name} {value!r} (checkpoint: {saved[name]!r})"
        for name, value in dict(explicit).items()
        if name in saved and name not in HOW_TO_RUN and _normalised(value) != _normalised(saved[name])
    ]
    if clashes:
        raise ConfigurationError(
            f"These --model options disagree with the checkpoint '{path}': {'; '.join(clashes)}. A checkpoint "
            "rebuilds the model it was trained as, so they would be ignored. Drop them to use the checkpoint, or "
            "train a new model with them (fit without --ckpt_path)."
        )


def check_training_left(trainer, checkpoint: dict, path: str) -> None:
    """Before a resumed fit: refuse a ``--trainer.max_epochs`` below the epochs the checkpoint has trained, or beyond
    the end of its cosine schedule, and say so when the epoch or step limit leaves nothing to train (Lightning then
    ends the fit at once)."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    epochs = progress.get("processed", checkpoint.get("epoch", 0))  # epochs whose training ended
    max_epochs, max_steps, steps = trainer.get("max_epochs"), trainer.get("max_steps"), checkpoint.get("global_step", 0)
    epoch_limit = max_epochs not in (None, -1)
    if epoch_limit and epochs > max_epochs:
        raise ConfigurationError(
            f"--ckpt_path {path}: that run has trained {epochs} epochs, more than --trainer.max_epochs "
            f"{max_epochs}, and a fit cannot go back. Pass --trainer.max_epochs N with N > {epochs} to train on "
            "from it, or leave out --ckpt_path to start a new run."
        )
    schedule = (checkpoint.get("lr_schedulers") or [{}])[0]
    cosine = checkpoint.get("hyper_parameters", {}).get("lr_scheduler") == "cosine" and "T_max" in schedule
    if cosine and epoch_limit and max_epochs > schedule["T_max"]:
        raise ConfigurationError(
            f"--ckpt_path {path}: that run's cosine schedule takes the learning rate to 0 over the "
            f"{schedule['T_max']} epochs it was started with; resumed with --trainer.max_epochs {max_epochs}, it "
            "would train on at a rate that reached 0 and then rises again. Resume with --trainer.max_epochs "
            f"{schedule['T_max']}, or start a new run with --trainer.max_epochs {max_epochs}."
        )
    if epoch_limit and epochs == max_epochs:
        limit = f"{epochs} epochs (--trainer.max_epochs {max_epochs})"
    elif max_steps not in (None, -1) and steps >= max_steps:
        limit = f"{steps} optimizer steps (--trainer.max_steps {max_steps})"
    else:
        return
    rank_zero_info(
        f"--ckpt_path {path}: that run has already trained {limit}, so this fit has nothing left to train. Raise "
        "the limit to train on from it."
    )


def _normalised(value):
    return list(value) if isinstance(value, tuple | list) else value


def explicit_flags(argv: list[str]) -> dict:
    """``--model.*``, ``--checkpoint.monitor``/``mode`` and the logger's ``save_dir`` as given on the command line
    (config files not read)."""
    found: dict = {"fit": {}, "test": {}, "validate": {}, "predict": {}}
    subcommand = next((a for a in argv if a in found), "fit")
    given = found[subcommand]
    for index, arg in enumerate(argv):
        name, has_value, value = arg.partition("=")
        if not has_value and index + 1 < len(argv):
            value = argv[index + 1]
        if name.startswith("--model."):
            given.setdefault("model", {})[name.removeprefix("--model.")] = yaml.safe_load(value)
        elif name in ("--checkpoint.monitor", "--checkpoint.mode"):
            given.setdefault("checkpoint", {})[name.removeprefix("--checkpoint.")] = value
        elif name in ("--trainer.logger.init_args.save_dir", "--trainer.logger.save_dir"):
            given["trainer"] = {"logger": {"init_args": {"save_dir": value}}}
    return found


def explicit_options(parser, args) -> dict:
    """Only what the user gave (flags and config files), without defaults; ``args`` as for ``LightningCLI``."""
    if isinstance(args, dict):
        return args
    exit_on_error, parser.exit_on_error = parser.exit_on_error, False
    try:
        return parser.parse_args(args, defaults=False)
    except ArgumentError:  # a class given in part (only a logger's name) does not validate without defaults
        return explicit_flags(sys.argv[1:] if args is None else args)
    finally:
        parser.exit_on_error = exit_on_error
