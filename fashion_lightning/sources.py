"""Where the four raw Fashion-MNIST files may be and how they are fetched into ``data_dir`` (verified on the way).

Search order for each file: ``data_dir/FashionMNIST/raw`` (already prepared), then local copies (``source_dir``,
``$FASHION_MNIST_DIR``, Debian's ``/usr/share/datasets/fashion-mnist``), then torchvision's download mirror.
A candidate is used only after its decompressed bytes pass the header, length and md5 checks; a bad file is
reported by name and replaced from the next good source. The layout matches torchvision's, so
``torchvision.datasets.FashionMNIST(root=data_dir)`` reads the same files.
"""

import gzip
import logging
import os
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from torchvision.datasets import FashionMNIST

from fashion_lightning.atomic import atomic_write_bytes, remove_stale_temporaries
from fashion_lightning.errors import DataUnavailableError
from fashion_lightning.raw_files import RawFile, check_raw_bytes, raw_dir, raw_files

log = logging.getLogger(__name__)

ENV_VAR = "FASHION_MNIST_DIR"
SYSTEM_COPY_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)
DOWNLOAD_TIMEOUT_S = 30.0


def read_candidate(path: Path) -> bytes:
    """Read a raw or gzip-compressed candidate file; raise ``ValueError`` when it cannot be decompressed."""
    data = path.read_bytes()
    if path.suffix != ".gz":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"is not a readable gzip file ({err})") from err


def local_copy_dirs(source_dir: str | os.PathLike | None = None) -> list[Path]:
    """Directories that may hold a copy of the files, in the order they are tried."""
    dirs = [Path(source_dir)] if source_dir else []
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]))
    return dirs + [d for d in SYSTEM_COPY_DIRS if d not in dirs]


def download_urls(spec: RawFile) -> list[str]:
    """torchvision's mirrors for this file (taken from torchvision, not retyped)."""
    return [f"{mirror}{spec.name}.gz" for mirror in FashionMNIST.mirrors]


def _fetch_url(url: str) -> bytes:
    # torchvision's own downloader has no timeout and writes straight onto the final path; this one has a
    # timeout and keeps the bytes in memory until they are verified.
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:  # noqa: S310 (fixed https/http mirror)
        return gzip.decompress(response.read())


def _first_good(spec: RawFile, sources: list, read, read_errors: tuple, problems: list[str]) -> bytes | None:
    """The bytes of the first source (path or URL) that pass the checks; each rejected one goes to ``problems``."""
    for source in sources:
        try:
            data = read(source)
        except read_errors as err:
            problems.append(f"{source}: {getattr(err, 'reason', err)}")
            continue
        problem = check_raw_bytes(data, spec)
        if problem is None:
            return data
        problems.append(f"{source} {problem}")
    return None


def ensure_file(spec: RawFile, data_dir: str | os.PathLike, source_dir=None, download: bool = True) -> Path:
    """Make sure ``spec`` is present and verified in ``raw_dir(data_dir)``; return its path."""
    target = raw_dir(data_dir) / spec.name
    problems: list[str] = []
    if target.is_file():
        if _verified_before(target, spec):
            return target
        problem = check_raw_bytes(target.read_bytes(), spec)
        if problem is None:
            _record_verified(target, spec)
            return target
        log.warning("%s %s; looking for a good copy.", target, problem)
        problems.append(f"{target} {problem}")
    names = [f"{spec.name}.gz", spec.name]
    candidates = [target.with_name(f"{spec.name}.gz")]  # a torchvision download leaves the .gz beside it
    candidates += [d / n for d in local_copy_dirs(source_dir) for n in names]
    local = [path for path in candidates if path.is_file()]
    data = _first_good(spec, local, read_candidate, (OSError, ValueError), problems)
    if data is None and download:
        network_errors = (urllib.error.URLError, OSError, EOFError, zlib.error)
        data = _first_good(spec, download_urls(spec), _fetch_url, network_errors, problems)
    if data is None:
        raise DataUnavailableError(_no_source_message(spec, data_dir, source_dir, download, problems))
    try:
        atomic_write_bytes(target, data)
    except OSError as err:
        raise DataUnavailableError(
            f"Found a good copy of '{spec.name}' but cannot write it into {target.parent} ({err.strerror or err}). "
            "Make that folder writable, or point --data.data_dir at a writable directory."
        ) from err
    if problems:
        log.warning("%s replaced by a verified copy.", target)
    _record_verified(target, spec)
    return target


def _stamp(path: Path, spec: RawFile) -> str:
    # A file rewritten after its check gets a new size or mtime, so its stamp no longer matches.
    stat = path.stat()
    return f"{spec.md5} {stat.st_size} {stat.st_mtime_ns}"


def _stamp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.verified")


def _verified_before(path: Path, spec: RawFile) -> bool:
    """True when ``path`` passed the checks and has not changed since (skips re-hashing 55 MB every run)."""
    try:
        return _stamp_path(path).read_text() == _stamp(path, spec)
    except OSError:
        return False


def _record_verified(path: Path, spec: RawFile) -> None:
    # Only an optimisation (the next run skips re-hashing): a read-only data folder is fine without it.
    try:
        atomic_write_bytes(_stamp_path(path), _stamp(path, spec).encode())
    except OSError as err:
        log.debug("could not write the verification stamp of %s: %s", path, err)


def ensure_raw_files(data_dir: str | os.PathLike, source_dir=None, download: bool = True) -> dict[str, Path]:
    """Find, verify and (if needed) fetch all four files into ``raw_dir(data_dir)``."""
    check_data_dir(data_dir)
    remove_stale_temporaries(raw_dir(data_dir))
    return {key: ensure_file(spec, data_dir, source_dir, download) for key, spec in raw_files().items()}


def check_data_dir(data_dir: str | os.PathLike) -> None:
    """Refuse a ``data_dir`` (or a folder on its way to ``FashionMNIST/raw``) that is a file."""
    for path in (Path(data_dir), Path(data_dir) / "FashionMNIST", raw_dir(data_dir)):
        if path.exists() and not path.is_dir():
            raise DataUnavailableError(
                f"--data.data_dir '{data_dir}': '{path}' is a file, not a directory. Point --data.data_dir at a "
                "directory (it is created if missing), e.g. --data.data_dir data."
            )


def _no_source_message(spec: RawFile, data_dir, source_dir, download: bool, problems: list[str]) -> str:
    tried = "; ".join(problems) if problems else "no copy found in " + ", ".join(map(str, local_copy_dirs(source_dir)))
    download_hint = (
        "connect to the internet so torchvision's mirror can be reached"
        if download
        else "allow downloading (--data.download true)"
    )
    return (
        f"Fashion-MNIST file '{spec.name}' is not available in {raw_dir(data_dir)} and no good copy was found "
        f"(tried: {tried}). Ways out: {download_hint}; or point at a directory holding the four files "
        f"(.gz or raw) with --data.source_dir DIR or {ENV_VAR}=DIR; or, on Debian/Ubuntu, run "
        "'apt-get install dataset-fashion-mnist' (installs them in /usr/share/datasets/fashion-mnist)."
    )
