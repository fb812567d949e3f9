"""``--model.compile``: the training steps' network through ``torch.compile``, and its build failures explained.

A failed build reaches the training step as ``torch._dynamo.exc.BackendCompilerFailed``, the exception that
PyTorch's torch.compile troubleshooting guide names; torch has no public alias for it, so it is caught here only.
"""

import getpass
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from fashion_lightning.errors import ConfigurationError


def compile_network(net: torch.nn.Module) -> torch.nn.Module:
    """``net`` compiled lazily, at its first call; the wrapper shares ``net``'s parameters.

    ``dynamic=False``: one static graph per batch shape (64, and an epoch's last), not a slower dynamic one.
    """
    return torch.compile(net, dynamic=False)


@contextmanager
def compile_failures_explained() -> Iterator[None]:
    """Turn a failed build (no C++ compiler, a full or read-only cache folder) into a paragraph saying what to do."""
    try:
        yield
    except torch._dynamo.exc.BackendCompilerFailed as error:  # raised at a batch shape's first step
        cause = str(error.inner_exception).strip().splitlines()
        raise ConfigurationError(
            "--model.compile: torch.compile could not build the training step "
            f"({type(error.inner_exception).__name__}: {cause[0] if cause else 'no message'}). "
            "Train without --model.compile (the default runs the same steps eagerly), or give inductor what it "
            "needs: a working C++ compiler (g++, or the one named in $CXX) and a writable cache folder with free "
            f"space ({inductor_cache_dir()}, set by TORCHINDUCTOR_CACHE_DIR). Checkpoints saved so far are kept."
        ) from None


def inductor_cache_dir() -> str:
    """Where inductor builds: ``$TORCHINDUCTOR_CACHE_DIR``, else its documented default."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user without a name
        user = f"uid_{os.getuid()}"
    return os.environ.get("TORCHINDUCTOR_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"torchinductor_{user}"))
