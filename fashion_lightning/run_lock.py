"""The writer lock of a run folder: a ``fit`` holds an exclusive ``flock`` on ``.version_N.lock`` beside its folder
(not in it: loggers expect a new run's folder empty) for as long as it runs, so a second ``fit --ckpt_path last``
on a run that a live process is writing is refused. The kernel releases the lock when the process dies, even by
``kill -9``.
"""

import fcntl
import os
from pathlib import Path

from fashion_lightning.errors import ConfigurationError

_held_locks: dict[Path, int] = {}  # run folder -> open file descriptor holding its lock, for the process lifetime


def lock_path(run_dir: Path) -> Path:
    """Where the writer lock of ``run_dir`` lives: ``.version_N.lock`` beside it."""
    return run_dir.parent / f".{run_dir.name}.lock"


def lock_run(run_dir: str | os.PathLike, what: str = "The run") -> None:
    """Hold the run's writer lock until the process ends; ``ConfigurationError`` if a live process holds it.
    ``what``: how the message names the folder."""
    run_dir = Path(run_dir).absolute()
    if run_dir in _held_locks:
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path(run_dir), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise ConfigurationError(
            f"{what} '{run_dir}' cannot be created ({err.strerror or err}); nothing was trained. Point it at a "
            "writable place (--trainer.default_root_dir DIR, the logger's save_dir, --checkpoint.dirpath or "
            "--last.dirpath)."
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ConfigurationError(
            f"{what} '{run_dir}' is being trained right now by another process (pid {holder}); two writers would "
            "mix their checkpoints. Wait for it to finish (or stop it: Ctrl-C saves last.ckpt), then resume it "
            "(--ckpt_path last, or its last.ckpt's path); or start a separate run."
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _held_locks[run_dir] = fd


def release_locks() -> None:
    """Give up every writer lock this process holds."""
    for run_dir in list(_held_locks):
        release_lock(run_dir)


def release_lock(run_dir: str | os.PathLike) -> None:
    """Give up the writer lock of ``run_dir`` if this process holds it."""
    fd = _held_locks.pop(Path(run_dir).absolute(), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the flock
