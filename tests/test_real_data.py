"""End to end on the real Fashion-MNIST (Debian's dataset-fashion-mnist, installed by `make data` and .ci/run)."""

from pathlib import Path

import pytest

from fashion_lightning.cli import cli_main

REAL_DATA = Path("/usr/share/datasets/fashion-mnist")
SEED_CONFIG = Path(__file__).parents[1] / "configs" / "seed.yaml"
SEED_LOOP_TEST_ACC = 0.649  # the seed's plain loop after 5 epochs (../shared/DESIGN.md)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (REAL_DATA / "train-images-idx3-ubyte.gz").is_file(), reason="real data not installed"),
]


def real_args(tmp_path, *extra):
    return [
        f"--data.data_dir={tmp_path / 'data'}",
        f"--data.source_dir={REAL_DATA}",
        "--data.download=false",
        "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false",
        f"--trainer.logger.init_args.save_dir={tmp_path / 'lightning_logs'}",
        *extra,
    ]


def test_seed_recipe_matches_the_seeds_plain_loop(tmp_path, capsys):
    cli_main(["fit", f"--config={SEED_CONFIG}", *real_args(tmp_path)])
    best = next((tmp_path / "lightning_logs").glob("fashion/version_*/checkpoints/best.ckpt"))
    cli = cli_main(["test", *real_args(tmp_path, f"--ckpt_path={best}")])
    test_acc = float(cli.trainer.callback_metrics["test/acc"])
    assert cli.model.evaluated_images["test"] == 10_000
    assert abs(test_acc - SEED_LOOP_TEST_ACC) <= 0.02, test_acc
    assert "on 10,000 images" in capsys.readouterr().out
