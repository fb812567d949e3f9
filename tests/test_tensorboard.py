"""TensorBoard's own reader and a real TensorBoard server find every curve, image and hparam of a short run."""

import io
import json
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import IMAGES, SCALARS, EventAccumulator

from fashion_lightning.cli import cli_main
from fashion_lightning.plots import BLUES, confusion_matrix_image, image_grid
from tests.helpers import cli_args

EPOCHS = 3
EPOCH_SCALARS = [
    "train/loss",
    "train/acc",
    "train/lr",
    "val/loss",
    "val/acc",
    "val/acc_best",
    "time/train_epoch_s",
    "time/samples_per_s",
]
STEP_SCALARS = ["train/loss_step", "train/acc_step"]
TEST_SCALARS = ["test/loss", "test/acc", "test/images"]


@pytest.fixture
def run_dir(fashion):
    args = cli_args(fashion, f"--trainer.max_epochs={EPOCHS}", "--trainer.log_every_n_steps=2")
    cli_main(["fit", *args])
    run = fashion.logs / "fashion" / "version_0"
    cli_main(["test", *args, f"--ckpt_path={run / 'checkpoints' / 'best.ckpt'}"])
    return run


def test_reader_finds_every_scalar_image_and_hparam(run_dir):
    events = EventAccumulator(str(run_dir), size_guidance={IMAGES: 0, SCALARS: 0})
    events.Reload()
    tags = events.Tags()
    for tag in EPOCH_SCALARS:
        assert len(events.Scalars(tag)) == EPOCHS, tag
    for tag in STEP_SCALARS:
        assert len(events.Scalars(tag)) == EPOCHS * 8 // 2, tag  # 8 steps an epoch, logged every 2
    for tag in TEST_SCALARS:
        assert len(events.Scalars(tag)) == 1, tag
    assert events.Scalars("test/images")[0].value == 160
    assert len(events.Images("confusion_matrix/val")) == EPOCHS
    assert len(events.Images("misclassified/val")) == EPOCHS
    assert len(events.Images("confusion_matrix/test")) == 1
    assert len(events.Images("samples/train")) == 1
    assert set(tags["images"]) == {
        "samples/train",
        "confusion_matrix/val",
        "misclassified/val",
        "confusion_matrix/test",
    }
    picture = Image.open(io.BytesIO(events.Images("confusion_matrix/val")[-1].encoded_image_string))
    assert picture.mode == "RGB"
    assert picture.width > 10 * 44  # ten columns of cells, labels beside them
    logged_grid = events.Images("misclassified/val")[-1]
    grid = Image.open(io.BytesIO(logged_grid.encoded_image_string))
    assert grid.mode == "L"
    assert (grid.width, grid.height) == (logged_grid.width, logged_grid.height)
    hparams = events.PluginTagToContent("hparams")
    assert "_hparams_/experiment" in hparams
    experiment = hparams["_hparams_/experiment"].decode(errors="ignore")
    for name in ("model/lr", "data/batch_size", "val/acc_best", "test/acc"):
        assert name in experiment, name
    best = max(event.value for event in events.Scalars("val/acc"))
    assert events.Scalars("val/acc_best")[-1].value == pytest.approx(best)


def bounding_box(pixels: np.ndarray, color) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the pixels of exactly ``color`` in an (H, W, 3) array."""
    rows, cols = np.nonzero((pixels == np.asarray(color, dtype=np.uint8)).all(axis=-1))
    return rows.min(), cols.min(), rows.max() + 1, cols.max() + 1


def test_epoch_time_counts_the_whole_epochs_training_and_no_validation_inside_it(fashion):
    """``time/train_epoch_s`` with validations inside the epoch: it stopped at the first of them (half the epoch)."""
    import lightning as L

    from fashion_lightning.callbacks import EpochTimer
    from fashion_lightning.cli import build_cli

    class BatchClockSlowValidation(L.Callback):
        busy = 0.0  # seconds inside the training batches

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.started = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.busy += time.perf_counter() - self.started

        def on_validation_epoch_start(self, trainer, pl_module):
            if not trainer.sanity_checking:
                time.sleep(0.3)

    cli = build_cli(cli_args(fashion, "--trainer.max_epochs=1", "--trainer.val_check_interval=0.5"), run=False)
    clock = BatchClockSlowValidation()
    cli.trainer.callbacks.append(clock)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    timer = next(callback for callback in cli.trainer.callbacks if isinstance(callback, EpochTimer))
    assert len(timer.train_epoch_seconds) == 1
    assert clock.busy <= timer.train_epoch_seconds[0] < clock.busy + 0.3  # (two validations of 0.3 s and more)
    assert cli.trainer.logged_metrics["time/train_epoch_s"] == pytest.approx(timer.train_epoch_seconds[0])


def test_confusion_matrix_picture_puts_each_count_in_its_cell_shaded_by_size():
    counts = torch.zeros(10, 10, dtype=torch.long)
    counts.fill_diagonal_(20)
    counts[3, 5] = 40  # true class 3 predicted as 5: the largest count, the darkest cell
    pixels = np.asarray(confusion_matrix_image(counts, title="val", cell=44))
    top, left, bottom, right = bounding_box(pixels, BLUES[0].astype(np.uint8))  # zero counts: the lightest blue
    assert (bottom - top, right - left) == (440, 440)  # the zero cells span the whole 10 x 10 matrix
    dark_top, dark_left, dark_bottom, dark_right = bounding_box(pixels, BLUES[-1].astype(np.uint8))
    assert (dark_bottom - dark_top, dark_right - dark_left) == (44, 44)  # one cell (its white digits inside)
    assert ((dark_top - top) // 44, (dark_left - left) // 44) == (3, 5)  # row: true class, column: predicted
    middle = pixels[top + 7 * 44 + 3, left + 7 * 44 + 3]  # a diagonal cell, half the largest count
    assert tuple(pixels[top + 3, left + 44 + 3]) == tuple(BLUES[0])  # an empty cell
    assert (BLUES[-1] < middle).all()
    assert (middle < BLUES[0]).all()


def test_image_grid_lays_images_out_in_rows_under_their_titles():
    images = torch.zeros(10, 1, 28, 28)
    images[9] = 1.0  # the last image all ink: a black square on the second row
    grid = image_grid(images, [f"image {i}" for i in range(10)], columns=8, scale=3)
    assert grid.mode == "L"
    picture = np.asarray(grid)  # (H, W) gray levels
    ink = picture == 0  # black pixels: the inked image, and bits of the titles' letters
    rows, cols = np.nonzero(ink.sum(axis=1) >= 84)[0], np.nonzero(ink.sum(axis=0) >= 84)[0]
    assert (len(rows), len(cols)) == (84, 84)  # one solid square: 28 pixels, 3 times larger
    assert rows.min() > picture.shape[0] // 2  # image 9 of 8 a row: second row, second column
    assert picture.shape[1] // 8 <= cols.min() < 2 * picture.shape[1] // 8
    assert (picture[: rows.min() - 40] != 0).mean() > 0.9  # the first row: blank images, white


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str, data: bytes | None = None):
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_tensorboard_server_serves_the_run(run_dir):
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "tensorboard.main",
        f"--logdir={run_dir.parent}",
        "--host=127.0.0.1",
        f"--port={port}",
        "--load_fast=false",
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                scalars = get_json(f"{base}/data/plugin/scalars/tags")
                if scalars:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        run_tags = scalars["version_0"]
        for tag in EPOCH_SCALARS + STEP_SCALARS + TEST_SCALARS:
            assert tag in run_tags, tag
        images = get_json(f"{base}/data/plugin/images/tags")["version_0"]
        assert "confusion_matrix/val" in images
        assert "misclassified/val" in images
        experiment = get_json(f"{base}/data/plugin/hparams/experiment", json.dumps({"experimentName": ""}).encode())
        names = {h["name"] for h in experiment["hparamInfos"]}
        metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
        assert {"model/lr", "model/optimizer", "data/batch_size"} <= names
        assert {"val/acc_best", "test/acc"} <= metrics
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_compat_file_writer_writes_into_the_runs_own_event_file(tmp_path):
    # fashion_lightning._compat: the one non-public call (the HParams summary must go into the run's own file).
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    from fashion_lightning._compat import tensorboard_file_writer

    writer = SummaryWriter(str(tmp_path))
    for summary in hparams({"model/lr": 0.1}, {"val/acc_best": 0.0}):
        tensorboard_file_writer(writer).add_summary(summary)
    writer.close()
    files = list(tmp_path.glob("events.out.tfevents.*"))
    assert len(files) == 1  # no sub-run folder, unlike SummaryWriter.add_hparams
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert "val/acc_best" not in events.Tags()["scalars"]  # no false scalar at step 0
    assert "_hparams_/experiment" in events.PluginTagToContent("hparams")
