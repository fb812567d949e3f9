"""The benchmark scripts run to their report on the tiny data. Their numbers are not judged here (they are timings,
and README quotes them beside the command that printed them); that the scripts still run is, so that a lent GPU's
minutes are not spent finding out."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fashion_lightning.datamodule import FashionMNISTDataModule

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"
TINY = ["--data.val_size=64", "--data.download=false"]  # fit flags for the tiny data (320 training images)
RATIO = r"\d+\.\d+ \[\d+\.\d+, \d+\.\d+\]"  # median [min, max]

pytestmark = pytest.mark.slow


@pytest.fixture
def prepared(fashion):
    """The tiny data, prepared as a first fit would."""
    FashionMNISTDataModule(data_dir=str(fashion.data_dir), source_dir=str(fashion.source_dir)).prepare_data()
    return fashion.data_dir


def bench(tmp_path, script: str, *args: str) -> subprocess.CompletedProcess:
    # (TMPDIR: the scripts' work folders go under tmp_path)
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    command = [sys.executable, str(BENCHMARKS / script), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def report(tmp_path, script: str, *args: str) -> str:
    """What ``script`` printed, after it ended well."""
    done = bench(tmp_path, script, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_epoch_time_prints_every_variant_and_the_ratios_the_targets_are_about(tmp_path, prepared):
    out = report(
        tmp_path, "epoch_time.py", f"--data-dir={prepared}", "--epochs=2", "--rounds=1", f"--fit-args={' '.join(TINY)}"
    )
    for variant in ("(a) seed loop", "(b) compute floor", "(c) fashion-lightning fit"):
        assert re.search(rf"\| {re.escape(variant)} \| \d+\.\d+ \|", out)
    assert re.search(rf"fit / floor per step, interleaved in one process \(target <= 1.05 on CPU\): {RATIO}", out)
    assert re.search(rf"a framework-free loop doing the same work .*: {RATIO} over 1 epochs", out)
    assert re.search(rf"seed / fit test pass \(target > 1\): {RATIO}", out)


def test_step_overhead_splits_a_batch_into_its_parts(tmp_path, prepared):
    # One optimizer step per batch: 4 training batches an epoch on the tiny data
    out = report(
        tmp_path, "step_overhead.py", f"--data-dir={prepared}", "--epochs=2", "--", *TINY, "--data.steps_per_batch=1"
    )
    for part in ("steps", "bookkeeping", "step call", "hooks", "gather", "loop"):
        assert re.search(rf"^  {part} +\d+\.\d+ ms", out, re.MULTILINE)
    assert re.search(r"all but the steps: \d+\.\d+ ms a batch", out)


def test_step_overhead_with_one_batch_an_epoch_says_what_to_change(tmp_path, prepared):
    # The shipped 64 steps per batch make the tiny data's epoch one batch: no two batches to time apart
    done = bench(tmp_path, "step_overhead.py", f"--data-dir={prepared}", "--epochs=2", "--", *TINY)
    assert done.returncode != 0
    assert "error: nothing to measure" in done.stderr
    assert "--data.steps_per_batch" in done.stderr
    assert "Traceback" not in done.stderr


def test_profile_fit_prints_the_profile_of_one_epoch(tmp_path, prepared):
    out = report(tmp_path, "profile_fit.py", f"--data-dir={prepared}", "--top=5", "--sort=cumulative", "--", *TINY)
    assert re.search(r"\d+ function calls .* in \d+\.\d+ seconds", out)
    assert "cumtime" in out


def test_accuracy_runs_the_cnn_recipe_end_to_end_and_shows_its_commands(tmp_path, prepared):
    flags = " ".join(["--trainer.max_epochs=1", *TINY])
    recipe = ["--recipes", "cnn", f"--data-dir={prepared}", f"--fit-args={flags}"]
    rows = {}
    for form in ([], ["--separate-test"]):  # the test in fit's process, or as a second command
        out = report(tmp_path, "accuracy.py", *recipe, *form)
        row = re.search(r"^\| cnn \| (\d+\.\d+)% \| \d+\.\d+ min \| (.*) \|$", out, re.MULTILINE)
        assert row, out
        rows[bool(form)] = row.groups()
    assert rows[False][1] == f"`fashion-lightning fit --config=configs/cnn.yaml --test_after_fit=true {flags}`"
    assert rows[True][1].startswith(f"`fashion-lightning fit --config=configs/cnn.yaml {flags}`<br>")
    assert f"`fashion-lightning test --config=configs/cnn.yaml {flags} --ckpt_path <its best.ckpt>`" in rows[True][1]
    assert rows[False][0] == rows[True][0]  # the same best checkpoint, the same test accuracy


def test_serve_load_prints_a_row_per_batching_and_client_count(tmp_path):
    pytest.importorskip("litserve")
    out = report(tmp_path, "serve_load.py", "--rounds=1", "--requests=8", "--seconds=1")
    for batching in ("on", "off"):
        for clients in (1, 8, 64):
            assert re.search(rf"^\| {batching} \| {clients} \| \d+ \| [\d.]+ \| [\d.]+ \| 8 \| 0 \|$", out, re.M)
