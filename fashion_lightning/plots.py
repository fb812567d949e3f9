"""Figures shared by TensorBoard and the notebook: confusion matrix, image grids with labels."""

from collections.abc import Sequence

import torch

# Figures are built with matplotlib's object API, never pyplot: no global backend or figure state, so the
# same code renders for TensorBoard in a training process and inline in a notebook.
from matplotlib.figure import Figure
from torch import Tensor

from fashion_lightning.data import CLASS_NAMES


def per_class_accuracy(confusion: Tensor) -> Tensor:
    """Accuracy of each true class: the diagonal over the row sums (rows are true labels)."""
    confusion = confusion.float()
    return confusion.diagonal() / confusion.sum(dim=1).clamp(min=1)


def confusion_matrix_figure(confusion: Tensor, class_names: Sequence[str] = CLASS_NAMES, title: str = "") -> Figure:
    """Counts of (true, predicted) pairs, with each class's accuracy next to its name."""
    confusion = confusion.detach().cpu()
    accuracy = per_class_accuracy(confusion)
    figure = Figure(figsize=(8, 7), dpi=80)
    axes = figure.subplots()
    axes.imshow(confusion.numpy(), cmap="Blues")
    ticks = range(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=45, ha="right")
    axes.set_yticks(ticks, [f"{name} ({acc:.0%})" for name, acc in zip(class_names, accuracy, strict=True)])
    axes.set_xlabel("predicted")
    axes.set_ylabel("true (per-class accuracy)")
    threshold = confusion.max().item() / 2
    for (row, col), count in _cells(confusion):
        axes.text(
            col, row, int(count), ha="center", va="center", fontsize=7, color="white" if count > threshold else "black"
        )
    total_accuracy = confusion.diagonal().sum().item() / max(confusion.sum().item(), 1)
    axes.set_title(f"{title} accuracy {total_accuracy:.2%}".strip())
    figure.subplots_adjust(left=0.25, bottom=0.2, right=0.98, top=0.94)  # fixed: tight_layout costs 0.1-0.2 s
    return figure


def image_grid_figure(images: Tensor, titles: Sequence[str], columns: int = 8) -> Figure:
    """Images (N, 1, 28, 28) in [0, 1] in a grid, each with its title (e.g. "pred: Shirt / true: T-shirt").

    The grid is one mosaic image on one set of axes, titles drawn as text: a subplot per image costs ~15 ms each
    to build, which made the misclassified grid the slowest part of an epoch on a CPU.
    """
    images = images.detach().cpu()[:, 0]  # (N, H, W)
    count, height, width = images.shape
    rows = max(1, -(-count // columns))
    gap, title_space = 4, height * 2 // 3  # pixels between images, and above each image for its title
    cell_height, cell_width = height + title_space, width + gap
    mosaic = torch.zeros(rows * cell_height, columns * cell_width)  # 0: white in "gray_r"
    for index in range(count):
        row, col = divmod(index, columns)
        top, left = row * cell_height + title_space, col * cell_width + gap // 2
        mosaic[top : top + height, left : left + width] = images[index]
    figure = Figure(figsize=(columns * 1.4, rows * 1.7), dpi=80)
    axes = figure.add_axes((0.01, 0.01, 0.98, 0.98))
    axes.imshow(mosaic.numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest", aspect="auto")
    axes.axis("off")
    for index, title in enumerate(titles[:count]):
        row, col = divmod(index, columns)
        axes.text(
            col * cell_width + cell_width / 2, row * cell_height + title_space - 2, title,
            ha="center", va="bottom", fontsize=7,
        )  # fmt: skip
    return figure


def _cells(matrix: Tensor):
    for row in range(matrix.shape[0]):
        for col in range(matrix.shape[1]):
            yield (row, col), matrix[row, col].item()
