"""The random number generators' states of a process (torch, CUDA, numpy, random) as tensors, for checkpoints.

Lightning's checkpoints leave them out (``ResumableRun`` saves them): without them a resumed run draws other
dropout masks and augmentations than the interrupted one would have.
"""

import random

import numpy as np
import torch


def collect_rng_state() -> dict[str, torch.Tensor]:
    """This process's RNG states as tensors (loadable with ``weights_only=True``)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_rest": torch.tensor([np_state[2], np_state[3]], dtype=torch.int64),
        "numpy_gauss": torch.tensor(np_state[4], dtype=torch.float64),
        "python": torch.tensor(random.getstate()[1], dtype=torch.int64),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: dict[str, torch.Tensor]) -> None:
    """Set this process's generators to a state from ``collect_rng_state``."""
    torch.set_rng_state(state["torch"])
    position, has_gauss = (int(v) for v in state["numpy_rest"])
    np.random.set_state(
        ("MT19937", state["numpy_keys"].numpy().astype(np.uint32), position, has_gauss, float(state["numpy_gauss"]))
    )
    random.setstate((3, tuple(int(v) for v in state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def rng_states_of_all_processes(trainer) -> list[dict[str, torch.Tensor]]:
    """Every process's RNG states, in rank order (under DDP gathered from all of them; collective)."""
    state = collect_rng_state()
    if trainer.world_size == 1:
        return [state]
    device = trainer.strategy.root_device
    gathered = {key: trainer.strategy.all_gather(value.to(device)) for key, value in state.items()}
    # clone(): a row of the gathered tensor is a view, and torch.set_rng_state needs a tensor of its own.
    return [{key: value[rank].cpu().clone() for key, value in gathered.items()} for rank in range(trainer.world_size)]
