"""fit / validate / test / predict through ``cli_main``, as a user runs them, on the tiny fixture."""

import os
import re
import shutil
import subprocess
import sys
import warnings
from importlib import metadata
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Checkpoint
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fashion_lightning.callbacks import StepProgressBar
from fashion_lightning.cli import build_cli, cli_main
from fashion_lightning.errors import ConfigurationError
from fashion_lightning.lit_module import FashionClassifier
from fashion_lightning.runs import versions
from tests.helpers import TEST_COUNT, assert_same_weights, cli_args, without_logger, without_logger_dir


def run_dir(fashion, version: int = 0):
    return fashion.logs / "fashion" / f"version_{version}"


@pytest.fixture
def fitted(fashion):
    cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=2")])
    return fashion


def test_fit_writes_logs_config_and_checkpoints(fitted):
    run = run_dir(fitted)
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "checkpoints" / "best.ckpt").is_file()
    assert (run / "hparams.yaml").is_file()
    assert list(run.glob("events.out.tfevents.*"))
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["lr"] == 1e-3
    assert config["data"]["batch_size"] == 32
    assert config["trainer"]["max_epochs"] == 2


def test_defaults_are_the_seeds_hyperparameters(fashion):
    cli = build_cli([f"--data.data_dir={fashion.data_dir}"], run=False)
    assert cli.datamodule.hparams.batch_size == 64
    assert cli.model.hparams.optimizer == "sgd"
    assert cli.model.hparams.lr == 1e-3
    assert cli.model.hparams.momentum == 0
    assert cli.model.hparams.weight_decay == 0
    assert cli.model.hparams.hidden_dims == [512, 512]
    assert cli.trainer.max_epochs == 5
    assert cli.trainer.checkpoint_callback.monitor == "val/acc"


def test_rerun_in_the_same_place_does_not_fail_on_config(fitted):
    cli_main(["fit", *cli_args(fitted, "--trainer.max_epochs=1")])
    assert (run_dir(fitted, 1) / "config.yaml").is_file()


def test_a_resumed_runs_config_replays_the_whole_run_in_a_new_folder(fashion):
    cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=1")])
    cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=2", "--ckpt_path=last")])
    config = run_dir(fashion) / "config.yaml"
    saved = yaml.safe_load(config.read_text())
    # (was the resume's: a replay resumed this run, or found nothing left to train)
    assert saved["ckpt_path"] is None
    assert saved["trainer"]["logger"]["init_args"]["purge_step"] is None
    assert saved["trainer"]["max_epochs"] == 2
    cli_main(["fit", f"--config={config}"])
    assert versions(fashion.logs / "fashion") == [0, 1]
    assert_same_weights(
        run_dir(fashion, 1) / "checkpoints" / "last.ckpt", run_dir(fashion) / "checkpoints" / "last.ckpt"
    )


@pytest.mark.parametrize(
    ("flags", "callback", "option", "written"),
    [
        # Values that jsonargparse could not write, with plain LightningCLI too: a torch.device ("Unable to
        # serialize instance cpu" in config.yaml, which then did not load), a str enum (a traceback at once) and a
        # str given to a Union[Callable, str] ("Unable to serialize instance l1_unstructured").
        (["--trainer.callbacks.swa_lrs=0.01"], "StochasticWeightAveraging", "device", "cpu"),
        (["--trainer.callbacks.duration=00:00:01:00"], "Timer", "interval", "step"),
        (["--trainer.callbacks.pruning_fn=l1_unstructured"], "ModelPruning", "pruning_fn", "l1_unstructured"),
    ],
)
def test_lightning_callbacks_with_values_jsonargparse_could_not_write_run_and_their_saved_config_replays(
    fashion, flags, callback, option, written
):
    cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=1"), f"--trainer.callbacks+={callback}", *flags])
    config = run_dir(fashion) / "config.yaml"
    saved = yaml.safe_load(config.read_text())["trainer"]["callbacks"]
    assert [c["init_args"][option] for c in saved if c["class_path"].endswith(f".{callback}")] == [written]
    cli_main(["fit", f"--config={config}"])
    assert (run_dir(fashion, 1) / "checkpoints" / "last.ckpt").is_file()


def test_a_checkpoint_callback_added_on_the_command_line_leaves_best_ckpt_the_trainers_checkpoint_callback(
    fashion, capsys
):
    # Lightning's trainer.checkpoint_callback is the first Checkpoint callback, and those given with
    # --trainer.callbacks came first: the run summary then failed with an AttributeError (no best_model_score).
    on_exception = ["--trainer.callbacks+=OnExceptionCheckpoint", f"--trainer.callbacks.dirpath={fashion.root / 'x'}"]
    cli = cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=1"), *on_exception])
    best = run_dir(fashion) / "checkpoints" / "best.ckpt"
    assert cli.trainer.checkpoint_callback.best_model_path == str(best)
    assert f"best checkpoint: {best}" in capsys.readouterr().out
    is_checkpoint = [isinstance(callback, Checkpoint) for callback in cli.trainer.callbacks]
    assert is_checkpoint == sorted(is_checkpoint)  # still after every other callback
    assert sum(is_checkpoint) == 3


def test_a_limit_of_one_batch_is_one_batch_not_all_of_them(fashion):
    # Lightning reads an int as a number of batches and a float as a fraction; typing's cache handed the Trainer's
    # Optional[Union[int, float]] the float-first object fabric.py built, so jsonargparse read "1" as 1.0 (100%).
    cli = cli_main(["fit", *cli_args(fashion, "--trainer.limit_train_batches=1", "--trainer.max_epochs=1")])
    assert cli.trainer.global_step == 1  # (8 steps of 32 images without the limit)
    for stage in ("val", "test", "predict"):
        cli = build_cli([*cli_args(fashion), f"--trainer.limit_{stage}_batches=1"], run=False)
        assert repr(getattr(cli.trainer, f"limit_{stage}_batches")) == "1"


def test_test_from_best_checkpoint_covers_the_whole_test_set(fitted, capsys):
    best = run_dir(fitted) / "checkpoints" / "best.ckpt"
    cli = cli_main(["test", *cli_args(fitted, f"--ckpt_path={best}")])
    assert cli.model.evaluated_images["test"] == TEST_COUNT
    assert f"on {TEST_COUNT:,} images" in capsys.readouterr().out


def test_validate_and_predict_from_checkpoint(fitted):
    best = run_dir(fitted) / "checkpoints" / "best.ckpt"
    cli = cli_main(["validate", *cli_args(fitted, f"--ckpt_path={best}")])
    assert 0 <= float(cli.trainer.callback_metrics["val/acc"]) <= 1
    cli = build_cli(cli_args(fitted), run=False)
    batches = cli.trainer.predict(cli.model, datamodule=cli.datamodule, ckpt_path=str(best))
    predicted = torch.cat([batch["predicted"] for batch in batches])
    assert predicted.shape == (TEST_COUNT,)
    assert predicted.max() < 10


def test_evaluating_with_ckpt_path_best_or_last_takes_the_newest_runs_file(fitted, capsys):
    cli_main(["fit", *cli_args(fitted, "--trainer.max_epochs=1")])  # version_1, the newest run
    best = run_dir(fitted, 1) / "checkpoints" / "best.ckpt"
    cli = cli_main(["test", *cli_args(fitted, "--ckpt_path=best")])
    assert Path(cli.trainer.ckpt_path) == best
    assert (run_dir(fitted, 1) / "config.test.yaml").is_file()  # the test logs into the run it came from
    assert f"--ckpt_path best: using {best}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *cli_args(fitted, "--ckpt_path=best")])
    assert exit_info.value.code == 2
    assert "To continue the newest run, use --ckpt_path last" in capsys.readouterr().err
    elsewhere = f"--trainer.logger.init_args.save_dir={fitted.root / 'no_runs'}"
    for keyword in ("best", "last"):  # nothing to evaluate: an error, not an untrained model's numbers
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["validate", *cli_args(fitted, elsewhere, f"--ckpt_path={keyword}")])
        assert exit_info.value.code == 2
        assert f"no run under {fitted.root / 'no_runs' / 'fashion'}/ has checkpoints/{keyword}.ckpt" in (
            capsys.readouterr().err
        )
    with pytest.raises(SystemExit):
        cli_main(["test", *cli_args(fitted, "--checkpoint.filename={epoch}-best", "--ckpt_path=best")])
    assert "--checkpoint.filename is a template ({epoch}-best.ckpt)" in capsys.readouterr().err


def test_evaluating_without_a_checkpoint_warns_that_the_model_is_untrained(fashion):
    with pytest.warns(UserWarning, match=r"No --ckpt_path: test runs on an untrained model .* --ckpt_path best"):
        cli = cli_main(["test", *cli_args(fashion)])
    assert cli.model.evaluated_images["test"] == TEST_COUNT  # (it still runs: evaluating a fresh model is allowed)


def test_test_after_fit_tests_the_best_checkpoint_in_the_same_process_and_logs_into_the_run(fashion, capsys):
    cli = cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=2", "--test_after_fit=true")])
    best = run_dir(fashion) / "checkpoints" / "best.ckpt"
    assert Path(cli.trainer.ckpt_path) == best  # the weights tested: best.ckpt's, not the fit's last
    assert cli.model.evaluated_images["test"] == TEST_COUNT
    out = capsys.readouterr().out
    assert out.index("Run summary") < out.index(f"test/acc: {float(cli.trainer.callback_metrics['test/acc']):.4f}")
    events = EventAccumulator(str(run_dir(fashion)))
    events.Reload()
    assert events.Scalars("test/acc")[0].step == cli.trainer.global_step  # in the fit's own run, as `test` logs
    assert yaml.safe_load((run_dir(fashion) / "config.yaml").read_text())["test_after_fit"] is True
    # the same numbers as the separate command; which ignores the option, so that one config serves both
    separate = cli_main(["test", *cli_args(fashion, f"--ckpt_path={best}", "--test_after_fit=true")])
    for key in ("test/acc", "test/loss"):
        assert separate.trainer.callback_metrics[key] == cli.trainer.callback_metrics[key]
    plain = cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=1")])
    assert "test" not in plain.model.evaluated_images  # off by default: fit only fits


@pytest.mark.parametrize(
    ("flag", "why"),
    [("--trainer.limit_val_batches=0", "no validation chose one"), ("--trainer.enable_checkpointing=false", "no ch")],
)
def test_test_after_fit_without_a_best_checkpoint_tests_the_final_weights_and_says_so(fashion, caplog, flag, why):
    with caplog.at_level("INFO"):
        cli = cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=1", "--test_after_fit=true", flag)])
    assert cli.trainer.ckpt_path is None  # no file loaded: the weights the fit ended with
    assert cli.model.evaluated_images["test"] == TEST_COUNT
    assert f"--test_after_fit: no best checkpoint ({why}" in caplog.text
    assert "testing the weights the fit ended with." in caplog.text


def test_a_fit_stopped_by_a_signal_tests_nothing(fashion, capsys):
    signaller = ["--trainer.callbacks+=tests.helpers.SignalInEpochOne", "--trainer.callbacks.signal_name=SIGTERM"]
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=3", "--test_after_fit=true", *signaller)])
    assert exit_info.value.code == 128 + 15
    assert "test/acc" not in capsys.readouterr().out
    events = EventAccumulator(str(run_dir(fashion)))
    events.Reload()
    assert "test/acc" not in events.Tags()["scalars"]


def test_checkpoint_rebuilds_its_model_alone(fitted):
    best = run_dir(fitted) / "checkpoints" / "best.ckpt"
    raw = torch.load(best, weights_only=True)  # no pickled objects anywhere in it
    assert raw["hyper_parameters"]["num_classes"] == 10  # linked from the data module, still saved
    model = FashionClassifier.load_from_checkpoint(best)
    assert model.hparams.hidden_dims == [512, 512]
    for key, value in raw["state_dict"].items():
        if key.startswith("net."):
            assert torch.equal(model.state_dict()[key], value)


def test_checkpoint_hyperparameters_rebuild_a_non_default_model(fashion):
    cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=1", "--model.hidden_dims=[64]")])
    best = run_dir(fashion) / "checkpoints" / "best.ckpt"
    cli = cli_main(["test", *cli_args(fashion, f"--ckpt_path={best}")])  # no --model flags given
    assert cli.model.hparams.hidden_dims == [64]


def test_top_level_help_names_every_command(capsys):
    with pytest.raises(SystemExit):
        cli_main(["--help"])
    help_text = capsys.readouterr().out
    for command in ("fit", "validate", "test", "predict", "classify", "export"):
        assert command in help_text


def test_help_and_print_config(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert "--model.lr" in help_text
    assert "Training batch size per device" in help_text
    with pytest.raises(SystemExit):
        cli_main(["fit", "--print_config"])
    assert "batch_size: 64" in capsys.readouterr().out


@pytest.mark.parametrize("subcommand", ["fit", "test"])
def test_wrong_flag_is_a_clear_error(subcommand, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main([subcommand, "--model.lr=fast"])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "error: --model.lr: got fast, expected a number." in err
    assert len(err.splitlines()) <= 5, err  # a one-line usage above the error, not every option (~100 lines)
    assert f"fashion-lightning {subcommand} --help" in err


@pytest.mark.parametrize(
    ("flags", "error"),
    [  # jsonargparse's own messages were up to 15 lines of every type it tried, as Python writes them
        (["--trainer.max_epochs=abc"], "--trainer.max_epochs: got abc, expected an integer or null."),
        (
            ["--trainer.precision=17"],
            "--trainer.precision: got 17, expected one of 64, 32, 16, transformer-engine, transformer-engine-float16, "
            "16-true, 16-mixed, bf16-true, bf16-mixed, 32-true, 64-true, bf16 or null.",
        ),
        (["--model.hidden_dims=[a,b]"], "--model.hidden_dims: got ['a', 'b'], expected a list of integers."),
        (["--model.cuda_graph=maybe"], "--model.cuda_graph: got maybe, expected one of auto, on, off."),
        (
            ["--trainer.logger=foo"],
            "--trainer.logger: got foo, expected a Logger class (by name or import path), a list of them, true/false "
            "or null.",
        ),
        (
            ["--trainer.plugins=foo"],
            "--trainer.plugins: got foo, expected a Precision, ClusterEnvironment, CheckpointIO or LayerSync class (by "
            "name or import path), a list of them or null.",
        ),
        (["--trainer.gradient_clip_val=x"], "--trainer.gradient_clip_val: got x, expected a number or null."),
        # Values from the data are linked, never given: jsonargparse said "... is not callable" for some.
        (
            ["--model.image_shape=[1,28,28]"],
            "--model.image_shape is set from data.image_shape (a link): it cannot be given. Leave it out.",
        ),
        (
            ["--model.num_classes=5"],
            "--model.num_classes is set from data.num_classes (a link): it cannot be given. Leave it out.",
        ),
        # A class's own option
        (
            ["--trainer.logger=CSVLogger", "--trainer.logger.flush_logs_every_n_steps=x"],
            "--trainer.logger.flush_logs_every_n_steps: got x, expected an integer.",
        ),
        (
            ["--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.patiense=3"],
            "--trainer.callbacks.patiense: EarlyStopping has no option patiense; --trainer.callbacks.help "
            "EarlyStopping lists its options.",
        ),
        # A class by an import path that does not import
        (
            ["--trainer.callbacks+=my_callbacks.GradNorm"],
            "--trainer.callbacks: cannot import my_callbacks.GradNorm (No module named 'my_callbacks'); expected a "
            "Callback class (by name or import path), a list of them or null. A class given by import path must be "
            "importable here: installed, or its folder on PYTHONPATH.",
        ),
        (
            ["--trainer.logger=lightning.pytorch.loggers.TensorBoardLoger"],
            "--trainer.logger: cannot import lightning.pytorch.loggers.TensorBoardLoger (module "
            "'lightning.pytorch.loggers' has no attribute 'TensorBoardLoger'); expected a Logger class (by name or "
            "import path), a list of them, true/false or null. A class given by import path must be importable here: "
            "installed, or its folder on PYTHONPATH.",
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_one_line_naming_what_the_option_takes(capsys, flags, error):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *flags])
    assert exit_info.value.code == 2
    usage, tip, *rest = capsys.readouterr().err.splitlines()
    assert usage.startswith("usage: fashion-lightning")
    assert "fit --help" in tip
    assert rest == [f"error: {error}"]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["fit", "--trainer.maxepochs=3", "--modle.lr", "0.1"],
            "unrecognized arguments: --trainer.maxepochs=3 --modle.lr 0.1 (did you mean --trainer.max_epochs, "
            "--model.lr?)",
        ),
        (["test", "--checkpoint.monitr=val/loss"], "(did you mean --checkpoint.monitor?)"),
        (["classify", "model.ckpt", "shirt.png", "--topk=3"], "(did you mean --top_k?)"),
        (["fit", "--colour=blue"], "unrecognized arguments: --colour=blue"),  # nothing close: no guess
    ],
)
def test_a_misspelled_flag_is_answered_with_the_closest_options(capsys, args, error):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(args)
    assert exit_info.value.code == 2
    last_line = capsys.readouterr().err.splitlines()[-1]
    assert last_line.endswith(error)
    assert last_line.startswith("error: unrecognized arguments:")


@pytest.mark.parametrize(("command", "guess"), [("clasify", " (did you mean classify?)"), ("banana", "")])
def test_an_unknown_command_names_every_command_not_only_lightnings_four(capsys, command, guess):
    with pytest.raises(SystemExit) as exit_info:
        cli_main([command, "model.ckpt"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"error: Unknown command '{command}'{guess}. The commands are fit, validate, test, predict, classify, export, "
        "serve, sweep; `fashion-lightning --help` says what each does.\n"
    )


def test_no_command_names_every_command_and_version_says_what_it_runs_on(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main([])  # (Lightning's parser named fit, validate, test and predict only)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "error: No command given. The commands are fit, validate, test, predict, classify, export, serve, sweep; "
        "`fashion-lightning --help` says what each does.\n"
    )
    assert cli_main(["--version"]) is None
    said = capsys.readouterr().out
    assert re.fullmatch(r"fashion-lightning \S+ \(lightning 2\.\d+\.\d+\S*, torch \S+\)\n", said), said
    assert said.split()[1] == metadata.version("fashion-lightning")  # pyproject.toml's, the one place it is kept


def test_a_config_file_that_is_not_there_is_one_line_naming_the_option(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", "--config", str(tmp_path / "nowhere.yaml")])
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr().err.splitlines()[-1] == f"error: --config: File does not exist: '{tmp_path}/nowhere.yaml'"
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["classify", "model.ckpt", "shirt.png", "--top_k=three"], "--top_k: got three, expected an integer."),
        (
            ["export", "model.ckpt", "--formats=onnxx"],
            "--formats: got onnxx, expected one of pth, pt2, onnx, torchscript, a list of them or null.",
        ),
        (["sweep", "--search_space=space.yaml", "--n_trials=abc"], "--n_trials: got abc, expected an integer."),
    ],
)
def test_the_other_commands_say_a_value_of_the_wrong_type_in_one_line(capsys, args, error):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(args)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"error: {error}"


@pytest.mark.parametrize(
    ("args", "missing"), [(["classify", "model.ckpt"], "images"), (["export"], "ckpt_path"), (["serve"], "source")]
)
def test_a_missing_argument_of_the_other_commands_shows_that_commands_usage(capsys, args, missing):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith(f"usage: fashion-lightning {args[0]} ")  # (was the usage of all three: {classify,...})
    assert f"run: fashion-lightning {args[0]} --help" in err
    assert err.splitlines()[-1] == f"error: the following arguments are required: {missing}"


def test_bad_option_value_exits_without_traceback(fashion, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *cli_args(fashion, val_size=10_000)])
    assert exit_info.value.code == 2
    assert "--data.val_size must be between" in capsys.readouterr().err


def test_no_data_no_network_is_one_clear_error(fashion):
    command = [sys.executable, "-m", "fashion_lightning", "fit", *cli_args(fashion)]
    command = [arg.replace(str(fashion.source_dir), str(fashion.root / "nowhere")) for arg in command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "apt-get install dataset-fashion-mnist" in result.stderr
    assert "--data.source_dir" in result.stderr


@pytest.mark.slow
def test_default_commands_print_no_warnings(fashion):
    # As a user runs them (subprocesses, Python's default warning filters). log_every_n_steps=1 only because an
    # epoch of the tiny fixture holds 8 optimizer steps, fewer than the default interval, which is rightly warned
    # about (see test_the_logging_interval_warning_counts_optimizer_steps_not_batches).
    base = [sys.executable, "-m", "fashion_lightning"]
    shown = ["--trainer.enable_progress_bar=true", "--trainer.enable_model_summary=true"]  # (as by default)
    args = cli_args(fashion, "--trainer.log_every_n_steps=1", *shown)
    best = run_dir(fashion) / "checkpoints" / "best.ckpt"
    commands = [
        ["fit", *args, "--trainer.max_epochs=1"],
        ["fit", *args, "--trainer.max_epochs=2", "--ckpt_path=last"],  # a resume into the same run folder
        ["test", *args, f"--ckpt_path={best}"],
        ["predict", *args, f"--ckpt_path={best}"],
        ["test", *args, f"--ckpt_path={fashion.root / 'elsewhere' / 'model.ckpt'}"],  # a checkpoint from elsewhere
        ["fit", *args, "--trainer.max_epochs=1", "--trainer.logger.init_args.log_graph=true"],  # (torch.jit.trace)
        ["fit", *args, "--trainer.max_epochs=1", "--trainer.precision=bf16-mixed"],  # (the model summary's sizes)
        ["fit", *args, "--trainer.max_epochs=1", "--trainer.devices=2", "--trainer.strategy=ddp_spawn"],  # (spawned)
        ["fit", *args, "--trainer.max_epochs=1", "--test_after_fit=true"],  # (make train)
    ]
    for command in commands:
        if command[0] == "test" and "elsewhere" in command[-1]:
            (fashion.root / "elsewhere").mkdir()
            (fashion.root / "elsewhere" / "model.ckpt").write_bytes(best.read_bytes())
        result = subprocess.run([*base, *command], capture_output=True, text=True, check=True)
        output = result.stdout + result.stderr
        for noise in ("Warning", "warn(", "deprecated", "Tip:"):
            assert noise not in output, f"{command[0]} printed {noise!r}:\n{output[-3000:]}"
        # Lightning prints its warnings as "file.py:LINE: message", without the word
        assert not re.search(r"\.py:\d+: ", output), f"{command[0]} warned:\n{output[-3000:]}"


def test_the_logging_interval_warning_counts_optimizer_steps_not_batches(fashion):
    # The tiny split: 8 optimizer steps an epoch, in 3 training batches of 3, 3 and 2. Lightning compares its batches
    # with log_every_n_steps, but step values are written every log_every_n_steps optimizer steps (StepLog).
    args = cli_args(fashion, "--data.steps_per_batch=3", "--trainer.max_epochs=1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli_main(["fit", *args, "--trainer.log_every_n_steps=5"])  # 3 batches < 5 <= 8 steps: nothing to warn about
        assert [str(w.message) for w in caught if "log_every_n_steps" in str(w.message)] == []
        cli_main(["fit", *args, "--trainer.log_every_n_steps=9"])  # (3 batches of 3 would hold 9)
    assert [str(w.message) for w in caught if "log_every_n_steps" in str(w.message)] == [
        "An epoch holds 8 optimizer steps, fewer than --trainer.log_every_n_steps 9: train/loss_step and "
        "train/acc_step are written every 9 optimizer steps. Set a lower --trainer.log_every_n_steps to see them "
        "within an epoch."
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # gradients of 3 batches make one update: 3 updates an epoch (3, 3, 2)
        cli_main(["fit", *args, "--model.accumulate_grad_batches=3", "--trainer.log_every_n_steps=4"])
    assert [str(w.message).split(":")[0] for w in caught if "log_every_n_steps" in str(w.message)] == [
        "An epoch holds 3 optimizer steps, fewer than --trainer.log_every_n_steps 4"
    ]


def test_a_machine_with_many_cpus_is_not_told_to_add_loader_workers(fashion, monkeypatch):
    # Lightning suggests workers wherever more than 2 CPUs are free (as on a GPU machine: 16); this project's batches
    # are one index operation on tensors in memory, so workers would only add copies between processes.
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=1")])
        cli_main(["test", *cli_args(fashion, f"--ckpt_path={run_dir(fashion) / 'checkpoints' / 'last.ckpt'}")])
    assert [str(w.message) for w in caught if "workers" in str(w.message)] == []


@pytest.fixture
def matmul_precision():
    """PyTorch's float32 matmul precision, as found, restored after the test whatever it did."""
    before = torch.get_float32_matmul_precision()
    yield before
    torch.set_float32_matmul_precision(before)


def test_float32_matmul_precision_holds_for_the_run_and_the_process_gets_its_own_back(fashion, matmul_precision):
    class Record(L.Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            seen.append(torch.get_float32_matmul_precision())

    seen = []
    cli = build_cli([*cli_args(fashion, "--trainer.max_epochs=1"), "--float32_matmul_precision=medium"], run=False)
    cli.trainer.callbacks.append(Record())
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert seen == ["medium"]
    assert torch.get_float32_matmul_precision() == matmul_precision  # (a notebook's next run starts from its own)
    cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=1"), "--float32_matmul_precision=high"])
    assert yaml.safe_load((run_dir(fashion, 1) / "config.yaml").read_text())["float32_matmul_precision"] == "high"
    assert torch.get_float32_matmul_precision() == matmul_precision


@pytest.mark.slow
def test_float32_matmul_precision_reaches_ddp_spawn_workers_and_ends_with_the_run(fashion, matmul_precision, tmp_path):
    # The workers ddp_spawn starts begin with PyTorch's default; the launching process runs no callback hook.
    seen = tmp_path / "seen.txt"
    spawn = ["--trainer.strategy=ddp_spawn", "--trainer.devices=2", "--trainer.max_epochs=1"]
    record = ["--trainer.callbacks+=tests.helpers.RecordMatmulPrecision", f"--trainer.callbacks.path={seen}"]
    cli_main(["fit", *cli_args(fashion, *spawn, *record), "--float32_matmul_precision=medium"])
    assert seen.read_text().split() == ["medium", "medium"]  # each worker's
    assert torch.get_float32_matmul_precision() == matmul_precision


@pytest.mark.slow
def test_test_after_fit_under_ddp_spawn_tests_the_best_checkpoint_the_workers_chose(fashion, capfd):
    # The launching process trains nothing: it learns the best checkpoint and the fit's end from worker 0.
    spawn = ["--trainer.strategy=ddp_spawn", "--trainer.devices=2", "--trainer.max_epochs=2"]
    cli_main(["fit", *cli_args(fashion, *spawn, "--test_after_fit=true")])
    best = run_dir(fashion) / "checkpoints" / "best.ckpt"
    out, err = capfd.readouterr()
    assert f"Loaded model weights from the checkpoint at {best}" in out + err  # (said by a worker)
    said = r"test/acc: [0-9.]+ on [0-9,]+ images"
    tested_after_fit = re.findall(said, out)
    # each test image once (its workers had counted them into one shared count, twice: metrics.py)
    assert tested_after_fit[0].endswith(f"on {TEST_COUNT} images")
    events = EventAccumulator(str(run_dir(fashion)))
    events.Reload()
    assert [event.value for event in events.Scalars("val/images")] == [64, 64]  # so was each validation image
    cli_main(["test", *cli_args(fashion, f"--ckpt_path={best}")])
    assert re.findall(said, capfd.readouterr().out) == tested_after_fit


def test_cli_main_from_a_notebook_does_not_warn_about_the_kernels_argv(fashion, monkeypatch, capsys):
    # A Jupyter kernel's own arguments are in sys.argv; cli_main(args) replaces them, as documented.
    monkeypatch.setattr(sys, "argv", ["ipykernel_launcher.py", "-f", "/tmp/kernel-1.json"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["fit", *cli_args(fashion), "--print_config"])
    assert exit_info.value.code == 0
    assert "max_epochs: 5" in capsys.readouterr().out
    assert [str(w.message) for w in caught if "sys.argv" in str(w.message)] == []


def test_the_default_bar_redraws_every_320_optimizer_steps_and_shows_the_last_step_values(fashion):
    # The tiny split has 8 steps an epoch: batches of 1, of 4, and of all 8 (64 asked).
    for steps_per_batch, refresh_rate in ((1, 320), (4, 80), (64, 40)):
        args = cli_args(fashion, "--trainer.enable_progress_bar=true", f"--data.steps_per_batch={steps_per_batch}")
        args.append("--trainer.log_every_n_steps=2")  # the tiny split's 8 steps hold no multiple of the default 50
        cli = build_cli([*args, "--trainer.max_epochs=1"], run=False)
        bar = cli.trainer.progress_bar_callback
        assert isinstance(bar, StepProgressBar)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        assert bar.refresh_rate == refresh_rate, steps_per_batch
    shown = bar.get_metrics(cli.trainer, cli.model)  # beside the values logged for the bar, the last step values
    assert {"v_num", "val/acc", "train/loss"} <= set(shown)
    assert {name: shown[name] for name in ("train/loss_step", "train/acc_step")} == cli.model.latest_step_values


def test_default_root_dir_holds_the_runs(fashion, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "elsewhere"
    args = [a for a in without_logger_dir(cli_args(fashion)) if not a.startswith("--trainer.default_root_dir")]
    cli_main(["fit", *args, "--trainer.max_epochs=1", f"--trainer.default_root_dir={root}"])
    assert (root / "lightning_logs" / "fashion" / "version_0" / "checkpoints" / "best.ckpt").is_file()
    assert not (tmp_path / "lightning_logs").exists()
    # Also for the objects built from Python (LightningCLI's run=False): they went to ./lightning_logs.
    cli = build_cli([*args, "--trainer.max_epochs=1", f"--trainer.default_root_dir={root}"], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert Path(cli.trainer.log_dir) == root / "lightning_logs" / "fashion" / "version_1"
    assert not (tmp_path / "lightning_logs").exists()


def test_objects_built_from_python_get_the_commands_checks(fashion):
    # LightningCLI's run=False skipped them: the errors came only once fit had started (Lightning's own wording for
    # the clipping), and --checkpoint.every_n_train_steps kept the groups of 64 steps.
    with pytest.raises(ConfigurationError, match=r"--trainer\.gradient_clip_val does not apply here"):
        build_cli([*cli_args(fashion), "--trainer.gradient_clip_val=1"], run=False)
    with pytest.raises(ConfigurationError, match=r"--model\.lr_scheduler cosine anneals"):
        build_cli([*cli_args(fashion), "--model.lr_scheduler=cosine", "--trainer.max_epochs=-1"], run=False)


def test_without_a_logger_checkpoints_go_to_default_root_dir_and_the_summary_names_them(fashion, capsys):
    root = fashion.root / "no_logger"
    args = without_logger(fashion, root)
    cli_main(["fit", *args, "--trainer.max_epochs=1"])
    last = root / "checkpoints" / "last.ckpt"
    assert last.is_file()
    assert (root / "checkpoints" / "best.ckpt").is_file()
    assert f"resume: --ckpt_path {last}" in capsys.readouterr().out  # "last" needs version_N folders
    cli = cli_main(["fit", *args, "--trainer.max_epochs=2", f"--ckpt_path={last}"])
    assert cli.trainer.current_epoch == 2  # resumed after epoch 1


def test_csv_logger_fits_resumes_and_tests(fashion, capsys):
    csv = [
        "--trainer.logger=CSVLogger",
        f"--trainer.logger.save_dir={fashion.root / 'csv'}",
        "--trainer.logger.name=runs",
    ]
    args = [*without_logger_dir(cli_args(fashion)), *csv]
    cli_main(["fit", *args, "--trainer.max_epochs=1"])
    run = fashion.root / "csv" / "runs" / "version_0"
    assert (run / "metrics.csv").is_file()
    summary = capsys.readouterr().out
    assert f"logs: {run}" in summary
    assert "tensorboard --logdir" not in summary  # a CSV run has nothing for TensorBoard to show
    assert (run / "checkpoints" / "last.ckpt").is_file()
    cli = cli_main(["fit", *args, "--trainer.max_epochs=2", "--ckpt_path=last"])
    assert cli.trainer.current_epoch == 2  # resumed after epoch 1, not started again
    assert sorted(p.name for p in run.parent.iterdir() if p.is_dir()) == ["version_0"]
    assert "val/acc" in (run / "metrics.until-step-8.csv").read_text()  # epoch 1's rows: CSVLogger would delete them
    assert "val/acc" in (run / "metrics.csv").read_text()
    cli = cli_main(["test", *args, f"--ckpt_path={run / 'checkpoints' / 'best.ckpt'}"])
    assert 0 <= float(cli.trainer.callback_metrics["test/acc"]) <= 1


def test_resuming_twice_from_one_checkpoint_keeps_every_csv_row_written_before(fashion):
    # As after a second kill before the next checkpoint: the same step is resumed again.
    csv = ["--trainer.logger=CSVLogger", f"--trainer.logger.save_dir={fashion.root / 'csv'}"]
    args = [*without_logger_dir(cli_args(fashion)), *csv, "--trainer.logger.name=runs"]
    cli_main(["fit", *args, "--trainer.max_epochs=1"])
    run = fashion.root / "csv" / "runs" / "version_0"
    saved = run / "checkpoints" / "epoch1.ckpt"
    shutil.copy(run / "checkpoints" / "last.ckpt", saved)
    epoch_1 = (run / "metrics.csv").read_text()
    for _ in range(2):
        cli_main(["fit", *args, "--trainer.max_epochs=2", f"--ckpt_path={saved}"])
    assert (run / "metrics.until-step-8.csv").read_text() == epoch_1  # (was the second resume's rows)
    assert "val/acc" in (run / "metrics.until-step-8.2.csv").read_text()  # the first resume's epoch 2


def test_enable_checkpointing_false_trains_and_writes_no_checkpoint(fashion, capsys):
    cli = cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=1", "--trainer.enable_checkpointing=false")])
    assert cli.trainer.checkpoint_callbacks == []
    assert cli.trainer.current_epoch == 1
    assert not list(fashion.root.rglob("*.ckpt"))
    assert (run_dir(fashion) / "config.yaml").is_file()  # the run is still logged
    summary = capsys.readouterr().out
    assert "last val/acc: " in summary
    assert "checkpoints: none" in summary


def test_without_validation_only_last_ckpt_is_written_and_said_so_without_a_warning(fashion, capsys):
    args = cli_args(fashion, "--trainer.max_epochs=2", "--trainer.limit_val_batches=0")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli_main(["fit", *args])
    assert [str(w.message) for w in caught if "val/acc" in str(w.message)] == []  # "did you log val/acc?"
    assert "best checkpoint: none (no validation ran: no val/acc to choose it by)" in capsys.readouterr().out
    checkpoints = run_dir(fashion) / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last.ckpt"]
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["epoch"] == 1


def test_a_fit_that_ends_before_its_first_validation_says_why_there_is_no_best_checkpoint(fashion, capsys):
    args = cli_args(fashion, "--trainer.max_steps=4", "--data.steps_per_batch=2", "--trainer.log_every_n_steps=1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli_main(["fit", *args])
    assert [str(w.message) for w in caught if "val/acc" in str(w.message)] == []  # "did you log val/acc?"
    assert "best checkpoint: none (no validation ran: no val/acc to choose it by)" in capsys.readouterr().out
    assert sorted(p.name for p in (run_dir(fashion) / "checkpoints").iterdir()) == ["last.ckpt"]


def test_a_fit_without_training_batches_says_it_trained_nothing(fashion, capsys):
    cli_main(["fit", *cli_args(fashion, "--trainer.limit_train_batches=0")])  # (Lightning skips training silently)
    assert "trained: nothing (no training batch: --trainer.limit_train_batches is 0)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("options", "keep"),
    [
        (["--checkpoint.monitor=val/loss"], min),  # Lightning's default mode (min), not this project's max for val/acc
        (["--checkpoint.monitor=val/loss", "--checkpoint.mode=max"], max),  # a mode given is a mode kept
    ],
    ids=["mode-follows-the-loss", "mode-given"],
)
def test_a_monitor_given_without_a_mode_keeps_the_lowest_loss(fashion, capsys, options, keep):
    cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=4", *options)])
    events = EventAccumulator(str(run_dir(fashion)))
    events.Reload()
    val_losses = [event.value for event in events.Scalars("val/loss")]
    assert len(set(val_losses)) == 4  # (so the lowest and the highest are different epochs)
    best = torch.load(run_dir(fashion) / "checkpoints" / "best.ckpt", weights_only=True)
    assert best["epoch"] == val_losses.index(keep(val_losses))
    assert f"best val/loss: {keep(val_losses):.4f}" in capsys.readouterr().out


def test_a_list_of_loggers_shares_one_run_folder_and_resumes_in_it(fashion, capsys):
    # Lightning gives each logger its own next version (TensorBoard version_0, CSV version_1, checkpoints beside the
    # first): here the folder the first logger's run claims is every logger's that writes under the same name.
    loggers = fashion.root / "loggers.yaml"
    loggers.write_text(
        yaml.safe_dump(
            {
                "trainer": {
                    "logger": [
                        {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": {"name": "fashion"}},
                        {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"name": "fashion"}},
                    ]
                }
            }
        )
    )
    args = [*without_logger_dir(cli_args(fashion)), f"--config={loggers}"]  # runs under --trainer.default_root_dir
    for _ in range(2):
        cli_main(["fit", *args, "--trainer.max_epochs=1"])
    assert versions(fashion.logs / "fashion") == [0, 1]
    run = run_dir(fashion, 1)
    assert (run / "metrics.csv").is_file()
    assert list(run.glob("events.out.tfevents.*"))
    assert (run / "checkpoints" / "last.ckpt").is_file()
    capsys.readouterr()
    cli_main(["fit", *args, "--trainer.max_epochs=2", "--ckpt_path=last"])
    assert f"resuming {run / 'checkpoints' / 'last.ckpt'}" in capsys.readouterr().out
    assert versions(fashion.logs / "fashion") == [0, 1]
    assert "val/acc" in (run / "metrics.until-step-8.csv").read_text()  # epoch 1's rows, which CSVLogger deletes
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["logger"][1]["init_args"]["version"] is None


def test_a_class_without_a_value_it_requires_is_one_line(capsys):
    # In a list after the default logger there is no earlier CSVLogger to carry save_dir over from; it was
    # jsonargparse's 20-line report.
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", "--trainer.logger+=CSVLogger"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: --trainer.logger: CSVLogger needs --trainer.logger.save_dir, given after the class on the command "
        "line (or in its init_args in a config file)."
    )


def test_a_logger_added_on_the_command_line_shares_the_run_folder_under_default_root_dir(
    fashion, tmp_path, monkeypatch
):
    # README's form. The default logger's values, carried into the list as given, kept its save_dir: the TensorBoard
    # run and the checkpoints went to ./lightning_logs, the CSV rows under --trainer.default_root_dir.
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "elsewhere"
    args = [a for a in without_logger_dir(cli_args(fashion)) if not a.startswith("--trainer.default_root_dir")]
    csv = ["--trainer.logger+=CSVLogger", "--trainer.logger.save_dir=lightning_logs", "--trainer.logger.name=fashion"]
    cli_main(["fit", *args, *csv, "--trainer.max_epochs=1", f"--trainer.default_root_dir={root}"])
    run = root / "lightning_logs" / "fashion" / "version_0"
    assert (run / "metrics.csv").is_file()
    assert list(run.glob("events.out.tfevents.*"))
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.parametrize("version", ["3", "my_run"])
def test_resuming_a_named_run_keeps_its_csv_rows_and_drops_later_tensorboard_values(fashion, version):
    named = f"--trainer.logger.init_args.version={version}"
    csv = ["--trainer.logger=CSVLogger", f"--trainer.logger.save_dir={fashion.root / 'csv'}", named]
    args = [*without_logger_dir(cli_args(fashion)), *csv]
    cli_main(["fit", *args, "--trainer.max_epochs=1"])
    cli_main(["fit", *args, "--trainer.max_epochs=2", "--ckpt_path=last"])
    run = fashion.root / "csv" / "fashion" / (f"version_{version}" if version.isdigit() else version)
    assert "val/acc" in (run / "metrics.until-step-8.csv").read_text()  # epoch 1's rows, which CSVLogger deletes
    tensorboard = cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=1", named)])
    assert tensorboard.config.fit.trainer.logger.init_args.purge_step is None
    resumed = cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=2", named, "--ckpt_path=last")])
    assert resumed.config.fit.trainer.logger.init_args.purge_step == 9  # the step after the checkpoint's


def test_checkpoint_of_an_earlier_version_without_val_acc_best_still_loads(fitted, capsys):
    best = run_dir(fitted) / "checkpoints" / "best.ckpt"
    old = torch.load(best, weights_only=True)
    del old["state_dict"]["val_acc_best.max_value"]  # written before val/acc_best was a metric of the module
    earlier = fitted.root / "earlier.ckpt"
    torch.save(old, earlier)
    cli = cli_main(["test", *cli_args(fitted, f"--ckpt_path={earlier}")])
    assert cli.model.evaluated_images["test"] == TEST_COUNT
    assert FashionClassifier.load_from_checkpoint(earlier).hparams.hidden_dims == [512, 512]
