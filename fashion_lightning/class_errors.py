"""Errors of the classes a config creates (the Trainer, its loggers, callbacks, profilers, accelerators) as one
paragraph each.

jsonargparse creates them, and reports a failure as a chain of tracebacks (~80 lines) that ends in "Does not
validate against any of the Union subtypes". The two failures a user can fix are found in that chain: a package
that is not installed, and a class that refuses one of its options (``EarlyStopping(mode="maxx")``, a Trainer
whose strategy needs a GPU).
"""

import re
import sys

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger
from lightning.pytorch.profilers import Profiler

from fashion_lightning.errors import ConfigurationError, FashionLightningError

OPTION_OF = ((Callback, "trainer.callbacks"), (Logger, "trainer.logger"), (Profiler, "trainer.profiler"))


def class_error(err: BaseException, subcommand: str) -> FashionLightningError | None:
    """One paragraph for a class of the config that could not be created, naming the class and what to do;
    ``None`` when the chain of ``err`` holds neither a missing package nor a constructor's own error."""
    chain, cause = [], err
    while cause is not None and len(chain) < 20:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    own = next((e for e in chain if isinstance(e, FashionLightningError)), None)
    if own is not None:  # already one paragraph (the model's and the data module's checks)
        return own
    missing = next((e for e in chain if isinstance(e, ImportError)), None)
    refused = next((e for e in reversed(chain) if _constructor_of(e) is not None), None)
    if missing is None and refused is None:
        return None
    cls = _constructor_of(missing or refused)
    name = _class_path(chain, cls)
    if missing is not None:
        return ConfigurationError(
            f"{name} cannot be used: {str(missing).strip().rstrip('.')}. Install the package into this environment "
            f"({sys.prefix}), or choose another class."
        )
    reason = str(refused).strip().rstrip(".")
    if issubclass(cls, Trainer):  # (its own checks, such as a strategy that needs a GPU)
        return ConfigurationError(f"--trainer: {reason}. `fashion-lightning {subcommand} --help` lists its options.")
    option = next((option for base, option in OPTION_OF if issubclass(cls, base)), None)
    listing = f" `fashion-lightning {subcommand} --{option}.help {cls.__name__}` lists its options." if option else ""
    return ConfigurationError(f"{name} refused its options: {reason}.{listing}")


def _class_path(chain: list[BaseException], cls: type | None) -> str:
    """The class as the config names it (``lightning.pytorch.loggers.MLFlowLogger``, not its defining module)."""
    pattern = rf"class_path[ =]'([^']*\.{re.escape(cls.__name__)})'" if cls is not None else r"class_path[ =]'([^']+)'"
    named = (re.search(pattern, str(e)) for e in chain)
    fallback = f"{cls.__module__}.{cls.__qualname__}" if cls is not None else "A class in the config"
    return next((m.group(1) for m in named if m), fallback)


def _constructor_of(err: BaseException | None) -> type | None:
    """The public class whose ``__init__`` raised ``err`` (the innermost such frame: the Trainer, not its private
    helpers), if one did."""
    frames, tb = [], err.__traceback__ if err is not None else None
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        cls = type(frame.f_locals.get("self")) if frame.f_code.co_name == "__init__" else None
        if cls is not None and cls is not type(None) and not cls.__name__.startswith("_"):
            return cls
    return None
