"""From image files to answers: an image file to a Fashion-MNIST-like tensor (``classify`` and the server), and
``classify``."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from fashion_lightning.data import CLASS_NAMES, to_unit_float
from fashion_lightning.errors import ConfigurationError
from fashion_lightning.model_files import load_predictor
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
    except FileNotFoundError as err:
        raise ValueError("no such file") from err
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


def classify(model_path: str, *images: str, top_k: int = 3) -> int:
    """Classify image files (PNG, JPEG, ... any size or mode) and print the top-k classes with probabilities.

    Args:
        model_path: A checkpoint of ``fit`` (``.../checkpoints/best.ckpt``) or a file of ``export`` (``.pth`` with its
            ``model.json``, ``.pt2``, ``.onnx``).
        images: Image files to classify, or folders (their image files, by name).
        top_k: How many classes to print per image (all 10 when larger).

    Returns:
        The number of files that could not be classified (each is reported and skipped).
    """
    if top_k < 1:
        raise ConfigurationError(f"--top_k must be at least 1, got {top_k}.")
    predictor = load_predictor(model_path)
    failures = 0
    for path in image_files(images):
        if Path(path).is_dir():
            print(f"{path}: error: a folder without image files; skipped")
            failures += 1
            continue
        try:
            tensor = image_to_tensor(path)
        except ValueError as err:  # (image_to_tensor says what is wrong with the file: missing, unreadable, too large)
            print(f"{path}: error: {err}; skipped")
            failures += 1
            continue
        with torch.inference_mode():
            probabilities = predictor(tensor.unsqueeze(0)).softmax(dim=-1)[0]  # (1, 1, 28, 28) -> (10,)
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
