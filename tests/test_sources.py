"""Every way the four raw files are found, verified, replaced or reported missing."""

import gzip
import shutil

import pytest

from fashion_lightning import sources
from fashion_lightning.errors import DataUnavailableError
from fashion_lightning.raw_files import RAW_FILES, raw_dir, raw_files
from fashion_lightning.sources import ensure_raw_files


def test_specs_come_from_the_environment(fashion):
    assert raw_files()["train_labels"].count == 320
    assert RAW_FILES["train_labels"].count == 60_000  # the official numbers stay the default


def test_copies_and_decompresses_from_source_dir(fashion):
    paths = ensure_raw_files(fashion.data_dir, fashion.source_dir, download=False)
    assert set(paths) == {"train_images", "train_labels", "test_images", "test_labels"}
    for key, path in paths.items():
        assert path.parent == raw_dir(fashion.data_dir)
        assert path.read_bytes() == fashion.arrays[key]


def test_reads_uncompressed_copies_too(fashion, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    for gz in fashion.source_dir.glob("*.gz"):
        (plain / gz.stem).write_bytes(gzip.decompress(gz.read_bytes()))
    ensure_raw_files(fashion.data_dir, plain, download=False)
    assert (raw_dir(fashion.data_dir) / "t10k-labels-idx1-ubyte").read_bytes() == fashion.arrays["test_labels"]


def test_environment_variable_names_a_copy(fashion, monkeypatch):
    monkeypatch.setenv(sources.ENV_VAR, str(fashion.source_dir))
    ensure_raw_files(fashion.data_dir, source_dir=None, download=False)
    assert (raw_dir(fashion.data_dir) / "train-labels-idx1-ubyte").is_file()


def test_system_copy_is_tried_after_user_dirs(fashion, monkeypatch):
    monkeypatch.setattr(sources, "SYSTEM_COPY_DIRS", (fashion.source_dir,))
    ensure_raw_files(fashion.data_dir, source_dir=None, download=False)
    assert (raw_dir(fashion.data_dir) / "train-images-idx3-ubyte").is_file()


def test_prepared_files_are_used_without_any_source(fashion):
    first = ensure_raw_files(fashion.data_dir, fashion.source_dir, download=False)
    before = {key: (path.stat().st_mtime_ns, path.read_bytes()) for key, path in first.items()}
    shutil.rmtree(fashion.source_dir)
    again = ensure_raw_files(fashion.data_dir, source_dir=None, download=False)  # data_dir already holds them
    assert again == first
    assert {key: (path.stat().st_mtime_ns, path.read_bytes()) for key, path in again.items()} == before
    assert all(path.parent == raw_dir(fashion.data_dir) for path in again.values())


def test_downloads_from_torchvisions_mirror_when_no_copy(fashion, monkeypatch):
    requested = []

    def fake_mirror(url):
        requested.append(url)
        name = url.rsplit("/", 1)[1].removesuffix(".gz")
        return gzip.decompress((fashion.source_dir / f"{name}.gz").read_bytes())

    monkeypatch.setattr(sources, "_fetch_url", fake_mirror)
    ensure_raw_files(fashion.data_dir, source_dir=None, download=True)
    assert len(requested) == 4
    assert all(url.startswith(sources.FashionMNIST.mirrors[0]) for url in requested)


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "bad_header", "not_gzip"])
def test_corrupt_copy_is_reported_and_never_used(fashion, damage):
    target = fashion.source_dir / "train-images-idx3-ubyte.gz"
    data = bytearray(gzip.decompress(target.read_bytes()))
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip_byte":
        data[-1] ^= 0xFF
    elif damage == "bad_header":
        data[3] = 0x01
    target.write_bytes(b"garbage" if damage == "not_gzip" else gzip.compress(bytes(data)))
    with pytest.raises(DataUnavailableError) as err:
        ensure_raw_files(fashion.data_dir, fashion.source_dir, download=False)
    assert "train-images-idx3-ubyte" in str(err.value)
    assert not (raw_dir(fashion.data_dir) / "train-images-idx3-ubyte").exists()


def test_corrupt_prepared_file_is_replaced_from_a_good_copy(fashion, caplog):
    ensure_raw_files(fashion.data_dir, fashion.source_dir, download=False)
    prepared = raw_dir(fashion.data_dir) / "train-images-idx3-ubyte"
    prepared.write_bytes(prepared.read_bytes()[:1000])  # killed mid-extraction
    ensure_raw_files(fashion.data_dir, fashion.source_dir, download=False)
    assert prepared.read_bytes() == fashion.arrays["train_images"]
    assert "train-images-idx3-ubyte" in caplog.text
    assert "replaced by a verified copy" in caplog.text  # said once the repair happened, not before


def test_a_prepared_file_changed_after_its_check_is_checked_again(fashion):
    ensure_raw_files(fashion.data_dir, fashion.source_dir, download=False)
    prepared = raw_dir(fashion.data_dir) / "train-labels-idx1-ubyte"
    damaged = bytearray(prepared.read_bytes())
    damaged[-1] ^= 0xFF  # same size: only the checksum can tell
    prepared.write_bytes(bytes(damaged))
    ensure_raw_files(fashion.data_dir, fashion.source_dir, download=False)
    assert prepared.read_bytes() == fashion.arrays["train_labels"]


def test_bad_download_is_rejected(fashion, monkeypatch):
    monkeypatch.setattr(sources, "_fetch_url", lambda url: b"\x00" * 100)
    with pytest.raises(DataUnavailableError, match="expected"):
        ensure_raw_files(fashion.data_dir, source_dir=None, download=True)


def test_no_source_lists_every_way_out(fashion):
    with pytest.raises(DataUnavailableError) as err:
        ensure_raw_files(fashion.data_dir, fashion.root / "nowhere", download=True)
    message = str(err.value)
    assert "network disabled in tests" in message  # what was tried, with why it failed
    assert "connect to the internet" in message
    assert "--data.source_dir" in message
    assert sources.ENV_VAR in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_stale_temporary_files_are_removed(fashion):
    raw = raw_dir(fashion.data_dir)
    raw.mkdir(parents=True)
    stale = raw / ".tmp-fashion-abc.part"
    stale.write_bytes(b"half a file")
    ensure_raw_files(fashion.data_dir, fashion.source_dir, download=False)
    assert not stale.exists()
