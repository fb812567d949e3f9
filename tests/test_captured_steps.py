"""When ``CapturedSteps`` warms up, captures, replays or runs a group eagerly: its planning, checked on the CPU."""

import copy

import torch

from tests.helpers import PlannedOnly


def make_steps(momentum: float) -> tuple[PlannedOnly, torch.optim.Optimizer]:
    net = torch.nn.Linear(4, 3)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=momentum)

    def step(images, labels):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(images), labels)
        loss.backward()
        optimizer.step()
        return loss.detach(), loss.detach()

    return PlannedOnly(step, optimizer, torch.device("cpu")), optimizer


def group(steps: int, batch: int, last: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    sizes = [batch] * (steps - 1) + [batch if last is None else last]
    return [(torch.randn(size, 4), torch.randint(0, 3, (size,))) for size in sizes]


def plans(captured: PlannedOnly, *groups) -> list[str]:
    PlannedOnly.seen.clear()
    for batches in groups:
        captured.run(batches)
    return list(PlannedOnly.seen)


def test_two_warm_ups_then_one_capture_then_replays_and_shorter_groups_run_eagerly():
    captured, _ = make_steps(momentum=0.0)  # plain SGD: no state to create
    seen = plans(captured, group(3, 8), group(3, 8), group(3, 8), group(3, 8), group(2, 8), group(3, 8, last=5))
    assert seen == ["warm-up", "warm-up", "capture", "replay", "eager", "eager"]


def test_a_new_learning_rate_is_captured_again():
    captured, optimizer = make_steps(momentum=0.0)
    plans(captured, group(3, 8), group(3, 8), group(3, 8))
    optimizer.param_groups[0]["lr"] = 0.01  # e.g. a per-epoch schedule
    assert plans(captured, group(3, 8), group(3, 8)) == ["capture", "replay"]


def test_optimizer_state_created_or_replaced_is_warmed_up_before_a_capture():
    # A capture that recorded the momentum buffers' creation would create them again at every replay.
    captured, optimizer = make_steps(momentum=0.9)
    first = plans(captured, *[group(3, 8)] * 4)
    assert first == ["warm-up", "warm-up", "warm-up", "capture"]  # the first warm-up creates the buffers
    saved = copy.deepcopy(optimizer.state_dict())  # (as torch.load gives it: other tensors)
    assert plans(captured, group(3, 8)) == ["replay"]
    optimizer.load_state_dict(saved)  # e.g. LearningRateFinder restoring its checkpoint: new state tensors
    assert plans(captured, *[group(3, 8)] * 3) == ["warm-up", "warm-up", "capture"]


def test_a_new_batch_size_is_warmed_up_and_captured_again():
    captured, _ = make_steps(momentum=0.0)
    plans(captured, *[group(3, 8)] * 3)
    # BatchSizeFinder's trials, then the size it found: full groups of another batch size.
    assert plans(captured, *[group(3, 16)] * 4) == ["warm-up", "warm-up", "capture", "replay"]
    assert plans(captured, group(1, 16)) == ["eager"]  # (its trials stop after a few steps: a shorter group)


def test_a_shorter_group_before_each_validation_runs_eagerly_between_replays():
    # A fractional --trainer.val_check_interval lays groups out as, e.g., 3, 3, 2 steps between validations
    # (batch_counting.groups_fitting_validation): the graph of 3 steps is kept across the shorter groups.
    captured, _ = make_steps(momentum=0.0)
    stretch = [group(3, 8), group(3, 8), group(2, 8)]
    first, second, third = (
        ["warm-up", "warm-up", "eager"],
        ["capture", "replay", "eager"],
        ["replay", "replay", "eager"],
    )
    assert plans(captured, *stretch * 3) == first + second + third
    assert captured.replays == 4  # (the capture replays its group too)
