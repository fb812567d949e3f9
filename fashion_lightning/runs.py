"""Run folders: ``<save_dir>/<name>/version_N/``, claimed atomically (``run_claims``), locked while a ``fit``
writes them (``run_lock``), searched for ``--ckpt_path last`` and ``best`` (the config saved in each:
``run_config``), and continued by a resumed fit, which keeps the CSV rows CSVLogger would delete.
"""

import os
import re
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only

from fashion_lightning import logger_layout
from fashion_lightning.errors import ConfigurationError
from fashion_lightning.run_lock import lock_run

VERSION_DIR = re.compile(r"^version_(\d+)$")


def run_version(path: str | os.PathLike) -> tuple[Path, int] | None:
    """For ``<root>/version_N/checkpoints/x.ckpt`` return ``(<root>, N)``; ``None`` for any other layout."""
    path = Path(path).absolute()
    if path.parent.name != "checkpoints":
        return None
    match = VERSION_DIR.match(path.parent.parent.name)
    return (path.parent.parent.parent, int(match.group(1))) if match else None


def resume_flag(checkpoint: str | os.PathLike) -> str:
    """The option that resumes from ``checkpoint``: ``--ckpt_path last`` if that finds it, else its path."""
    return f"--ckpt_path {'last' if run_version(checkpoint) is not None else checkpoint}"


def version_dir_name(version: int | str) -> str:
    """The folder a TensorBoard or CSV logger writes for ``version``: ``version_N`` for a number, else as given."""
    return version if isinstance(version, str) else f"version_{version}"


def versions(runs_root: str | os.PathLike) -> list[int]:
    """The N of every ``version_N`` folder under ``runs_root``, ascending."""
    root = Path(runs_root)
    found = (VERSION_DIR.match(p.name) for p in root.iterdir()) if root.is_dir() else ()
    return sorted(int(match.group(1)) for match in found if match)


def find_checkpoint(runs_root: str | os.PathLike, file_name: str = "last.ckpt") -> Path | None:
    """``checkpoints/<file_name>`` of the highest ``version_N`` under ``runs_root`` that has one (not the newest
    mtime)."""
    for version in reversed(versions(runs_root)):
        found = Path(runs_root) / f"version_{version}" / "checkpoints" / file_name
        if found.is_file():
            return found
    return None


def resolve_ckpt_path(
    ckpt_path: str | None, runs_root: Path | None, subcommand: str, best_file: str, version: int | str | None = None
) -> str | None:
    """``--ckpt_path last`` (fit: resume the newest run) and ``best`` (validate, test, predict: the newest run's best
    checkpoint) as paths; any other value as given.

    Args:
        ckpt_path: The option's value.
        runs_root: ``<save_dir>/<name>`` of the logger's runs, ``None`` when the logger keeps no ``version_N`` folders.
        subcommand: "fit", "validate", "test" or "predict".
        best_file: The best checkpoint's file name (``--checkpoint.filename`` + ".ckpt").
        version: The logger's version, when given: ``last`` and ``best`` are then that run's, not the newest run's.
    """
    if ckpt_path not in ("last", "best"):
        return ckpt_path
    if ckpt_path == "best" and subcommand == "fit":
        raise ConfigurationError(
            "--ckpt_path best is for validate, test and predict (the newest run's best checkpoint). To continue the "
            "newest run, use --ckpt_path last; to train on from a best checkpoint, pass its path."
        )
    if runs_root is None:
        raise ConfigurationError(
            f"--ckpt_path {ckpt_path} needs a logger that keeps runs in version_N folders (TensorBoardLogger or "
            "CSVLogger, with save_dir and name); with this logger, pass the checkpoint's path instead."
        )
    if ckpt_path == "best" and "{" in best_file:
        raise ConfigurationError(
            f"--ckpt_path best looks for a fixed file name, but --checkpoint.filename is a template ({best_file}); "
            "pass the checkpoint's path instead."
        )
    file_name = best_file if ckpt_path == "best" else "last.ckpt"
    if version is None:
        found, where = find_checkpoint(runs_root, file_name), f"no run under {runs_root}/ has"
    else:
        found = runs_root / version_dir_name(version) / "checkpoints" / file_name
        found, where = (found if found.is_file() else None), f"the run {runs_root / version_dir_name(version)} has no"
    if found is None and subcommand == "fit":
        print(f"--ckpt_path last: {where} checkpoints/last.ckpt; starting a new run from scratch.")
        return None
    if found is None:  # evaluating nothing would report an untrained model
        raise ConfigurationError(
            f"--ckpt_path {ckpt_path}: {where} checkpoints/{file_name}. Train one first (fashion-lightning fit), "
            "or pass a checkpoint's path."
        )
    print(f"--ckpt_path {ckpt_path}: {'resuming' if subcommand == 'fit' else 'using'} {found}")
    return str(found)


def continue_run(config, subcommand: str, step: int) -> bool:
    """Log into the run folder of ``config.ckpt_path`` when it is one of this logger's runs (its version, unless one
    is given); a fit there is locked, keeps CSV rows and drops TensorBoard values logged after ``step``. Returns
    whether the checkpoint's own run goes on."""
    root, init_args = logger_layout.runs_root(config), logger_layout.folder_logger_args(config)
    checkpoints_dir = Path(config.ckpt_path).absolute().parent
    run_dir = checkpoints_dir.parent
    if root is None or run_dir.parent != root.absolute() or checkpoints_dir.name != "checkpoints":
        return False  # a checkpoint from elsewhere: the run starts a folder of its own
    if init_args.get("version") is None:
        found = run_version(config.ckpt_path)
        if found is None:
            return False
        logger_layout.set_run_version(config, found[1])
    elif run_dir.name != version_dir_name(init_args.version):
        return False  # another run's checkpoint, continued in the named run
    if subcommand == "fit":
        keep_csv_metrics(config, run_dir, step)
        if rank_zero_only.rank == 0:  # one writer per run; the kernel frees the lock when we exit
            lock_run(run_dir)
        # TensorBoard drops what the killed run logged after this step, so curves have no duplicates (values at
        # the checkpoint's own step, such as its epoch's validation, were logged before it).
        logger_layout.set_purge_step(config, step + 1)
    return True


def keep_csv_metrics(config, run_dir: Path, step: int) -> None:
    """CSVLogger deletes a run's ``metrics.csv`` when it opens the folder again: keep the resumed run's rows."""
    metrics = run_dir / "metrics.csv"
    is_csv = any(logger_layout.is_entry_of(logger, CSVLogger) for logger in logger_layout.run_loggers(config))
    if is_csv and metrics.is_file() and rank_zero_only.rank == 0:
        kept, attempt = metrics.with_name(f"metrics.until-step-{step}.csv"), 1
        while kept.exists():  # a second resume from the same step: the first one's rows stay too
            attempt += 1
            kept = metrics.with_name(f"metrics.until-step-{step}.{attempt}.csv")
        os.replace(metrics, kept)
        print(f"CSVLogger starts metrics.csv afresh on resume: the rows so far are kept in {kept}")
