"""Errors a user can act on: the CLI prints their message as one paragraph and exits non-zero."""

import re
import sys


class FashionLightningError(RuntimeError):
    """Base class: something the user can fix (data, checkpoint, flag, input file).

    ``cli_main`` prints the message without a traceback and exits with ``exit_code``.
    """

    exit_code = 2


class DataUnavailableError(FashionLightningError):
    """The Fashion-MNIST files could not be found, verified or downloaded."""


class CheckpointError(FashionLightningError):
    """A checkpoint is missing, truncated, unsafe or belongs to another model."""


class NonFiniteLossError(FashionLightningError):
    """Training produced a NaN or infinite loss."""

    exit_code = 3


class ConfigurationError(FashionLightningError):
    """An option has a value that cannot work (for example a validation split larger than the data)."""


def first_line(err: BaseException | str) -> str:
    """The first line of an error's text (a library's message can run on with a traceback), or its type's name."""
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def own_error(err: BaseException) -> Exception | None:
    """``err`` if the CLI reports it as one paragraph (a ``FashionLightningError``, Lightning's
    ``MisconfigurationException``); such an error rebuilt from a ``ddp_spawn`` worker's report (torch's
    ``ProcessRaisedException``, which holds the worker's traceback as text); else ``None``."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from torch.multiprocessing import ProcessRaisedException

    own = (FashionLightningError, MisconfigurationException)
    if not isinstance(err, ProcessRaisedException):
        return err if isinstance(err, own) else None
    # The traceback ends with "package.module.ErrorClass: message" (a message may run over lines).
    matches = list(re.finditer(r"^([A-Za-z_][\w.]*)\.(\w+): ", str(err), re.MULTILINE))
    if not matches:
        return None
    module, name = matches[-1].groups()
    kind = getattr(sys.modules.get(module), name, None)
    if not (isinstance(kind, type) and issubclass(kind, own)):
        return None
    message = str(err)[matches[-1].end() :].strip()
    try:
        return kind(message)
    except TypeError:  # (a class whose constructor takes other arguments)
        return FashionLightningError(message)
