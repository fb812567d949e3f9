"""Every shipped config parses and runs (fast_dev_run) on the tiny fixture; early stopping is one flag away."""

import subprocess
import sys
from pathlib import Path

import lightning
import pytest
import yaml

from fashion_lightning.cli import build_cli, cli_main
from tests.helpers import cli_args

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
# default.yaml lists every Trainer option of the Lightning release it was generated with (its first line names it);
# an older release in the tested range has fewer options, so the whole-file checks run with that release only.
GENERATED_WITH = CONFIGS[1].read_text().split("lightning.pytorch==")[1].split()[0]
same_lightning = pytest.mark.skipif(
    lightning.__version__ != GENERATED_WITH, reason=f"configs/default.yaml is generated with Lightning {GENERATED_WITH}"
)


def test_all_configs_are_found():
    assert {c.name for c in CONFIGS} == {"default.yaml", "seed.yaml", "mlp.yaml", "cnn.yaml"}


@pytest.mark.parametrize(
    "config",
    [c if c.name != "default.yaml" else pytest.param(c, marks=same_lightning) for c in CONFIGS],
    ids=lambda c: c.stem,
)
def test_config_runs_a_fast_dev_run(fashion, config, capsys, recwarn, caplog):
    with caplog.at_level("INFO"):
        cli = cli_main(["fit", f"--config={config}", *cli_args(fashion, "--trainer.fast_dev_run=true")])
    assert cli.trainer.state.finished
    assert "because --trainer.fast_dev_run counts batches" in caplog.text  # (not the limit it sets)
    assert not [w for w in recwarn if "has no effect" in str(w.message)]  # every value of the recipe is used
    assert cli.trainer.global_step == 1
    # Lightning's fast_dev_run logs and saves nothing: no run folder is left behind, and the summary says so.
    assert not (fashion.logs / "fashion").exists() or not any((fashion.logs / "fashion").iterdir())
    assert "fast_dev_run: nothing was logged or saved" in capsys.readouterr().out


def _printed_config(*args: str) -> dict:
    """The whole resolved config of ``fit`` with ``args``, as ``--print_config`` prints it."""
    command = [sys.executable, "-m", "fashion_lightning", "fit", *args, "--print_config"]
    return yaml.safe_load(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


@same_lightning
def test_default_config_is_the_whole_default_config():
    assert CONFIGS[1].name == "default.yaml"
    defaults = _printed_config()
    # The file holds every key with the default value (nothing missing, nothing extra)...
    assert yaml.safe_load(CONFIGS[1].read_text()) == defaults, "regenerate it: make configs/default.yaml"
    # ...so `fit --config configs/default.yaml` is `fit`.
    assert _printed_config(f"--config={CONFIGS[1]}") == defaults


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.stem)
def test_no_config_adds_a_second_last_ckpt_writer(config):
    # last.ckpt belongs to LastCheckpoint (every epoch, every n steps); ModelCheckpoint's save_last would write
    # another one into the same folder at other moments.
    settings = yaml.safe_load(config.read_text())
    assert not (settings.get("checkpoint") or {}).get("save_last"), f"{config.name} sets checkpoint.save_last"


def test_save_last_is_refused_with_a_clear_error(fashion, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *cli_args(fashion, "--checkpoint.save_last=true")])
    assert exit_info.value.code == 2
    assert "second last.ckpt" in capsys.readouterr().err


def test_cnn_config_selects_the_cnn(fashion):
    cli = build_cli([f"--config={CONFIGS[0]}", *cli_args(fashion)], run=False)
    assert CONFIGS[0].name == "cnn.yaml"
    assert type(cli.model.net).__name__ == "SmallCNN"


def test_values_that_the_other_options_leave_without_effect_are_named_in_one_warning_each(fashion):
    unused = ["--model.net=cnn", "--model.hidden_dims=[64]", "--model.optimizer=adamw", "--model.momentum=0.9"]
    with pytest.warns(UserWarning, match="has no effect") as record:
        cli_main(["fit", *cli_args(fashion, *unused, "--data.augment_shift=3", "--trainer.fast_dev_run=true")])
    assert [str(w.message) for w in record if "has no effect" in str(w.message)] == [
        "--data.augment_shift 3 has no effect without --data.augment true. This run trains without it.",
        "--model.hidden_dims [64] has no effect without --model.net mlp (the CNN has its own layers); "
        "--model.momentum 0.9 has no effect without --model.optimizer sgd (Adam's momentum is its betas). "
        "This run trains without them.",
    ]


def test_early_stopping_from_the_command_line(fashion):
    early = [
        "--trainer.callbacks+=EarlyStopping",
        "--trainer.callbacks.monitor=val/acc",
        "--trainer.callbacks.mode=max",
        "--trainer.callbacks.patience=1",
        "--trainer.callbacks.min_delta=1.0",
    ]
    cli = cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=10", *early)])
    assert cli.trainer.current_epoch < 9  # stopped long before max_epochs: no epoch can improve by 1.0
