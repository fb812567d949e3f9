"""On a CUDA device: the dataset lives on the GPU, training/resume/test work there, NaN is caught without syncs."""

import pytest
import torch

from fashion_lightning.cli import build_cli, cli_main
from tests.helpers import TEST_COUNT, cli_args

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def gpu_args(fashion, *extra):
    return [a.replace("--trainer.accelerator=cpu", "--trainer.accelerator=gpu") for a in cli_args(fashion, *extra)]


def test_dataset_is_kept_on_the_gpu_by_default(fashion):
    cli = build_cli(gpu_args(fashion), run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.datamodule.datasets["train"].images.is_cuda
    assert cli.datamodule.datasets["test"].images.is_cuda


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
