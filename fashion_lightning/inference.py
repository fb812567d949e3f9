"""From a model file to answers: an image file to a tensor, loading a checkpoint or an export, ``classify``."""

import inspect
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor, nn

from fashion_lightning.checkpointing import check_compatible, load_checkpoint
from fashion_lightning.data import CLASS_NAMES, to_unit_float
from fashion_lightning.errors import CheckpointError, ConfigurationError
from fashion_lightning.lit_module import FashionClassifier
from fashion_lightning.model import net_from_hparams
from fashion_lightning.raw_files import IMAGE_SIZE

# Pillow refuses images over ~179 megapixels (and only warns from ~89); decoding even 50 megapixels costs
# hundreds of MB. Photos of clothes need far less: anything larger is refused before it is decoded.
MAX_PIXELS = 40_000_000
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # more than 8 bits per pixel
# Fashion-MNIST shows light garments on a black background. An image whose border is brighter than mid-gray
# on average is taken to be the usual product photo (dark garment on a light background) and is inverted.
LIGHT_BACKGROUND_THRESHOLD = 128


def image_to_tensor(path: str | Path) -> Tensor:
    """Read any PIL-readable image and turn it into a Fashion-MNIST-like (1, 28, 28) tensor in [0, 1].

    Steps, following how the dataset was made: grayscale (16-bit and float images scaled to 8 bits by their own
    range); invert if the background is light (see ``LIGHT_BACKGROUND_THRESHOLD``); crop to the garment's bounding
    box; resize the longer side to 28 pixels; center on a black 28x28 canvas. Raises ``ValueError`` for files that
    are unreadable or larger than ``MAX_PIXELS`` (checked from the header, before anything is decoded).
    """
    try:
        with Image.open(path) as opened:
            check_size(opened)
            image = to_grayscale(ImageOps.exif_transpose(opened))
    except Image.DecompressionBombError as err:  # Pillow's own refusal, from the header, of even larger images
        raise ValueError(f"too large: {err} Scale it down first") from err
    except UnidentifiedImageError as err:  # (its text names the file object: "<_io.BytesIO object at 0x...>")
        raise ValueError("not a readable image (not in a format Pillow can open: PNG, JPEG, GIF, WebP, ...)") from err
    except OSError as err:  # a truncated or damaged file
        raise ValueError(f"not a readable image ({err})") from err
    pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())  # (H, W)
    border = torch.cat([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]).float().mean()
    if border > LIGHT_BACKGROUND_THRESHOLD:
        image = ImageOps.invert(image)
    bbox = image.point(lambda value: 255 if value > 20 else 0).getbbox()
    if bbox is not None:
        image = image.crop(bbox)
    scale = IMAGE_SIZE / max(image.size)
    resized = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)
    canvas = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE))
    canvas.paste(resized, ((IMAGE_SIZE - resized.width) // 2, (IMAGE_SIZE - resized.height) // 2))
    return to_unit_float(torch.from_numpy(np.asarray(canvas, dtype=np.uint8).copy()))  # (1, 28, 28)


def check_size(image: Image.Image) -> None:
    """Refuse an image over ``MAX_PIXELS`` from its header alone (a decompression bomb is never decoded)."""
    pixels = image.width * image.height
    if pixels > MAX_PIXELS:
        raise ValueError(
            f"too large: {image.width}x{image.height} pixels ({pixels / 1e6:.0f} megapixels, the limit is "
            f"{MAX_PIXELS / 1e6:.0f}); scale it down first"
        )


def to_grayscale(image: Image.Image) -> Image.Image:
    """8-bit grayscale. 16-bit, 32-bit and float images are scaled by their real range (``convert`` would clip)."""
    if image.mode not in WIDE_MODES:
        return image.convert("L")
    values = np.asarray(image, dtype=np.float64)  # (H, W)
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return Image.fromarray(np.round(scaled).astype(np.uint8))  # (H, W) uint8: mode "L"


def classify(ckpt_path: str, *images: str, top_k: int = 3) -> int:
    """Classify image files (PNG, JPEG, ... any size or mode) and print the top-k classes with probabilities.

    Args:
        ckpt_path: A checkpoint written by ``fashion-lightning fit`` (e.g. ``.../checkpoints/best.ckpt``).
        images: Image files to classify, or folders (their image files, by name).
        top_k: How many classes to print per image (all 10 when larger).

    Returns:
        The number of files that could not be classified (each is reported and skipped).
    """
    if top_k < 1:
        raise ConfigurationError(f"--top_k must be at least 1, got {top_k}.")
    model = load_model(ckpt_path)
    failures = 0
    for path in image_files(images):
        if Path(path).is_dir():
            print(f"{path}: error: a folder without image files; skipped")
            failures += 1
            continue
        try:
            tensor = image_to_tensor(path)
        except (ValueError, FileNotFoundError, IsADirectoryError) as err:
            print(f"{path}: error: {err}; skipped")
            failures += 1
            continue
        with torch.no_grad():
            probabilities = model(tensor.unsqueeze(0)).softmax(dim=-1)[0]  # (1, 1, 28, 28) -> (10,)
        values, indices = probabilities.topk(min(top_k, len(CLASS_NAMES)))
        ranked = ", ".join(f"{CLASS_NAMES[i]} {v:.1%}" for v, i in zip(values.tolist(), indices.tolist(), strict=True))
        print(f"{path}: {ranked}")
    return failures


def image_files(paths: tuple[str, ...]) -> list[str]:
    """``paths`` with each folder replaced by the image files in it (by the extensions PIL reads), sorted by name."""
    extensions = set(Image.registered_extensions())
    found = []
    for path in paths:
        if Path(path).is_dir():
            inside = sorted(str(p) for p in Path(path).iterdir() if p.is_file() and p.suffix.lower() in extensions)
            found += inside or [path]  # (an empty folder is reported as such)
        else:
            found.append(path)
    return found


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


def load_predictor(source: str | Path, device: str = "cpu"):
    """A function ``(B, 1, 28, 28) float tensor -> (B, 10) logits`` from a ``.ckpt``, ``.onnx`` or ``.pt2`` file."""
    path = Path(source)
    if not path.is_file():
        raise CheckpointError(f"No model file at '{path}'. Serve a checkpoint (.ckpt) or an export (.onnx, .pt2).")
    if path.suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda images: torch.from_numpy(session.run(None, {"images": images.cpu().numpy()})[0])
    # A checkpoint goes through load_model: clear errors for bad files, weights-only loading.
    net = load_pt2(path).to(device) if path.suffix == ".pt2" else load_model(path).net.to(device)
    return lambda images: net(images.to(device))
