"""The training step as one CUDA graph: forward, loss, backward, clipping and update of K batches, replayed per batch.

On a GPU the seed's step is launch-bound: ~30 kernel launches from Python cost ~0.9 ms, the kernels ~0.1 ms
(../shared/research/gpu_probes). Captured once and replayed, the whole step costs one launch. What a graph needs:
static input buffers (each batch is copied in), eager warm-up runs on a side stream before capture, no host sync
inside (each step's loss and correct count stay device tensors; ``TrainingSteps`` adds them to the epoch's sums once
per group), one shape (a group of other shape, such as the last of an epoch, runs eagerly), optimizer state on the
device (``capturable``), and a new capture when the learning rate changes (it is baked into the kernels; schedules
here change it at most once per epoch, ``LearningRateFinder``'s at every step of its short search), and new warm-ups
and capture when the optimizer's state tensors are replaced (a checkpoint loaded mid-fit) or the batch size changes
(``BatchSizeFinder``). The real optimizer is the one Lightning holds (schedulers, LR monitors and
checkpoints see it); the graph steps it, and ``TrainingSteps`` counts the replayed updates in ``global_step``.
"""

import logging
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

log = logging.getLogger(__name__)

StepFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]  # (images, labels) -> (loss, correct), one update


def make_capturable(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Let Adam/AdamW step inside a graph: their step counters move to the device (a checkpoint loaded before may
    have brought them to the host)."""
    for group in optimizer.param_groups:
        if "capturable" in group:
            group["capturable"] = True
    for state in optimizer.state.values():
        if isinstance(state.get("step"), Tensor):
            state["step"] = state["step"].to(device=device, dtype=torch.float32)


class CapturedSteps:
    """Runs groups of K optimizer steps; groups of the first full group's shape run as one replayed CUDA graph.

    Args:
        step: One optimizer step on ``(images, labels)`` with the real optimizer, returning detached
            ``(loss, correct)``; it must not sync with the host.
        optimizer: The optimizer ``step`` updates (its learning rates are baked into the graph).
        device: The CUDA device of the parameters (where the optimizer's step counts go).
        warmup_runs: Groups run eagerly on a side stream before the capture, as CUDA graphs require.
    """

    def __init__(
        self, step: StepFn, optimizer: torch.optim.Optimizer, device: torch.device, warmup_runs: int = 2
    ) -> None:
        self.step, self.optimizer, self.device, self.warmup_runs = step, optimizer, device, warmup_runs
        self.shape: tuple[int, int] | None = None  # (steps, batch size) of the graph's group
        self.graph: torch.cuda.CUDAGraph | None = None
        self.replays = 0
        self._warmed_up = 0  # warm-up groups run since the optimizer's state last changed
        self._state: list[Tensor] | None = None  # the optimizer's state tensors at the last warm-up (kept alive)
        self._lrs: list[float] = []

    def run(self, batches: Sequence[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        """Apply one update per ``(images, labels)``; returns the losses and correct counts, shape (K,) each."""
        how = self.plan(batches)
        if how == "eager":  # another shape: e.g. the last, shorter group of an epoch
            return self._eager(batches)
        if how == "warm-up":
            return self._eager(batches, side_stream=True)
        if how == "capture":
            self._capture(batches)
        return self._replay(batches)

    def plan(self, batches: Sequence[tuple[Tensor, Tensor]]) -> str:
        """How to run this group: "eager", "warm-up", "capture" (then replay) or "replay"."""
        shape = (len(batches), len(batches[0][1]))
        full = all(len(labels) == shape[1] for _, labels in batches)
        if full and shape != self.shape and (self.shape is None or shape[0] >= self.shape[0]):
            # The first full group, or full groups of a new batch size (BatchSizeFinder changes it mid-fit); an
            # epoch's last group, with fewer steps or a shorter last batch, runs eagerly.
            self.shape, self._warmed_up, self.graph = shape, 0, None
        if shape != self.shape or not full:
            return "eager"
        self._follow_optimizer_state()
        if self._warmed_up < self.warmup_runs:
            self._warmed_up += 1
            return "warm-up"
        if self.graph is None or self._lrs != self._current_lrs():
            return "capture"
        return "replay"

    def _follow_optimizer_state(self) -> None:
        """Warm up and capture again when the optimizer holds other state tensors than the graph's.

        The graph updates the momentum buffers (Adam's moments, step counts) it was captured with. A checkpoint
        loaded into the optimizer mid-fit (``LearningRateFinder`` and ``BatchSizeFinder`` restore theirs) replaces
        them, often with none: a capture then would record their creation, replayed at every step.
        """
        state, then = self._state_tensors(), self._state
        if then is not None and len(state) == len(then) and all(a is b for a, b in zip(state, then, strict=True)):
            return
        make_capturable(self.optimizer, self.device)  # (moves step counts to the device: new tensors)
        self._state = self._state_tensors()
        self._warmed_up, self.graph = 0, None

    def _replay(self, batches) -> tuple[Tensor, Tensor]:
        torch.cat([images for images, _ in batches], out=self.images.view(-1, *self.images.shape[2:]))
        torch.cat([labels for _, labels in batches], out=self.labels.view(-1))
        self.graph.replay()
        self.replays += 1
        return self.losses, self.correct

    def _eager(self, batches, side_stream: bool = False) -> tuple[Tensor, Tensor]:
        if not side_stream:
            return self._stack([self.step(images, labels) for images, labels in batches])
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            outputs = self._stack([self.step(images, labels) for images, labels in batches])
        torch.cuda.current_stream().wait_stream(side)
        return outputs

    def _state_tensors(self) -> list[Tensor]:
        state = self.optimizer.state.values()
        return [value for values in state for value in values.values() if isinstance(value, Tensor)]

    @staticmethod
    def _stack(outputs: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        losses, correct = zip(*outputs, strict=True)
        return torch.stack(losses), torch.stack(correct)

    def _current_lrs(self) -> list[float]:
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def _capture(self, batches) -> None:
        self.graph = None  # frees the previous graph's memory pool first
        # Static inputs: (K, B, C, H, W) images and (K, B) labels; every replay copies its group in.
        self.images = torch.stack([images for images, _ in batches])
        self.labels = torch.stack([labels for _, labels in batches])
        self.optimizer.zero_grad(set_to_none=True)  # gradients are then allocated inside the graph's pool
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.losses, self.correct = self._stack(
                [self.step(self.images[index], self.labels[index]) for index in range(len(batches))]
            )
        self.graph, self._lrs = graph, self._current_lrs()
        log.debug("Captured %d optimizer steps of %d images as one CUDA graph.", *self.shape)
