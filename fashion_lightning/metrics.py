"""The evaluation metrics of a stage (``stage_metrics``), and their states kept apart between processes."""

import torch
from torch import Tensor
from torchmetrics import MeanMetric, Metric, MetricCollection, SumMetric
from torchmetrics.classification import MulticlassAccuracy


def stage_metrics(stage: str, num_classes: int) -> MetricCollection:
    """Accuracy, mean loss and image count (exactly once under DDP) of an evaluation stage."""
    # validate_args=False skips per-update input checks: the data module guarantees int64 labels in range.
    # nan_strategy="disable": a NaN check would sync the GPU every step; FiniteLossGuard watches the loss instead.
    metrics = {
        "acc": MulticlassAccuracy(num_classes, average="micro", validate_args=False),
        "loss": MeanMetric(nan_strategy="disable"),
    }
    metrics["images"] = SumMetric()
    return MetricCollection(metrics, prefix=f"{stage}/", compute_groups=False)


def unshare_metric_states(module: torch.nn.Module) -> None:
    """Give this process its own copy of each torchmetrics state of ``module`` that lies in shared memory.

    ddp_spawn on a CPU hands the module to its workers through shared memory. Lightning copies the parameters and
    buffers apart again, but metric states are plain attributes: the workers added to the same counts (a test of 160
    images counted 320) and raced on them.
    """
    for metric in module.modules():
        if isinstance(metric, Metric):
            for name, value in metric.metric_state.items():
                if isinstance(value, Tensor) and value.is_shared():
                    setattr(metric, name, value.clone())
