"""Every shipped config parses and runs (fast_dev_run) on the tiny fixture; early stopping is one flag away."""

from pathlib import Path

import pytest

from fashion_lightning.cli import build_cli, cli_main
from tests.conftest import cli_args

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


def test_all_configs_are_found():
    assert {c.name for c in CONFIGS} == {"default.yaml", "seed.yaml", "mlp.yaml", "cnn.yaml"}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.stem)
def test_config_runs_a_fast_dev_run(fashion, config):
    cli = cli_main(["fit", f"--config={config}", *cli_args(fashion, "--trainer.fast_dev_run=true")])
    assert cli.trainer.state.finished
    assert cli.trainer.global_step == 1


def test_default_config_is_the_defaults(fashion):
    from_file = build_cli([f"--config={CONFIGS[1]}"], run=False)  # default.yaml
    assert CONFIGS[1].name == "default.yaml"
    plain = build_cli([], run=False)
    assert from_file.model.hparams == plain.model.hparams
    assert from_file.datamodule.hparams == plain.datamodule.hparams


def test_cnn_config_selects_the_cnn(fashion):
    cli = build_cli([f"--config={CONFIGS[0]}", *cli_args(fashion)], run=False)
    assert CONFIGS[0].name == "cnn.yaml"
    assert type(cli.model.net).__name__ == "SmallCNN"


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
