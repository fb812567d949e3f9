"""Export a checkpoint's network as ``model.pth`` (plain state_dict), ``model.pt2`` (torch.export), ONNX, TorchScript.

Every file is written into a staging folder inside the output folder, loaded back and its outputs on a batch of
real test images compared with the checkpoint's (max abs difference <= ``TOLERANCE``); only then is it renamed into
place, so a failed or interrupted export never leaves a half-written file, and existing files are replaced only
with ``overwrite``.
"""

import contextlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from fashion_lightning.atomic import TEMP_PREFIX
from fashion_lightning.data import CLASS_NAMES, IMAGE_SHAPE, to_unit_float
from fashion_lightning.errors import DataUnavailableError, FashionLightningError
from fashion_lightning.model import NET_HPARAMS
from fashion_lightning.model_files import load_model, load_pt2, load_pth
from fashion_lightning.raw_files import load_split

TOLERANCE = 1e-5
Format = Literal["pth", "pt2", "onnx", "torchscript"]
DEFAULT_FORMATS: tuple[Format, ...] = ("pth", "pt2", "onnx")
FILES = {
    "pth": ("model.pth", "model.json"),
    "pt2": ("model.pt2",),
    "onnx": ("model.onnx",),
    "torchscript": ("model.torchscript.pt",),
}


class ExportError(FashionLightningError):
    """An exported file could not be written, or does not reproduce the checkpoint's outputs."""


def check_batch(data_dir: str, size: int = 256) -> tuple[Tensor, Tensor | None]:
    """The first ``size`` official test images (and labels), or random images when the data is not prepared."""
    try:
        images, labels = load_split(data_dir, "test")
    except DataUnavailableError:
        print(f"note: no prepared data in {data_dir}; checking exports on random images instead")
        return torch.rand(size, *IMAGE_SHAPE, generator=torch.Generator().manual_seed(0)), None
    return to_unit_float(images[:size]), labels[:size]


def export_pth(net: nn.Module, hparams: dict, example: Tensor, directory: Path) -> nn.Module:
    path = directory / "model.pth"
    torch.save(net.state_dict(), path)  # the seed's format: MLP().load_state_dict(torch.load(path))
    path.with_suffix(".json").write_text(json.dumps({key: hparams[key] for key in NET_HPARAMS}, indent=2))
    return load_pth(path)


def export_pt2(net: nn.Module, hparams: dict, example: Tensor, directory: Path) -> nn.Module:
    path = directory / "model.pt2"
    program = torch.export.export(net, (example,), dynamic_shapes={"images": {0: torch.export.Dim("batch")}})
    torch.export.save(program, str(path))
    return load_pt2(path)


def export_torchscript(net: nn.Module, hparams: dict, example: Tensor, directory: Path):
    path = directory / "model.torchscript.pt"
    # TorchScript is deprecated in torch 2.14 (torch.export replaces it) and every call warns; the format is
    # still what older C++ and mobile runtimes load, so it stays available on request, quietly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.trace(net, example).save(str(path))
        scripted = torch.jit.load(str(path))

    def run(images: Tensor) -> Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return scripted(images)

    return run


def export_onnx(net: nn.Module, hparams: dict, example: Tensor, directory: Path):
    try:
        import onnxruntime
    except ImportError as err:
        raise ExportError(
            "ONNX export needs onnx, onnxscript and onnxruntime: pip install 'fashion-lightning[export]'."
        ) from err
    path = directory / "model.onnx"
    torch.onnx.export(
        net,
        (example,),
        str(path),
        input_names=["images"],
        output_names=["logits"],
        dynamic_shapes={"images": {0: torch.export.Dim("batch")}},
        dynamo=True,
        verbose=False,
        external_data=False,
    )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda images: torch.from_numpy(session.run(None, {"images": images.numpy()})[0])


EXPORTERS = {"pth": export_pth, "pt2": export_pt2, "onnx": export_onnx, "torchscript": export_torchscript}


def export(
    ckpt_path: str,
    output_dir: str = "exports",
    formats: list[Format] | Format | None = None,
    data_dir: str = "data",
    overwrite: bool = False,
) -> dict[str, Path]:
    """Export a checkpoint's network and check each file against the checkpoint on real test images.

    Args:
        ckpt_path: A checkpoint written by ``fashion-lightning fit``.
        output_dir: Where ``model.pth`` (+ ``model.json``), ``model.pt2``, ``model.onnx`` and, on request,
            ``model.torchscript.pt`` go.
        formats: One of "pth", "pt2", "onnx", "torchscript", or a list (``--formats '[pth, onnx]'``); default: pth,
            pt2, onnx.
        data_dir: Where the prepared Fashion-MNIST is (its test images are the check batch).
        overwrite: Replace files that already exist in ``output_dir`` (otherwise that is an error).

    Returns:
        The path of each written file, by format.
    """
    if formats is not None and not formats:
        raise ExportError(f"--formats is empty: give one or more of {', '.join(FILES)} (or leave it out: the default).")
    formats = [formats] if isinstance(formats, str) else list(formats or DEFAULT_FORMATS)
    directory = Path(output_dir)
    if directory.is_file():
        raise ExportError(f"--output_dir '{output_dir}' is a file; exports go into a folder. Choose another one.")
    model = load_model(ckpt_path)
    net = model.net.eval()
    refuse_overwrite(directory, formats, overwrite)
    images, labels = check_batch(data_dir)
    with torch.no_grad():
        expected = net(images)
    written = {}
    for name in formats:
        with staging_dir(directory) as staging:
            loaded = EXPORTERS[name](net, dict(model.hparams), images[:2], staging)
            with torch.no_grad():
                difference = (loaded(images) - expected).abs().max().item()
            path = directory / FILES[name][0]
            if difference > TOLERANCE:
                raise ExportError(
                    f"{path} would give outputs up to {difference:.2e} away from the checkpoint's (> {TOLERANCE}); "
                    "it was not written."
                )
            for file_name in FILES[name]:
                _publish(staging / file_name, directory / file_name)
        print(f"{name:12s} {path}  max |difference| on {len(images)} images: {difference:.1e}")
        written[name] = path
    if "pth" in written and labels is not None:  # the seed's last step, from the reloaded model.pth
        with torch.no_grad():
            predicted = load_pth(written["pth"])(images[:1]).argmax(dim=-1).item()
        print(f"Predicted: {CLASS_NAMES[predicted]}, Actual: {CLASS_NAMES[int(labels[0])]}")
    return written


def refuse_overwrite(directory: Path, formats: list[str], overwrite: bool) -> None:
    existing = [directory / name for fmt in formats for name in FILES[fmt] if (directory / name).exists()]
    if existing and not overwrite:
        names = ", ".join(path.name for path in existing)
        raise ExportError(
            f"{directory} already holds {names}; nothing was written. Pass --overwrite true to replace them, or "
            "choose another --output_dir."
        )


@contextlib.contextmanager
def staging_dir(directory: Path):
    """A temporary folder inside ``directory`` (same filesystem, so the final rename is atomic); always removed."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=directory))
    except OSError as err:
        raise ExportError(_write_error(directory, err)) from err
    try:
        yield staging
    except OSError as err:
        raise ExportError(_write_error(directory, err)) from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(staged: Path, target: Path) -> None:
    try:
        os.replace(staged, target)
    except OSError as err:
        raise ExportError(_write_error(target, err)) from err


def _write_error(path: Path, err: OSError) -> str:
    return (
        f"Could not write the export into '{path}': {err.strerror or err}. Files already there are unchanged. "
        "Choose a writable --output_dir with free space."
    )
