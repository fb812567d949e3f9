"""``--float32_matmul_precision``: PyTorch's precision for float32 matrix products, in every process of a run."""

from typing import Literal

import lightning as L
import torch

Float32MatmulPrecision = Literal["highest", "high", "medium"]


class MatmulPrecision(L.Callback):
    """Sets ``torch.set_float32_matmul_precision`` for the run and restores the process's own setting after it.

    It is set when the callback is built, before the Trainer's CUDA check (whose message suggests it), and again at
    setup in each process: the workers that ``ddp_spawn`` starts begin with PyTorch's default.
    """

    def __init__(self, precision: Float32MatmulPrecision) -> None:
        self.precision = precision
        self._before = torch.get_float32_matmul_precision()  # (a notebook's next run starts from the user's own)
        torch.set_float32_matmul_precision(precision)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        torch.set_float32_matmul_precision(self.precision)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        torch.set_float32_matmul_precision(self._before)
