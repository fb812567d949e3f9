"""Fashion-MNIST on PyTorch Lightning: the PyTorch quickstart's pipeline, with a CLI, resume and export."""

from importlib import metadata

from fashion_lightning.data import CLASS_NAMES
from fashion_lightning.datamodule import FashionMNISTDataModule
from fashion_lightning.lit_module import FashionClassifier
from fashion_lightning.model import MLP, SmallCNN

__all__ = ["CLASS_NAMES", "MLP", "FashionClassifier", "FashionMNISTDataModule", "SmallCNN", "cli_main"]
try:
    __version__ = metadata.version("fashion-lightning")  # pyproject.toml's, once installed
except metadata.PackageNotFoundError:  # a checkout on sys.path, not installed
    __version__ = "unknown"


def cli_main(args=None):
    """Run the command line (imported lazily so ``import fashion_lightning`` stays light)."""
    from fashion_lightning.cli import cli_main as _cli_main

    return _cli_main(args)
