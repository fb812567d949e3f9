"""Where the time of one `fashion-lightning fit` epoch goes: cProfile's top functions by own time.

python benchmarks/profile_fit.py [--device cuda] [--data-dir data] [-- extra fit flags]
"""

import argparse
import contextlib
import cProfile
import io
import pstats
import tempfile

from fashion_lightning.cli import cli_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime", help="tottime or cumulative")
    parser.add_argument("extra", nargs="*", help="more fit flags, after --")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="fashion-profile-")
    accelerator = "gpu" if args.device == "cuda" else "cpu"
    common = [f"--data.data_dir={args.data_dir}", f"--trainer.accelerator={accelerator}", "--trainer.devices=1"]
    common += ["--trainer.max_epochs=1", f"--trainer.default_root_dir={workdir}"]
    # A short fit first, unprofiled, so that the profiled one finds imports done and caches warm.
    warmup = ["--trainer.limit_train_batches=20", f"--trainer.logger.init_args.save_dir={workdir}/warmup"]
    fit = ["fit", *common, "--trainer.limit_val_batches=1.0", f"--trainer.logger.init_args.save_dir={workdir}"]
    fit += args.extra
    profile = cProfile.Profile()
    with open(f"{workdir}/fit.log", "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        cli_main(["fit", *common, *warmup, *args.extra])
        profile.enable()
        cli_main(fit)
        profile.disable()
    report = io.StringIO()
    pstats.Stats(profile, stream=report).sort_stats(args.sort).print_stats(args.top)
    print(report.getvalue())


if __name__ == "__main__":
    main()
