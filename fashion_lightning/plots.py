"""Pictures shared by TensorBoard and the notebook: a confusion matrix, and image grids with titles.

Drawn with Pillow, not matplotlib: the matplotlib figures (over 100 text artists) took 0.1-0.2 s to render after
every validation, about a tenth of a CPU epoch; these take a few milliseconds. Both return ``PIL.Image``s (the matrix
in RGB, the gray image grids in mode "L"), which ``TensorBoardExtras`` logs as PNGs and a notebook shows inline.
"""

from collections.abc import Sequence
from functools import cache

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from fashion_lightning.data import CLASS_NAMES

WHITE, BLACK = (255, 255, 255), (0, 0, 0)
# matplotlib's "Blues" colormap at 9 evenly spaced points: low counts light, high counts dark blue.
BLUES = np.array(
    [(247, 251, 255), (222, 235, 247), (198, 219, 239), (158, 202, 225), (107, 174, 214),
     (66, 146, 198), (33, 113, 181), (8, 81, 156), (8, 48, 107)], dtype=np.float32,
)  # fmt: skip


@cache
def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at ``size`` pixels (no system font needed)."""
    return ImageFont.load_default(size=size)


def per_class_accuracy(confusion: Tensor) -> Tensor:
    """Accuracy of each true class: the diagonal over the row sums (rows are true labels)."""
    confusion = confusion.float()
    return confusion.diagonal() / confusion.sum(dim=1).clamp(min=1)


def blues(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1], any shape (...), as RGB colors (..., 3), uint8."""
    position = np.clip(values, 0, 1) * (len(BLUES) - 1)
    low = np.minimum(position.astype(int), len(BLUES) - 2)
    weight = (position - low)[..., None]
    return ((1 - weight) * BLUES[low] + weight * BLUES[low + 1]).round().astype(np.uint8)


def confusion_matrix_image(
    confusion: Tensor, class_names: Sequence[str] = CLASS_NAMES, title: str = "", cell: int = 44
) -> Image.Image:
    """Counts of (true, predicted) pairs (rows true, columns predicted), each class's accuracy beside its name."""
    counts = confusion.detach().cpu().long()  # (C, C)
    classes, text = len(class_names), font(12)
    accuracy = per_class_accuracy(counts).tolist()
    row_labels = [f"{name} ({acc:.0%})" for name, acc in zip(class_names, accuracy, strict=True)]
    left = 28 + max(int(text.getlength(label)) for label in row_labels)  # the axis name, then the class names
    longest = max(int(text.getlength(name)) for name in class_names)
    top, bottom = 30, 24 + int(longest * 0.71)  # column names are written at 45 degrees
    image = Image.new("RGB", (left + classes * cell + 12, top + classes * cell + bottom), WHITE)
    # The matrix: one color per cell, scaled by the largest count.
    shade = counts.float().numpy() / max(counts.max().item(), 1)
    pixels = blues(shade).repeat(cell, axis=0).repeat(cell, axis=1)  # (C * cell, C * cell, 3)
    image.paste(Image.fromarray(pixels), (left, top))
    draw = ImageDraw.Draw(image)
    total_accuracy = counts.diagonal().sum().item() / max(counts.sum().item(), 1)
    draw.text(
        (left, top // 2), f"{title} accuracy {total_accuracy:.2%}".strip(), fill=BLACK, font=font(14), anchor="lm"
    )
    for row, count_row in enumerate(counts.tolist()):
        y = top + row * cell + cell // 2
        draw.text((left - 6, y), row_labels[row], fill=BLACK, font=text, anchor="rm")
        for col, count in enumerate(count_row):
            color = WHITE if shade[row, col] > 0.5 else BLACK
            draw.text((left + col * cell + cell // 2, y), str(count), fill=color, font=font(11), anchor="mm")
    for col, name in enumerate(class_names):  # at 45 degrees, each ending under its column: no overlaps
        mask = _rotated_text(name, text, 45)
        image.paste(BLACK, (left + col * cell + cell // 2 - mask.width + 8, top + classes * cell + 4), mask)
    mask = _rotated_text("true (per-class accuracy)", text, 90)  # upwards, along the rows
    image.paste(BLACK, (4, top + classes * cell // 2 - mask.height // 2), mask)
    draw.text((left + classes * cell // 2, image.height - 4), "predicted", fill=BLACK, font=text, anchor="md")
    return image


def image_grid(images: Tensor, titles: Sequence[str], columns: int = 8, scale: int = 3) -> Image.Image:
    """Images (N, 1, H, W) in [0, 1], dark on white, ``scale`` times larger, each under its title (may hold "\\n");
    a grayscale (mode "L") picture."""
    pictures = images.detach().cpu()[:, 0].clamp(0, 1)  # (N, H, W)
    count, height, width = pictures.shape
    rows = max(1, -(-count // columns))
    text = font(11)
    lines = max((title.count("\n") + 1 for title in titles[:count]), default=0)
    widest = max((int(text.getlength(line)) for title in titles[:count] for line in title.split("\n")), default=0)
    cell_width = max(width * scale, widest) + 8
    title_height = lines * 13 + 4
    cell_height = title_height + height * scale + 6
    image = Image.new("L", (columns * cell_width, rows * cell_height), 255)
    # (N, H, W) in [0, 1] -> (N, H * scale, W * scale) gray levels, 1 = black (Fashion-MNIST's ink is bright)
    gray = ((1 - pictures) * 255).round().to(torch.uint8).repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    draw = ImageDraw.Draw(image)
    for index in range(count):
        row, col = divmod(index, columns)
        left, top = col * cell_width, row * cell_height
        image.paste(
            Image.fromarray(gray[index].numpy()), (left + (cell_width - width * scale) // 2, top + title_height)
        )
        if index < len(titles):
            draw.multiline_text(
                (left + cell_width // 2, top + title_height - 2), titles[index], fill=0, font=text,
                anchor="md", align="center", spacing=2,
            )  # fmt: skip
    return image


def _rotated_text(label: str, text_font, degrees: int) -> Image.Image:
    """``label`` as a mask (mode "L", 255 = ink), turned ``degrees`` counter-clockwise: paste black through it."""
    width = int(text_font.getlength(label)) + 4
    strip = Image.new("L", (width, 16), 0)
    ImageDraw.Draw(strip).text((2, 8), label, fill=255, font=text_font, anchor="lm")
    return strip.rotate(degrees, expand=True, resample=Image.Resampling.BICUBIC)
