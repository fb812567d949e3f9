"""Test accuracy of each recipe, end to end, with its wall time and the exact commands that produced it.

    python benchmarks/accuracy.py                        # seed loop, configs/seed.yaml, mlp.yaml, cnn.yaml
    python benchmarks/accuracy.py --recipes mlp cnn      # some of them
    python benchmarks/accuracy.py --device cuda          # the same commands with --trainer.accelerator gpu
    python benchmarks/accuracy.py --recipes cnn --fit-args="--trainer.max_epochs=1"   # more flags for fit and test

Each recipe is ``fashion-lightning fit --config configs/<recipe>.yaml --test_after_fit true``: model selection on
the validation split only, then one test of its best checkpoint on the official 10,000 test images, in the same
process. ``--separate-test`` runs that test as a second command (``fashion-lightning test --ckpt_path <its
best.ckpt>``) instead, as this script did before ``--test_after_fit``. "seed-loop" is the seed's plain PyTorch loop
(benchmarks/epoch_time.py) for 5 epochs.
"""

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ("seed-loop", "seed", "mlp", "cnn")
ANCHORS = [
    ("MLP 256-128-100 (zalandoresearch benchmark table)", "88.3%"),
    ("sklearn MLPClassifier (Xiao et al. 2017)", "87.0%"),
    ("RBF SVC (Xiao et al. 2017)", "89.7%"),
    ("small CNNs (zalandoresearch benchmark table)", "91-94%"),
]


def run(command: list[str], log: Path) -> str:
    """Run ``command``, each line of its output logged with the seconds since it started (where a recipe's wall time
    goes: start-up, training, the test), and its total at the end; returns the log."""
    with open(log, "a") as handle:
        handle.write("$ " + " ".join(command) + "\n")
        start = time.perf_counter()
        unbuffered = {**os.environ, "PYTHONUNBUFFERED": "1"}  # (each line timed when it is printed)
        pipe = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
        with subprocess.Popen(command, **pipe, cwd=ROOT, env=unbuffered) as child:
            for line in child.stdout:
                handle.write(f"[{time.perf_counter() - start:6.1f} s] {line}")
        if child.returncode:
            raise subprocess.CalledProcessError(child.returncode, command)
        handle.write(f"# {time.perf_counter() - start:.1f} s\n")
    return log.read_text()


def recipe(name: str, args, workdir: Path) -> dict:
    log = workdir / f"{name}.log"
    start = time.perf_counter()
    if name == "seed-loop":
        command = [
            sys.executable,
            "benchmarks/epoch_time.py",
            "--child",
            "seed",
            "--epochs",
            "5",
            "--device",
            args.device,
            "--data-dir",
            args.data_dir,
        ]
        output = run(command, log)
        accuracy = float(re.findall(r'"test_acc": ([0-9.]+)', output)[-1])
        return {"accuracy": accuracy, "seconds": time.perf_counter() - start, "commands": [" ".join(command[1:])]}
    logs = workdir / "lightning_logs"
    given = shlex.split(args.fit_args)  # (also shown in the commands: they change the result)
    device = ["--trainer.accelerator=gpu", "--trainer.devices=1"] if args.device == "cuda" else []
    common = [
        f"--data.data_dir={args.data_dir}",
        f"--trainer.logger.init_args.save_dir={logs}",
        f"--trainer.logger.init_args.name={name}",
        "--trainer.enable_progress_bar=false",
        *device,
        *given,
    ]
    then_test = [] if args.separate_test else ["--test_after_fit=true"]
    fit = ["fashion-lightning", "fit", f"--config=configs/{name}.yaml", *then_test]
    output = run([sys.executable, "-m", "fashion_lightning", *fit[1:], *common], log)
    shown = [" ".join([*fit, *given])]
    if args.separate_test:
        best = max((logs / name).glob("version_*/checkpoints/best.ckpt"), key=lambda p: p.stat().st_mtime)
        test = ["fashion-lightning", "test", f"--config=configs/{name}.yaml", *common, f"--ckpt_path={best}"]
        output = run([sys.executable, "-m", "fashion_lightning", *test[1:]], log)
        shown.append(" ".join([*test[:3], *given]) + " --ckpt_path <its best.ckpt>")
    accuracy = float(re.findall(r"test/acc: ([0-9.]+) on [0-9,]+ images", output)[-1])
    return {"accuracy": accuracy, "seconds": time.perf_counter() - start, "commands": shown}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="*", choices=RECIPES, default=list(RECIPES))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    parser.add_argument(
        "--fit-args", default="", help='more flags for fit and test, after an "=": --fit-args="--trainer.max_epochs=1"'
    )
    parser.add_argument(
        "--separate-test", action="store_true", help="test in a second command, not in fit's process (--test_after_fit)"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="fashion-accuracy-"))
    print(f"device={args.device}; logs and runs in {workdir}")
    print("| recipe | test accuracy | wall time | command |\n|---|---|---|---|")
    for name in args.recipes:
        result = recipe(name, args, workdir)
        commands = "<br>".join(f"`{c}`" for c in result["commands"])
        print(f"| {name} | {result['accuracy']:.2%} | {result['seconds'] / 60:.1f} min | {commands} |", flush=True)
    for anchor, accuracy in ANCHORS:
        print(f"| {anchor} | {accuracy} | | published |")


if __name__ == "__main__":
    main()
