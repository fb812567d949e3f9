"""Grouped optimizer steps, the module's own clipping and accumulation, and the CUDA-graph option off a GPU."""

import os
import subprocess
import sys
from types import SimpleNamespace

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import (
    EMAWeightAveraging,
    LearningRateMonitor,
    ModelCheckpoint,
    ModelSummary,
    SpikeDetection,
    ThroughputMonitor,
)
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fashion_lightning.batch_counting import (
    AUTO_STEPS_PER_BATCH,
    Grouping,
    acting_per_batch,
    hooks_written_elsewhere,
    options_counting_batches,
)
from fashion_lightning.cli import build_cli, cli_main
from fashion_lightning.data import split_into_steps, step_batches
from tests.helpers import PlannedOnly, cli_args, fit_command, last_ckpt, weights

STEPS_PER_EPOCH = 8  # the tiny training split: 256 images in batches of 32


def fit_run(fashion, name, *extra):
    logs = fashion.root / name
    args = [a.replace(str(fashion.logs), str(logs)) for a in cli_args(fashion, *extra)]
    cli = cli_main(["fit", *args])
    return cli, logs


def scalars(logs, tag):
    events = EventAccumulator(str(logs / "fashion" / "version_0"))
    events.Reload()
    return [(event.step, round(event.value, 5)) for event in events.Scalars(tag)]


def test_grouped_steps_train_and_log_exactly_like_single_steps(fashion):
    common = ["--trainer.max_epochs=2", "--trainer.log_every_n_steps=2", "--model.dropout=0.1"]
    common += ["--model.lr_scheduler=cosine", "--trainer.callbacks+=LearningRateMonitor"]  # it logs at epoch starts
    single, single_logs = fit_run(fashion, "single", *common, "--data.steps_per_batch=1")
    grouped, grouped_logs = fit_run(fashion, "grouped", *common, "--data.steps_per_batch=3")  # groups of 3, 3, 2
    assert single.trainer.num_training_batches == STEPS_PER_EPOCH
    assert grouped.trainer.num_training_batches == 3
    assert single.trainer.global_step == grouped.trainer.global_step == 2 * STEPS_PER_EPOCH
    a, b = weights(last_ckpt(single_logs)), weights(last_ckpt(grouped_logs))
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name
    # Per-step curves at the same optimizer steps, epoch values at the same x (global_step), same numbers.
    for tag in ("train/loss_step", "train/acc_step", "train/loss", "train/acc", "val/acc", "lr-SGD"):
        assert scalars(single_logs, tag) == scalars(grouped_logs, tag), tag
    assert [step for step, _ in scalars(grouped_logs, "train/loss_step")] == list(range(2, 17, 2))
    assert [step for step, _ in scalars(grouped_logs, "val/acc")] == [8, 16]
    assert [step for step, _ in scalars(grouped_logs, "lr-SGD")] == [0, 8]  # (Lightning's count of groups: 0, 3)
    # What the progress bar shows: the last step values written.
    for cli, logs in ((single, single_logs), (grouped, grouped_logs)):
        for tag in ("train/loss_step", "train/acc_step"):
            assert round(cli.model.latest_step_values[tag], 5) == scalars(logs, tag)[-1][1], tag


def test_max_steps_stops_inside_a_group(fashion):
    flags = ["--trainer.max_steps=5", "--data.steps_per_batch=4", "--trainer.log_every_n_steps=1"]
    cli, logs = fit_run(fashion, "capped", *flags)
    assert cli.trainer.global_step == 5
    # Step values are written a group late (StepLog): the stop still writes the last group's.
    assert [step for step, _ in scalars(logs, "train/loss_step")] == [1, 2, 3, 4, 5]


def test_a_step_that_fails_inside_a_group_leaves_the_updates_before_it_counted(fashion):
    flags = ["--data.steps_per_batch=2", "--trainer.num_sanity_val_steps=0", "--trainer.log_every_n_steps=1"]
    cli = build_cli(cli_args(fashion, *flags), run=False)
    net, calls = cli.model.net, []

    def forward_failing_at_the_sixth(images):
        calls.append(len(images))
        if len(calls) == 6:  # the second step of the third group
            raise RuntimeError("out of memory, say")
        return type(net).forward(net, images)

    net.forward = forward_failing_at_the_sixth
    with pytest.raises(RuntimeError, match="out of memory"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 5  # the group's update made before it, as Lightning's own optimizer counts
    # The same module fitted again (a notebook after the error): the new run gets its own step values only, not
    # the second group's, which were still on their way to the logger when the first run stopped.
    del net.forward
    logs = fashion.root / "again"
    args = [a.replace(str(fashion.logs), str(logs)) for a in cli_args(fashion, *flags, "--trainer.max_steps=4")]
    again = build_cli(args, run=False)
    again.trainer.fit(cli.model, datamodule=again.datamodule)
    events = EventAccumulator(str(logs / "fashion" / "version_0"), purge_orphaned_data=False)  # all, in order
    events.Reload()
    assert [event.step for event in events.Scalars("train/loss_step")] == [1, 2, 3, 4]


def test_automatic_grouping_and_when_it_steps_aside(fashion, caplog):
    cli = build_cli(cli_args(fashion), run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.datamodule.steps_per_batch() == AUTO_STEPS_PER_BATCH["cpu"] == 64
    assert cli.trainer.global_step == STEPS_PER_EPOCH * cli.trainer.max_epochs
    with caplog.at_level("INFO"):
        cli, _ = fit_run(fashion, "limited", "--trainer.limit_train_batches=3", "--trainer.max_epochs=1")
    assert cli.trainer.global_step == 3  # limit_train_batches still counts batches of batch_size
    assert "because --trainer.limit_train_batches counts batches" in caplog.text
    # A fraction too: of 64-step groups it kept whole groups, and under one group Lightning refused the run.
    cli, _ = fit_run(fashion, "half", "--trainer.limit_train_batches=0.5", "--trainer.max_epochs=1")
    assert cli.trainer.global_step == STEPS_PER_EPOCH // 2
    # A duration validates by the clock, at the end of a group (Lightning leaves val_check_interval unset then).
    cli, _ = fit_run(fashion, "timed", "--trainer.val_check_interval=00:00:00:01", "--trainer.max_epochs=1")
    assert cli.datamodule.grouping() == (64, None)
    cli, _ = fit_run(fashion, "every3", "--checkpoint.every_n_train_steps=3", "--trainer.max_epochs=1")
    assert cli.datamodule.steps_per_batch() == 1  # Lightning's ModelCheckpoint needs every step to be seen
    # ... and so does another ModelCheckpoint of one's own (with groups of 64 it saved at the epoch's end only).
    steps = fashion.root / "every_step"
    own = ["--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.every_n_train_steps=3"]
    own += [f"--trainer.callbacks.dirpath={steps}", "--trainer.callbacks.save_top_k=-1", "--trainer.max_epochs=1"]
    cli, _ = fit_run(fashion, "own_every3", *own)
    assert cli.datamodule.steps_per_batch() == 1
    assert sorted(path.name for path in steps.iterdir()) == ["epoch=0-step=3.ckpt", "epoch=0-step=6.ckpt"]


@pytest.mark.parametrize(
    ("fraction", "grouping", "said", "validated_at"),
    [
        (0.5, Grouping(4), "4 optimizer steps per training batch, not 64,", [4, 8]),
        # Groups of 3, 3 and 2 would also validate after the 8th step: 2 + 1 steps, twice, then 2.
        (0.4, Grouping(2, (2, 1, 2, 1, 2)), "Training batches of 1 to 2 optimizer steps, not 64 each,", [3, 6]),
    ],
)
def test_validation_every_fraction_of_an_epoch_happens_where_it_would_without_groups(
    fashion, caplog, fraction, grouping, said, validated_at
):
    # Lightning validates every int(batches * fraction) batches: of one 64-step group, after the epoch only.
    with caplog.at_level("INFO"):
        cli, logs = fit_run(fashion, "fraction", f"--trainer.val_check_interval={fraction}", "--trainer.max_epochs=2")
    assert cli.datamodule.grouping() == grouping
    assert cli.trainer.global_step == 2 * STEPS_PER_EPOCH
    assert [step for step, _ in scalars(logs, "val/loss")] == validated_at + [v + STEPS_PER_EPOCH for v in validated_at]
    assert f"{said} so that --trainer.val_check_interval {fraction} validates every {validated_at[0]}" in caplog.text


def test_monitors_of_every_training_batch_get_one_step_a_batch_and_log_at_optimizer_steps(fashion, caplog):
    # With 64 steps a batch they logged at Lightning's count of batches, 0, 1, 2 (or, counting optimizer steps,
    # never: the count would skip the multiples of log_every_n_steps).
    monitors = ["--trainer.callbacks+=DeviceStatsMonitor", "--trainer.callbacks+=LearningRateMonitor"]
    monitors += ["--trainer.callbacks.logging_interval=step", "--trainer.log_every_n_steps=2"]
    accumulate = "--model.accumulate_grad_batches=2"  # updates after the 2nd, 4th, 6th and 8th batch
    with caplog.at_level("INFO"):
        cli, logs = fit_run(fashion, "monitored", "--trainer.max_epochs=1", *monitors, accumulate)
    assert "because DeviceStatsMonitor logs every --trainer.log_every_n_steps training batches" in caplog.text
    assert cli.datamodule.steps_per_batch() == 1
    assert cli.trainer.global_step == STEPS_PER_EPOCH // 2
    # As Lightning counts under automatic optimization: before an update, the steps done so far (1 and 3, each seen
    # by two batches); after a batch, the steps done before it.
    assert [step for step, _ in scalars(logs, "lr-SGD")] == [1, 1, 3, 3]
    assert [step for step, _ in scalars(logs, "DeviceStatsMonitor.on_train_batch_end/cpu_percent")] == [1, 1, 3, 3]


class LabelsSeen(L.Callback):
    """A callback written the Lightning way: each training batch is one optimizer step's (images, labels)."""

    def __init__(self) -> None:
        self.seen: list = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seen.append(batch[1].tolist() if isinstance(batch, tuple) else [labels.tolist() for _, labels in batch])


def test_a_training_batch_hook_of_ones_own_gets_one_step_a_batch_unless_grouping_is_asked_for(fashion, caplog):
    # With the automatic 64 steps a batch it was called once an epoch, with a list of 8 (images, labels) pairs.
    cli = build_cli(cli_args(fashion, "--trainer.max_epochs=2"), run=False)
    own = LabelsSeen()
    cli.trainer.callbacks.append(own)
    with caplog.at_level("INFO"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert "One optimizer step per training batch, because LabelsSeen.on_train_batch_end (" in caplog.text
    assert "test_training_steps) is written for one optimizer step's batch" in caplog.text
    assert cli.trainer.num_training_batches == STEPS_PER_EPOCH
    assert len(own.seen) == 2 * STEPS_PER_EPOCH
    assert all(len(labels) == 32 and isinstance(labels[0], int) for labels in own.seen)
    # Asked for, grouping is the user's choice: unlike Lightning's per-batch callbacks, one's own hook may be written
    # for groups, so it is not refused.
    cli = build_cli(cli_args(fashion, "--trainer.max_epochs=2", "--data.steps_per_batch=4"), run=False)
    grouped = LabelsSeen()
    cli.trainer.callbacks.append(grouped)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 2 * STEPS_PER_EPOCH
    assert [len(group) for group in grouped.seen] == [4] * (2 * STEPS_PER_EPOCH // 4)


def test_a_step_hook_of_ones_own_that_logs_gets_one_step_a_batch_and_its_values_every_n_steps(fashion, caplog):
    # With the automatic 64 steps a batch, Lightning wrote its values once an epoch (at the count of the group's end).
    watcher = ["--trainer.callbacks+=tests.helpers.LogsGradientNorm", "--trainer.log_every_n_steps=2"]
    with caplog.at_level("INFO"):
        cli, logs = fit_run(fashion, "watched", "--trainer.max_epochs=2", *watcher)
    assert (
        "because LogsGradientNorm.on_before_optimizer_step (tests.helpers) runs at every optimizer step" in caplog.text
    )
    assert cli.datamodule.steps_per_batch() == 1
    # As under automatic optimization: the value before update n + 1 at step n, every 2nd step.
    assert [step for step, _ in scalars(logs, "grad/norm")] == list(range(1, 2 * STEPS_PER_EPOCH, 2))
    assert [step for step, _ in scalars(logs, "train/loss_step")] == list(range(2, 2 * STEPS_PER_EPOCH + 1, 2))


def test_the_console_says_once_why_the_steps_are_not_grouped(fashion):
    # The data module's lines went to a logger no handler printed: the reason reached caplog, never a console.
    watcher = ["--trainer.callbacks+=tests.helpers.LogsGradientNorm", "--trainer.max_epochs=2"]
    watcher += ["--trainer.reload_dataloaders_every_n_epochs=1"]  # (the loader built, and its steps chosen, twice)
    command = [sys.executable, "-m", "fashion_lightning", "fit", *cli_args(fashion, *watcher)]
    err = subprocess.run(command, capture_output=True, text=True, check=True).stderr
    assert err.count("Fashion-MNIST: train 256, val 64, test ") == 1
    assert err.count("One optimizer step per training batch, because LogsGradientNorm.on_before_optimizer_step") == 1


def test_lightnings_and_the_packages_own_batch_hooks_leave_the_grouping_alone(fashion):
    class OwnCheckpoint(ModelCheckpoint):  # its batch hooks are Lightning's
        pass

    cli = build_cli(cli_args(fashion), run=False)
    trainer = SimpleNamespace(callbacks=[*cli.trainer.callbacks, OwnCheckpoint()], lightning_module=cli.model)
    assert hooks_written_elsewhere(trainer) is None

    class Watched(type(cli.model)):
        def on_train_batch_start(self, batch, batch_idx):
            pass

    trainer.lightning_module = Watched()
    assert hooks_written_elsewhere(trainer).startswith("Watched.on_train_batch_start (")


@pytest.mark.parametrize(
    ("callback", "acting"),
    [
        (LearningRateMonitor(logging_interval="epoch"), None),  # once an epoch: groups do not matter
        (LearningRateMonitor(logging_interval="step"), "LearningRateMonitor (logging_interval step) logs every"),
        (ThroughputMonitor(batch_size_fn=len), "ThroughputMonitor logs every"),
        (SpikeDetection(), "SpikeDetection checks the loss of every training batch"),
        (EMAWeightAveraging(), "EMAWeightAveraging updates its average after every training batch"),
    ],
)
def test_what_acts_on_every_training_batch_is_named(callback, acting):
    trainer = SimpleNamespace(lr_scheduler_configs=[], callbacks=[ModelSummary(), callback])
    found = acting_per_batch(trainer)
    if acting is None:
        assert found is None
    else:
        assert found.startswith(acting)


def test_overfit_batches_trains_on_the_first_batches_in_order_every_epoch(fashion):
    assert options_counting_batches(build_cli(cli_args(fashion, "--trainer.overfit_batches=2"), run=False).trainer) == (
        "--trainer.overfit_batches counts batches"  # (not the limit_train_batches Lightning sets from it)
    )
    seen = []

    class RecordLabels(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(batch[1].tolist())

    cli = build_cli(cli_args(fashion, "--trainer.overfit_batches=2", "--trainer.max_epochs=3"), run=False)
    cli.trainer.callbacks.append(RecordLabels())
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 3 * 2  # one optimizer step per batch: overfit_batches counts batches
    first_two = cli.datamodule.datasets["train"].labels[:64].tolist()
    assert seen == [first_two[:32], first_two[32:]] * 3


def test_clipping_and_accumulation_equal_plain_pytorch(fashion):
    clip, accumulate = 0.05, 3  # 8 batches: updates after batches 3, 6 and 8 (the epoch's end)
    cli = build_cli(
        cli_args(
            fashion,
            "--trainer.max_epochs=1",
            "--data.shuffle=false",
            "--data.steps_per_batch=4",
            f"--model.gradient_clip_val={clip}",
            f"--model.accumulate_grad_batches={accumulate}",
            "--model.optimizer=adam",
            "--model.lr=0.01",
        ),
        run=False,
    )
    cli.datamodule.prepare_data()
    cli.datamodule.setup("fit")
    net = type(cli.model.net)(hidden_dims=cli.model.hparams.hidden_dims)
    net.load_state_dict(cli.model.net.state_dict())
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    batches = [b for group in cli.datamodule.train_dataloader() for b in step_batches(split_into_steps(group, 32))]
    for index, (images, labels) in enumerate(batches):
        (F.cross_entropy(net(images), labels) / accumulate).backward()
        if (index + 1) % accumulate == 0 or index + 1 == len(batches):
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
            optimizer.step()
            optimizer.zero_grad()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 3
    for name, value in net.state_dict().items():
        assert torch.allclose(cli.model.net.state_dict()[name], value, atol=1e-6), name


def test_lightning_optimization_flags_point_to_the_modules_own(fashion, capsys):
    flags = {"gradient_clip_val": "1.0", "accumulate_grad_batches": "2"}
    for flag, value in flags.items():
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["fit", *cli_args(fashion, f"--trainer.{flag}={value}")])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert f"--model.{flag} {value}" in err
        assert "Traceback" not in err


def test_cuda_graph_on_without_a_gpu_says_why_and_trains_eagerly(fashion):
    with pytest.warns(UserWarning, match="runs eagerly, not as a CUDA graph: the model is on the CPU"):
        cli, _ = fit_run(fashion, "on", "--model.cuda_graph=on", "--trainer.max_epochs=1")
    assert cli.model.steps.captured is None
    assert cli.trainer.global_step == STEPS_PER_EPOCH


def test_resuming_may_change_how_steps_run_but_not_what_they_compute(fashion):
    _, logs = fit_run(fashion, "first", "--trainer.max_epochs=1")
    args = [a.replace(str(fashion.logs), str(logs)) for a in cli_args(fashion, "--trainer.max_epochs=2")]
    cli = cli_main(["fit", *args, "--model.cuda_graph=off", f"--ckpt_path={last_ckpt(logs)}"])
    assert cli.model.hparams.cuda_graph == "off"
    with pytest.raises(SystemExit):
        cli_main(["fit", *args, "--model.lr=0.5", f"--ckpt_path={last_ckpt(logs)}"])


def test_graph_mode_bookkeeping_under_lightning_on_cpu(fashion, monkeypatch):
    """The graph path's step counting and LR changes, with the replay replaced by eager steps (no GPU)."""
    from fashion_lightning import training

    common = ["--trainer.max_epochs=2", "--data.steps_per_batch=3", "--model.lr_scheduler=step"]
    common += ["--model.lr_step_size=1", "--trainer.log_every_n_steps=2"]
    with monkeypatch.context() as patch:
        patch.setattr(training, "graph_unavailable", lambda module: None)
        patch.setattr(training, "CapturedSteps", PlannedOnly)
        PlannedOnly.seen.clear()
        graph, graph_logs = fit_run(fashion, "graph", *common, "--model.cuda_graph=on")
    eager, eager_logs = fit_run(fashion, "eager", *common)
    assert type(graph.trainer.optimizers[0]) is torch.optim.SGD  # the real one: schedulers and checkpoints see it
    # Groups of 3, 3 and 2 steps an epoch: two warm-ups, then a capture at the new learning rate of epoch 2.
    assert PlannedOnly.seen == ["warm-up", "warm-up", "eager", "capture", "replay", "eager"]
    assert graph.model.steps.captured.replays == 2
    assert graph.trainer.global_step == eager.trainer.global_step == 2 * STEPS_PER_EPOCH
    assert graph.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-3 * 0.1**2)
    a, b = weights(last_ckpt(graph_logs)), weights(last_ckpt(eager_logs))
    for name in a:
        assert torch.equal(a[name], b[name]), name
    saved = torch.load(last_ckpt(graph_logs), weights_only=True)
    assert saved["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(1e-5)
    # The replay's values are logged at the same optimizer steps as the eager steps', with the same numbers.
    for tag in ("train/loss_step", "train/acc_step", "train/loss", "train/acc"):
        assert scalars(graph_logs, tag) == scalars(eager_logs, tag), tag
    assert [step for step, _ in scalars(graph_logs, "train/loss_step")] == list(range(2, 17, 2))
    assert graph.model.latest_step_values == eager.model.latest_step_values


def test_model_pruning_keeps_the_steps_eager_saying_why(fashion):
    """A replayed CUDA graph would keep the masks of its capture: with ModelPruning the steps stay eager."""
    from types import SimpleNamespace

    from lightning.pytorch.callbacks import ModelPruning

    from fashion_lightning.step_paths import graph_unavailable

    trainer = SimpleNamespace(callbacks=[ModelPruning("l1_unstructured")])
    on_a_gpu = SimpleNamespace(device=torch.device("cuda"), hparams=SimpleNamespace(compile=False), trainer=trainer)
    assert graph_unavailable(on_a_gpu).startswith("ModelPruning changes the network's layers between epochs")
    # Eager steps prune as asked: half of what is left at each epoch's end (here, on a CPU).
    pruning = ["--trainer.callbacks+=ModelPruning", "--trainer.callbacks.pruning_fn=l1_unstructured"]
    cli, _ = fit_run(fashion, "pruned", "--trainer.max_epochs=2", *pruning)
    values = torch.cat([parameter.flatten() for parameter in cli.model.net.parameters()])
    assert float((values == 0).float().mean()) == pytest.approx(0.75, abs=1e-4)


def test_callbacks_hooked_around_the_update_run_every_step_and_change_nothing(fashion):
    """Steps skip Lightning's optimizer and backward hooks only when nobody overrides them; both ways train, count
    and log the same."""
    import lightning as L

    from fashion_lightning.step_paths import step_hooks_in_use

    class GradientWatcher(L.Callback):
        def __init__(self):
            self.calls = {"on_after_backward": 0, "on_before_optimizer_step": 0}

        def on_after_backward(self, trainer, pl_module):
            self.calls["on_after_backward"] += 1

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            self.calls["on_before_optimizer_step"] += 1
            assert all(p.grad is not None for p in pl_module.net.parameters())

    common = ["--trainer.max_epochs=2", "--trainer.log_every_n_steps=3", "--data.steps_per_batch=3"]
    direct, direct_logs = fit_run(fashion, "direct", *common)
    assert direct.model.steps.through_lightning is None
    watched_logs = fashion.root / "watched"
    args = [a.replace(str(fashion.logs), str(watched_logs)) for a in cli_args(fashion, *common)]
    cli = build_cli(args, run=False)
    watcher = GradientWatcher()
    cli.trainer.callbacks.append(watcher)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert "GradientWatcher.on_before_optimizer_step must run" in cli.model.steps.through_lightning
    assert watcher.calls == dict.fromkeys(watcher.calls, 2 * STEPS_PER_EPOCH)
    assert cli.trainer.global_step == direct.trainer.global_step == 2 * STEPS_PER_EPOCH
    # ... and the CUDA graph, which cannot call them between backward and the update, steps aside for them.
    assert step_hooks_in_use(cli.model) == [
        "GradientWatcher.on_after_backward",
        "GradientWatcher.on_before_optimizer_step",
    ]
    a, b = weights(last_ckpt(direct_logs)), weights(last_ckpt(watched_logs))
    for name in a:
        assert torch.equal(a[name], b[name]), name
    for tag in ("train/loss_step", "train/acc", "val/acc"):
        assert scalars(direct_logs, tag) == scalars(watched_logs, tag), tag
    assert [step for step, _ in scalars(direct_logs, "train/loss_step")] == list(range(3, 17, 3))


def test_checkpoints_of_automatic_optimization_resume_at_their_step(fashion):
    """Checkpoints written before the module optimized itself kept global_step in automatic optimization's count."""
    _, logs = fit_run(fashion, "old", "--trainer.max_epochs=1")
    checkpoint = torch.load(last_ckpt(logs), weights_only=True)
    loops = checkpoint["loops"]["fit_loop"]
    manual = loops["epoch_loop.manual_optimization.optim_step_progress"]
    loops["epoch_loop.automatic_optimization.optim_progress"]["optimizer"]["step"] = manual
    loops["epoch_loop.manual_optimization.optim_step_progress"] = {
        "total": {"ready": 0, "completed": 0},
        "current": {"ready": 0, "completed": 0},
    }
    del checkpoint["state_dict"]["train_sums"]
    torch.save(checkpoint, last_ckpt(logs))
    args = [a.replace(str(fashion.logs), str(logs)) for a in cli_args(fashion, "--trainer.max_epochs=2")]
    cli = cli_main(["fit", *args, "--ckpt_path=last"])
    assert cli.trainer.global_step == 2 * STEPS_PER_EPOCH


@pytest.mark.slow
def test_compiled_steps_train_like_eager_ones(fashion, monkeypatch, capfd):
    """--model.compile runs the training steps through torch.compile; the checkpoint is the plain network's."""
    # A cache of this test's own: what other runs left in the machine's shared /tmp/torchinductor_<user> plays no part.
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(fashion.root / "inductor"))
    common = ["--trainer.max_epochs=1", "--data.steps_per_batch=4"]
    eager, eager_logs = fit_run(fashion, "eager", *common)
    compiled, compiled_logs = fit_run(fashion, "compiled", *common, "--model.compile=true")
    assert isinstance(compiled.model.steps.net, torch._dynamo.eval_frame.OptimizedModule)
    assert compiled.trainer.global_step == eager.trainer.global_step == STEPS_PER_EPOCH
    # (torch logs it where a CUDA toolkit is installed but no GPU: the compiled CPU step needs neither)
    assert "No CUDA runtime is found" not in capfd.readouterr().err
    a, b = weights(last_ckpt(eager_logs)), weights(last_ckpt(compiled_logs))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5), name  # compiled kernels may round differently


@pytest.mark.slow
def test_a_compile_that_cannot_build_is_one_paragraph_and_keeps_the_run(fashion):
    """No working C++ compiler: --model.compile stops with what to do, not inductor's traceback."""
    env = {**os.environ, "CXX": str(fashion.root / "no-such-g++"), "TORCHINDUCTOR_CACHE_DIR": str(fashion.root / "ind")}
    command = fit_command(fashion, fashion.logs, "--trainer.max_epochs=1", "--model.compile=true")
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: --model.compile: torch.compile could not build the training step")
    assert "Train without --model.compile" in error
    assert str(fashion.root / "ind") in error  # names the cache folder it used
