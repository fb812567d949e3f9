"""The Trainer does exactly what the seed's plain loop does: same weights after the same steps."""

import copy
from pathlib import Path

import torch
from torch import nn

from fashion_lightning.cli import build_cli
from tests.helpers import cli_args

STEPS = 8


class NeuralNetwork(nn.Module):
    """The seed's model, as the seed writes it."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(28 * 28, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
        )

    def forward(self, x):
        return self.linear_relu_stack(self.flatten(x))


def seed_train(dataloader, model, loss_fn, optimizer, steps):
    """The seed's train() loop, stopped after ``steps`` batches."""
    model.train()
    for batch, (X, y) in enumerate(dataloader):
        if batch == steps:
            break
        loss = loss_fn(model(X), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_trainer_steps_equal_the_seeds_loop(fashion):
    seed_config = Path(__file__).parents[1] / "configs" / "seed.yaml"
    args = [f"--config={seed_config}", *cli_args(fashion, f"--trainer.max_steps={STEPS}", val_size=0, batch_size=16)]
    cli = build_cli(args, run=False)
    assert cli.datamodule.hparams.shuffle is False  # the seed's loader is not shuffled
    cli.datamodule.prepare_data()
    cli.datamodule.setup("fit")
    seed_model = NeuralNetwork()
    initial = copy.deepcopy(cli.model.net.state_dict())
    seed_model.load_state_dict(initial)  # same initial weights, same parameter names
    optimizer = torch.optim.SGD(seed_model.parameters(), lr=1e-3)
    seed_train(cli.datamodule.train_dataloader(), seed_model, nn.CrossEntropyLoss(), optimizer, STEPS)

    cli.trainer.fit(cli.model, datamodule=cli.datamodule)

    assert cli.trainer.global_step == STEPS
    for name, seed_value in seed_model.state_dict().items():
        lightning_value = cli.model.net.state_dict()[name]
        assert (lightning_value - seed_value).abs().max() <= 1e-6, name
    assert not torch.equal(initial["linear_relu_stack.0.weight"], seed_model.state_dict()["linear_relu_stack.0.weight"])
