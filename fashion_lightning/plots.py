"""Figures shared by TensorBoard and the notebook: confusion matrix, image grids with labels."""

from collections.abc import Sequence

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
    """Images (N, 1, 28, 28) in [0, 1] in a grid, each with its title (e.g. "pred: Shirt / true: T-shirt")."""
    images = images.detach().cpu()
    rows = max(1, -(-len(images) // columns))
    figure = Figure(figsize=(columns * 1.4, rows * 1.7), dpi=80)
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(images):
            axis.imshow(images[index, 0].numpy(), cmap="gray_r", vmin=0, vmax=1)
            axis.set_title(titles[index], fontsize=7)
    figure.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.9, hspace=0.6)
    return figure


def _cells(matrix: Tensor):
    for row in range(matrix.shape[0]):
        for col in range(matrix.shape[1]):
            yield (row, col), matrix[row, col].item()
