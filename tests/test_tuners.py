"""Lightning's tuners (LearningRateFinder, BatchSizeFinder) and weight averaging as callbacks, with the module's own
optimizer steps."""

import warnings

import pytest
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging, LearningRateFinder, StochasticWeightAveraging
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
from torch.optim.swa_utils import update_bn

from fashion_lightning.cli import cli_main
from fashion_lightning.data import split_into_steps, step_batches
from tests.helpers import cli_args, last_ckpt

STEPS_PER_EPOCH = 8  # the tiny training split: 256 images in batches of 32
# 20 rates from 1e-8 to 1 (Lightning needs more than 10 to suggest one), across three epochs of 8 steps.
FINDER = [
    "--trainer.callbacks+=LearningRateFinder",
    "--trainer.callbacks.num_training_steps=20",
    "--trainer.callbacks.early_stop_threshold=null",
]


def test_learning_rate_finder_tries_rising_rates_and_the_fit_trains_at_its_suggestion(fashion):
    # Lightning steps the finder's scheduler only under automatic optimization: every rate tried was 1e-8, and
    # the run then trained at 1e-8, silently.
    cli = cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=3"), *FINDER])
    finder = next(callback for callback in cli.trainer.callbacks if isinstance(callback, LearningRateFinder))
    rates = finder.optimal_lr.results["lr"]
    assert len(rates) == 20
    assert all(earlier < later for earlier, later in zip(rates, rates[1:], strict=False))
    assert len(finder.optimal_lr.results["loss"]) == 20  # one loss per rate: one optimizer step per batch
    suggestion = finder.optimal_lr.suggestion()
    assert suggestion is not None
    assert 1e-8 < suggestion < 1
    # The fit itself: the suggested rate, the optimizer steps grouped again, from the initial weights.
    assert cli.model.hparams.lr == suggestion
    assert cli.trainer.num_training_batches == 1  # the whole tiny epoch in one group (64 steps a batch on a CPU)
    assert cli.trainer.global_step == 3 * STEPS_PER_EPOCH
    saved = torch.load(last_ckpt(fashion.logs), weights_only=True)
    assert saved["optimizer_states"][0]["param_groups"][0]["lr"] == suggestion
    assert saved["hyper_parameters"]["lr"] == suggestion
    assert not list(fashion.root.glob(".lr_find_*"))  # the finder's own checkpoint is gone
    # TensorBoard's HParams tab compares runs by the rate they trained at (hparams.yaml keeps the given one).
    events = EventAccumulator(str(fashion.logs / "fashion" / "version_0"))
    events.Reload()
    start = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    assert HParamsPluginData.FromString(start).session_start_info.hparams["model/lr"].number_value == suggestion


def test_a_resumed_fit_keeps_its_learning_rate_and_skips_the_search(fashion, caplog):
    cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=3"), *FINDER])
    found = torch.load(last_ckpt(fashion.logs), weights_only=True)["optimizer_states"][0]["param_groups"][0]["lr"]
    assert found != 1e-3
    cli = cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=4"), *FINDER, "--ckpt_path=last"])
    assert "Resuming: LearningRateFinder is skipped" in caplog.text
    assert not any(isinstance(callback, LearningRateFinder) for callback in cli.trainer.callbacks)
    assert cli.trainer.optimizers[0].param_groups[0]["lr"] == cli.model.hparams.lr == found
    assert cli.trainer.global_step == 4 * STEPS_PER_EPOCH


def test_grouped_steps_beside_a_learning_rate_finder_are_refused(fashion, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *cli_args(fashion, "--data.steps_per_batch=4"), *FINDER])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--data.steps_per_batch 4" in err
    assert "Leave --data.steps_per_batch unset" in err
    assert "Traceback" not in err


def test_batch_size_finder_trains_at_the_size_it_found(fashion):
    finder = ["--trainer.callbacks+=BatchSizeFinder", "--trainer.callbacks.max_trials=2"]  # 2, then 4
    cli = cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=1"), *finder])
    assert cli.datamodule.hparams.batch_size == 4
    assert cli.trainer.global_step == 256 // 4
    assert torch.load(last_ckpt(fashion.logs), weights_only=True)["global_step"] == 256 // 4


def test_ema_weight_averaging_updates_its_average_after_every_optimizer_step(fashion):
    # It updates after every training batch: with 64 steps a batch, it averaged once an epoch (decay 0.999 per
    # update then spans ~1,000 epochs), silently.
    cli = cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=2"), "--trainer.callbacks+=EMAWeightAveraging"])
    averaging = next(callback for callback in cli.trainer.callbacks if isinstance(callback, EMAWeightAveraging))
    assert int(averaging._average_model.n_averaged) == 2 * STEPS_PER_EPOCH


def test_a_test_after_fit_with_ema_tests_the_average_as_the_test_command_does(fashion):
    # Lightning's callback, still holding the fit's average, loaded best.ckpt's raw weights over the average.
    ema = ["--trainer.max_epochs=2", "--trainer.callbacks+=EMAWeightAveraging"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli = cli_main(["fit", *cli_args(fashion, *ema), "--test_after_fit=true"])
    assert not [str(w.message) for w in caught if "EMAWeightAveraging" in str(w.message)]  # (left out on purpose)
    tested = cli.trainer.callback_metrics["test/loss"]
    separate = cli_main(["test", *cli_args(fashion, "--ckpt_path=best")])  # (best.ckpt's weights are the average)
    assert tested == separate.trainer.callback_metrics["test/loss"]


def test_stochastic_weight_averaging_ends_at_the_average_with_its_batchnorm_statistics(fashion):
    # SWA's last epoch only recomputes BatchNorm statistics for the averaged weights: Lightning skips backward and
    # the update there under automatic optimization only. The module trained that epoch on, away from the average.
    swa = ["--trainer.callbacks+=StochasticWeightAveraging", "--trainer.callbacks.swa_lrs=0.01"]
    swa += ["--trainer.callbacks.swa_epoch_start=1", "--model.net=cnn", "--data.shuffle=false"]
    cli = cli_main(["fit", *cli_args(fashion, "--trainer.max_epochs=3"), *swa])
    assert cli.trainer.global_step == 3 * STEPS_PER_EPOCH  # none in the BatchNorm epoch
    averaging = next(callback for callback in cli.trainer.callbacks if isinstance(callback, StochasticWeightAveraging))
    average = averaging._average_model.net
    for (name, trained), averaged in zip(cli.model.net.named_parameters(), average.parameters(), strict=True):
        assert torch.equal(trained, averaged), name
    # The statistics of one pass over the training batches with the averaged weights, as torch computes them.
    groups = cli.datamodule.train_dataloader()
    update_bn([images for group in groups for images, _ in step_batches(split_into_steps(group, 32))], average)
    for name, value in average.state_dict().items():
        if "running_" in name:
            assert torch.allclose(cli.model.net.state_dict()[name], value, atol=1e-5), name
