"""Resume that loses nothing: kills, signals, non-finite loss, bad checkpoints, safe writes, TensorBoard continuity."""

import contextlib
import os
import pickle
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fashion_lightning.atomic import TEMP_PREFIX, atomic_open
from fashion_lightning.checkpointing import AtomicCheckpointIO
from fashion_lightning.cli import build_cli, cli_main
from fashion_lightning.lit_module import FashionClassifier
from fashion_lightning.runs import find_checkpoint, run_version, versions
from tests.helpers import assert_same_weights, cli_args, fit_command, last_ckpt, scalar_steps, wait_for, weights


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_gives_the_same_weights(fashion, reference):
    logs, rng = fashion.root / "killed", random.Random(1234)
    command, kills = fit_command(fashion, logs, "--trainer.max_epochs=12"), 0
    for attempt in range(15):
        process = subprocess.Popen(
            command + (["--ckpt_path=last"] if attempt else []), stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        if attempt < 6:  # the first runs are killed at random moments once training is under way
            wait_for(last_ckpt(logs), process)
            time.sleep(rng.uniform(0.0, 1.5))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
        if process.wait() == 0:
            break
    assert kills >= 3
    assert_same_weights(last_ckpt(logs), reference)
    assert versions(logs / "fashion") == [0]  # one run, one folder
    assert not list(last_ckpt(logs).parent.glob(f"{TEMP_PREFIX}*"))  # no orphans after the next start
    steps = scalar_steps(logs, "train/loss")
    assert len(steps) == len(set(steps)) == 12  # one point per epoch: no duplicates, no gaps


@pytest.mark.parametrize("batch_idx", [-1, 1], ids=["at-the-epochs-end", "mid-epoch"])
def test_a_kill_right_after_last_ckpt_is_written_leaves_no_gap_in_the_curves(fashion, batch_idx):
    logs = fashion.root / "killed"
    # Every step logged and checkpointed: the kill comes right after last.ckpt is written, and each value must be
    # on disk by then (a resume from that file never logs its steps again).
    command = fit_command(fashion, logs, "--trainer.max_epochs=3", "--trainer.log_every_n_steps=1")
    killer = ["--trainer.callbacks+=tests.helpers.SigkillAfterLastCheckpoint", f"--trainer.callbacks.{batch_idx=}"]
    killed = subprocess.run(command + killer, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    subprocess.run([*command, "--ckpt_path=last"], check=True, capture_output=True)
    assert scalar_steps(logs, "train/loss") == [8, 16, 24]  # one point per epoch
    assert scalar_steps(logs, "train/loss_step") == list(range(1, 25))


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGUSR1, 138)])
def test_signal_saves_a_checkpoint_exits_nonzero_and_resumes_exactly(fashion, reference, signum, exit_code):
    logs = fashion.root / "signalled"
    command = fit_command(fashion, logs, "--trainer.max_epochs=12")
    # A stand-in for SLURM's scontrol: SIGUSR1 (SLURM's warning before the time limit) must requeue the job.
    bin_dir, requeued = fashion.root / "bin", fashion.root / "requeued"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" > {requeued}\n')
    (bin_dir / "scontrol").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "4242"}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    wait_for(last_ckpt(logs), process)
    time.sleep(0.5)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == exit_code, stderr[-2000:]
    stopped_at = torch.load(last_ckpt(logs), weights_only=True)["global_step"]
    assert 0 < stopped_at < 96
    if signum == signal.SIGUSR1:
        assert requeued.read_text().split() == ["requeue", "4242"]
    else:
        assert not requeued.exists()
    subprocess.run([*command, "--ckpt_path=last"], check=True, capture_output=True)
    assert_same_weights(last_ckpt(logs), reference)


def test_ckpt_path_last_without_a_checkpoint_says_it_starts_fresh(fashion, capsys):
    cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=1", "--ckpt_path=last")])
    assert f"no run under {fashion.logs / 'fashion'}/ has checkpoints/last.ckpt; starting a new run" in (
        capsys.readouterr().out
    )
    assert last_ckpt(fashion.logs).is_file()


def test_resume_continues_the_same_version_and_curves(fashion):
    cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=2")])
    cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=4", "--ckpt_path=last")])
    assert versions(fashion.logs / "fashion") == [0]
    assert torch.load(last_ckpt(fashion.logs), weights_only=True)["epoch"] == 3
    steps = scalar_steps(fashion.logs, "val/acc")
    assert len(steps) == len(set(steps)) == 4


def test_a_resume_below_the_epochs_trained_is_refused_and_one_at_them_trains_nothing(fashion, capsys, caplog):
    cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=2")])
    saved = last_ckpt(fashion.logs).read_bytes()
    with pytest.raises(SystemExit) as stopped:  # (stock Lightning refused only below the last epoch index, unhelpfully)
        cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=1", "--ckpt_path=last")])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "that run has trained 2 epochs, more than --trainer.max_epochs 1" in error
    assert "Pass --trainer.max_epochs N with N > 2 to train on" in error
    assert "Traceback" not in error
    cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=2", "--ckpt_path=last")])
    assert "already trained 2 epochs (--trainer.max_epochs 2), so this fit has nothing left to train" in caplog.text
    assert last_ckpt(fashion.logs).read_bytes() == saved
    assert versions(fashion.logs / "fashion") == [0]


def test_a_resume_beyond_the_end_of_a_cosine_schedule_is_refused(fashion, capsys):
    # CosineAnnealingLR is periodic: extended, the run trained an epoch at rate 0, then the rate rose again.
    cosine = ["--model.lr_scheduler=cosine", "--model.lr=0.1", "--trainer.max_epochs=2"]
    cli_main(["fit", *cli_args(fashion, *cosine)])
    saved = last_ckpt(fashion.logs).read_bytes()
    with pytest.raises(SystemExit) as stopped:
        cli_main(["fit", *cli_args(fashion, *cosine, "--trainer.max_epochs=4", "--ckpt_path=last")])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "that run's cosine schedule takes the learning rate to 0 over the 2 epochs it was started with" in error
    assert "Resume with --trainer.max_epochs 2, or start a new run with --trainer.max_epochs 4." in error
    assert last_ckpt(fashion.logs).read_bytes() == saved


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(fashion, capsys):
    args = ["--model.lr=1e12", "--last.every_n_train_steps=1", "--data.steps_per_batch=1"]
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *cli_args(fashion, *args)])
    assert exit_info.value.code == 3
    message = capsys.readouterr().err
    assert "NaN or infinite at step" in message
    assert "Traceback" not in message
    kept = weights(last_ckpt(fashion.logs))
    assert all(torch.isfinite(value).all() for name, value in kept.items() if name.startswith("net."))


def test_signal_handlers_are_given_back_after_fit(fashion):
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=1")])
    assert {signum: signal.getsignal(signum) for signum in before} == before


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_signal_ignored_when_fit_starts_stays_ignored(fashion, signal_name):
    # `fashion-lightning fit &` in a script (or under nohup-like wrappers) starts with SIGINT ignored: a Ctrl-C meant
    # for the terminal's foreground job must not stop it, as it would not stop any other program started so.
    signum = getattr(signal, signal_name)
    previous = signal.signal(signum, signal.SIG_IGN)
    try:
        signaller = [
            "--trainer.callbacks+=tests.helpers.SignalInEpochOne",
            f"--trainer.callbacks.signal_name={signal_name}",
        ]
        cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=3", *signaller)])
        assert signal.getsignal(signum) is signal.SIG_IGN
    finally:
        signal.signal(signum, previous)
    assert torch.load(last_ckpt(fashion.logs), weights_only=True)["epoch"] == 2  # all three epochs ran


# Validation has 4 batches and the epoch 8 steps of one batch each, so a stop can fall just before a validation.
BESIDE_VALIDATION = ["--trainer.max_epochs=3", "--data.eval_batch_size=16", "--data.steps_per_batch=1"]


@pytest.mark.parametrize(
    ("when", "options", "code", "saved_step"),
    [
        # Ctrl-C in the epoch's last step: the validation after it runs, then the run stops at the epoch's end.
        (["signal_name=SIGINT"], [], 130, 16),
        # SIGTERM in a validation: it runs to its end, then the run stops.
        (["signal_name=SIGTERM", "in_validation=true"], [], 143, 16),
        # Ctrl-C in the step before a validation inside the epoch: that step is saved before the validation.
        (["signal_name=SIGINT", "batch_idx=3"], ["--trainer.val_check_interval=4"], 130, 12),
    ],
    ids=["ctrl-c-before-validation", "sigterm-in-validation", "ctrl-c-before-mid-epoch-validation"],
)
def test_a_stop_next_to_a_validation_saves_its_step_and_resumes_exactly(fashion, when, options, code, saved_step):
    # Lightning stops inside a validation that starts after the stop was asked for: such a stop once saved nothing.
    def fit(logs, *more):
        args = cli_args(fashion, *BESIDE_VALIDATION, *options, *more)
        cli_main(["fit", *args, f"--trainer.logger.init_args.save_dir={logs}"])

    reference, stopped = fashion.root / "reference", fashion.root / "stopped"
    fit(reference)
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    signaller = ["--trainer.callbacks+=tests.helpers.SignalInEpochOne", *(f"--trainer.callbacks.{w}" for w in when)]
    with pytest.raises(SystemExit) as exit_info:
        fit(stopped, *signaller)
    assert exit_info.value.code == code
    assert {signum: signal.getsignal(signum) for signum in handlers} == handlers  # given back after a stopped fit
    assert torch.load(last_ckpt(stopped), weights_only=True)["global_step"] == saved_step
    fit(stopped, "--ckpt_path=last")
    assert_same_weights(last_ckpt(stopped), last_ckpt(reference))


def test_a_stop_inside_uneven_groups_resumes_exactly_and_validates_where_it_would(fashion, monkeypatch):
    # --trainer.val_check_interval 0.4 of 8 steps: groups of 2, 1, 2, 1 and 2 steps, so that Lightning's count of
    # batches validates after steps 3 and 6 of each epoch. A Ctrl-C in epoch 1's third group stops at step 13.
    def fit(logs, *more):
        args = cli_args(fashion, "--trainer.max_epochs=2", "--trainer.val_check_interval=0.4", *more)
        return cli_main(["fit", *args, f"--trainer.logger.init_args.save_dir={logs}"])

    from fashion_lightning import batch_counting

    # (SignalInEpochOne's batch hook, written outside the package, would otherwise get one step a batch; it works
    # on groups too)
    monkeypatch.setattr(batch_counting, "GROUP_AWARE_PACKAGES", (*batch_counting.GROUP_AWARE_PACKAGES, "tests."))
    reference, stopped = fashion.root / "reference", fashion.root / "stopped"
    assert fit(reference).datamodule.grouping().layout == (2, 1, 2, 1, 2)
    with pytest.raises(SystemExit):
        fit(stopped, "--trainer.callbacks+=tests.helpers.SignalInEpochOne", "--trainer.callbacks.batch_idx=2")
    assert torch.load(last_ckpt(stopped), weights_only=True)["global_step"] == 8 + 5
    fit(stopped, "--ckpt_path=last")
    assert_same_weights(last_ckpt(stopped), last_ckpt(reference))
    assert scalar_steps(stopped, "val/loss") == scalar_steps(reference, "val/loss") == [3, 6, 11, 14]


@pytest.mark.parametrize(
    ("stop_at", "resumed_with", "images_left", "steps_left"),
    [
        # Batches of 32 (8 steps an epoch, one a batch), stopped after 3 of epoch 1 (96 images). Resumed with
        # batches of 64 (Lightning counted 3 of now 4 batches done, and ended the epoch after one more): the rest
        # of the batch the stop fell in (32 images), then 2 whole ones.
        (2, ["--data.batch_size=64"], 160, 3),
        # Stopped after 6 steps; resumed with groups of 4 steps (a run moved from a GPU's groups to a CPU's): the
        # rest of the second group.
        (5, ["--data.steps_per_batch=4"], 64, 2),
    ],
)
def test_a_fit_resumed_mid_epoch_in_another_batch_layout_trains_the_rest_of_the_epoch_once(
    fashion, stop_at, resumed_with, images_left, steps_left
):
    def fit(*more):
        return cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=2", "--data.steps_per_batch=1", *more)])

    with pytest.raises(SystemExit):
        fit("--trainer.callbacks+=tests.helpers.SignalInEpochOne", f"--trainer.callbacks.batch_idx={stop_at}")
    stopped_at = torch.load(last_ckpt(fashion.logs), weights_only=True)["global_step"]
    assert stopped_at == 8 + stop_at + 1
    resumed = fit(*resumed_with, "--ckpt_path=last", "--trainer.callbacks+=tests.helpers.ImagesPerEpoch")
    counted = next(cb for cb in resumed.trainer.callbacks if type(cb).__name__ == "ImagesPerEpoch")
    assert counted.images == {1: images_left}
    assert resumed.trainer.global_step == stopped_at + steps_left
    assert scalar_steps(fashion.logs, "val/loss") == [8, stopped_at + steps_left]


def test_checkpoints_are_written_with_the_atomic_io(fashion):
    cli = build_cli(cli_args(fashion), run=False)
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)


def test_a_write_that_fails_half_way_leaves_the_previous_file(tmp_path):
    target = tmp_path / "last.ckpt"
    target.write_bytes(b"previous good checkpoint")

    def write_half_then_die():
        with atomic_open(target) as handle:
            handle.write(b"half of the new one")
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_half_then_die()
    assert target.read_bytes() == b"previous good checkpoint"
    assert os.listdir(tmp_path) == ["last.ckpt"]


def test_a_kill_during_a_write_leaves_a_loadable_checkpoint_and_no_orphan_after_restart(fashion):
    cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=1")])
    checkpoints = last_ckpt(fashion.logs).parent
    orphan = checkpoints / f"{TEMP_PREFIX}killed.part"  # what a SIGKILL in the middle of a write leaves
    orphan.write_bytes(last_ckpt(fashion.logs).read_bytes()[:1000])
    torch.load(last_ckpt(fashion.logs), weights_only=True)  # the previous checkpoint is intact
    cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=2", "--ckpt_path=last")])
    assert not orphan.exists()


def test_last_checkpoint_is_found_by_version_not_by_mtime(tmp_path):
    for version in (2, 10):
        path = tmp_path / f"version_{version}" / "checkpoints" / "last.ckpt"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
    os.utime(tmp_path / "version_2" / "checkpoints" / "last.ckpt", (2e9, 2e9))  # newer mtime, older run
    assert find_checkpoint(tmp_path) == tmp_path / "version_10" / "checkpoints" / "last.ckpt"
    assert run_version(tmp_path / "version_10" / "checkpoints" / "best.ckpt") == (tmp_path, 10)
    assert run_version(tmp_path / "elsewhere.ckpt") is None


class Payload:
    """Unpickling this runs code: it creates the file named in ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def fitted_checkpoint(fashion):
    cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=1")])
    return last_ckpt(fashion.logs)


def run_with_checkpoint(fashion, path, capsys, subcommand="test"):
    with pytest.raises(SystemExit) as exit_info:
        cli_main([subcommand, *cli_args(fashion, f"--ckpt_path={path}")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_missing_checkpoint_is_a_clear_error(fashion, capsys):
    assert "No checkpoint at" in run_with_checkpoint(fashion, fashion.root / "nope.ckpt", capsys)


def test_truncated_checkpoint_is_a_clear_error(fashion, fitted_checkpoint, capsys):
    broken = fashion.root / "broken.ckpt"
    broken.write_bytes(fitted_checkpoint.read_bytes()[:5000])
    assert "damaged or not a PyTorch checkpoint" in run_with_checkpoint(fashion, broken, capsys, "fit")


@pytest.mark.parametrize(
    "content", [b"root:x:0:0:root:/root:/bin/bash\n", bytes(range(256)) * 8], ids=["text", "bytes"]
)
def test_a_file_that_is_no_checkpoint_is_a_clear_error(fashion, capsys, content):
    # (a text file once reached torch's weights-only unpickler as an IndexError with a traceback)
    other = fashion.root / "other.ckpt"
    other.write_bytes(content)
    err = run_with_checkpoint(fashion, other, capsys)
    assert "damaged or not a PyTorch checkpoint" in err
    assert "not the zip archive that torch.save writes" in err


def test_checkpoint_of_another_model_is_a_clear_error(fashion, fitted_checkpoint, capsys):
    checkpoint = torch.load(fitted_checkpoint, weights_only=True)
    checkpoint["state_dict"]["net.linear_relu_stack.0.weight"] = torch.zeros(10, 10)
    other = fashion.root / "other.ckpt"
    torch.save(checkpoint, other)
    err = run_with_checkpoint(fashion, other, capsys)
    assert "belongs to another model" in err
    assert "net.linear_relu_stack.0.weight" in err


def test_pickle_payload_is_refused_and_never_runs(fashion, fitted_checkpoint, capsys):
    marker = fashion.root / "payload-ran"
    checkpoint = torch.load(fitted_checkpoint, weights_only=True)
    checkpoint["hyper_parameters"]["evil"] = Payload(marker)
    hostile = fashion.root / "hostile.ckpt"
    torch.save(checkpoint, hostile)
    assert "pickled Python objects" in run_with_checkpoint(fashion, hostile, capsys)
    with pytest.raises(pickle.UnpicklingError):
        FashionClassifier.load_from_checkpoint(hostile)  # Lightning's own loader: weights_only=True as well
    assert not marker.exists()


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_fit_resume_on_one_and_two_and_exact_test(fashion):
    def run(subcommand, *extra):
        command = [sys.executable, "-m", "fashion_lightning", subcommand, *cli_args(fashion, *extra)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        output = result.stdout + result.stderr
        for noise in ("It is recommended to use `self.log(", "is deprecated"):  # a quiet console under DDP too
            assert noise not in output, output[-3000:]
        return output

    ddp = ["--trainer.strategy=ddp", "--trainer.devices=2"]
    run("fit", *ddp, "--trainer.max_epochs=1")
    written_by_two = last_ckpt(fashion.logs).read_bytes()
    output = run("fit", "--trainer.max_epochs=2", "--ckpt_path=last")  # on one process
    assert "global batch changes from 64 to 32" in output
    last_ckpt(fashion.logs).write_bytes(written_by_two)  # the same checkpoint again, now on two
    output = run("fit", *ddp, "--trainer.max_epochs=2", "--ckpt_path=last", "--test_after_fit=true")
    assert torch.load(last_ckpt(fashion.logs), weights_only=True)["epoch"] == 1
    tested_after_fit = re.findall(r"test/acc: [0-9.]+ on [0-9,]+ images", output)
    best = last_ckpt(fashion.logs).with_name("best.ckpt")
    output = run("test", *ddp, f"--ckpt_path={best}")
    assert "on 160 images" in output  # every test image exactly once, none padded in
    assert tested_after_fit == re.findall(r"test/acc: [0-9.]+ on [0-9,]+ images", output)  # (said once, by rank 0)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("strategy", "signalled", "steps_per_batch"),
    [
        ("ddp", "main", 1),
        ("ddp", "worker", 1),
        # Lightning's multiprocessing launcher: its workers run no on_exception hook and a worker that Lightning's
        # own stop ended handed it no result (the run hung); a SIGTERM to the launching process killed it alone.
        ("ddp_spawn", "main", 1),  # a stop inside an epoch (4 groups of one step)
        ("ddp_spawn", "worker", 4),  # a stop at an epoch's end (one group of 4 steps an epoch)
    ],
)
def test_a_signal_to_one_ddp_process_stops_both_at_one_step_and_resumes_exactly(
    fashion, strategy, signalled, steps_per_batch
):
    # A SIGTERM to one of the processes (not a terminal's Ctrl-C, which reaches both) could hang the run: the
    # processes learnt of the stop at different steps (a race; now they agree on it at fixed points).
    ddp = [f"--trainer.strategy={strategy}", "--trainer.devices=2", f"--data.steps_per_batch={steps_per_batch}"]
    reference, logs = fashion.root / "reference", fashion.root / "stopped"
    subprocess.run(fit_command(fashion, reference, *ddp, "--trainer.max_epochs=20"), check=True, capture_output=True)
    command = fit_command(fashion, logs, *ddp, "--trainer.max_epochs=200")  # (the stop comes long before the end)
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        wait_for(last_ckpt(logs), process)
        time.sleep(1.0)
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        workers = [pid for pid in children if "resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_text()]
        os.kill(process.pid if signalled == "main" else int(workers[-1]), signal.SIGTERM)  # (ddp: rank 1)
        output, _ = process.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # whatever a hang left
    assert process.returncode == 143, output[-3000:]
    assert re.search(r"Stopped by SIGTERM at step \d+: saved", output), output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert "Terminating process" not in output, output[-3000:]
    assert 0 < torch.load(last_ckpt(logs), weights_only=True)["global_step"] < 80
    resume = [*fit_command(fashion, logs, *ddp, "--trainer.max_epochs=20"), "--ckpt_path=last"]
    subprocess.run(resume, check=True, capture_output=True)
    assert_same_weights(last_ckpt(logs), last_ckpt(reference))


@pytest.mark.parametrize(
    ("exit_code", "received", "status", "says"),
    [
        (143, None, 143, None),  # a worker that stopped cleanly (it said what it saved)
        (143, signal.SIGINT, 130, None),  # the launching process's Ctrl-C, passed on to the workers as SIGTERM
        (-15, signal.SIGTERM, 143, "Stopped by SIGTERM before training: nothing was saved."),
        (1, signal.SIGINT, 130, "Stopped by SIGINT before training: nothing was saved."),
        (-9, None, 137, "A training process was killed by SIGKILL; nothing more was saved"),
    ],
)
def test_a_spawned_workers_exit_becomes_the_runs_exit_status(monkeypatch, caplog, exit_code, received, status, says):
    from torch.multiprocessing import ProcessExitedException

    from fashion_lightning import spawn_stop

    monkeypatch.setattr(spawn_stop, "_received", received)
    ended = ProcessExitedException("process 0 ended", error_index=0, error_pid=1, exit_code=exit_code)
    with caplog.at_level("INFO"):
        assert spawn_stop.stop_exit_code(ended) == status
    assert (says in caplog.text) if says else "Stopped" not in caplog.text


def test_a_spawned_worker_that_failed_otherwise_keeps_its_error(monkeypatch):
    from torch.multiprocessing import ProcessExitedException

    from fashion_lightning import spawn_stop

    monkeypatch.setattr(spawn_stop, "_received", None)
    failed = ProcessExitedException("process 1 exited with 1", error_index=1, error_pid=1, exit_code=1)
    with pytest.raises(ProcessExitedException, match="exited with 1"):
        spawn_stop.stop_exit_code(failed)


def test_a_live_writers_temporary_file_is_left_alone(tmp_path):
    """Two runs sharing a folder: the second one's clean-up must not delete what the first is writing."""
    from fashion_lightning.atomic import remove_stale_temporaries

    live = tmp_path / f"{TEMP_PREFIX}1-abc.part"  # pid 1 is always alive
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f"{TEMP_PREFIX}{int(dead_pid.stdout)}-abc.part"
    legacy = tmp_path / f"{TEMP_PREFIX}killed.part"
    for path in (live, dead, legacy):
        path.write_bytes(b"partial")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted([dead, legacy])
    assert live.exists()
