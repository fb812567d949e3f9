"""Run folders: ``<save_dir>/<name>/version_N/``, claimed atomically, locked while a ``fit`` writes them
(``run_lock``), searched for ``--ckpt_path last`` and ``best`` (the config saved in each: ``run_config``).

Loggers with this layout (TensorBoard, CSV) pick the next ``version_N`` by listing the folder, so two runs started
at once in one folder both take the same number. Here a run *claims* its version with ``mkdir`` (which fails if the
folder exists, on every filesystem) before the logger is built. A resumed run keeps the CSV rows CSVLogger would
delete.
"""

import contextlib
import os
import re
import shutil
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only

from fashion_lightning import logger_layout
from fashion_lightning.errors import ConfigurationError
from fashion_lightning.run_lock import lock_path, lock_run, release_lock

VERSION_DIR = re.compile(r"^version_(\d+)$")
# A DDP run started by Lightning's launcher re-runs this program for ranks 1..N-1 with the parent's environment:
# they read the version rank 0 claimed from here instead of listing the folder themselves.
VERSION_ENV_VAR = "FASHION_LIGHTNING_RUN_VERSION"

_claimed: list[tuple[Path, bool]] = []  # run folders this process claimed, each with whether a fit claimed it
_training_started = False  # whether this process's fit reached its first training step


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


def claim_version(runs_root: str | os.PathLike, fit: bool = True) -> int:
    """Create the next free ``version_N`` folder under ``runs_root`` and return N; safe against concurrent runs.
    ``fit``: for a fit (an evaluation's folder is released only if it holds nothing)."""
    root = Path(runs_root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigurationError(
            f"Cannot create the runs folder '{root}' ({err.strerror}). Choose a writable place with "
            "--trainer.default_root_dir DIR (or the logger's save_dir)."
        ) from err
    version = (versions(root) or [-1])[-1] + 1
    while True:
        try:
            (root / f"version_{version}").mkdir()
            remember_claim(root / f"version_{version}", fit)
            return version
        except FileExistsError:  # another run claimed it between the listing and here: take the next one
            version += 1


def claim_run_dir(runs_root: Path, fit: bool) -> int | None:
    """The version of this run's new folder: rank 0 claims it (and locks it for a ``fit``); the other ranks read it.

    Returns ``None`` on a rank that cannot know it yet (torchrun, SLURM: Lightning broadcasts rank 0's log_dir).
    """
    if rank_zero_only.rank == 0:
        version = claim_version(runs_root, fit)
        os.environ[VERSION_ENV_VAR] = str(version)  # DDP ranks started by Lightning's launcher inherit it
        if fit:
            lock_run(runs_root / version_dir_name(version))
        return version
    return int(os.environ[VERSION_ENV_VAR]) if os.environ.get(VERSION_ENV_VAR) else None


def claim_versions_elsewhere(config, fit: bool) -> list[int]:
    """Claim a ``version_N`` for each place a TensorBoard or CSV logger writes outside the run's folder (after a W&B
    logger, or with a ``save_dir`` of its own), as for the run's: Lightning's listing would give two runs started
    together the same one. Rank 0 only (the others write nothing); returns the loggers' positions in the list."""
    if rank_zero_only.rank != 0:
        return []
    chosen = []
    for root, positions in logger_layout.folder_loggers_elsewhere(config).items():
        logger_layout.set_logger_versions(config, positions, claim_version(root, fit))
        chosen += positions
    return chosen


def remember_claim(run_dir: Path, fit: bool = True) -> None:
    """Note a folder this process created for a run: ``release_unused_claims`` removes it if the run leaves nothing
    in it (``fit``: or never reaches its first training step)."""
    global _training_started
    _claimed.append((run_dir.absolute(), fit))
    _training_started = False  # (a sweep runs many fits in one process)


def mark_training_started() -> None:
    """From here on, a run folder this process claimed holds a run (see ``release_unused_claims``)."""
    global _training_started
    _training_started = True


def release_unused_claims(started: bool | None = None) -> None:
    """Remove the run folders this process claimed that hold nothing of a run: a fit's that never reached its first
    training step, or any whose folder holds no logged values. ``started``: whether training may have started (by
    default, whether this process marked it: ``ddp_spawn``'s workers train in other processes)."""
    global _training_started
    started, _training_started = _training_started if started is None else started, False
    while _claimed:
        run_dir, fit = _claimed.pop()
        release_lock(run_dir)
        if (fit and not started) or _never_started(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)
            if not run_dir.exists():
                with contextlib.suppress(OSError):  # (none, or none possible: a folder that could not be created)
                    lock_path(run_dir).unlink()


def forget_claims() -> None:
    """A run is over (``cli_main``'s end, a sweep trial's): the folders it claimed are its own, kept whatever a
    later run in this process (a notebook's next cell, the next trial) does."""
    global _training_started
    _claimed.clear()
    _training_started = False


def _never_started(run_dir: Path) -> bool:
    # Lightning opens the loggers before the data module's setup, whose checks (--data.val_size against the data)
    # may still refuse the run: a TensorBoard event file with nothing but its header is no trace of a run, nor is
    # the run's config (written in setup).
    try:
        files = list(run_dir.iterdir())
    except OSError:
        return False
    return all(
        f.is_file() and (re.fullmatch(r"config(\.\w+)?\.yaml", f.name) or _is_empty_event_file(f)) for f in files
    )


def _is_empty_event_file(path: Path) -> bool:
    return path.name.startswith("events.out.tfevents.") and not _holds_events(path)


def _holds_events(event_file: Path) -> bool:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader  # (only when a run failed)

    return any(event.WhichOneof("what") != "file_version" for event in EventFileLoader(str(event_file)).Load())


def continue_run(config, subcommand: str, step: int) -> None:
    """Log into the run folder of ``config.ckpt_path`` when it is one of this logger's runs (its version, unless one
    is given); a fit there is locked, keeps CSV rows and drops TensorBoard values logged after ``step``."""
    root, init_args = logger_layout.runs_root(config), logger_layout.folder_logger_args(config)
    checkpoints_dir = Path(config.ckpt_path).absolute().parent
    run_dir = checkpoints_dir.parent
    if root is None or run_dir.parent != root.absolute() or checkpoints_dir.name != "checkpoints":
        return  # a checkpoint from elsewhere: the run starts a folder of its own
    if init_args.get("version") is None:
        found = run_version(config.ckpt_path)
        if found is None:
            return
        logger_layout.set_run_version(config, found[1])
    elif run_dir.name != version_dir_name(init_args.version):
        return  # another run's checkpoint, continued in the named run
    if subcommand == "fit":
        keep_csv_metrics(config, run_dir, step)
        if rank_zero_only.rank == 0:  # one writer per run; the kernel frees the lock when we exit
            lock_run(run_dir)
        # TensorBoard drops what the killed run logged after this step, so curves have no duplicates (values at
        # the checkpoint's own step, such as its epoch's validation, were logged before it).
        for logger in logger_layout.run_loggers(config):
            if "purge_step" in logger.init_args:
                logger.init_args.purge_step = step + 1


def keep_csv_metrics(config, run_dir: Path, step: int) -> None:
    """CSVLogger deletes a run's ``metrics.csv`` when it opens the folder again: keep the resumed run's rows."""
    metrics = run_dir / "metrics.csv"
    is_csv = any(logger_layout.is_entry_of(logger, CSVLogger) for logger in logger_layout.run_loggers(config))
    if is_csv and metrics.is_file() and rank_zero_only.rank == 0:
        kept = metrics.with_name(f"metrics.until-step-{step}.csv")
        os.replace(metrics, kept)
        print(f"CSVLogger starts metrics.csv afresh on resume: the rows so far are kept in {kept}")
