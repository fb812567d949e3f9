"""The arguments ``FashionCLI`` is built with (``cli_kwargs``): the callbacks every run has, how its config is saved,
and the parser's class and usage lines."""

from fashion_lightning.callbacks import EpochTimer, FiniteLossGuard, ResumableRun, RunSummary, TensorBoardExtras
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
