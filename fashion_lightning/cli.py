"""``cli_main``: the one entry point for the shell (``fashion-lightning``), the tests and the notebook."""

import signal
import sys
from pathlib import Path

from lightning import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, TQDMProgressBar
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from fashion_lightning import resume
from fashion_lightning.callbacks import EpochTimer, FiniteLossGuard, RunSummary
from fashion_lightning.checkpointing import (
    AtomicCheckpointIO,
    LastCheckpoint,
    check_compatible,
    find_last_checkpoint,
    load_checkpoint,
    run_version,
)
from fashion_lightning.datamodule import FashionMNISTDataModule
from fashion_lightning.errors import FashionLightningError
from fashion_lightning.inference import PredictionWriter
from fashion_lightning.module import FashionClassifier
from fashion_lightning.resume import ResumableRun
from fashion_lightning.tensorboard_extras import TensorBoardExtras

TOOLS = ("classify", "export")
DESCRIPTION = (
    "Train, evaluate and use a Fashion-MNIST classifier (the PyTorch quickstart's MLP on Lightning). "
    "Also: `fashion-lightning classify CKPT IMAGE...` and `fashion-lightning export CKPT` (each with --help)."
)
LOG_ROOT = "lightning_logs"
RUN_NAME = "fashion"


class RunConfigSaver(SaveConfigCallback):
    """Save the resolved config as ``config.yaml`` for fit and ``config.<stage>.yaml`` otherwise.

    Evaluating or resuming a checkpoint logs into the run it came from; a test never overwrites how the run
    was trained.
    """

    def setup(self, trainer, pl_module, stage: str) -> None:
        stage = str(getattr(stage, "value", stage))  # "fit", "validate", "test", "predict"
        self.config_filename = "config.yaml" if stage == "fit" else f"config.{stage}.yaml"
        super().setup(trainer, pl_module, stage)


class FashionCLI(LightningCLI):
    """LightningCLI with the project's links, checkpoint callbacks and checkpoint handling."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Values that come from the data are linked, never retyped.
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.image_shape", "model.image_shape", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")  # best.ckpt
        parser.add_lightning_class_args(LastCheckpoint, "last")  # last.ckpt, optionally every n steps
        parser.add_lightning_class_args(PredictionWriter, "predictions")  # predict: the CSV
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/acc",
                "checkpoint.mode": "max",
                "checkpoint.filename": "best",
                "checkpoint.auto_insert_metric_name": False,
                "checkpoint.enable_version_counter": False,  # a resumed run keeps updating best.ckpt
                "trainer.logger": {
                    "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                    "init_args": {"save_dir": LOG_ROOT, "name": RUN_NAME, "default_hp_metric": False},
                },
                "trainer.max_epochs": 5,
            }
        )

    def _parse_ckpt_path(self) -> None:
        # Runs before the classes are built: resolve `last`, refuse a bad file with a clear error (before
        # Lightning's own loader would fail with a traceback), and log into the checkpoint's own run.
        self._checkpoint = None
        subcommand = self.config.get("subcommand")
        if subcommand:
            config = self.config[subcommand]
            config.ckpt_path = self._resolve_ckpt_path(config.ckpt_path, self._runs_root(config))
            if config.ckpt_path:
                self._checkpoint = load_checkpoint(config.ckpt_path)
                self._continue_run(config, subcommand)
        super()._parse_ckpt_path()

    @staticmethod
    def _runs_root(config) -> Path | None:
        logger = config.trainer.get("logger")
        if not hasattr(logger, "get") or not str(logger.get("class_path", "")).endswith("TensorBoardLogger"):
            return None  # another logger (or none): its runs are not laid out as version_N folders
        init_args = logger.init_args
        return Path(init_args.get("save_dir") or ".") / (init_args.get("name") or "")

    @staticmethod
    def _resolve_ckpt_path(ckpt_path: str | None, runs_root: Path | None) -> str | None:
        if ckpt_path != "last" or runs_root is None:
            return ckpt_path
        found = find_last_checkpoint(runs_root)
        if found is None:
            print(f"--ckpt_path last: there is no last.ckpt under {runs_root}/; starting a new run from scratch.")
            return None
        print(f"--ckpt_path last: resuming {found}")
        return str(found)

    def _continue_run(self, config, subcommand: str) -> None:
        found, runs_root = run_version(config.ckpt_path), self._runs_root(config)
        if found is None or runs_root is None or found[0] != runs_root.absolute():
            return
        init_args = config.trainer.logger.init_args
        if init_args.get("version") is None:
            init_args.version = found[1]
            if subcommand == "fit":
                # TensorBoard drops what the killed run logged after this step, so curves have no duplicates.
                init_args.purge_step = int(self._checkpoint.get("global_step", 0))

    def _instantiate_trainer(self, config: dict, callbacks: list) -> Trainer:
        # Lightning's default bar redraws every step (RichProgressBar when `rich` is installed): about 0.3 ms a
        # step, a fifth of a CPU step here. A TQDM bar redrawn every 20 steps still updates several times a
        # second. A bar the user configures, or --trainer.enable_progress_bar false, is left alone.
        if self.subcommand != "predict":
            # Lightning calls every hook of every callback each step (~30 us a callback on a small CPU), so the
            # prediction writer only joins the runs that predict.
            callbacks = [callback for callback in callbacks if not isinstance(callback, PredictionWriter)]
        configured = [*(config.get("callbacks") or []), *callbacks]
        wants_bar = config.get("enable_progress_bar") is not False
        if wants_bar and not any(isinstance(callback, ProgressBar) for callback in configured):
            callbacks = [*callbacks, TQDMProgressBar(refresh_rate=20)]
        return super()._instantiate_trainer(config, callbacks)

    def after_instantiate_classes(self) -> None:
        super().after_instantiate_classes()
        if self._checkpoint is not None and self.subcommand is not None:
            check_compatible(self._checkpoint, self.model, self.config[self.subcommand].ckpt_path)


def build_cli(args: ArgsType = None, run: bool = True) -> FashionCLI:
    """Build (and by default run) the CLI; ``args`` as for ``LightningCLI`` (list, dict or ``None`` = argv)."""
    return FashionCLI(
        FashionClassifier,
        FashionMNISTDataModule,
        save_config_callback=RunConfigSaver,
        save_config_kwargs={"overwrite": True},
        seed_everything_default=42,
        auto_configure_optimizers=False,  # the model's own typed optimizer options are the single source
        parser_kwargs={"description": DESCRIPTION},
        # Always present, not configurable away: they guard, resume and report every run.
        trainer_defaults={
            "callbacks": [EpochTimer(), FiniteLossGuard(), ResumableRun(), TensorBoardExtras(), RunSummary()],
            "plugins": [{"class_path": f"{AtomicCheckpointIO.__module__}.{AtomicCheckpointIO.__qualname__}"}],
        },
        args=args,
        run=run,
    )


def run_tool(args: list[str]) -> int:
    """``classify`` and ``export``: commands on a checkpoint that need no Trainer. Returns the failure count."""
    from jsonargparse import ArgumentParser

    from fashion_lightning.export import export
    from fashion_lightning.inference import classify

    parser = ArgumentParser(prog="fashion-lightning")
    subcommands = parser.add_subcommands()
    classify_parser = ArgumentParser(description=classify.__doc__.split("\n\n")[0])
    classify_parser.add_argument("ckpt_path", help="checkpoint written by `fashion-lightning fit`")
    classify_parser.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...; any size or mode)")
    classify_parser.add_argument("--top_k", type=int, default=3, help="classes printed per image")
    subcommands.add_subcommand("classify", classify_parser)
    export_parser = ArgumentParser(description=export.__doc__.split("\n\n")[0])
    export_parser.add_function_arguments(export, as_positional=True)
    subcommands.add_subcommand("export", export_parser)
    config = parser.parse_args(args)
    options = config[config.subcommand]
    if config.subcommand == "classify":
        return classify(options.ckpt_path, *options.images, top_k=options.top_k)
    export(**{key: value for key, value in vars(options).items() if key != "config"})
    return 0


def cli_main(args: ArgsType = None) -> FashionCLI | None:
    """Run ``fashion-lightning fit|validate|test|predict|classify|export ...``.

    Errors a user can fix (data, checkpoint, option values) print one paragraph and exit non-zero without a
    traceback; a run stopped by SIGTERM or SIGUSR1 exits with 128 + the signal number.
    """
    argv = sys.argv[1:] if args is None else args
    try:
        if isinstance(argv, list) and argv and argv[0] in TOOLS:
            failures = run_tool(argv)
            if failures:
                sys.exit(1)
            return None
        return build_cli(args)
    except FashionLightningError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except SIGTERMException:
        signum = resume.stop_signal or signal.SIGTERM
        rank_zero_info(f"Stopped by {signal.Signals(signum).name}; resume with --ckpt_path last.")
        sys.exit(128 + signum)


def main() -> None:
    """Console entry point: like ``cli_main()``, but returns nothing, so the exit status is 0 on success."""
    cli_main()
