"""Which way the training step can run: why its updates must go through Lightning's optimizer, or why it cannot
run as a CUDA graph (``TrainingSteps`` picks the fastest way left and says why in one line)."""

import lightning as L
from lightning.pytorch.callbacks import ModelPruning

from fashion_lightning._compat import optimizer_step_counter

# Hooks Lightning runs between a step's forward and its update. Its defaults do nothing; when someone overrides one,
# the steps go through Lightning's optimizer so that it runs at the right moment, every step.
STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")


def step_hooks_in_use(module) -> list[str]:
    """The callbacks' and the module's overrides of the hooks around backward and the optimizer step."""
    used = [f"{type(cb).__name__}.{name}" for cb in module.trainer.callbacks for name in STEP_HOOKS
            if getattr(type(cb), name) is not getattr(L.Callback, name)]  # fmt: skip
    used += [f"{type(module).__name__}.{name}" for name in (*STEP_HOOKS, "backward")
             if getattr(type(module), name) is not getattr(L.LightningModule, name)]  # fmt: skip
    return used


def lightning_steps_needed(module) -> str | None:
    """Why the optimizer steps must go through Lightning's optimizer and ``manual_backward``, or ``None`` when
    plain torch calls do all they would (one process, 32-bit, no hook overridden, no accumulation)."""
    hp, trainer = module.hparams, module.trainer
    if trainer.world_size > 1:
        return f"DDP over {trainer.world_size} processes all-reduces gradients in Lightning's backward"
    if trainer.precision != "32-true":
        return f"precision {trainer.precision} (the graph runs in 32-true)"
    if hp.accumulate_grad_batches > 1:
        return "accumulate_grad_batches > 1"
    hooks = step_hooks_in_use(module)
    if hooks:
        return f"{', '.join(hooks)} must run between the forward and the update"
    if optimizer_step_counter(trainer) is None:
        return "this Lightning version counts optimizer steps only through its optimizer"
    return None


def graph_unavailable(module) -> str | None:
    """Why the training step cannot run as a CUDA graph, or ``None`` when it can."""
    if module.device.type != "cuda":
        return f"the model is on the {module.device.type.upper()}, not on a CUDA device"
    if module.hparams.compile:
        return "the network is compiled (--model.compile)"
    if any(isinstance(callback, ModelPruning) for callback in module.trainer.callbacks):
        # Pruning puts masks (new tensors at each pruning) in the layers' forward pre-hooks; a replay runs no hooks.
        return "ModelPruning changes the network's layers between epochs, and a replayed graph would not follow"
    return lightning_steps_needed(module)
