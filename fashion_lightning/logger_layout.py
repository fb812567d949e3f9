"""Where the config's loggers write: which of them keep runs in ``<save_dir>/<name>/version_N`` folders (TensorBoard,
CSV), which write the run's folder, and the versions they are given (``runs`` claims them)."""

import importlib
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

LOG_ROOT = "lightning_logs"  # runs go to <LOG_ROOT>/<name>/version_N unless told otherwise


def loggers(config) -> list:
    """The config's loggers, as a list (``[None]`` for none)."""
    logger = config.trainer.get("logger")
    return (list(logger) or [None]) if isinstance(logger, list | tuple) else [logger]


def first_logger(config):
    """The first logger's config entry (Lightning's checkpoints and ``trainer.log_dir`` follow it); falsy for none."""
    return loggers(config)[0]


def is_entry_of(entry, *classes: type) -> bool:
    """Whether an entry of the config (``class_path``, ``init_args``: a logger, a callback) names one of ``classes``
    or a subclass."""
    if not hasattr(entry, "get") or not entry.get("init_args"):
        return False
    module, _, name = str(entry.get("class_path", "")).rpartition(".")
    try:
        entry_class = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return False  # (a class that cannot be imported is reported when it is instantiated)
    return isinstance(entry_class, type) and issubclass(entry_class, classes)


def _is_folder_logger(logger) -> bool:
    """Whether a logger of the config keeps runs in ``<save_dir>/<name>/version_N`` (TensorBoard, CSV, a subclass)."""
    return is_entry_of(logger, TensorBoardLogger, CSVLogger)


def folder_logger_args(config):
    """The ``init_args`` of the run's logger if it keeps runs in ``<save_dir>/<name>/version_N`` folders
    (TensorBoard, CSV, or a subclass); else ``None`` (no logger, or another kind: W&B, MLflow, ...). Of a list, the
    first: Lightning's checkpoints and ``trainer.log_dir`` follow it."""
    first = first_logger(config)
    return first.init_args if _is_folder_logger(first) else None


def _root(init_args) -> Path:
    return Path(init_args.get("save_dir") or ".") / (init_args.get("name") or "")


def runs_root(config) -> Path | None:
    """``<save_dir>/<name>`` of a logger that keeps runs in ``version_N`` folders (TensorBoard, CSV); else ``None``."""
    init_args = folder_logger_args(config)
    return None if init_args is None else _root(init_args)


def run_loggers(config) -> list:
    """Each logger that writes the run's folder: the first, and any other TensorBoard or CSV logger under the same
    ``<save_dir>/<name>`` without a version of its own (they share the first's ``version_N``)."""
    root, (first, *others) = runs_root(config), loggers(config)
    if root is None:
        return []
    version = first.init_args.get("version")
    sharing = (
        logger
        for logger in others
        if _is_folder_logger(logger)
        and _root(logger.init_args) == root
        and logger.init_args.get("version") in (None, version)
    )
    return [first, *sharing]


def set_run_version(config, version: int | str | None) -> None:
    """Give the run's version to every logger that writes its folder (``run_loggers``)."""
    for logger in run_loggers(config):
        logger.init_args.version = version


def set_purge_step(config, step: int | None) -> None:
    """Give ``purge_step`` to every logger of the run's folder that takes one (TensorBoard's)."""
    for logger in run_loggers(config):
        if "purge_step" in logger.init_args:
            logger.init_args.purge_step = step


def folder_loggers_elsewhere(config) -> dict[Path, list[int]]:
    """The TensorBoard and CSV loggers that write outside the run's folder (not ``run_loggers``: all of them after a
    W&B or MLflow logger, or one with a ``save_dir`` of its own) with no version given: their positions in the list,
    by ``<save_dir>/<name>``."""
    run = [id(logger) for logger in run_loggers(config)]
    found: dict[Path, list[int]] = {}
    for index, logger in enumerate(loggers(config)):
        if _is_folder_logger(logger) and id(logger) not in run and logger.init_args.get("version") is None:
            found.setdefault(_root(logger.init_args), []).append(index)
    return found


def set_logger_versions(config, positions, version: int | None) -> None:
    """Give ``version`` to the loggers at ``positions`` in the list (``folder_loggers_elsewhere``)."""
    entries = loggers(config)
    for position in positions:
        entries[position].init_args.version = version


def follow_default_root_dir(config, explicit: dict) -> None:
    """Lightning's convention: runs go under ``--trainer.default_root_dir`` unless the logger names its own place
    (a ``save_dir`` the user gave, in ``explicit``, other than the default ``lightning_logs``: ``--trainer.logger+=``
    gives the default logger's values as given, and the README's example gives the others that one)."""
    root = config.trainer.get("default_root_dir")
    given = (explicit.get("trainer") or {}).get("logger") or {}
    given = list(given) if isinstance(given, list | tuple) else [given]
    for index, logger in enumerate(loggers(config)):
        given_args = (given[index] if index < len(given) else None) or {}
        save_dir_given = hasattr(given_args, "get") and "save_dir" in (given_args.get("init_args") or {})
        if root and _is_folder_logger(logger) and not (save_dir_given and logger.init_args.save_dir != LOG_ROOT):
            logger.init_args.save_dir = str(Path(root) / LOG_ROOT)
