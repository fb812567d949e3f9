"""Loading a model file: a checkpoint of ``fit`` or one of ``export``'s files, each with a clear error when it is
missing, damaged or another model's. ``classify`` and ``serve`` take any of them through ``load_predictor``."""

import inspect
import json
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from fashion_lightning.checkpointing import check_compatible, load_checkpoint
from fashion_lightning.data import CLASS_NAMES
from fashion_lightning.errors import CheckpointError, first_line
from fashion_lightning.lit_module import FashionClassifier
from fashion_lightning.model import net_from_hparams
from fashion_lightning.raw_files import IMAGE_SIZE

Predictor = Callable[[Tensor], Tensor]  # (B, 1, 28, 28) float images in [0, 1] -> (B, 10) logits
MODEL_FILES = "a checkpoint of `fit` (.ckpt) or a file of `export` (.pth with its model.json, .pt2, .onnx)"


def load_model(ckpt_path: str | Path) -> FashionClassifier:
    """Rebuild the classifier from a checkpoint alone (weights-only load, clear errors), in eval mode on CPU."""
    checkpoint = FashionClassifier.upgrade_checkpoint(load_checkpoint(ckpt_path))
    accepted = inspect.signature(FashionClassifier).parameters
    hparams = {k: v for k, v in checkpoint.get("hyper_parameters", {}).items() if k in accepted}
    model = FashionClassifier(**hparams)
    check_compatible(checkpoint, model, ckpt_path)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def load_pth(path: str | Path) -> nn.Module:
    """Rebuild the plain network from ``model.pth`` and the ``model.json`` beside it (no Lightning needed)."""
    path = Path(path)
    spec = json.loads(path.with_suffix(".json").read_text())
    net = net_from_hparams(spec)
    net.load_state_dict(torch.load(path, weights_only=True))
    return net.eval()


def load_pt2(path: str | Path) -> nn.Module:
    """Load ``model.pt2`` (a ``torch.export`` program; dynamic batch size) as a callable module."""
    return torch.export.load(str(path)).module()


def load_predictor(source: str | Path, device: str = "cpu") -> Predictor:
    """A ``Predictor`` from any model file (see ``MODEL_FILES``), checked on one blank image; raises
    ``CheckpointError`` saying what is wrong with the file."""
    path = Path(source)
    if not path.is_file():
        raise CheckpointError(f"No model file at '{path}'. Give {MODEL_FILES}.")
    _refuse_other_files(path)
    if path.suffix == ".onnx":
        predictor = _onnx_predictor(path)
    else:
        net = _load_export(path) if path.suffix in (".pth", ".pt2") else load_model(path).net
        net = net.to(device)
        predictor = lambda images: net(images.to(device))  # noqa: E731
    _check_answers(predictor, path)
    return predictor


def _refuse_other_files(path: Path) -> None:
    """Files of ``export`` that hold no model to run here, named for what they are (not as damaged checkpoints)."""
    if path.name.endswith(".torchscript.pt"):
        # TorchScript archives hold code, and torch 2.14 deprecates the format; export writes it for old runtimes.
        raise CheckpointError(
            f"'{path}' is TorchScript, which classify and serve do not load (a deprecated format, written for older "
            "runtimes: torch.jit.load). Give the .pt2 or .onnx export beside it, or the checkpoint."
        )
    if path.suffix == ".json" and path.with_suffix(".pth").is_file():
        raise CheckpointError(f"'{path}' describes the network of {path.with_suffix('.pth').name}: give that file.")


def _load_export(path: Path) -> nn.Module:
    if path.suffix == ".pth" and not path.with_suffix(".json").is_file():
        raise CheckpointError(
            f"'{path}' needs the {path.with_suffix('.json').name} that `export` writes beside it (it says which "
            "network the weights belong to). Copy it along, or give the run's checkpoint instead."
        )
    if not zipfile.is_zipfile(path):  # (torch.export.load would log its failure, then retry, before raising)
        raise _not_loadable(path, "not the zip archive that torch writes")
    try:
        return load_pth(path) if path.suffix == ".pth" else load_pt2(path)
    except Exception as err:  # noqa: BLE001 - torch and zipfile raise many kinds for a bad file
        lines = str(err).strip().splitlines()
        if lines and lines[0].startswith("Error(s) in loading state_dict"):  # then: "\tMissing key(s) ..."
            details = textwrap.shorten("; ".join(line.strip() for line in lines[1:]), 200, placeholder=" ...")
            raise CheckpointError(
                f"The weights in '{path}' do not fit the network that {path.with_suffix('.json').name} describes "
                f"({details}). Export the run's checkpoint again (fashion-lightning export CKPT --overwrite true), "
                "or give the checkpoint."
            ) from err
        raise _not_loadable(path, err) from err


def _onnx_predictor(path: Path) -> Predictor:
    try:
        import onnxruntime
    except ImportError:
        raise CheckpointError(
            f"'{path}' is an ONNX model, and running it needs onnxruntime: pip install 'fashion-lightning[export]'."
        ) from None
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - onnxruntime's errors are its own pybind11 types
        raise _not_loadable(path, err) from err
    name = session.get_inputs()[0].name  # "images" in export's files
    return lambda images: torch.from_numpy(session.run(None, {name: images.cpu().numpy()})[0])


def _check_answers(predictor: Predictor, path: Path) -> None:
    """Refuse a file whose model does not take (B, 1, 28, 28) images to (B, 10) logits (another model's export)."""
    try:
        with torch.inference_mode():
            shape = tuple(predictor(torch.zeros(2, 1, IMAGE_SIZE, IMAGE_SIZE)).shape)
    except Exception as err:  # noqa: BLE001 - whatever the foreign model raises
        raise CheckpointError(
            f"'{path}' loads, but its model does not take Fashion-MNIST images ({first_line(err)}). Give {MODEL_FILES}."
        ) from err
    if shape != (2, len(CLASS_NAMES)):
        raise CheckpointError(
            f"'{path}' loads, but its model answers {shape} for 2 images, not (2, {len(CLASS_NAMES)}): it is not "
            f"a Fashion-MNIST classifier. Give {MODEL_FILES}."
        )


def _not_loadable(path: Path, err: Exception | str) -> CheckpointError:
    return CheckpointError(
        f"'{path}' is damaged or not what `export` writes ({first_line(err)}; truncated by a crash or a partial "
        "copy?). Export the run's checkpoint again (fashion-lightning export CKPT --overwrite true), or give the "
        "checkpoint."
    )
