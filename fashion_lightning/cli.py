"""``cli_main``: the one entry point for the shell (``fashion-lightning``), the tests and the notebook."""

import signal
import sys

import torch
from lightning import Trainer
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.multiprocessing import ProcessExitedException, ProcessRaisedException

from fashion_lightning import config_types, logger_layout  # noqa: F401 (config_types: how jsonargparse reads types)
from fashion_lightning.callbacks import (
    LastCheckpoint,
    MatmulPrecision,
    PredictionWriter,
    resume,
)
from fashion_lightning.callbacks.arrangement import arrange_callbacks, trainer_kwargs
from fashion_lightning.checkpoint_folders import (
    enter_checkpoint_folders,
    enter_given_run_dir,
    unclaimed_checkpoint_folders,
)
from fashion_lightning.checkpointing import check_compatible, load_checkpoint
from fashion_lightning.class_errors import class_error
from fashion_lightning.cli_setup import add_run_arguments, cli_kwargs
from fashion_lightning.datamodule import FashionMNISTDataModule
from fashion_lightning.errors import FashionLightningError, own_error
from fashion_lightning.final_test import test_after_fit
from fashion_lightning.lit_module import FashionClassifier
from fashion_lightning.options import (
    HOW_TO_RUN,
    check_explicit_model_options,
    check_optimization_options,
    check_run_options,
    check_training_left,
    explicit_options,
    follow_monitor,
)
from fashion_lightning.quiet import silence_known_noise
from fashion_lightning.run_claims import claim_run_dir, claim_versions_elsewhere, forget_claims, release_unused_claims
from fashion_lightning.run_lock import release_locks
from fashion_lightning.runs import continue_run, resolve_ckpt_path, version_dir_name
from fashion_lightning.spawn_stop import forward_stop_signals, stop_exit_code, stop_forwarding
from fashion_lightning.tools import run_without_lightning_cli

RUN_NAME = "fashion"


class FashionCLI(LightningCLI):
    """LightningCLI with the project's links, checkpoint callbacks and checkpoint handling."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Values that come from the data are linked, never retyped.
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.image_shape", "model.image_shape", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")  # best.ckpt
        parser.add_lightning_class_args(LastCheckpoint, "last")  # last.ckpt, optionally every n steps
        parser.add_lightning_class_args(PredictionWriter, "predictions")  # predict: the CSV
        add_run_arguments(parser)  # --float32_matmul_precision, --test_after_fit
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/acc",
                "checkpoint.mode": "max",
                "checkpoint.filename": "best",
                "checkpoint.auto_insert_metric_name": False,
                "checkpoint.enable_version_counter": False,  # a resumed run keeps updating best.ckpt
                "trainer.logger": {
                    "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                    "init_args": {"save_dir": logger_layout.LOG_ROOT, "name": RUN_NAME, "default_hp_metric": False},
                },
                "trainer.max_epochs": 5,
            }
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        super().parse_arguments(parser, args)
        # Runs before Lightning copies the checkpoint's hyperparameters into the config: resolve `last`, refuse a
        # bad file with a clear error (before Lightning's own loader would fail with a traceback), refuse explicit
        # --model flags that the checkpoint would silently override, and log into the checkpoint's own run.
        self._checkpoint, self._how_to_run, self._given_version, self._continued = None, {}, False, False
        subcommand = self.config.get("subcommand")
        if not subcommand:  # run=False: one flat config, to build the objects from Python; it follows the root too
            logger_layout.follow_default_root_dir(self.config, explicit_options(parser, args))
            return
        config = self.config[subcommand]
        explicit = explicit_options(parser, args).get(subcommand) or {}
        logger_layout.follow_default_root_dir(config, explicit)
        follow_monitor(config, explicit)
        best_file = f"{config.checkpoint.filename or 'best'}.ckpt"
        root, run_logger = logger_layout.runs_root(config), logger_layout.folder_logger_args(config)
        given_version = run_logger.version if run_logger is not None else None
        config.ckpt_path = resolve_ckpt_path(config.ckpt_path, root, subcommand, best_file, given_version)
        self._given_version = given_version is not None
        if config.ckpt_path:
            self._checkpoint = FashionClassifier.upgrade_checkpoint(load_checkpoint(config.ckpt_path))
            check_explicit_model_options(explicit.get("model") or {}, self._checkpoint, config.ckpt_path)
            if subcommand == "fit":
                check_training_left(config.trainer, self._checkpoint, config.ckpt_path)
            # Lightning then copies the checkpoint's hyperparameters over the config; how a step runs stays the user's.
            self._how_to_run = {k: v for k, v in (explicit.get("model") or {}).items() if k in HOW_TO_RUN}
            self._continued = continue_run(config, subcommand, int(self._checkpoint.get("global_step", 0)))
        elif subcommand != "fit":
            rank_zero_warn(
                f"No --ckpt_path: {subcommand} runs on an untrained model (random weights). Pass --ckpt_path best "
                "(the newest run's best checkpoint) or a checkpoint's path."
            )

    def before_instantiate_classes(self) -> None:
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config  # (run=False: one flat config)
        check_run_options(config)
        check_optimization_options(config)
        if not subcommand:
            return  # (its run folder is the logger's)
        for name, value in self._how_to_run.items():
            config.model[name] = value
        if subcommand == "fit":
            enter_checkpoint_folders(unclaimed_checkpoint_folders(config), config.ckpt_path)
        if config.trainer.get("fast_dev_run"):
            return  # Lightning logs and saves nothing, so no run folder
        root = logger_layout.runs_root(config)
        if root is not None:
            self._claim_run_folder(config, subcommand, root)
        elsewhere = claim_versions_elsewhere(config, fit=subcommand == "fit")
        resumed = subcommand == "fit" and self._continued
        self.save_config_kwargs = {**self.save_config_kwargs, "chosen_elsewhere": tuple(elsewhere), "resumed": resumed}

    def _claim_run_folder(self, config, subcommand: str, root) -> None:
        """The run's ``version_N`` under ``root``: given, the resumed checkpoint's, or a new one claimed."""
        self.save_config_kwargs = {**self.save_config_kwargs, "chosen_version": not self._given_version}
        version = logger_layout.folder_logger_args(config).version
        if self._given_version:
            if subcommand == "fit":
                enter_given_run_dir(root / version_dir_name(version), config.ckpt_path)
        elif version is None:  # (else a resume: continue_run chose the checkpoint's run)
            version = claim_run_dir(root, fit=subcommand == "fit")
        logger_layout.set_run_version(config, version)  # the first logger's, and the others' writing the same folder

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except (ValueError, TypeError, ImportError) as err:
            # e.g. --trainer.logger WandbLogger without wandb, --trainer.callbacks.mode maxx for EarlyStopping,
            # --trainer.devices -1 on the CPU (the Trainer's TypeError)
            error = class_error(err, str(self.subcommand))
            if error is None:
                raise
            raise error from None

    def instantiate_trainer(self, **kwargs) -> Trainer:
        config = self.config_init.get(str(self.subcommand), self.config_init)
        trainer_config = config.get("trainer") or {}
        trainer = super().instantiate_trainer(**trainer_kwargs(trainer_config, kwargs))
        if precision := config.get("float32_matmul_precision"):
            trainer.callbacks.append(MatmulPrecision(precision))
        resuming = self.subcommand == "fit" and bool(config.get("ckpt_path"))
        arrange_callbacks(trainer, trainer_config, config.get("checkpoint"), str(self.subcommand), resuming)
        return trainer

    def after_instantiate_classes(self) -> None:
        super().after_instantiate_classes()
        if self._checkpoint is not None and self.subcommand is not None:
            check_compatible(self._checkpoint, self.model, self.config[self.subcommand].ckpt_path)
        if self.subcommand == "fit":
            forward_stop_signals(self.trainer)  # (under ddp_spawn: this process only waits for the fit's)

    def after_fit(self) -> None:
        if self.config["fit"].get("test_after_fit"):
            test_after_fit(self.trainer, self.model, self.datamodule)


def build_cli(args: ArgsType = None, run: bool = True) -> FashionCLI:
    """Build (and by default run) the CLI; ``args`` as for ``LightningCLI`` (list, dict or ``None`` = argv)."""
    silence_known_noise()
    return FashionCLI(FashionClassifier, FashionMNISTDataModule, **cli_kwargs(), args=args, run=run)


def cli_main(args: ArgsType = None) -> FashionCLI | None:
    """Run ``fashion-lightning fit|validate|test|predict|classify|export|serve|sweep ...``.

    Errors a user can fix (data, checkpoint, option values) print one paragraph and exit non-zero without a
    traceback; a run stopped by a signal (Ctrl-C, SIGTERM, SIGUSR1) saves ``last.ckpt`` and exits with
    128 + the signal number. A run that never started leaves no ``version_N`` folder behind.
    """
    silence_known_noise()
    argv, sigint = sys.argv[1:] if args is None else args, signal.getsignal(signal.SIGINT)
    matmul_precision = torch.get_float32_matmul_precision()  # (--float32_matmul_precision: for the run only)
    try:
        code = run_without_lightning_cli(argv)
        if code is not None:  # classify, export, serve, sweep or --version
            if code:
                sys.exit(code)
            return None
        return build_cli(args)
    except (FashionLightningError, MisconfigurationException, ProcessRaisedException, ValueError) as err:
        if (error := own_error(err)) is None:  # (ProcessRaisedException: a ddp_spawn worker's, any error)
            raise
        release_unused_claims()
        print(f"error: {error}", file=sys.stderr)
        sys.exit(getattr(error, "exit_code", 2))
    except ProcessExitedException as err:  # (a worker of ddp_spawn; one that stopped said what it saved)
        sys.exit(stop_exit_code(err))
    except SIGTERMException:
        if resume.stop_signal is None:  # not a fit (whose ResumableRun says what it saved): a validate, test, ...
            rank_zero_info("Stopped by SIGTERM.")
        sys.exit(128 + (resume.stop_signal or signal.SIGTERM))
    except KeyboardInterrupt:
        release_unused_claims()
        print("Interrupted.", file=sys.stderr)  # during a fit, Ctrl-C is handled by ResumableRun instead
        sys.exit(128 + signal.SIGINT)
    except SystemExit:  # e.g. Lightning's exit on a Ctrl-C before the training's handlers were in place
        release_unused_claims()
        # Lightning then ignores SIGINT; the next call from Python (a notebook's next cell) must stop on Ctrl-C.
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN and callable(sigint):
            signal.signal(signal.SIGINT, sigint)
        raise
    finally:  # the run is over, however it ended (a notebook's kernel lives on):
        torch.set_float32_matmul_precision(matmul_precision)  # (ddp_spawn's workers ran the callback's teardown)
        stop_forwarding()
        release_locks()  # another process (or this one) may resume it now
        forget_claims()  # its folders are its own (the handlers above removed those it left unused)


def main() -> None:
    """Console entry point: like ``cli_main()``, but returns nothing, so the exit status is 0 on success."""
    cli_main()
