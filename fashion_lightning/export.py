"""Export a checkpoint's network as ``model.pth`` (plain state_dict), TorchScript and ONNX, each checked.

Every file is loaded back right after it is written and its outputs on a batch of real test images are
compared with the checkpoint's (max abs difference <= ``TOLERANCE``); a mismatch is an error.
"""

import json
import warnings
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from fashion_lightning.data import CLASS_NAMES, load_split
from fashion_lightning.errors import DataUnavailableError, FashionLightningError
from fashion_lightning.inference import load_model
from fashion_lightning.model import build_net

TOLERANCE = 1e-5
Format = Literal["pth", "torchscript", "onnx"]


class ExportError(FashionLightningError):
    """An exported file could not be written, or does not reproduce the checkpoint's outputs."""


def check_batch(data_dir: str, size: int = 256) -> tuple[Tensor, Tensor | None]:
    """The first ``size`` official test images (and labels), or random images when the data is not prepared."""
    try:
        images, labels = load_split(data_dir, "test")
    except DataUnavailableError:
        print(f"note: no prepared data in {data_dir}; checking exports on random images instead")
        return torch.rand(size, 1, 28, 28, generator=torch.Generator().manual_seed(0)), None
    return images[:size].unsqueeze(1).float().div(255), labels[:size]  # (N, 28, 28) uint8 -> (N, 1, 28, 28)


def load_pth(path: str | Path) -> nn.Module:
    """Rebuild the plain network from ``model.pth`` and the ``model.json`` beside it (no Lightning needed)."""
    path = Path(path)
    spec = json.loads(path.with_suffix(".json").read_text())
    net = build_net(spec["net"], spec["image_shape"], spec["num_classes"], spec["hidden_dims"], spec["dropout"])
    net.load_state_dict(torch.load(path, weights_only=True))
    return net.eval()


def export_pth(net: nn.Module, hparams: dict, directory: Path) -> tuple[Path, nn.Module]:
    path = directory / "model.pth"
    torch.save(net.state_dict(), path)  # the seed's format: MLP().load_state_dict(torch.load(path))
    keys = ("net", "image_shape", "num_classes", "hidden_dims", "dropout")
    path.with_suffix(".json").write_text(json.dumps({key: hparams[key] for key in keys}, indent=2))
    return path, load_pth(path)


def export_torchscript(net: nn.Module, example: Tensor, directory: Path) -> tuple[Path, nn.Module]:
    path = directory / "model.torchscript.pt"
    with warnings.catch_warnings():
        # TorchScript is deprecated upstream in favour of torch.export (the ONNX path below uses it); the
        # format is still what C++ and mobile runtimes load, so it stays.
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.trace(net, example).save(str(path))
        return path, torch.jit.load(str(path))


def export_onnx(net: nn.Module, example: Tensor, directory: Path) -> tuple[Path, object]:
    try:
        import onnxruntime
    except ImportError as err:
        raise ExportError(
            "ONNX export needs onnx, onnxscript and onnxruntime: pip install 'fashion-lightning[export]'."
        ) from err
    path = directory / "model.onnx"
    batch = torch.export.Dim("batch")
    torch.onnx.export(
        net,
        (example,),
        str(path),
        input_names=["images"],
        output_names=["logits"],
        dynamic_shapes={"images": {0: batch}},
        dynamo=True,
        verbose=False,
        external_data=False,
    )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return path, lambda images: torch.from_numpy(session.run(None, {"images": images.numpy()})[0])


EXPORTERS = {"pth": export_pth, "torchscript": export_torchscript, "onnx": export_onnx}


def export(
    ckpt_path: str,
    output_dir: str = "exports",
    formats: list[Format] | None = None,
    data_dir: str = "data",
) -> dict[str, Path]:
    """Export a checkpoint's network and check each file against the checkpoint on real test images.

    Args:
        ckpt_path: A checkpoint written by ``fashion-lightning fit``.
        output_dir: Where ``model.pth`` (+ ``model.json``), ``model.torchscript.pt`` and ``model.onnx`` go.
        formats: Which of "pth", "torchscript", "onnx" to write (default: all three).
        data_dir: Where the prepared Fashion-MNIST is (its test images are the check batch).

    Returns:
        The path of each written file, by format.
    """
    model = load_model(ckpt_path)
    net = model.net.eval()
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    images, labels = check_batch(data_dir)
    with torch.no_grad():
        expected = net(images)
    written = {}
    for name in formats or list(EXPORTERS):
        exporter = EXPORTERS[name]
        path, loaded = (
            exporter(net, dict(model.hparams), directory) if name == "pth" else exporter(net, images[:2], directory)
        )
        with torch.no_grad():
            difference = (loaded(images) - expected).abs().max().item()
        if difference > TOLERANCE:
            raise ExportError(
                f"{path} gives outputs up to {difference:.2e} away from the checkpoint's (> {TOLERANCE})."
            )
        print(f"{name:12s} {path}  max |difference| on {len(images)} images: {difference:.1e}")
        written[name] = path
    if "pth" in written and labels is not None:  # the seed's last step, from the reloaded model.pth
        with torch.no_grad():
            predicted = load_pth(written["pth"])(images[:1]).argmax(dim=-1).item()
        print(f"Predicted: {CLASS_NAMES[predicted]}, Actual: {CLASS_NAMES[int(labels[0])]}")
    return written
