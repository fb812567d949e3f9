"""Crash-safe writes: a temporary file in the target's own directory, fsynced, then renamed over the target.

``os.replace`` is atomic within one filesystem, so a reader sees either the old file or the new one, never a
truncated one. Temporary files carry a fixed prefix so that ``remove_stale_temporaries`` can clean up after a
process that was killed mid-write.
"""

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch

TEMP_PREFIX = ".tmp-fashion-"
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """Open a temporary file beside ``path`` for binary writing; on success it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The writer's pid in the name: a run starting beside a live writer leaves its file alone.
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path) as handle:
        handle.write(data)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically (serialised in memory first, so a failure writes nothing)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getbuffer())


def temporary_path(path: str | os.PathLike) -> Path:
    """A temporary name beside ``path`` for a file to be renamed into place later (``rename_into_place``)."""
    path = Path(path)
    return path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{path.name}.part")


def rename_into_place(temporary: str | os.PathLike, path: str | os.PathLike) -> None:
    """Rename a finished ``temporary`` over ``path`` atomically and durably."""
    os.replace(temporary, path)
    _fsync_directory(Path(path).parent)


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete temporary files left in ``directory`` by a process killed mid-write; return what was removed."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for stale in directory.glob(f"{TEMP_PREFIX}*.part"):
        if _writer_alive(stale):
            continue  # another process is writing it right now (two runs sharing a data folder)
        with contextlib.suppress(OSError):  # gone already, or a read-only folder
            stale.unlink()
            removed.append(stale)
    return removed


def _writer_alive(temporary: Path) -> bool:
    pid = temporary.name[len(TEMP_PREFIX) :].split("-", 1)[0]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False  # written by an earlier version, or by this process before (not being written now)
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry itself is on disk.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
