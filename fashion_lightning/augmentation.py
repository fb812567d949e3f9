"""On-device augmentation of a training step's images (``--data.augment``): random shifts and mirroring, drawn per
image from the device's random generator (part of every checkpoint, so a resume draws the same)."""

import torch
import torch.nn.functional as F
from torch import Tensor


def random_crop_flip(images: Tensor, padding: int = 2, flip: bool = True) -> Tensor:
    """Shift each image by up to ``padding`` pixels (zero fill) and mirror half of them left-right.

    Args:
        images: (B, C, H, W) batch in [0, 1]; the result has the same shape, range and order.
        padding: Largest shift in pixels, drawn independently per image and axis.
        flip: Also mirror a random half of the images (clothing is left-right symmetric).
    """
    batch, _, height, width = images.shape
    device = images.device
    padded = F.pad(images, (padding, padding, padding, padding))  # (B, C, H + 2p, W + 2p)
    top = torch.randint(0, 2 * padding + 1, (batch, 1), device=device)
    left = torch.randint(0, 2 * padding + 1, (batch, 1), device=device)
    rows = (top + torch.arange(height, device=device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (left + torch.arange(width, device=device))[:, None, None, :]  # (B, 1, 1, W)
    channels = torch.arange(images.shape[1], device=device)[None, :, None, None]  # (1, C, 1, 1)
    shifted = padded[torch.arange(batch, device=device)[:, None, None, None], channels, rows, cols]
    if not flip:
        return shifted
    mirror = torch.rand(batch, device=device) < 0.5
    return torch.where(mirror[:, None, None, None], shifted.flip(-1), shifted)
