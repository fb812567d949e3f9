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


# Lightning's ValueError from inside fit for an integer --trainer.val_check_interval above the epoch's batches
# (known only once the loader is built): (its message, the paragraph given instead).
VAL_CHECK_BATCHES = (
    re.compile(
        r"`val_check_interval` \((\d+)\) must be less than or equal to the number of the training batches \((\d+)\)"
    ),
    "--trainer.val_check_interval {0} counts training batches, and an epoch here has {1}. Pass at most {1}, a "
    "fraction of the epoch (0.25: four times an epoch), or add --trainer.check_val_every_n_epoch null to validate "
    "every {0} batches across epochs.",
)


def own_error(err: BaseException) -> Exception | None:
    """``err`` if the CLI reports it as one paragraph (a ``FashionLightningError``, Lightning's
    ``MisconfigurationException``); such an error rebuilt from a ``ddp_spawn`` worker's report (torch's
    ``ProcessRaisedException``, which holds the worker's traceback as text); Lightning's ``ValueError`` for an
    option it checks inside fit, as a ``ConfigurationError``; else ``None``."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from torch.multiprocessing import ProcessRaisedException

    own = (FashionLightningError, MisconfigurationException)
    if isinstance(err, ValueError) and (match := VAL_CHECK_BATCHES[0].search(str(err))):
        return ConfigurationError(VAL_CHECK_BATCHES[1].format(*match.groups()))
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
