"""The arguments ``FashionCLI`` is built with (``cli_kwargs``): the callbacks every run has, how its config is saved,
and the parser's class and usage lines; the run's own options beside the classes' (``add_run_arguments``)."""

from lightning.pytorch.cli import LightningArgumentParser

from fashion_lightning.callbacks import EpochTimer, FiniteLossGuard, ResumableRun, RunSummary, TensorBoardExtras
from fashion_lightning.callbacks.matmul_precision import Float32MatmulPrecision
from fashion_lightning.checkpointing import AtomicCheckpointIO
from fashion_lightning.parse_errors import FashionArgumentParser
from fashion_lightning.run_config import RunConfigSaver

DESCRIPTION = (
    "Train, evaluate and use a Fashion-MNIST classifier (the PyTorch quickstart's MLP on Lightning). "
    "Also: `fashion-lightning export CKPT`, `fashion-lightning classify MODEL IMAGE...` and `fashion-lightning "
    "serve MODEL` (MODEL: a .ckpt, or export's .pth, .pt2 or .onnx) and `fashion-lightning sweep --search_space "
    "FILE` (each with --help)."
)
SUBCOMMANDS = ("fit", "validate", "test", "predict")
SUBCOMMAND_USAGE = "%(prog)s [-h] [-c CONFIG] [--print_config[=flags]] [--ckpt_path CKPT_PATH] [--OPTION VALUE ...]"


def cli_kwargs() -> dict:
    """What ``FashionCLI`` is built with, besides the classes and ``args``."""
    return {
        "save_config_callback": RunConfigSaver,
        "save_config_kwargs": {"overwrite": True},
        "seed_everything_default": 42,
        "auto_configure_optimizers": False,  # the model's own typed optimizer options are the single source
        "parser_class": FashionArgumentParser,  # a value of the wrong type: one line, not every type tried
        # A usage line that fits a screen: jsonargparse's lists every option (~100 lines) above each error.
        "parser_kwargs": {
            "prog": "fashion-lightning",  # (also under `python -m fashion_lightning` and cli_main)
            "description": DESCRIPTION,
            **{sub: {"usage": SUBCOMMAND_USAGE} for sub in SUBCOMMANDS},
        },
        # Always present, not configurable away: they guard, resume and report every run.
        "trainer_defaults": {
            "callbacks": [EpochTimer(), FiniteLossGuard(), ResumableRun(), TensorBoardExtras(), RunSummary()],
            "plugins": [{"class_path": f"{AtomicCheckpointIO.__module__}.{AtomicCheckpointIO.__qualname__}"}],
        },
    }


def add_run_arguments(parser: LightningArgumentParser) -> None:
    """The options of a run that belong to no class: ``--float32_matmul_precision`` and ``--test_after_fit``."""
    parser.add_argument(
        "--float32_matmul_precision",
        type=Float32MatmulPrecision | None,
        help="torch.set_float32_matmul_precision for the run: high or medium let a GPU's tensor cores do float32 "
        "matrix products (faster, less exact: TF32 or bfloat16). Unset: PyTorch's default, highest.",
    )
    parser.add_argument(
        "--test_after_fit",
        type=bool,
        default=False,
        help="fit only (the other commands ignore it, so one config serves them all): after training, test the "
        "best checkpoint on the test images in the same process, as `test --ckpt_path best` would without a second "
        "start-up; the results are logged into the run's folder.",
    )
