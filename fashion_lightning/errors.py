"""Errors a user can act on: the CLI prints their message as one paragraph and exits non-zero."""


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
