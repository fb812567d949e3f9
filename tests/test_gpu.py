"""On a CUDA device: the dataset on the GPU, the training step as a CUDA graph (equal to eager steps and the seed's
loop, falling back with a reason), exact resume after kill -9, NaN caught without syncs."""

import signal
import subprocess
import time
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch

from fashion_lightning.callbacks import FiniteLossGuard
from fashion_lightning.cli import build_cli, cli_main
from fashion_lightning.data import split_into_steps, step_batches
from tests.helpers import TEST_COUNT, cli_args, fit_command, last_ckpt, scalar_steps, wait_for, weights

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def gpu_args(fashion, *extra):
    return [a.replace("--trainer.accelerator=cpu", "--trainer.accelerator=gpu") for a in cli_args(fashion, *extra)]


def test_dataset_is_kept_on_the_gpu_by_default_where_loader_workers_are_said_to_do_nothing(fashion):
    cli = build_cli(gpu_args(fashion, "--data.num_workers=2"), run=False)
    with pytest.warns(UserWarning, match=r"--data\.num_workers 2 has no effect with the dataset on the GPU"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.datamodule.datasets["train"].images.is_cuda
    assert cli.datamodule.datasets["test"].images.is_cuda
    assert cli.trainer.train_dataloader.num_workers == 0
    on_host = build_cli(gpu_args(fashion, "--data.num_workers=2", "--data.on_device=false"), run=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r"--data\.num_workers \d+ has no effect")
        on_host.trainer.fit(on_host.model, datamodule=on_host.datamodule)
    assert on_host.trainer.train_dataloader.num_workers == 2


def test_fit_resume_and_test_on_gpu(fashion, capsys):
    cli_main(["fit", *gpu_args(fashion, "--trainer.max_epochs=2", "--model.dropout=0.2", "--data.augment=true")])
    cli_main(["fit", *gpu_args(fashion, "--trainer.max_epochs=3", "--ckpt_path=last")])
    run = fashion.logs / "fashion" / "version_0" / "checkpoints"
    assert torch.load(run / "last.ckpt", weights_only=True)["epoch"] == 2
    cli = cli_main(["test", *gpu_args(fashion, f"--ckpt_path={run / 'best.ckpt'}")])
    assert cli.model.evaluated_images["test"] == TEST_COUNT


def test_resume_on_gpu_is_exact(fashion):
    common = ["--model.dropout=0.2", "--data.augment=true"]
    cli_main(["fit", *gpu_args(fashion, "--trainer.max_epochs=3", *common)])
    reference = torch.load(fashion.logs / "fashion" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    other = fashion.root / "other"
    args = [a.replace(str(fashion.logs), str(other)) for a in gpu_args(fashion, *common)]
    cli_main(["fit", *args, "--trainer.max_epochs=1"])
    cli_main(["fit", *args, "--trainer.max_epochs=3", "--ckpt_path=last"])
    resumed = torch.load(other / "fashion" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    for name, value in reference["state_dict"].items():
        assert torch.allclose(resumed["state_dict"][name], value, atol=1e-6), name


def test_non_finite_loss_is_caught_on_gpu(fashion, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *gpu_args(fashion, "--model.lr=1e12")])
    assert exit_info.value.code == 3
    assert "NaN or infinite" in capsys.readouterr().err


def gpu_run(fashion, name, *extra):
    logs = fashion.root / name
    args = [a.replace(str(fashion.logs), str(logs)) for a in gpu_args(fashion, *extra)]
    return cli_main(["fit", *args]), logs


# recipe -> (flags, tolerance on the weights after 24 steps). The seed's MLP and SGD run the same kernels in the
# graph as eagerly (measured on an H100: within 1e-5). AdamW in a graph is `capturable` (bias corrections computed
# on the device in float32, not in Python floats) and cuDNN may pick other convolution kernels during a capture:
# measured 6.4e-5 (AdamW) and 2.4e-5 (CNN) there, rounding that Adam's normalised steps carry on. With cuDNN's
# TF32 convolutions (PyTorch's default) the CNN differed by 1.6e-4 on an H200 (torch 2.11): the comparison runs
# them in full float32, so that the test sees the graph's arithmetic, not TF32's 10-bit rounding.
RECIPES = {
    "seed": ([], 1e-5),
    "adamw_cosine_clip": (
        [
            "--model.optimizer=adamw",
            "--model.lr_scheduler=cosine",  # a new learning rate each epoch: the graph is captured again
            "--model.weight_decay=0.01",
            "--model.gradient_clip_val=0.5",
            "--model.label_smoothing=0.1",
        ],
        2e-4,
    ),
    "cnn_momentum": (["--model.net=cnn", "--model.momentum=0.9", "--model.nesterov=true"], 1e-4),
}


@pytest.mark.parametrize("recipe", RECIPES)
def test_graph_step_equals_the_eager_step(fashion, recipe, monkeypatch):
    flags, tolerance = RECIPES[recipe]
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    common = ["--trainer.max_epochs=3", "--data.steps_per_batch=3", *flags]  # groups of 3, 3, 2
    graph, graph_logs = gpu_run(fashion, "graph", *common)
    eager, eager_logs = gpu_run(fashion, "eager", *common, "--model.cuda_graph=off")
    assert graph.model.steps.captured.replays >= 3  # epochs 2 and 3 (epoch 1 warms up; last groups are shorter)
    assert eager.model.steps.captured is None
    assert graph.trainer.global_step == eager.trainer.global_step == 24
    expected = weights(last_ckpt(eager_logs))
    for name, value in weights(last_ckpt(graph_logs)).items():
        difference = float((value - expected[name]).abs().max())
        print(f"{recipe} {name}: {difference:.2e}")  # (shown with pytest -rP: the figures in RECIPES' comment)
        assert difference <= tolerance, (name, difference)
    # The epoch sums kept inside the graph give the eager run's training accuracy (a prediction may flip: 1/256).
    graph_acc, eager_acc = (float(cli.trainer.callback_metrics["train/acc"]) for cli in (graph, eager))
    assert graph_acc == pytest.approx(eager_acc, abs=0.01)


def test_a_learning_rate_search_before_the_fit_leaves_graph_steps_equal_to_eager_ones(fashion):
    # LearningRateFinder takes 20 single steps (its rate captured anew at each), then restores the optimizer from its
    # checkpoint: new momentum buffers, none yet. A graph kept from the search, or captured while they are created,
    # would step with stale or ever-new buffers; the graph warms up and captures again (epochs 1-3, 8 steps each).
    flags = ["--trainer.max_epochs=6", "--model.momentum=0.9", "--trainer.callbacks+=LearningRateFinder"]
    flags += ["--trainer.callbacks.num_training_steps=20", "--trainer.callbacks.update_attr=false"]
    graph, graph_logs = gpu_run(fashion, "graph", *flags)
    eager, eager_logs = gpu_run(fashion, "eager", *flags, "--model.cuda_graph=off")
    assert graph.model.steps.captured.replays >= 2
    assert graph.trainer.global_step == eager.trainer.global_step == 48
    expected = weights(last_ckpt(eager_logs))
    for name, value in weights(last_ckpt(graph_logs)).items():
        assert torch.allclose(value, expected[name], atol=1e-5), name


def test_graph_steps_equal_the_seeds_loop(fashion):
    seed_config = Path(__file__).parents[1] / "configs" / "seed.yaml"
    steps = 24  # 3 epochs of 8: groups of 4 are warmed up in epoch 1 and replayed in epochs 2 and 3
    cli = build_cli(
        [f"--config={seed_config}", *gpu_args(fashion, f"--trainer.max_steps={steps}", "--data.steps_per_batch=4")],
        run=False,
    )
    cli.datamodule.prepare_data()
    cli.datamodule.setup("fit")
    net = type(cli.model.net)().cuda()
    net.load_state_dict(cli.model.net.state_dict())
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3)
    step_size = cli.datamodule.hparams.batch_size
    batches = [
        b for group in cli.datamodule.train_dataloader() for b in step_batches(split_into_steps(group, step_size))
    ]
    for _ in range(steps // 8):
        for images, labels in batches:  # the seed's loop: unshuffled, batch by batch
            loss = torch.nn.functional.cross_entropy(net(images.cuda()), labels.cuda())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.model.steps.captured.replays == 4
    trained = cli.model.net.state_dict()  # (Lightning moves the module back to the CPU after fit)
    for name, value in net.state_dict().items():
        assert torch.allclose(trained[name], value.cpu(), atol=1e-5), name


class NoSyncAfterTheCapture(L.Callback):
    """CUDA's sync debug mode at "error" from the first training batch after the graph's capture (a capture
    synchronizes) until validation: fetching, augmenting, replaying, counting, logging and the NaN guard never wait
    for the GPU."""

    def __init__(self) -> None:
        self.batches = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        captured = pl_module.steps.captured
        if captured is not None and captured.graph is not None:
            torch.cuda.set_sync_debug_mode("error")
            self.batches += 1

    def on_validation_start(self, trainer, pl_module) -> None:
        torch.cuda.set_sync_debug_mode("default")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        torch.cuda.set_sync_debug_mode("default")

    def on_exception(self, trainer, pl_module, exception) -> None:
        torch.cuda.set_sync_debug_mode("default")


def test_training_batches_never_wait_for_the_gpu(fashion):
    # 256 images in batches of 48 (5 and one of 16), 2 steps a group: groups of 2, 2 and a shorter last one, which
    # runs eagerly; the graph is captured in epoch 2. Every step's values are logged, from pinned host memory.
    flags = ["--data.batch_size=48", "--data.steps_per_batch=2", "--trainer.max_epochs=3"]
    flags += ["--trainer.log_every_n_steps=1", "--model.dropout=0.2", "--data.augment=true"]
    cli = build_cli(gpu_args(fashion, *flags), run=False)
    guard = next(cb for cb in cli.trainer.callbacks if isinstance(cb, FiniteLossGuard))
    guard.check_every_n_steps = 2  # its flag sent to the host at every group, read once there
    watch = NoSyncAfterTheCapture()
    cli.trainer.callbacks.insert(0, watch)  # first in every hook: before the callbacks that time epochs (and sync)
    try:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert watch.batches >= 3  # (5: epoch 2 after the capture, all of epoch 3)
    assert cli.model.steps.captured.replays >= 3
    assert scalar_steps(fashion.logs, "train/loss_step") == list(range(1, 3 * 6 + 1))  # 6 steps an epoch


@pytest.mark.parametrize(
    ("flag", "reason"),
    [
        ("--trainer.precision=16-mixed", "precision 16-mixed"),
        ("--model.accumulate_grad_batches=2", "accumulate"),
        ("--trainer.callbacks+=ModelPruning --trainer.callbacks.pruning_fn=l1_unstructured", "ModelPruning"),
    ],
)
def test_graph_falls_back_to_eager_steps_saying_why(fashion, flag, reason):
    with pytest.warns(UserWarning, match=f"runs eagerly, not as a CUDA graph: {reason}"):
        cli, _ = gpu_run(fashion, "fallback", "--model.cuda_graph=on", "--trainer.max_epochs=1", *flag.split())
    assert cli.model.steps.captured is None
    assert cli.trainer.global_step == (8 if "accumulate" not in flag else 4)


def test_kill_9_then_resume_on_gpu_gives_the_same_weights(fashion):
    def command(logs, *extra):
        cpu_command = fit_command(fashion, logs, *extra)
        return [a.replace("--trainer.accelerator=cpu", "--trainer.accelerator=gpu") for a in cpu_command]

    reference = fashion.root / "reference_gpu"
    subprocess.run(command(reference, "--trainer.max_epochs=8"), check=True, capture_output=True)
    killed = fashion.root / "killed_gpu"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    process = subprocess.Popen(command(killed, "--trainer.max_epochs=8"), **quiet)
    wait_for(last_ckpt(killed), process)
    time.sleep(1.0)
    process.send_signal(signal.SIGKILL)
    process.wait()
    subprocess.run(command(killed, "--trainer.max_epochs=8", "--ckpt_path=last"), check=True, capture_output=True)
    expected = weights(last_ckpt(reference))
    for name, value in weights(last_ckpt(killed)).items():
        assert torch.allclose(value, expected[name], atol=1e-6), name
