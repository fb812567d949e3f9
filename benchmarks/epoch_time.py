"""Seconds per training epoch: the seed's loop, the compute floor, and ``fashion-lightning fit``, side by side.

    python benchmarks/epoch_time.py                 # CPU, 3 epochs each (the first is a warm-up)
    python benchmarks/epoch_time.py --device cuda   # the same comparison on a GPU

Each variant runs in its own process (so its peak RSS is its own), one after the other, on the real data:
  (a) seed:  torchvision FashionMNIST + ToTensor + DataLoader(batch 64), the seed's train()/test() loops;
  (b) floor: the same MLP and SGD step over pre-made tensor batches, no framework;
  (c) fit:   ``cli_main(["fit", ...])`` with the shipped defaults (logger, metrics, checkpoints, progress bar;
             its output goes to a file).
Prints the median training-epoch time after the warm-up epoch, one test pass, the ratios and peak RSS.
"""

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

BATCH = 64


def seed_network() -> nn.Module:
    """The seed's NeuralNetwork, as written there."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
    )


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_seed(data_dir: str, epochs: int, device: str) -> dict:
    from torch.utils.data import DataLoader
    from torchvision import datasets
    from torchvision.transforms import ToTensor

    train_data = datasets.FashionMNIST(root=data_dir, train=True, download=False, transform=ToTensor())
    test_data = datasets.FashionMNIST(root=data_dir, train=False, download=False, transform=ToTensor())
    train_loader, test_loader = DataLoader(train_data, batch_size=BATCH), DataLoader(test_data, batch_size=BATCH)
    model = seed_network().to(device)
    loss_fn, optimizer = nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=1e-3)
    train_s, test_s, accuracy = [], [], 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        for batch, (x, y) in enumerate(train_loader):
            x, y = x.to(device), y.to(device)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if batch % 100 == 0:  # the seed prints here; .item() is part of its cost
                loss.item()
        _sync(device)
        train_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test_loader:
                x, y = x.to(device), y.to(device)
                correct += (model(x).argmax(1) == y).type(torch.float).sum().item()
        test_s.append(time.perf_counter() - start)
        accuracy = correct / len(test_data)
    return {"train_s": train_s, "test_s": test_s, "test_acc": accuracy, "steps": len(train_loader)}


def run_floor(data_dir: str, epochs: int, device: str) -> dict:
    from fashion_lightning.raw_files import load_split

    images, labels = load_split(data_dir, "train")
    # Pre-made batches, already scaled and on the device: only the model step is timed.
    batches = [
        (images[i : i + BATCH].unsqueeze(1).float().div(255).to(device), labels[i : i + BATCH].to(device))
        for i in range(0, len(labels), BATCH)
    ]
    test_images, test_labels = load_split(data_dir, "test")
    test_x, test_y = test_images.unsqueeze(1).float().div(255).to(device), test_labels.to(device)
    model = seed_network().to(device)
    loss_fn, optimizer = nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=1e-3)
    train_s, test_s = [], []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        for x, y in batches:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        _sync(device)
        train_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        with torch.no_grad():
            accuracy = (model(test_x).argmax(1) == test_y).float().mean().item()
        test_s.append(time.perf_counter() - start)
    return {"train_s": train_s, "test_s": test_s, "test_acc": accuracy, "steps": len(batches)}


def run_fit(data_dir: str, epochs: int, device: str) -> dict:
    from fashion_lightning.callbacks import EpochTimer
    from fashion_lightning.cli import cli_main

    accelerator = "gpu" if device.startswith("cuda") else "cpu"
    workdir = tempfile.mkdtemp(prefix="fashion-bench-")
    common = [f"--data.data_dir={data_dir}", f"--trainer.accelerator={accelerator}", "--trainer.devices=1"]
    log_path = Path(workdir) / "fit.log"
    with open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        cli = cli_main(
            [
                "fit",
                *common,
                f"--trainer.max_epochs={epochs}",
                f"--trainer.default_root_dir={workdir}",
                f"--trainer.logger.init_args.save_dir={workdir}/lightning_logs",
            ]
        )
        timer = next(cb for cb in cli.trainer.callbacks if isinstance(cb, EpochTimer))
        start = time.perf_counter()
        results = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
        test_s = time.perf_counter() - start
    steps = cli.trainer.num_training_batches  # 860: the defaults hold out 5,000 of the 60,000 images
    return {
        "train_s": timer.train_epoch_seconds,
        "test_s": [test_s],
        "test_acc": results[0]["test/acc"],
        "steps": steps,
    }


RUNNERS = {"seed": run_seed, "floor": run_floor, "fit": run_fit}
LABELS = {"seed": "(a) seed loop", "floor": "(b) compute floor", "fit": "(c) fashion-lightning fit"}


def child(args) -> None:
    torch.manual_seed(0)
    result = RUNNERS[args.child](args.data_dir, args.epochs, args.device)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


def measure(name: str, args) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        name,
        "--epochs",
        str(args.epochs),
        "--device",
        args.device,
        "--data-dir",
        args.data_dir,
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result = json.loads(next(line for line in output.splitlines() if line.startswith("RESULT "))[7:])
    measured = result["train_s"][1:] or result["train_s"]  # drop the warm-up epoch
    result["epoch_s"] = statistics.median(measured)
    result["step_ms"] = result["epoch_s"] / result["steps"] * 1000
    result["test_pass_s"] = statistics.median(result["test_s"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per variant; the first is a warm-up")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--data-dir", default="data", help="prepared with `fashion-lightning fit` or prepare")
    parser.add_argument("--only", nargs="*", choices=list(RUNNERS), default=list(RUNNERS))
    parser.add_argument("--child", choices=list(RUNNERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from fashion_lightning.datamodule import FashionMNISTDataModule

    FashionMNISTDataModule(data_dir=args.data_dir).prepare_data()  # fetch and verify once, outside the timings
    print(f"device={args.device} epochs={args.epochs} threads={torch.get_num_threads()} torch={torch.__version__}")
    results = {name: measure(name, args) for name in args.only}
    print("| variant | s / train epoch | steps | ms / step | s / test pass | test acc | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {LABELS[name]} | {r['epoch_s']:.2f} | {r['steps']} | {r['step_ms']:.2f} | {r['test_pass_s']:.2f} "
            f"| {r['test_acc']:.4f} | {r['peak_rss_mb']:.0f} |"
        )
    if {"seed", "fit"} <= results.keys():
        seed, fit = results["seed"], results["fit"]
        print(
            f"(a)/(c) epoch time: {seed['epoch_s'] / fit['epoch_s']:.2f}  (target >= 3.0); "
            f"per step: {seed['step_ms'] / fit['step_ms']:.2f}"
        )
        print(f"test pass (a)/(c): {seed['test_pass_s'] / fit['test_pass_s']:.2f}  (target > 1)")
        print(f"peak RSS (c)/(a): {fit['peak_rss_mb'] / seed['peak_rss_mb']:.2f}  (target <= 1.25)")
    if {"floor", "fit"} <= results.keys():
        fit, floor = results["fit"], results["floor"]
        print(
            f"(c)/(b) epoch time: {fit['epoch_s'] / floor['epoch_s']:.2f}  (target <= 1.25); "
            f"per step: {fit['step_ms'] / floor['step_ms']:.2f}"
        )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
