"""Seconds per training epoch: the seed's loop, the compute floor and ``fashion-lightning fit``, in interleaved rounds.

    python benchmarks/epoch_time.py                            # CPU: 3 rounds, 3 epochs each (the first a warm-up)
    python benchmarks/epoch_time.py --device cuda --epochs 4   # adds (d), the whole step as one CUDA graph

The machines this runs on are noisy (the same variant varies by half from one minute to the next), so variants are
compared only side by side: each round runs every variant once, each in its own process (for its peak RSS), in an
order that rotates from round to round, on the real data:
  (a) seed:  torchvision FashionMNIST + ToTensor + DataLoader(batch 64), the seed's train()/test() loops;
  (b) floor: the same MLP and SGD step over pre-made tensor batches, no framework;
  (c) fit:   ``cli_main(["fit", ...])`` with the shipped defaults (logger, metrics, checkpoints, progress bar;
             64 optimizer steps per Lightning step on a CPU; on a GPU 16, replayed as one CUDA graph);
  (d) graph: (GPU only) the floor's whole step (forward, loss, backward, SGD) captured in one CUDA graph;
  (e) fit_k1:    (GPU only) fit with one optimizer step per Lightning step (--data.steps_per_batch 1);
  (f) fit_eager: (GPU only) fit with one eager step per Lightning step (also --model.cuda_graph off).
Prints each variant's median over rounds and, for each ratio, the median and range of the per-round ratios.

Runs in separate processes are seconds apart, and this machine's speed changes within seconds (per-round ratios of
0.7-1.8 for the same code). So on a CPU, fit's process also runs the floor, interleaved: each time fit has trained 128
optimizer steps, the floor trains 128 steps of its own, timed apart and taken out of fit's time. Both then
run under the same conditions, a fraction of a second apart (finer interleaving would make each evict the other's
weights from the caches); the interleaved ratio (fit / floor per step, epoch by epoch, warm-up dropped) is the one
the CPU target is about. Likewise a framework-free loop doing the same work as a fit epoch (shuffled training,
validation, the best and the last checkpoint written) trains 128 steps beside each of the floor's (the two take
turns at going first: whatever follows the free loop's gathers starts with colder caches), and validates and
writes its checkpoints right after each fit epoch: fit's whole epoch (from one epoch's start to the next's, the
others' time taken out) over the free loop's (its time per step times fit's steps, plus its validation and
checkpoints) is the whole-epoch ratio.
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
from torch import Tensor, nn

BATCH = 64
INTERLEAVE_STEPS = 128  # optimizer steps of fit between two runs of the floor (~0.3 s on a CPU)


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


class Floor:
    """The floor: the seed's MLP and SGD step over pre-made tensor batches (already scaled, on the device)."""

    def __init__(self, data_dir: str, device: str) -> None:
        from fashion_lightning.data import to_unit_float
        from fashion_lightning.raw_files import load_split

        images, labels = load_split(data_dir, "train")
        self.batches = [
            (to_unit_float(images[i : i + BATCH]).to(device), labels[i : i + BATCH].to(device))
            for i in range(0, len(labels), BATCH)
        ]
        self.model = seed_network().to(device)
        self.loss_fn, self.optimizer = nn.CrossEntropyLoss(), torch.optim.SGD(self.model.parameters(), lr=1e-3)
        self.device, self.position = device, 0

    def steps(self, count: int) -> float:
        """Seconds to train the next ``count`` batches (cycling through the epoch)."""
        model, loss_fn, optimizer = self.model, self.loss_fn, self.optimizer
        _sync(self.device)
        start = time.perf_counter()
        model.train()
        for index in range(self.position, self.position + count):
            x, y = self.batches[index % len(self.batches)]
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        _sync(self.device)
        self.position = (self.position + count) % len(self.batches)
        return time.perf_counter() - start


class FreeLoop:
    """A framework-free loop doing what one ``fit`` epoch does: shuffled training images in steps of 64 (55,000 with
    the defaults), validation on those held out (5,000; the test split if none) (loss, accuracy), the best and the
    last checkpoint written. Its training runs in pieces (``train_steps``), its validation and checkpoints apart
    (``epoch_end``). ``val_size`` and ``split_seed`` are fit's (``--data.*``)."""

    def __init__(self, data_dir: str, device: str, workdir: str, val_size: int, split_seed: int) -> None:
        from fashion_lightning.data import split_train_val, to_unit_float
        from fashion_lightning.raw_files import load_split

        images, labels = load_split(data_dir, "train")
        train_idx, val_idx = split_train_val(len(labels), val_size, seed=split_seed)
        self.train = to_unit_float(images[train_idx]).to(device), labels[train_idx].to(device)
        val_images, val_labels = (images[val_idx], labels[val_idx]) if val_size else load_split(data_dir, "test")
        self.val = to_unit_float(val_images).to(device), val_labels.to(device)
        self.model = seed_network().to(device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-3)
        self.device, self.workdir, self.best = device, Path(workdir), 0.0
        self.order: list[Tensor] = []  # the rest of this epoch's shuffled batches of indices

    def train_steps(self, count: int) -> float:
        """Seconds to train the next ``count`` shuffled batches (a new order at each epoch's start)."""
        model, optimizer = self.model, self.optimizer
        images, labels = self.train
        _sync(self.device)
        start = time.perf_counter()
        model.train()
        for _ in range(count):
            if not self.order:
                self.order = list(torch.randperm(len(labels), device=self.device).split(BATCH))[::-1]
            index = self.order.pop()
            loss = nn.functional.cross_entropy(model(images.index_select(0, index)), labels.index_select(0, index))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        _sync(self.device)
        return time.perf_counter() - start

    def epoch_end(self) -> float:
        """Seconds to validate and write the best and the last checkpoint."""
        model, optimizer = self.model, self.optimizer
        _sync(self.device)
        start = time.perf_counter()
        model.eval()
        with torch.no_grad():
            correct, loss_sum = 0, 0.0
            for x, y in zip(*(t.split(1000) for t in self.val), strict=True):
                logits = model(x)
                loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
                correct += (logits.argmax(1) == y).sum().item()
        accuracy = correct / len(self.val[1])
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "val_acc": accuracy}
        if accuracy >= self.best:
            self.best = accuracy
            torch.save(state, self.workdir / "best.pt")
        torch.save(state, self.workdir / "last.pt")
        _sync(self.device)
        return time.perf_counter() - start


def run_floor(data_dir: str, epochs: int, device: str) -> dict:
    from fashion_lightning.data import to_unit_float
    from fashion_lightning.raw_files import load_split

    floor = Floor(data_dir, device)
    model, steps = floor.model, len(floor.batches)
    test_images, test_labels = load_split(data_dir, "test")
    test_x, test_y = to_unit_float(test_images).to(device), test_labels.to(device)
    train_s, test_s = [], []
    for _ in range(epochs):
        train_s.append(floor.steps(steps))
        start = time.perf_counter()
        with torch.no_grad():
            accuracy = (model(test_x).argmax(1) == test_y).float().mean().item()
        test_s.append(time.perf_counter() - start)
    return {"train_s": train_s, "test_s": test_s, "test_acc": accuracy, "steps": steps}


def run_graph(data_dir: str, epochs: int, device: str) -> dict:
    """(d): the floor's step captured once in a CUDA graph and replayed per batch (indices copied in)."""
    import torch.nn.functional as F

    from fashion_lightning.raw_files import load_split

    images, labels = (t.to(device) for t in load_split(data_dir, "train"))
    steps = len(labels) // BATCH  # whole batches; the partial last one is left out of this floor
    model = seed_network().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    static_index = torch.zeros(BATCH, dtype=torch.long, device=device)

    def step() -> None:
        x = images[static_index].unsqueeze(1).float().div_(255)  # (64, 1, 28, 28)
        F.cross_entropy(model(x), labels[static_index]).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the graph, as CUDA graphs require
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    order = torch.arange(steps * BATCH, device=device).view(steps, BATCH)
    train_s = []
    for _ in range(epochs):
        _sync(device)
        start = time.perf_counter()
        for batch_index in order:
            static_index.copy_(batch_index)
            graph.replay()
        _sync(device)
        train_s.append(time.perf_counter() - start)
    return {"train_s": train_s, "test_s": [0.0], "test_acc": float("nan"), "steps": steps}


def run_fit(data_dir: str, epochs: int, device: str, *extra: str) -> dict:
    """fit with the shipped defaults; on a CPU, interleaved with the floor and the free loop (``Interleaved``), both
    timed apart and taken out of fit's times."""
    import lightning as L

    from fashion_lightning import batch_counting
    from fashion_lightning.callbacks import EpochTimer
    from fashion_lightning.cli import build_cli
    from fashion_lightning.data import step_batches

    workdir = tempfile.mkdtemp(prefix="fashion-bench-")
    floor = loop = None  # on a CPU: the floor, and the free loop once fit's data options are known
    epochs_seen: list[dict] = []  # per fit epoch: what ran beside it, and fit's whole epoch

    class Interleaved(L.Callback):
        """Each time fit has trained INTERLEAVE_STEPS optimizer steps, the floor and the free loop train as many
        (taking turns at going first); when fit's epoch has ended (validation, checkpoints), the free loop validates
        and writes its checkpoints. All of it is timed apart and taken out of fit's times."""

        owed = 0  # optimizer steps fit has yet to train to match the floor's

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self._close_epoch()
            epochs_seen.append(dict.fromkeys(("floor_s", "free_s", "steps_beside"), 0))
            self.owed = 0
            epochs_seen[-1]["start"] = time.perf_counter()

        def on_train_end(self, trainer, pl_module) -> None:
            self._close_epoch()

        @staticmethod
        def _close_epoch() -> None:  # fit's whole epoch: from one epoch's start to the next's
            if epochs_seen:
                epoch = epochs_seen[-1]
                epoch["whole_s"] = time.perf_counter() - epoch["start"] - epoch["floor_s"] - epoch["free_s"]
                epoch["free_end_s"] = loop.epoch_end()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if self.owed <= 0:
                epoch = epochs_seen[-1]
                # Whatever runs right after the free loop (its gathers sweep 172 MB) starts with colder caches:
                # ~1% slower per step when fit always did. The order alternates so that fit and the floor share it.
                runs = [("floor_s", floor.steps), ("free_s", loop.train_steps)]
                for key, train in runs if epoch["steps_beside"] % (2 * INTERLEAVE_STEPS) == 0 else runs[::-1]:
                    epoch[key] += train(INTERLEAVE_STEPS)
                epoch["steps_beside"] += INTERLEAVE_STEPS  # each of the floor and the free loop
                self.owed += INTERLEAVE_STEPS
            self.owed -= len(step_batches(batch))

    # Interleaved's batch hook is written for groups: the automatic choice stays the shipped one (a training-batch
    # hook written outside the package would otherwise get one step a batch: batch_counting.hooks_written_elsewhere).
    written_here = Interleaved.on_train_batch_start.__module__
    batch_counting.GROUP_AWARE_PACKAGES = (*batch_counting.GROUP_AWARE_PACKAGES, written_here)

    accelerator = "gpu" if device.startswith("cuda") else "cpu"
    common = [f"--data.data_dir={data_dir}", f"--trainer.accelerator={accelerator}", "--trainer.devices=1"]
    log_path = Path(workdir) / "fit.log"
    with open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        cli = build_cli(
            [
                *common,
                f"--trainer.max_epochs={epochs}",
                f"--trainer.default_root_dir={workdir}",
                f"--trainer.logger.init_args.save_dir={workdir}/lightning_logs",
                *extra,
            ],
            run=False,
        )
        if device == "cpu":
            data = cli.datamodule.hparams
            floor, loop = Floor(data_dir, device), FreeLoop(data_dir, device, workdir, data.val_size, data.split_seed)
            # Right after EpochTimer, which ends its pause for a validation inside the epoch at the next batch's
            # start: the floor and free loop steps that follow are then inside fit's timed span, and taken out once.
            timer_at = next(i for i, callback in enumerate(cli.trainer.callbacks) if isinstance(callback, EpochTimer))
            cli.trainer.callbacks.insert(timer_at + 1, Interleaved())
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        timer = next(cb for cb in cli.trainer.callbacks if isinstance(cb, EpochTimer))
        start = time.perf_counter()
        results = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
        test_s = time.perf_counter() - start
    steps = cli.trainer.global_step // epochs  # optimizer steps: 860 (the defaults hold out 5,000 images)
    beside = [e["floor_s"] + e["free_s"] for e in epochs_seen] or [0.0] * epochs  # inside EpochTimer's spans
    train_s = [epoch - other for epoch, other in zip(timer.train_epoch_seconds, beside, strict=True)]
    return {
        "train_s": train_s,
        "test_s": [test_s],
        "test_acc": results[0]["test/acc"],
        "steps": steps,
        # fit / floor per step, epoch by epoch (both trained the same steps; the warm-up epoch dropped)
        "interleaved": [
            (fit / steps) / (e["floor_s"] / e["steps_beside"]) for fit, e in zip(train_s, epochs_seen, strict=False)
        ][1:],
        # fit's whole epoch (train, validation, checkpoints, TensorBoard) / the free loop's, epoch by epoch: the free
        # loop's training scaled to fit's steps, plus its validation and checkpoints
        "whole": [e["whole_s"] / (e["free_s"] / e["steps_beside"] * steps + e["free_end_s"]) for e in epochs_seen][1:],
    }


RUNNERS = {
    "seed": run_seed,
    "floor": run_floor,
    "fit": run_fit,
    "graph": run_graph,
    "fit_k1": lambda *args: run_fit(*args, "--data.steps_per_batch=1"),
    "fit_eager": lambda *args: run_fit(*args, "--data.steps_per_batch=1", "--model.cuda_graph=off"),
}
GPU_ONLY = ("graph", "fit_k1", "fit_eager")
LABELS = {
    "seed": "(a) seed loop",
    "floor": "(b) compute floor",
    "fit": "(c) fashion-lightning fit",
    "graph": "(d) whole step in a CUDA graph",
    "fit_k1": "(e) fit, 1 step per Lightning step",
    "fit_eager": "(f) fit, 1 eager step per Lightning step",
}
# (numerator, denominator, per) -> what the ratio says; "step" compares ms per step (fit trains 860 steps an epoch
# because 5,000 images are held out for validation; the others 938).
RATIOS = (
    ("fit", "floor", "step", "fit / floor per step, separate processes"),
    ("fit", "floor", "epoch", "fit / floor per epoch"),
    ("seed", "fit", "epoch", "seed / fit per epoch (how much faster than the seed)"),
    ("fit", "graph", "epoch", "fit / graph floor per epoch (GPU)"),
    ("fit_k1", "floor", "epoch", "fit_k1 / floor per epoch (GPU)"),
    ("fit_eager", "fit", "epoch", "fit_eager / fit per epoch (GPU: what graph + grouping gain)"),
    ("seed", "fit", "test", "seed / fit test pass (target > 1)"),
    ("fit", "seed", "rss", "fit / seed peak RSS"),
)
# run_fit's per-epoch ratios on a CPU -> what follows the variant's name in the report
INTERLEAVED_RATIOS = (
    (
        "whole",
        " whole epoch / a framework-free loop doing the same work (train, validate, 2 checkpoints), interleaved "
        "(target <= 1.10 on CPU)",
    ),
    ("interleaved", " / floor per step, interleaved in one process (target <= 1.05 on CPU)"),
)
KEYS = {"step": "step_ms", "epoch": "epoch_s", "test": "test_pass_s", "rss": "peak_rss_mb"}


def child(args) -> None:
    torch.manual_seed(0)
    extra = args.fit_args.split() if args.child.startswith("fit") else []
    result = RUNNERS[args.child](args.data_dir, args.epochs, args.device, *extra)
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
        f"--fit-args={args.fit_args}",
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
    parser.add_argument("--epochs", type=int, default=3, help="epochs per variant and round; the first is a warm-up")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each runs every variant once, order rotating")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--data-dir", default="data", help="prepared with `fashion-lightning fit` or prepare")
    parser.add_argument(
        "--fit-args", default="", help='more fit flags for the fit variants, after an "=": --fit-args="--model.lr=0.1"'
    )
    parser.add_argument("--only", nargs="*", choices=list(RUNNERS), help="variants (default: all for the device)")
    parser.add_argument("--child", choices=list(RUNNERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from fashion_lightning.datamodule import FashionMNISTDataModule

    FashionMNISTDataModule(data_dir=args.data_dir).prepare_data()  # fetch and verify once, outside the timings
    names = args.only or [n for n in RUNNERS if n not in GPU_ONLY or args.device.startswith("cuda")]
    print(f"device={args.device} epochs={args.epochs} rounds={args.rounds} threads={torch.get_num_threads()} "
          f"torch={torch.__version__}")  # fmt: skip
    rounds = []
    for index in range(args.rounds):
        order = names[index % len(names) :] + names[: index % len(names)]
        rounds.append({name: measure(name, args) for name in order})
        print(f"round {index + 1}: " + ", ".join(f"{n} {rounds[-1][n]['epoch_s']:.2f} s" for n in order), flush=True)
    report(names, rounds)


def report(names: list[str], rounds: list[dict]) -> None:
    print("\n| variant | s / train epoch | steps | ms / step | s / test pass | test acc | peak RSS (MB)* |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        med = {k: statistics.median(r[name][k] for r in rounds) for k in ("epoch_s", "step_ms", "test_pass_s")}
        last = rounds[-1][name]
        print(f"| {LABELS[name]} | {med['epoch_s']:.2f} | {last['steps']} | {med['step_ms']:.2f} | "
              f"{med['test_pass_s']:.2f} | {last['test_acc']:.4f} | {last['peak_rss_mb']:.0f} |")  # fmt: skip
    print("* on a CPU, fit's process also holds the interleaved floor and free loop (~0.4 GB).")
    print("\nratios, median over rounds [min, max]:")
    for top, bottom, per, text in RATIOS:
        if top not in names or bottom not in names:
            continue
        values = [r[top][KEYS[per]] / r[bottom][KEYS[per]] for r in rounds if r[bottom][KEYS[per]] > 0]
        if values:
            print(f"  {text}: {statistics.median(values):.2f} [{min(values):.2f}, {max(values):.2f}]")
    for name in (n for n in names if n.startswith("fit")):
        for key, text in INTERLEAVED_RATIOS:
            values = [ratio for r in rounds for ratio in r[name][key]]
            if values:
                print(
                    f"  {name}{text}: "
                    f"{statistics.median(values):.2f} [{min(values):.2f}, {max(values):.2f}] over {len(values)} epochs"
                )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
