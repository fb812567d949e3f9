"""Where a training batch's time goes in ``fashion-lightning fit``: the optimizer steps, and what surrounds them.

    python benchmarks/step_overhead.py --data-dir <prepared data>                 # the shipped defaults
    python benchmarks/step_overhead.py --data-dir <prepared data> -- --data.steps_per_batch=16

Runs fit (progress bar and logger as shipped) and splits every training batch (a group of optimizer steps) into:
  steps        the optimizer steps themselves (``TrainingSteps._raw_step``: zero_grad, forward, backward, update);
  bookkeeping  the rest of ``training_step``: counting, per-step logging, the epoch sums;
  step call    Lightning's call into ``training_step`` and back out of it;
  hooks        every callback's ``on_train_batch_start`` and ``on_train_batch_end``;
  gather       the dataset's ``__getitems__``: one index operation and the scaling of the group's images;
  loop         the rest between two batches: Lightning's fetcher and loop, the transfer, ``on_after_batch_transfer``.
Prints the median of each per batch (warm-up epoch dropped) and each part's share of the steps' time.
"""

import argparse
import contextlib
import statistics
import tempfile
import time

import lightning as L

from fashion_lightning.batch_counting import AUTO_STEPS_PER_BATCH
from fashion_lightning.cli import build_cli
from fashion_lightning.data import FashionMNISTTensors
from fashion_lightning.training import TrainingSteps

PARTS = ("steps", "bookkeeping", "step call", "hooks", "gather", "loop")


class Clock(L.Callback):
    """Time stamps at the first (``first=True``) or the last callback's batch hooks."""

    def __init__(self, marks: dict, first: bool) -> None:
        self.marks, self.first = marks, first

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.marks["start_first" if self.first else "start_last"] = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.marks["end_first" if self.first else "end_last"] = time.perf_counter()
        if not self.first:
            self.marks["batches"].append(dict(self.marks))
            self.marks.update(raw=0.0, gather=0.0)


def timed(owner, name: str, marks: dict, key: str) -> None:
    """Wrap ``owner.name`` so that its time adds to ``marks[key]``."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            marks[key] += time.perf_counter() - start

    setattr(owner, name, wrapper)


def parts(batch: dict, previous: dict) -> dict:
    return {
        "steps": batch["raw"],
        "bookkeeping": batch["step_end"] - batch["step_start"] - batch["raw"],
        "step call": batch["step_start"] - batch["start_last"] + batch["end_first"] - batch["step_end"],
        "hooks": batch["start_last"] - batch["start_first"] + batch["end_last"] - batch["end_first"],
        "gather": previous["gather"],  # Lightning fetches the next batch before the current one ends
        "loop": batch["start_first"] - previous["end_last"] - previous["gather"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--epochs", type=int, default=3, help="the first is a warm-up")
    parser.add_argument("fit_args", nargs="*", help="more fit flags, after --")
    args = parser.parse_args()
    marks = {"batches": [], "raw": 0.0, "gather": 0.0}
    for owner, name, key in ((TrainingSteps, "_raw_step", "raw"), (FashionMNISTTensors, "__getitems__", "gather")):
        timed(owner, name, marks, key)
    from fashion_lightning.lit_module import FashionClassifier

    original_step = FashionClassifier.training_step

    def training_step(module, batch, batch_idx):
        marks["step_start"] = time.perf_counter()
        try:
            return original_step(module, batch, batch_idx)
        finally:
            marks["step_end"] = time.perf_counter()

    FashionClassifier.training_step = training_step
    workdir = tempfile.mkdtemp(prefix="fashion-overhead-")
    flags = [f"--data.data_dir={args.data_dir}", f"--trainer.max_epochs={args.epochs}", "--trainer.devices=1"]
    flags += ["--trainer.accelerator=cpu", f"--trainer.default_root_dir={workdir}", *args.fit_args]
    if not any(flag.startswith("--data.steps_per_batch") for flag in args.fit_args):
        # The shipped default, given explicitly: Clock's batch hooks, written outside the package, would otherwise
        # make the automatic choice one step a batch (batch_counting.hooks_written_elsewhere).
        flags.append(f"--data.steps_per_batch={AUTO_STEPS_PER_BATCH['cpu']}")
    with open(f"{workdir}/fit.log", "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        cli = build_cli(flags, run=False)
        cli.trainer.callbacks = [Clock(marks, first=True), *cli.trainer.callbacks, Clock(marks, first=False)]
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    batches, per_epoch = marks["batches"], cli.trainer.num_training_batches
    # Pairs of consecutive batches within an epoch, warm-up epoch dropped (validation sits between epochs).
    rows = [parts(batches[i], batches[i - 1]) for i in range(per_epoch, len(batches)) if i % per_epoch]
    if not rows:
        raise SystemExit(
            f"error: nothing to measure: an epoch holds {per_epoch} training batch(es) and {args.epochs} epoch(s) ran; "
            "this needs two batches or more in an epoch after the first (more data, or a lower "
            "--data.steps_per_batch after --) and --epochs 2 or more."
        )
    steps_per_batch = cli.datamodule.steps_per_batch()
    medians = {part: statistics.median(row[part] for row in rows) * 1e3 for part in PARTS}
    print(f"{steps_per_batch} optimizer steps per training batch, {len(rows)} batches measured (medians):")
    for part in PARTS:
        share = medians[part] / medians["steps"] * 100
        print(f"  {part:12s} {medians[part]:8.3f} ms" + (f"  {share:5.1f}% of the steps" if part != "steps" else ""))
    around = sum(medians[part] for part in PARTS[1:])
    print(f"  all but the steps: {around:.3f} ms a batch, {around / medians['steps'] * 100:.1f}% of the steps")


if __name__ == "__main__":
    main()
