"""``HostCopy``: a tensor brought to the host without making the host wait for the GPU.

Reading a GPU tensor from Python (``float(t)``, ``t.item()``, ``t.tolist()``) waits for every kernel queued before
it: the host stops feeding the GPU, and the GPU then idles while the host prepares the next step. A copy into
pinned host memory with ``non_blocking=True`` is queued like a kernel instead, and a CUDA event says when it is done.
"""

import torch
from torch import Tensor


class HostCopy:
    """``values`` copied to the host behind the work queued before it; on the CPU, the tensor itself (not a copy).

    Args:
        values: The tensor to read later. On a GPU it may be overwritten after this call (a CUDA graph's output):
            the copy holds the values it had at this point of the queue.
    """

    def __init__(self, values: Tensor) -> None:
        self._done: torch.cuda.Event | None = None
        if not values.is_cuda:
            self.values = values
            return
        self.values = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
        self.values.copy_(values, non_blocking=True)
        self._done = torch.cuda.Event()
        self._done.record()

    def ready(self) -> bool:
        """Whether the values have reached the host (never waits)."""
        return self._done is None or self._done.query()

    def wait(self) -> Tensor:
        """The values on the host, once they are there."""
        if self._done is not None:
            self._done.synchronize()
        return self.values
