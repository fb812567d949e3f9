"""``cli_main``: the one entry point for the shell (``fashion-lightning``), the tests and the notebook."""

import logging
import os
import sys

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

from fashion_lightning.callbacks import EpochTimer, FiniteLossGuard, RunSummary
from fashion_lightning.datamodule import FashionMNISTDataModule
from fashion_lightning.errors import FashionLightningError
from fashion_lightning.module import FashionClassifier

log = logging.getLogger(__name__)

LOG_ROOT = "lightning_logs"
RUN_NAME = "fashion"


class FashionCLI(LightningCLI):
    """LightningCLI with the project's links and trainer defaults."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Values that come from the data are linked, never retyped.
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.image_shape", "model.image_shape", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/acc",
                "checkpoint.mode": "max",
                "checkpoint.filename": "best",
                "checkpoint.save_last": True,
                "checkpoint.auto_insert_metric_name": False,
                "trainer.logger": {
                    "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                    "init_args": {"save_dir": LOG_ROOT, "name": RUN_NAME},
                },
                "trainer.max_epochs": 5,
            }
        )


def build_cli(args: ArgsType = None, run: bool = True) -> FashionCLI:
    """Build (and by default run) the CLI; ``args`` as for ``LightningCLI`` (list, dict or ``None`` = argv)."""
    return FashionCLI(
        FashionClassifier,
        FashionMNISTDataModule,
        seed_everything_default=42,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,  # the model's own typed optimizer options are the single source
        # Always present (not configurable away): they guard and report every run.
        trainer_defaults={"callbacks": [EpochTimer(), FiniteLossGuard(), RunSummary()]},
        args=args,
        run=run,
    )


def cli_main(args: ArgsType = None) -> FashionCLI | None:
    """Run ``fashion-lightning fit|validate|test|predict ...``; errors a user can fix exit without a traceback."""
    # Redrawing the progress bar every step costs ~0.3 ms, a sixth of a CPU step here; every 20 steps is still
    # several redraws a second. Lightning's TQDMProgressBar reads this variable; a user's own value wins.
    os.environ.setdefault("TQDM_MINITERS", "20")
    try:
        return build_cli(args)
    except FashionLightningError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)


def main() -> None:
    """Console entry point: like ``cli_main()``, but returns nothing, so the exit status is 0 on success."""
    cli_main()
