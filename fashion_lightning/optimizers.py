"""The optimizer and LR schedule a ``FashionClassifier``'s hyperparameters name."""

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from fashion_lightning.errors import ConfigurationError


def build_optimizer(params: Iterable[Tensor], hp, max_epochs: int | None) -> tuple[torch.optim.Optimizer, Callable]:
    """The optimizer of ``hp`` (the module's hyperparameters) and a factory of its per-epoch LR scheduler (or None)."""
    if hp.optimizer == "sgd":
        optimizer = torch.optim.SGD(
            params, lr=hp.lr, momentum=hp.momentum, nesterov=hp.nesterov, weight_decay=hp.weight_decay
        )
    elif hp.optimizer == "adam":
        optimizer = torch.optim.Adam(params, lr=hp.lr, weight_decay=hp.weight_decay)
    else:
        optimizer = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
    if hp.lr_scheduler == "none":
        return optimizer, None
    if hp.lr_scheduler == "cosine":
        # Per epoch, from max_epochs: reading trainer.estimated_stepping_batches here would drop the
        # loader's resume state (Lightning #20550).
        epochs = cosine_epochs(max_epochs)
        return optimizer, lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    return optimizer, lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=hp.lr_step_size, gamma=hp.lr_gamma)


def cosine_epochs(max_epochs: int | None) -> int:
    """The epochs the cosine schedule anneals over: the run's ``max_epochs`` (Lightning's -1: no limit, refused)."""
    if max_epochs is not None and max_epochs < 0:
        # CosineAnnealingLR is periodic: over 1 epoch, the rate would be 0 in every other epoch of the run.
        raise ConfigurationError(
            "--model.lr_scheduler cosine anneals the learning rate to 0 over --trainer.max_epochs, and this run has "
            "no epoch limit (max_epochs -1, or unset beside --trainer.max_steps or --trainer.max_time). Set "
            "--trainer.max_epochs N, or use --model.lr_scheduler step or none."
        )
    return max(1, max_epochs or 1)
