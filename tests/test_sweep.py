"""``fashion-lightning sweep``: trials as normal runs, kill -9 and rerun, two workers on a real PostgreSQL."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from fashion_lightning.cli import cli_main
from fashion_lightning.runs import versions
from tests.helpers import CtrlCInSetup, cli_args, free_port, wait_for

optuna = pytest.importorskip("optuna")
SPACE = {
    "model.lr": {"type": "float", "low": 0.05, "high": 0.5, "log": True},
    "model.dropout": {"type": "float", "low": 0.0, "high": 0.2, "step": 0.1},
    "model.hidden_dims": {"type": "categorical", "choices": [[64], [128]]},
}


def sweep_command(fashion, storage: str, *extra: str) -> list[str]:
    space = fashion.root / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    return [
        sys.executable, "-m", "fashion_lightning", "sweep", *cli_args(fashion),
        f"--search_space={space}", f"--storage={storage}", "--study_name=t", "--pruner=none", *extra,
    ]  # fmt: skip


def finished_trials(storage: str):
    study = optuna.load_study(study_name="t", storage=storage)
    return study, [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]


@pytest.mark.slow
def test_three_trial_sweep_reports_and_writes_a_config_that_retrains_the_best(fashion, capsys):
    storage = f"sqlite:///{fashion.root / 's.db'}"
    result = subprocess.run(
        sweep_command(fashion, storage, "--n_trials=3", "--trainer.max_epochs=1"), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sys.argv" not in result.stderr  # LightningCLI's warning about the sweep's own command line
    assert "experimental" not in result.stderr  # Optuna's notices on the heartbeat APIs that recover killed trials
    assert result.stdout.count("(resume: run the same sweep command)") == 3  # each trial's summary
    study, done = finished_trials(storage)
    assert len(done) == 3
    assert sorted(t.number for t in study.trials) == [0, 1, 2]
    runs = fashion.logs / "t"
    assert versions(runs) == [0, 1, 2]  # each trial is a normal run under the study's name
    for trial in done:
        run = Path(trial.user_attrs["run_dir"])
        assert (run / "config.yaml").is_file()
        assert (run / "checkpoints" / "best.ckpt").is_file()
        assert list(run.glob("events.out.tfevents.*"))
        assert trial.value == pytest.approx(max(trial.user_attrs["values"]))
    assert "| trial | state | best val/acc | params | run folder |" in result.stdout
    assert f"Best: trial {study.best_trial.number}" in result.stdout
    best_yaml = runs / "best.yaml"
    best_config = yaml.safe_load(best_yaml.read_text())
    assert best_config["model"]["lr"] == pytest.approx(study.best_params["model.lr"])
    assert "test_after_fit" not in best_config  # (the trials' forced false)
    assert f"Retrain it, then test it once: fashion-lightning fit --config {best_yaml} --test_after_fit true" in (
        result.stdout
    )
    retrain = ["fit", f"--config={best_yaml}", *cli_args(fashion, "--trainer.max_epochs=1"), "--test_after_fit=true"]
    cli = cli_main(retrain)
    assert cli.model.hparams.lr == pytest.approx(study.best_params["model.lr"])
    assert "test" in cli.model.evaluated_images
    assert versions(runs) == [0, 1, 2, 3]  # a new run, not trial folder reused
    # --n_trials 0 only reports
    report = subprocess.run(sweep_command(fashion, storage, "--n_trials=0"), capture_output=True, text=True)
    assert report.returncode == 0
    assert f"Best: trial {study.best_trial.number}" in report.stdout
    assert len(optuna.load_study(study_name="t", storage=storage).trials) == 3


@pytest.mark.slow
# Ctrl-C stops at the end of the step in progress, some time after the signal: its trials are longer, so that the
# stop still falls in the middle of one on a slow machine.
@pytest.mark.parametrize(("stop", "epochs"), [(signal.SIGKILL, 4), (signal.SIGINT, 20)], ids=["kill-9", "ctrl-c"])
def test_a_trial_stopped_in_the_middle_is_continued_by_the_same_command(fashion, stop, epochs):
    storage = f"sqlite:///{fashion.root / 's.db'}"
    flags = ["--n_trials=3", f"--trainer.max_epochs={epochs}", "--last.every_n_train_steps=1"]
    command = sweep_command(fashion, storage, *flags)
    output = fashion.root / "sweep.log"
    with open(output, "w") as log:  # (a file, not a pipe that nobody reads while the sweep runs)
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    # The second trial's first step is saved (checkpoints appear whole: written aside, then renamed): stop it now,
    # while most of its steps are left. (A fixed pause here raced the trial's end once figures got faster.)
    wait_for(fashion.logs / "t" / "version_1" / "checkpoints" / "last.ckpt", process, timeout=300)
    os.killpg(process.pid, stop)  # Ctrl-C: to the whole group, as a terminal sends it
    process.wait(timeout=120)
    if stop == signal.SIGINT:
        assert process.returncode == 130
        assert re.search(
            r"Stopped by SIGINT at step \d+: saved .* \(resume: run the same sweep command\)", output.read_text()
        )
    study = optuna.load_study(study_name="t", storage=storage)
    [killed] = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]  # left RUNNING by the stop
    killed_run = Path(killed.user_attrs["run_dir"])
    steps_at_kill = torch.load(killed_run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert steps_at_kill < epochs * 8
    result = subprocess.run(command, capture_output=True, text=True)  # the same command again
    assert result.returncode == 0, result.stderr[-3000:]
    study, done = finished_trials(storage)
    assert len(done) == 3  # exactly n_trials finished
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert [t.number for t in failed] == [killed.number]  # the killed trial...
    continuing = next(t for t in done if t.user_attrs.get("continues") == killed.number)  # ...continued by a retry
    assert continuing.user_attrs["run_dir"] == str(killed_run)
    assert continuing.params == killed.params
    assert versions(fashion.logs / "t") == [0, 1, 2]  # its run folder continued, no new one
    final = torch.load(killed_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["global_step"] == epochs * 8  # epochs of 8 steps: nothing trained twice, nothing skipped


def bad_space(fashion, space) -> subprocess.CompletedProcess:
    path = fashion.root / "bad.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    command = sweep_command(fashion, f"sqlite:///{fashion.root / 'bad.db'}", "--n_trials=1")
    command = [a if not a.startswith("--search_space=") else f"--search_space={path}" for a in command]
    return subprocess.run(command, capture_output=True, text=True)


@pytest.mark.parametrize(
    ("space", "phrase"),
    [
        (
            {"model.learning_rate": {"type": "float", "low": 0.1, "high": 1.0}},
            "'model.learning_rate': not a fit option",
        ),
        ({"model.lr": {"type": "gaussian", "low": 0.1, "high": 1.0}}, "'model.lr': needs 'type'"),
        ({"model.lr": {"type": "float", "low": 1.0, "high": 0.1}}, "'model.lr': low (1.0) is greater than high (0.1)"),
        ({"model.lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}, "'model.lr': log scale needs low > 0"),
        ({"model.optimizer": {"type": "categorical", "choices": []}}, "'model.optimizer': a categorical entry"),
        (
            {"model.lr": {"type": "float", "low": 0.1, "high": 1.0, "when": {"model.optimizer": "sgd"}}},
            "'model.lr': 'when' names 'model.optimizer', which is not an entry above this one",
        ),
        (
            {
                "model.optimizer": {"type": "categorical", "choices": ["sgd", "adamw"]},
                "model.momentum": {"type": "float", "low": 0.0, "high": 0.9, "when": {"model.optimizer": "sdg"}},
            },
            "'model.momentum': 'when' waits for model.optimizer = sdg, which is not one of its choices (sgd, adamw)",
        ),
    ],
)
def test_bad_search_space_is_one_error_naming_the_entry_before_any_trial(fashion, space, phrase):
    result = bad_space(fashion, space)
    assert result.returncode == 2
    assert phrase in result.stderr
    assert "Traceback" not in result.stderr
    assert not (fashion.root / "bad.db").exists()  # nothing ran, no study was even created
    assert "Seed set" not in result.stderr  # (LightningCLI's "Seed set to 42" came first)


def test_a_search_space_file_that_is_not_there_is_one_error_saying_what_to_pass(fashion):
    command = sweep_command(fashion, f"sqlite:///{fashion.root / 'bad.db'}", "--n_trials=1")
    command = [a if not a.startswith("--search_space=") else "--search_space=/nonexistent.yaml" for a in command]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == (
        "error: Cannot read the search space '/nonexistent.yaml' (No such file or directory). Pass --search_space "
        "with the path of a YAML file of the values to search (an example: configs/sweeps/mlp.yaml).\n"
    )  # (nothing before it: LightningCLI's "Seed set to 42" came first)


def test_the_shipped_search_space_samples_momentum_only_for_sgd(fashion, capsys):
    shipped = Path(__file__).parents[1] / "configs" / "sweeps" / "mlp.yaml"
    storage = f"sqlite:///{fashion.root / 's.db'}"
    cli_main(["sweep", *sweep_command(fashion, storage, f"--search_space={shipped}", "--n_trials=0")[4:]])
    assert "error" not in capsys.readouterr().err  # every entry and condition checked against fit's options

    from fashion_lightning.sweep import suggest

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for optimizer in ("sgd", "adamw"):
        study.enqueue_trial({"model.optimizer": optimizer})
    sgd, adamw = (suggest(study.ask(), yaml.safe_load(shipped.read_text())) for _ in range(2))
    assert "--model.optimizer=sgd" in sgd
    assert any(flag.startswith("--model.momentum=") for flag in sgd)
    assert "--model.optimizer=adamw" in adamw
    assert not any(flag.startswith("--model.momentum") for flag in adamw)  # the fit keeps its configured value
    assert len(adamw) == len(sgd) - 1


def test_when_waits_for_a_value_or_a_list_of_values_and_a_list_choice_is_one_value():
    from fashion_lightning.sweep import suggest

    space = {
        "model.hidden_dims": {"type": "categorical", "choices": [[64], [128, 128]]},
        "data.batch_size": {"type": "categorical", "choices": [64, 128]},
        "model.dropout": {"type": "float", "low": 0.1, "high": 0.5, "when": {"model.hidden_dims": [64]}},
        "model.lr": {"type": "float", "low": 0.01, "high": 0.1, "when": {"data.batch_size": [64, 128]}},
    }
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for hidden_dims in ("[64]", "[128, 128]"):
        study.enqueue_trial({"model.hidden_dims": hidden_dims})
    small, large = ([flag.split("=")[0] for flag in suggest(study.ask(), space)] for _ in range(2))
    assert small == ["--model.hidden_dims", "--data.batch_size", "--model.dropout", "--model.lr"]
    assert large == ["--model.hidden_dims", "--data.batch_size", "--model.lr"]


def test_a_search_space_that_is_not_yaml_is_one_error_with_its_line(fashion, capsys):
    space = fashion.root / "broken.yaml"
    space.write_text("model.lr: [0.1, 0.2\n")
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["sweep", *sweep_command(fashion, "sqlite://", f"--search_space={space}")[4:]])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"The search space '{space}' is not valid YAML" in err
    assert "(line 2, column 1)" in err
    assert len(err.strip().splitlines()) == 1  # one paragraph, not the YAML library's multi-line report


@pytest.mark.parametrize("sanity_steps", [2, 0])
def test_a_metric_the_validation_does_not_log_stops_the_first_trial_at_its_first_validation(
    fashion, capsys, sanity_steps
):
    # It was a RuntimeError traceback after the whole first trial.
    args = sweep_command(fashion, f"sqlite:///{fashion.root / 's.db'}", "--metric=val/accu", "--n_trials=1")[4:]
    # Without a sanity check, the checkpoint's monitor (the metric) is only warned about when training starts.
    warned = pytest.warns(UserWarning, match="val/accu") if sanity_steps == 0 else contextlib.nullcontext()
    with warned, pytest.raises(SystemExit) as exit_info:
        cli_main(["sweep", *args, "--trainer.max_epochs=2", f"--trainer.num_sanity_val_steps={sanity_steps}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--metric val/accu: the validation logs no such value. Did you mean val/acc?" in err
    assert "Traceback" not in err
    if sanity_steps:  # the sanity check's validation comes before any training: the trial never trained
        assert versions(fashion.logs / "t") == []


def test_an_error_found_inside_a_trial_is_one_paragraph_on_the_console(fashion):
    # Optuna logs the exception that fails a trial with its traceback, through its own handler (capsys misses it).
    command = sweep_command(fashion, f"sqlite:///{fashion.root / 's.db'}", "--metric=val/accu", "--n_trials=1")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "error: --metric val/accu: the validation logs no such value. Did you mean val/acc?" in result.stderr
    assert "Traceback" not in result.stderr
    assert "failed with" not in result.stderr  # (Optuna's two lines about the failed trial)


def test_a_trial_whose_loss_diverges_is_pruned_and_the_sweep_goes_on(fashion, capsys):
    # A NaN loss stops a fit with an error; in a sweep it is what those values give (it stopped the whole sweep).
    space = fashion.root / "diverging.yaml"
    space.write_text(yaml.safe_dump({"model.lr": {"type": "categorical", "choices": [1.0e9]}}))
    args = sweep_command(fashion, f"sqlite:///{fashion.root / 's.db'}", "--n_trials=2")[4:]
    assert cli_main(["sweep", *args, f"--search_space={space}", "--trainer.max_epochs=2"]) is None  # exit status 0
    out = capsys.readouterr().out
    assert re.findall(r"Trial (\d) pruned: The training loss became NaN or infinite at step \d+", out) == ["0", "1"]
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{fashion.root / 's.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 2
    assert out.count("| pruned (diverged) |") == 2
    assert "No completed trial yet." in out


def test_a_trial_stopped_before_training_keeps_the_earlier_trials_runs(fashion):
    CtrlCInSetup.fits = 0
    args = sweep_command(fashion, f"sqlite:///{fashion.root / 's.db'}", "--n_trials=3")[4:]
    second = ["--trainer.callbacks+=tests.helpers.CtrlCInSetup", "--trainer.callbacks.at_fit=2"]
    with pytest.raises(SystemExit) as stopped:
        cli_main(["sweep", *args, "--trainer.max_epochs=1", *second])
    assert stopped.value.code != 0
    assert versions(fashion.logs / "t") == [0]  # (was []: trial 0's run went with trial 1's empty folder)
    assert (fashion.logs / "t" / "version_0" / "checkpoints" / "best.ckpt").is_file()


@pytest.mark.slow
def test_a_sweep_under_ddp_spawn_is_refused_in_one_paragraph(fashion):
    # Its trials ran in worker processes, whose values never reached the study: the sweep hung.
    spawn = ["--trainer.strategy=ddp_spawn", "--trainer.devices=2", "--n_trials=1", "--trainer.max_epochs=1"]
    command = sweep_command(fashion, f"sqlite:///{fashion.root / 's.db'}", *spawn)
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: A sweep cannot run its trials under --trainer.strategy ddp_spawn" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not list(fashion.logs.glob("*/version_*"))  # (only a config and an empty event file were written)


def test_trials_sharing_one_checkpoint_folder_are_refused_before_the_first(fashion, capsys):
    storage = fashion.root / "s.db"
    args = sweep_command(fashion, f"sqlite:///{storage}", f"--checkpoint.dirpath={fashion.root / 'shared'}")[4:]
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["sweep", *args])
    assert exit_info.value.code == 2
    assert f"every trial's checkpoints would go to '{fashion.root / 'shared'}'" in capsys.readouterr().err
    assert not storage.exists()  # no study, no trial
    assert not (fashion.root / "shared").exists()


def test_each_trials_best_checkpoint_is_its_best_by_the_sweeps_metric(fashion):
    storage = f"sqlite:///{fashion.root / 's.db'}"
    args = sweep_command(fashion, storage, "--metric=val/loss", "--direction=minimize", "--n_trials=1")[4:]
    cli_main(["sweep", *args, "--trainer.max_epochs=4"])
    _, (trial,) = finished_trials(storage)
    losses = trial.user_attrs["values"]  # val/loss after each epoch
    assert len(set(losses)) == 4
    best = torch.load(Path(trial.user_attrs["run_dir"]) / "checkpoints" / "best.ckpt", weights_only=True)
    assert best["epoch"] == losses.index(min(losses))  # (it was the highest val/acc's, whatever the metric)
    assert trial.value == pytest.approx(min(losses))


def test_a_sweeps_trials_never_test_even_when_the_fit_options_ask_for_it(fashion, capsys):
    storage = f"sqlite:///{fashion.root / 's.db'}"
    args = sweep_command(fashion, storage, "--n_trials=1")[4:]
    cli_main(["sweep", *args, "--trainer.max_epochs=1", "--test_after_fit=true"])  # (e.g. in the recipe's config)
    _, (trial,) = finished_trials(storage)
    assert "test/acc" not in capsys.readouterr().out
    assert yaml.safe_load((Path(trial.user_attrs["run_dir"]) / "config.yaml").read_text())["test_after_fit"] is False


def test_the_pruner_gets_the_last_validation_of_each_epoch_once(fashion):
    # Validations inside an epoch (here 2 an epoch): optuna-integration's callback reported each epoch again at each of
    # them, and Optuna ignored those with a warning.
    storage = f"sqlite:///{fashion.root / 's.db'}"
    args = sweep_command(fashion, storage, "--n_trials=1", "--pruner=median", "--metric=val/loss")[4:]
    with warnings.catch_warnings(record=True) as caught:
        cli_main(["sweep", *args, "--trainer.max_epochs=2", "--trainer.val_check_interval=0.5"])
    assert not [str(w.message) for w in caught if "already reported" in str(w.message)]
    _, (trial,) = finished_trials(storage)
    losses = trial.user_attrs["values"]  # val/loss after each of the 4 validations
    assert len(losses) == 4
    assert trial.intermediate_values == {0: losses[1], 1: losses[3]}


@pytest.mark.parametrize(
    ("storage", "phrase"),
    [
        ("postgresql+psycopg2://sweeper:s3cret@127.0.0.1:{port}/sweeps", "Connection refused"),  # no server there
        ("nosuchdb://sweeps", "Can't load plugin"),
        ("sqlite:///{root}/no/such/folder/sweeps.db", "unable to open database file"),
    ],
    ids=["no-server", "unknown-dialect", "missing-folder"],
)
def test_a_storage_it_cannot_open_is_one_error_without_the_password(fashion, capsys, storage, phrase):
    storage = storage.format(port=free_port(), root=fashion.root)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["sweep", *sweep_command(fashion, storage)[4:]])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Cannot open the sweep storage" in err
    assert phrase in err
    assert "s3cret" not in err
    assert "Traceback" not in err
    assert not fashion.logs.exists()  # no trial started


# --- two workers, one PostgreSQL ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL cluster (Debian's postgresql) on a loopback port, run as the postgres user."""
    versions_dir = Path("/usr/lib/postgresql")
    if not versions_dir.is_dir() or not shutil.which("runuser"):
        pytest.skip("Debian's postgresql is not installed (make test installs it)")
    bin_dir = versions_dir / sorted(os.listdir(versions_dir))[-1] / "bin"
    home = Path(tempfile.mkdtemp(prefix="fashion-pg-"))
    shutil.chown(home, "postgres", "postgres")
    data, port = home / "data", free_port()

    def as_postgres(*command: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True, text=True)

    as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    options = f"-h 127.0.0.1 -p {port} -k {home} -F"
    as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(home / "log"), "-w", "start")
    yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
    shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_share_a_postgresql_study_and_run_each_trial_once(fashion, postgres):
    command = sweep_command(fashion, postgres, "--n_trials=4", "--trainer.max_epochs=3")
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for worker in workers:
        _, stderr = worker.communicate(timeout=600)
        assert worker.returncode == 0, stderr[-3000:]
    study, done = finished_trials(postgres)
    assert len(done) == 4  # N trials between them, not 2N
    assert {t.user_attrs["pid"] for t in done} == {w.pid for w in workers}  # both did work
    run_dirs = [t.user_attrs["run_dir"] for t in done]
    assert len(set(run_dirs)) == 4  # none run twice, each in its own folder
    assert versions(fashion.logs / "t") == [0, 1, 2, 3]
