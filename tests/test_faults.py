"""Fault injection: what a hostile or unlucky user does, and what must hold (nothing lost, one clear paragraph).

Ctrl-C, two runs in one folder, a live run resumed twice, decompression bombs and 16-bit images, exports over
existing files or into unwritable places, a full disk during a checkpoint, bad data folders, impossible option
values, --model flags that disagree with a checkpoint, a damaged raw file beside a verified cache.
"""

import contextlib
import errno
import gzip
import importlib.util
import logging
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from fashion_lightning import raw_files, sources
from fashion_lightning.cli import build_cli, cli_main
from fashion_lightning.datamodule import FashionMNISTDataModule
from fashion_lightning.errors import ConfigurationError
from fashion_lightning.inference import MAX_PIXELS, image_to_tensor
from fashion_lightning.run_claims import release_unused_claims, remember_claim
from fashion_lightning.run_lock import lock_path, lock_run
from fashion_lightning.runs import versions
from tests.helpers import (
    CtrlCInSetup,
    assert_same_weights,
    cli_args,
    fit_command,
    last_ckpt,
    png_bomb,
    wait_for,
    weights,
    without_logger,
    without_logger_dir,
)

CLI = [sys.executable, "-m", "fashion_lightning"]


def run_folders(logs):
    return [f"version_{n}" for n in versions(logs / "fashion")]


# --- signals and concurrent runs ------------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_saves_last_ckpt_exits_130_and_resumes_exactly(fashion, reference):
    logs = fashion.root / "interrupted"
    command = fit_command(fashion, logs, "--trainer.max_epochs=12")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(last_ckpt(logs), process)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    assert 0 < torch.load(last_ckpt(logs), weights_only=True)["global_step"] < 96
    subprocess.run([*command, "--ckpt_path=last"], check=True, capture_output=True)
    assert_same_weights(last_ckpt(logs), reference)  # bitwise: dropout, augmentation and order continue exactly


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_with_loader_workers_stops_once(fashion):
    # A terminal's Ctrl-C reaches the whole process group: the loader's worker processes (forked after the handlers
    # were installed) leave the stop to the main process.
    logs = fashion.root / "group"
    command = fit_command(fashion, logs, "--trainer.max_epochs=50", "--data.num_workers=2")
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    wait_for(last_ckpt(logs), process)
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output[-2000:]
    assert output.count("Ctrl-C: stopping at the next step boundary") == 1, output[-2000:]
    assert "Traceback" not in output
    assert "Received SIGTERM" not in output  # (Lightning's line, from the handler that stops the run for us)
    assert re.search(r"Stopped by SIGINT at step \d+: saved \S+last.ckpt \(resume: --ckpt_path last\)\.", output)


@pytest.mark.slow
def test_ctrl_c_twice_under_ddp_spawn_aborts_and_keeps_the_run(fashion):
    # Under ddp_spawn the process the user started trains nothing itself: it took the run for one that never started
    # and deleted its folder, checkpoints included, when a Ctrl-C ended it.
    logs = fashion.root / "spawned"
    spawn = ["--trainer.strategy=ddp_spawn", "--trainer.devices=2", "--data.steps_per_batch=1"]
    process = subprocess.Popen(
        fit_command(fashion, logs, *spawn, "--trainer.max_epochs=200"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(last_ckpt(logs), process)
        os.killpg(process.pid, signal.SIGINT)
        time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)  # "Ctrl-C again: abort, no save"
        output, _ = process.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode != 0, output[-2000:]
    assert run_folders(logs) == ["version_0"], output[-2000:]
    assert torch.load(last_ckpt(logs), weights_only=True)["global_step"] > 0


@pytest.mark.slow
def test_an_error_in_a_ddp_spawn_worker_is_one_paragraph_and_leaves_no_run_folder(fashion):
    # Under ddp_spawn the data is found and checked in the workers: their error reached the console as a traceback
    # (torch hands it back as text), and the run's new folder stayed behind.
    empty = fashion.root / "empty"
    empty.mkdir()
    spawn = ["--trainer.strategy=ddp_spawn", "--trainer.devices=2", f"--data.source_dir={empty}"]
    command = [*CLI, "fit", *cli_args(fashion, *spawn), f"--data.data_dir={empty / 'data'}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    assert re.search(r"^error: Fashion-MNIST file '[\w-]+' is not available in .* Ways out:", result.stderr, re.M)
    assert run_folders(fashion.logs) == []


def test_a_spawned_workers_report_is_read_back_as_its_error():
    from torch.multiprocessing import ProcessRaisedException

    from fashion_lightning.errors import NonFiniteLossError, own_error

    def report(last_lines: str) -> ProcessRaisedException:
        trace = f'Traceback (most recent call last):\n  File "x.py", line 1, in f\n    g()\n{last_lines}\n'
        return ProcessRaisedException(f"\n\n-- Process 1 terminated with the following error:\n{trace}", 1, 42)

    rebuilt = own_error(report("fashion_lightning.errors.NonFiniteLossError: The loss became NaN.\nSee --help."))
    assert isinstance(rebuilt, NonFiniteLossError)
    assert str(rebuilt) == "The loss became NaN.\nSee --help."
    assert rebuilt.exit_code == 3
    assert own_error(report("ValueError: something else")) is None
    assert own_error(report("torch.OutOfMemoryError: CUDA out of memory.")) is None
    assert own_error(ValueError("not a worker's")) is None


@pytest.mark.slow
def test_two_runs_started_together_get_their_own_folders_and_checkpoints(fashion):
    logs = fashion.root / "shared"
    commands = [fit_command(fashion, logs, "--trainer.max_epochs=2", f"--model.lr={lr}") for lr in (0.01, 0.02)]
    processes = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in commands]
    for process in processes:
        assert process.wait(timeout=300) == 0, process.stderr.read().decode()[-2000:]
    assert run_folders(logs) == ["version_0", "version_1"]
    learning_rates = set()
    for version in (0, 1):
        run = logs / "fashion" / f"version_{version}"
        best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
        config_lr = float(
            next(line for line in (run / "config.yaml").read_text().splitlines() if "  lr:" in line).split()[-1]
        )
        assert best["hyper_parameters"]["lr"] == config_lr  # the checkpoint belongs to the run of its folder
        learning_rates.add(config_lr)
    assert learning_rates == {0.01, 0.02}


def test_a_runs_saved_config_replayed_starts_a_new_run_and_never_writes_over_it(fashion, capsys):
    args = cli_args(fashion, "--trainer.max_epochs=1")
    cli_main(["fit", *args])
    first = fashion.logs / "fashion" / "version_0"
    config, best = first / "config.yaml", first / "checkpoints" / "best.ckpt"
    before = best.read_bytes()
    cli_main(["fit", f"--config={config}"])  # "run it again": a new run, as with Lightning's own saved configs
    assert run_folders(fashion.logs) == ["version_0", "version_1"]
    assert best.read_bytes() == before
    # A version given on purpose (here: in the config) is kept; a fresh fit into that run's folder is refused ...
    config.write_text(config.read_text().replace("version: null", "version: 0"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        cli_main(["fit", f"--config={config}"])
    assert stopped.value.code == 2
    assert "already holds a run (best.ckpt, last.ckpt)" in capsys.readouterr().err
    assert best.read_bytes() == before
    assert run_folders(fashion.logs) == ["version_0", "version_1"]
    # ... so is one training on from another run's checkpoint ...
    second_last = fashion.logs / "fashion" / "version_1" / "checkpoints" / "last.ckpt"
    with pytest.raises(SystemExit) as stopped:
        cli_main(["fit", f"--config={config}", f"--ckpt_path={second_last}", "--trainer.max_epochs=2"])
    assert stopped.value.code == 2
    assert "already holds a run (best.ckpt, last.ckpt)" in capsys.readouterr().err
    assert best.read_bytes() == before
    # ... and --ckpt_path last continues that run, not the newest one.
    cli = cli_main(["fit", f"--config={config}", "--ckpt_path=last", "--trainer.max_epochs=2"])
    assert cli.trainer.ckpt_path == str(first / "checkpoints" / "last.ckpt")
    assert cli.trainer.current_epoch == 2
    assert torch.load(second_last, weights_only=True)["epoch"] == 0


@pytest.mark.slow
def test_resuming_a_run_that_a_live_process_writes_is_refused(fashion):
    logs = fashion.root / "live"
    command = fit_command(fashion, logs, "--trainer.max_epochs=200")
    live = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(last_ckpt(logs), live)
        second = subprocess.run([*command, "--ckpt_path=last"], capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert "being trained right now by another process" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        live.kill()
        live.wait()
    # kill -9 frees the lock: the same command now resumes that run
    resumed = subprocess.run([*command, "--ckpt_path=last", "--trainer.max_epochs=1"], capture_output=True, text=True)
    assert "being trained" not in resumed.stderr
    assert run_folders(logs) == ["version_0"]


@contextlib.contextmanager
def lock_held_elsewhere(folder):
    """Another process holds ``folder``'s writer lock until the block ends; yields its pid."""
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from fashion_lightning.run_lock import lock_run; lock_run({str(folder)!r}); input()"],
        stdin=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not lock_path(folder).exists() or lock_path(folder).read_text().strip() != str(holder.pid):
            assert time.monotonic() < deadline  # (a fit's pid is there until the holder writes its own)
            time.sleep(0.05)
        yield holder.pid
    finally:
        holder.communicate(b"\n", timeout=30)


def test_the_run_lock_is_exclusive_between_processes(tmp_path):
    run = tmp_path / "version_0"
    with lock_held_elsewhere(run) as pid, pytest.raises(ConfigurationError, match=f"pid {pid}"):
        lock_run(run)
    lock_run(run)  # the holder has exited: the lock is free


@pytest.mark.parametrize("stop", ["signal", "error"])
def test_a_fit_that_ends_in_a_notebook_frees_its_run_for_other_processes(fashion, stop):
    # A notebook's kernel lives on after a fit that a signal or an error stopped; it must not hold the run's lock.
    cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=1")])
    extra = ["--trainer.callbacks+=tests.helpers.SignalInEpochOne", "--trainer.callbacks.signal_name=SIGTERM"]
    if stop == "error":
        extra = ["--data.val_size=100000"]  # refused in setup, after the resumed run's folder was locked
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=3", "--ckpt_path=last", *extra)])
    assert exit_info.value.code == (143 if stop == "signal" else 2)
    run = fashion.logs / "fashion" / "version_0"
    other = [sys.executable, "-c", f"from fashion_lightning.run_lock import lock_run; lock_run({str(run)!r})"]
    result = subprocess.run(other, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr  # (was: "being trained right now by another process")


@pytest.mark.parametrize("version", ["0", "my_run"])
def test_a_fit_into_a_given_version_that_a_live_process_writes_is_refused(fashion, capsys, version):
    args = cli_args(fashion, "--trainer.max_epochs=1", f"--trainer.logger.init_args.version={version}")
    cli_main(["fit", *args])
    run = fashion.logs / "fashion" / ("version_0" if version == "0" else version)
    with lock_held_elsewhere(run) as pid:
        before = (run / "checkpoints" / "last.ckpt").read_bytes()
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["fit", *args, "--trainer.max_epochs=2", "--ckpt_path=last"])  # a resume into that folder
        assert exit_info.value.code == 2
        assert f"being trained right now by another process (pid {pid})" in capsys.readouterr().err
        assert (run / "checkpoints" / "last.ckpt").read_bytes() == before


def checkpoint_bytes(folder) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.ckpt"))}


def test_a_second_fit_without_a_logger_does_not_write_over_the_first(fashion, capsys):
    # No version_N folders: every run would write <default_root_dir>/checkpoints/best.ckpt and last.ckpt.
    args = without_logger(fashion, fashion.root / "no_logger", "--trainer.max_epochs=1")
    checkpoints = fashion.root / "no_logger" / "checkpoints"
    cli_main(["fit", *args])
    before = checkpoint_bytes(checkpoints)
    assert sorted(before) == ["best.ckpt", "last.ckpt"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        cli_main(["fit", *args, "--model.lr=0.1"])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert f"'{checkpoints}' already holds checkpoints of another run (best.ckpt, last.ckpt)" in error
    assert checkpoint_bytes(checkpoints) == before
    # Training on from a checkpoint kept elsewhere would write over them too.
    elsewhere = fashion.root / "elsewhere.ckpt"
    elsewhere.write_bytes(before["last.ckpt"])
    with pytest.raises(SystemExit) as stopped:
        cli_main(["fit", *args, "--trainer.max_epochs=2", f"--ckpt_path={elsewhere}"])
    assert stopped.value.code == 2
    assert "already holds checkpoints of another run" in capsys.readouterr().err
    assert checkpoint_bytes(checkpoints) == before
    # The resume the message names continues that run.
    resume = re.search(r"use (--ckpt_path \S+);", error).group(1).replace(" ", "=")
    cli = cli_main(["fit", *args, "--trainer.max_epochs=2", resume])
    assert cli.trainer.current_epoch == 2
    assert checkpoint_bytes(checkpoints) != before


@pytest.mark.parametrize("option", ["checkpoint.dirpath", "last.dirpath"])
def test_a_second_fit_into_a_named_checkpoint_folder_is_refused_before_claiming_a_version(fashion, capsys, option):
    folder = fashion.root / "mine"
    args = cli_args(fashion, "--trainer.max_epochs=1", f"--{option}={folder}")
    cli_main(["fit", *args])
    before = checkpoint_bytes(folder)
    assert sorted(before) == (["best.ckpt", "last.ckpt"] if option == "checkpoint.dirpath" else ["last.ckpt"])
    with pytest.raises(SystemExit) as stopped:
        cli_main(["fit", *args])
    assert stopped.value.code == 2
    assert f"'{folder}' already holds checkpoints of another run" in capsys.readouterr().err
    assert checkpoint_bytes(folder) == before
    assert run_folders(fashion.logs) == ["version_0"]


def test_a_fit_into_a_checkpoint_folder_that_a_live_process_writes_is_refused(fashion, capsys):
    root = fashion.root / "no_logger"
    with lock_held_elsewhere(root / "checkpoints") as pid:
        with pytest.raises(SystemExit) as stopped:
            cli_main(["fit", *without_logger(fashion, root, "--trainer.max_epochs=1")])
        assert stopped.value.code == 2
        error = capsys.readouterr().err
        assert f"The checkpoint folder '{root / 'checkpoints'}' is being trained right now by another process" in error
        assert f"(pid {pid})" in error
    assert not list((root / "checkpoints").iterdir())  # the holder's (empty) folder: nothing written into it


# --- classify: hostile and unusual images -------------------------------------------------------------------


def write_png_bomb(path, width=20_000, height=20_000):
    path.write_bytes(png_bomb(width, height))


def test_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    bomb = tmp_path / "huge.png"
    write_png_bomb(bomb)
    assert bomb.stat().st_size < 2_000_000
    with pytest.raises(ValueError, match="too large: "):
        image_to_tensor(bomb)
    medium = tmp_path / "medium.png"
    write_png_bomb(medium, width=8000, height=6000)  # 48 megapixels: under Pillow's limit, over ours
    with pytest.raises(ValueError, match="too large: 8000x6000"):
        image_to_tensor(medium)
    assert MAX_PIXELS < Image.MAX_IMAGE_PIXELS  # well under Pillow's own limit


@pytest.fixture
def checkpoint(fashion):
    cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=3", "--model.lr=0.5")])
    return fashion.logs / "fashion" / "version_0" / "checkpoints" / "best.ckpt"


def fixture_image(fashion, index=0) -> np.ndarray:
    raw = gzip.decompress((fashion.source_dir / "t10k-images-idx3-ubyte.gz").read_bytes())
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 28, 28)[index]


def test_classify_reports_a_bomb_and_classifies_the_other_files(fashion, checkpoint):
    good, good2, bomb = fashion.root / "good.png", fashion.root / "good2.png", fashion.root / "huge.png"
    Image.fromarray(fixture_image(fashion, 0)).save(good)
    Image.fromarray(fixture_image(fashion, 1)).save(good2)
    write_png_bomb(bomb)
    result = subprocess.run(
        [*CLI, "classify", str(checkpoint), str(good), str(bomb), str(good2)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"{good}: ")
    assert "%" in lines[0]
    assert lines[1].startswith(f"{bomb}: error: too large")
    assert lines[2].startswith(f"{good2}: ")
    assert "%" in lines[2]


def test_16_bit_grayscale_is_scaled_by_its_range_not_clipped(fashion, tmp_path):
    pixels = fixture_image(fashion, 3).copy()
    pixels[0, :2] = (0, 255)  # the full 8-bit range: stretching the 16-bit copy by its range then changes nothing
    eight, sixteen = tmp_path / "8.png", tmp_path / "16.png"
    Image.fromarray(pixels).save(eight)
    Image.fromarray(pixels.astype(np.uint16) * 257).save(sixteen)  # the same picture on the full 16-bit range
    assert Image.open(sixteen).mode.startswith("I;16")
    from_16 = image_to_tensor(sixteen)
    assert from_16.max() < 1.0 or from_16.mean() < 0.9, "clipping at 255 turns it almost white"
    assert (from_16 - image_to_tensor(eight)).abs().max() <= 1 / 255 + 1e-6


# --- export --------------------------------------------------------------------------------------------------


def test_export_refuses_to_overwrite_unless_asked(fashion, checkpoint):
    out = fashion.root / "exports"
    base = [*CLI, "export", str(checkpoint), f"--output_dir={out}", "--formats=[pth]", f"--data_dir={fashion.data_dir}"]
    subprocess.run(base, check=True, capture_output=True)
    before = (out / "model.pth").read_bytes()
    (out / "model.pth").write_bytes(b"the user's own file")
    refused = subprocess.run(base, capture_output=True, text=True)
    assert refused.returncode == 2
    assert "already holds model.pth" in refused.stderr
    assert "--overwrite" in refused.stderr
    assert (out / "model.pth").read_bytes() == b"the user's own file"
    subprocess.run([*base, "--overwrite=true"], check=True, capture_output=True)
    assert (out / "model.pth").read_bytes() == before
    assert not list(out.glob(".tmp-*"))


def test_export_into_an_unwritable_place_is_one_paragraph_naming_it(fashion, checkpoint, monkeypatch, capsys):
    blocker = fashion.root / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["export", str(checkpoint), f"--output_dir={blocker / 'exports'}", "--formats=[pth]"])
    assert exit_info.value.code == 2
    assert str(blocker / "exports") in capsys.readouterr().err
    # A read-only folder (root ignores permission bits, so the refusal is injected where the files are created).
    out = fashion.root / "readonly"
    out.mkdir()

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("fashion_lightning.export.tempfile.mkdtemp", read_only)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["export", str(checkpoint), f"--output_dir={out}", "--formats=[pth]"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert f"'{out}': Read-only file system" in err
    assert list(out.iterdir()) == []


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(fashion, monkeypatch, capsys):
    import fashion_lightning.checkpointing as checkpointing

    real_save, saves = checkpointing.atomic_torch_save, []

    def disk_fills_up(obj, path):
        saves.append(path)
        if len(saves) > 2:  # the first epoch's best.ckpt and last.ckpt fit; then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, path)

    monkeypatch.setattr(checkpointing, "atomic_torch_save", disk_fills_up)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=3")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "No space left on device" in err
    assert str(saves[2]) in err
    assert torch.load(last_ckpt(fashion.logs), weights_only=True)["epoch"] == 0  # the previous one, intact


# --- data folders --------------------------------------------------------------------------------------------


def test_data_dir_that_is_a_file_is_a_clear_error(fashion, capsys):
    not_a_dir = fashion.root / "data.txt"
    not_a_dir.write_text("oops")
    args = [a for a in cli_args(fashion, "--trainer.max_epochs=1") if not a.startswith("--data.data_dir")]
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *args, f"--data.data_dir={not_a_dir}"])
    assert exit_info.value.code == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    assert run_folders(fashion.logs) == []


def test_read_only_data_folder_whose_files_lost_their_mtimes_works(fashion, monkeypatch):
    FashionMNISTDataModule(data_dir=str(fashion.data_dir), source_dir=str(fashion.source_dir)).prepare_data()
    for path in raw_files.raw_dir(fashion.data_dir).iterdir():  # `cp -r` without -p: new mtimes, stamps now stale
        os.utime(path, (1, 1))
    (raw_files.cache_path(fashion.data_dir, "train")).unlink()  # and the decoded cache must be rebuilt in memory

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(sources, "atomic_write_bytes", read_only)
    monkeypatch.setattr(raw_files, "atomic_torch_save", read_only)
    datamodule = FashionMNISTDataModule(data_dir=str(fashion.data_dir), val_size=32, download=False)
    datamodule.prepare_data()
    datamodule.setup("fit")
    assert len(datamodule.datasets["train"]) + len(datamodule.datasets["val"]) == 320


def test_damaged_raw_file_with_a_verified_cache_uses_the_cache_and_says_so(fashion, caplog):
    datamodule = FashionMNISTDataModule(data_dir=str(fashion.data_dir), source_dir=str(fashion.source_dir))
    datamodule.prepare_data()
    raw = raw_files.raw_dir(fashion.data_dir) / "train-images-idx3-ubyte"
    raw.write_bytes(raw.read_bytes()[:1000])  # truncated, and no source can replace it
    with caplog.at_level(logging.WARNING):
        FashionMNISTDataModule(data_dir=str(fashion.data_dir), download=False).prepare_data()
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "Using the decoded cache" in messages
    assert "replaced" not in messages
    assert "replacing" not in messages  # no repair is claimed
    raw_files.cache_path(fashion.data_dir, "train").unlink()  # without the cache it is the usual clear error
    with pytest.raises(Exception, match="no good copy was found"):
        FashionMNISTDataModule(data_dir=str(fashion.data_dir), download=False).prepare_data()


# --- option values -------------------------------------------------------------------------------------------


def test_the_cosine_schedule_without_an_epoch_limit_is_refused_from_python_too(fashion):
    import lightning as L

    from fashion_lightning.lit_module import FashionClassifier

    data = FashionMNISTDataModule(str(fashion.data_dir), source_dir=str(fashion.source_dir), val_size=64)
    trainer = L.Trainer(
        max_epochs=-1, max_steps=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    with pytest.raises(ConfigurationError, match="no epoch limit"):
        trainer.fit(FashionClassifier(lr_scheduler="cosine"), datamodule=data)


@pytest.mark.parametrize(
    ("flag", "named"),
    [
        ("--data.batch_size=0", "--data.batch_size"),
        ("--data.batch_size=-1", "--data.batch_size"),
        ("--data.steps_per_batch=0", "--data.steps_per_batch must be an integer of at least 1, got 0."),
        ("--data.num_workers=-1", "--data.num_workers must be an integer of at least 0, got -1."),
        ("--trainer.max_epochs=-5", "--trainer.max_epochs"),
        ("--data.val_size=100000", "--data.val_size"),  # refused by the data module's setup, after the logger opened
        ("--model.lr=-0.1", "--model.lr"),  # torch's own errors came from inside fit, with a traceback
        ("--model.dropout=1.5", "--model.dropout"),
        ("--model.nesterov=true", "--model.momentum"),
        # Lightning refuses an unlogged monitor after the first epoch's validation, having saved nothing: now the
        # sanity check's validation (before any training) finds it, and says what the validation logs.
        ("--checkpoint.monitor=val/accuracy", "Did you mean val/acc?"),
        ("--checkpoint.monitor=val_loss", "Did you mean val/loss?"),
        ("--checkpoint.monitor=train/los", "Did you mean train/loss?"),  # logged at the epoch's end: named by the model
        (["--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor=val/accu"], "Did you mean val/acc?"),
        ("--trainer.barebones=true", "--trainer.barebones"),  # Lightning's ValueError beside the CLI's logger
        # Lightning stops at max_epochs without a word
        ("--trainer.min_epochs=6", "--trainer.min_epochs 6 is more than --trainer.max_epochs 5"),
        (["--trainer.min_steps=9", "--trainer.max_steps=8"], "--trainer.min_steps 9 is more than --trainer.max_steps"),
        ("--trainer.num_nodes=0", "--trainer: `num_nodes` must be a positive integer"),  # was a ValueError traceback
        # Lightning's TypeError when it creates the Trainer, a traceback
        (["--trainer.accelerator=cpu", "--trainer.devices=-1"], "--trainer: `devices` selected with `CPUAccelerator`"),
        # Lightning's ZeroDivisionError at the first training batch
        ("--trainer.check_val_every_n_epoch=0", "--trainer.check_val_every_n_epoch must be at least 1"),
        ("--trainer.val_check_interval=0", "--trainer.val_check_interval must be a number of training batches"),
        ("--trainer.log_every_n_steps=-1", "--trainer.log_every_n_steps must be at least 0"),  # (was: every step)
        # The cosine schedule over 1 epoch: the learning rate was 0 in every other epoch, without a word
        (["--model.lr_scheduler=cosine", "--trainer.max_epochs=-1", "--trainer.max_steps=40"], "no epoch limit"),
        (["--model.lr_scheduler=cosine", "--trainer.max_epochs=null", "--trainer.max_time=00:00:01:00"], "Set --"),
        (  # Lightning's ZeroDivisionError during training
            ["--trainer.logger=CSVLogger", "--trainer.logger.flush_logs_every_n_steps=0"],
            "--trainer.logger CSVLogger: flush_logs_every_n_steps must be at least 1",
        ),
        (  # Lightning's ValueError from inside fit, with a traceback (the batches are known once the loader is)
            "--trainer.val_check_interval=1000",
            "--trainer.val_check_interval 1000 counts training batches, and an epoch here has 8. Pass at most 8",
        ),
        (  # Lightning's RuntimeError at the start of training: the module runs its optimizer itself
            ["--trainer.callbacks+=GradientAccumulationScheduler", '--trainer.callbacks.scheduling={"0": 2}'],
            "--model.accumulate_grad_batches",
        ),
        # A Lightning class refusing its own option was jsonargparse's chain of tracebacks (~80 lines), run folder left
        (
            [
                "--trainer.callbacks+=EarlyStopping",
                "--trainer.callbacks.monitor=val/acc",
                "--trainer.callbacks.mode=maxx",
            ],
            "EarlyStopping refused its options: `mode` can be min, max, got maxx. `fashion-lightning fit "
            "--trainer.callbacks.help EarlyStopping` lists its options.",
        ),
    ],
)
def test_impossible_values_are_one_paragraph_and_leave_no_run_folder(fashion, capsys, flag, named):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *cli_args(fashion), *([flag] if isinstance(flag, str) else flag)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert named in err
    assert "Traceback" not in err
    assert run_folders(fashion.logs) == []


@pytest.mark.parametrize("option", ["checkpoint.dirpath", "last.dirpath"])
def test_a_checkpoint_folder_that_cannot_be_created_is_one_paragraph(fashion, capsys, option):
    blocked = fashion.root / "a_file"
    blocked.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_info:  # (was a FileExistsError traceback)
        cli_main(["fit", *cli_args(fashion), f"--{option}={blocked / 'checkpoints'}"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert f"error: The checkpoint folder '{blocked / 'checkpoints'}' cannot be created (" in err
    assert "Traceback" not in err
    assert run_folders(fashion.logs) == []


def test_without_a_sanity_check_a_monitor_typo_is_warned_at_the_start_and_refused_at_the_first_validation(
    fashion, capsys
):
    # No sanity check, so no validation before training: the model's own names are all that is known at the start.
    args = ["--checkpoint.monitor=val/accuracy", "--trainer.num_sanity_val_steps=0", "--trainer.max_epochs=2"]
    with (
        pytest.warns(UserWarning, match=r"--checkpoint\.monitor val/accuracy: .*Did you mean val/acc\?.*stop it now"),
        pytest.raises(SystemExit) as exit_info,
    ):
        cli_main(["fit", *cli_args(fashion), *args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "--checkpoint.monitor val/accuracy: the validation logs no such value. Did you mean val/acc?" in err
    assert "Traceback" not in err
    assert "HINT" not in err  # ours, not Lightning's message for module authors


def test_without_a_sanity_check_a_logged_monitor_is_not_warned_about_and_the_model_names_what_it_logs(fashion):
    args = ["--checkpoint.monitor=val/loss", "--trainer.num_sanity_val_steps=0", "--trainer.max_epochs=1"]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r".*--checkpoint\.monitor")
        cli = cli_main(["fit", *cli_args(fashion), *args])
    assert cli.trainer.checkpoint_callback.best_model_path
    logged = {key for key in cli.trainer.callback_metrics if key.startswith("val/")}
    assert logged == set(cli.model.LOGGED_BY_VALIDATION)  # what the warning above is judged by


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for a GPU where there is none")
@pytest.mark.parametrize("accelerator", ["gpu", "cuda"])
def test_asking_for_a_gpu_on_a_machine_without_one_says_what_to_do(fashion, capsys, accelerator):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *cli_args(fashion), f"--trainer.accelerator={accelerator}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"--trainer.accelerator {accelerator}: this machine has no CUDA GPU" in err
    assert "--trainer.accelerator cpu" in err
    assert run_folders(fashion.logs) == []


@pytest.mark.skipif(importlib.util.find_spec("torch_xla") is not None, reason="needs torch_xla absent")
def test_an_accelerator_whose_package_is_missing_is_one_paragraph_and_leaves_no_run_folder(fashion, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *cli_args(fashion), "--trainer.accelerator=tpu"])  # was a ModuleNotFoundError traceback
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: lightning.pytorch.accelerators.xla.XLAAccelerator cannot be used: Requirement")
    assert len(err.strip().splitlines()) == 1
    assert run_folders(fashion.logs) == []


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is not None, reason="needs MLflow absent")
def test_a_logger_whose_package_is_missing_is_one_paragraph_naming_both(fashion, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *cli_args(fashion), "--trainer.logger=MLFlowLogger"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: lightning.pytorch.loggers.MLFlowLogger cannot be used: Requirement 'mlflow")
    assert len(err.strip().splitlines()) == 1
    assert run_folders(fashion.logs) == []


def test_a_logger_without_version_folders_gets_no_version_number(fashion):
    # W&B, MLflow and others take `version`/`save_dir` with meanings of their own: the version_N claim is only for
    # loggers that lay runs out as version_N folders (TensorBoard, CSV and their subclasses).
    cli = cli_main(
        ["fit", *cli_args(fashion, "--trainer.max_epochs=1"), "--trainer.logger=tests.helpers.VersionedElsewhere"]
    )
    assert cli.trainer.logger.version is None
    checkpoints = sorted(p.relative_to(fashion.logs) for p in fashion.logs.rglob("*.ckpt"))
    assert [p.name for p in checkpoints] == ["best.ckpt", "last.ckpt"]
    assert checkpoints[0].parent == checkpoints[1].parent  # the run's own folder, not one shared by every run
    assert not (fashion.logs / "fashion" / "version_0").exists()


@pytest.mark.parametrize("first", ["tests.helpers.VersionedElsewhere", "lightning.pytorch.loggers.TensorBoardLogger"])
def test_a_folder_logger_writing_outside_the_runs_folder_claims_its_own_version(fashion, first):
    # After a W&B-like logger, or with a save_dir of its own, a CSV logger picked its version by listing its folder
    # (two runs started together took the same one), and a run refused at setup left it an empty version_0.
    csv = fashion.root / "csv"
    loggers = [
        {"class_path": first, "init_args": {"save_dir": str(fashion.logs), "name": "fashion"}},
        {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(csv), "name": "fashion"}},
    ]
    config = fashion.root / "loggers.yaml"
    config.write_text(yaml.safe_dump({"trainer": {"logger": loggers}}))
    args = [*without_logger_dir(cli_args(fashion, "--trainer.max_epochs=1")), f"--config={config}"]
    with pytest.raises(SystemExit):
        cli_main(["fit", *args, "--data.val_size=100000"])
    assert run_folders(csv) == []
    for version in (0, 1):
        cli = cli_main(["fit", *args])
        assert cli.config.fit.trainer.logger[1].init_args.version == version  # claimed before the logger was built
        assert (csv / "fashion" / f"version_{version}" / "metrics.csv").is_file()
    saved = yaml.safe_load((Path(cli.trainer.log_dir) / "config.yaml").read_text())
    assert saved["trainer"]["logger"][1]["init_args"]["version"] is None  # its replay starts a new run


def test_a_refused_run_into_a_given_version_leaves_no_folder(fashion, capsys):
    with pytest.raises(SystemExit):
        cli_main(["fit", *cli_args(fashion), "--trainer.logger.init_args.version=5", "--data.val_size=100000"])
    assert "--data.val_size must be between" in capsys.readouterr().err
    assert not (fashion.logs / "fashion" / "version_5").exists()


def test_a_refused_run_removes_only_its_own_folder_not_the_runs_before_it_in_the_process(fashion, capsys):
    # A notebook's cells: a fit, then a fit refused after claiming its folder (the data module's check in setup).
    cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=1")])
    with pytest.raises(SystemExit):
        cli_main(["fit", *cli_args(fashion), "--data.val_size=100000"])
    assert "--data.val_size must be between" in capsys.readouterr().err
    assert run_folders(fashion.logs) == ["version_0"]  # (was []: the first run's checkpoints went with it)
    assert (fashion.logs / "fashion" / "version_0" / "checkpoints" / "last.ckpt").is_file()


def test_a_run_built_from_python_keeps_its_folder_when_a_later_run_is_refused(fashion, capsys):
    # build_cli runs a fit outside cli_main (which forgets a run's claims at its end); its folder holds no checkpoint.
    build_cli(["fit", *cli_args(fashion, "--trainer.max_epochs=1", "--trainer.enable_checkpointing=false")])
    with pytest.raises(SystemExit):
        cli_main(["fit", *cli_args(fashion), "--data.val_size=100000"])
    assert "--data.val_size must be between" in capsys.readouterr().err
    assert run_folders(fashion.logs) == ["version_0"]
    assert list((fashion.logs / "fashion" / "version_0").glob("events.out.tfevents.*"))


def test_a_claimed_folder_that_holds_a_checkpoint_is_never_removed(tmp_path):
    # A last guard behind the bookkeeping of claims: whatever marks a run unused, its checkpoints stay.
    kept, empty = tmp_path / "version_0", tmp_path / "version_1"
    (kept / "checkpoints").mkdir(parents=True)
    (kept / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    empty.mkdir()
    remember_claim(kept)
    remember_claim(empty)
    release_unused_claims(started=False)  # a fit that never reached its first step
    assert versions(tmp_path) == [0]
    assert (kept / "checkpoints" / "last.ckpt").read_bytes() == b"weights"


def test_ctrl_c_before_training_leaves_no_run_folder_and_ctrl_c_working(fashion):
    sigint = signal.getsignal(signal.SIGINT)
    CtrlCInSetup.fits = 0
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *cli_args(fashion), "--trainer.callbacks+=tests.helpers.CtrlCInSetup"])
    assert exit_info.value.code != 0
    assert run_folders(fashion.logs) == []  # the logger had opened its event file in version_0/
    assert (
        signal.getsignal(signal.SIGINT) is sigint
    )  # (Lightning left it ignored: a notebook's next Ctrl-C did nothing)


def test_model_flag_that_disagrees_with_the_checkpoint_is_an_error_naming_both(fashion, capsys):
    cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=1", "--model.hidden_dims=[64]")])
    best = fashion.logs / "fashion" / "version_0" / "checkpoints" / "best.ckpt"
    for subcommand in ("test", "fit"):
        with pytest.raises(SystemExit) as exit_info:
            cli_main([subcommand, *cli_args(fashion, f"--ckpt_path={best}", "--model.hidden_dims=[512,512]")])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2
        assert "hidden_dims [512, 512] (checkpoint: [64])" in err
    # Without the flag the checkpoint rebuilds its own model.
    cli = cli_main(["test", *cli_args(fashion, f"--ckpt_path={best}")])
    assert cli.model.hparams.hidden_dims == [64]
    assert weights(best)["net.linear_relu_stack.0.weight"].shape == (64, 784)
