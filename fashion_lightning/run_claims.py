"""Run folders claimed for a new run: ``version_N`` taken with ``mkdir``, and removed again if the run leaves
nothing in it.

Loggers with this layout (TensorBoard, CSV) pick the next ``version_N`` by listing the folder, so two runs started
at once in one folder both take the same number. Here a run *claims* its version with ``mkdir`` (which fails if the
folder exists, on every filesystem) before the logger is built. What a run claimed is its own once it ends
(``forget_claims``): a later run in the same process (a notebook's next cell, a sweep's next trial) that fails
removes only its own folders.
"""

import contextlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only

from fashion_lightning import logger_layout
from fashion_lightning.errors import ConfigurationError
from fashion_lightning.run_lock import lock_path, lock_run, release_lock
from fashion_lightning.runs import version_dir_name, versions

# A DDP run started by Lightning's launcher re-runs this program for ranks 1..N-1 with the parent's environment:
# they read the version rank 0 claimed from here instead of listing the folder themselves.
VERSION_ENV_VAR = "FASHION_LIGHTNING_RUN_VERSION"


@dataclass
class _Claim:
    folder: Path
    fit: bool  # claimed by a fit (an evaluation's folder goes only if it holds nothing)
    trained: bool = False  # its fit reached its first training step


_claimed: list[_Claim] = []  # the folders claimed and not yet forgotten


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
    _claimed.append(_Claim(run_dir.absolute(), fit))


def mark_training_started() -> None:
    """From here on, the run folders claimed so far hold a run (see ``release_unused_claims``)."""
    for claim in _claimed:
        claim.trained = True


def release_unused_claims(started: bool | None = None) -> None:
    """Remove the run folders this process claimed that hold nothing of a run: a fit's that never reached its first
    training step, or any whose folder holds no logged values. ``started``: whether training may have started (by
    default, whether this process marked it for each: ``ddp_spawn``'s workers train in other processes)."""
    while _claimed:
        claim = _claimed.pop()
        run_dir = claim.folder
        release_lock(run_dir)
        unused = (claim.fit and not (claim.trained if started is None else started)) or _never_started(run_dir)
        if unused and not any(run_dir.rglob("*.ckpt")):  # (a checkpoint is never thrown away, whatever the count)
            shutil.rmtree(run_dir, ignore_errors=True)
            if not run_dir.exists():
                with contextlib.suppress(OSError):  # (none, or none possible: a folder that could not be created)
                    lock_path(run_dir).unlink()


def forget_claims() -> None:
    """A run is over (``cli_main``'s end, a sweep trial's): the folders it claimed are its own, kept whatever a
    later run in this process (a notebook's next cell, the next trial) does."""
    _claimed.clear()


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
