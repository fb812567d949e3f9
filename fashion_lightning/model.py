"""The networks, as plain ``nn.Module``s: no Lightning here, so they export and load anywhere."""

from collections.abc import Mapping, Sequence

from torch import Tensor, nn


class MLP(nn.Module):
    """The seed's network: flatten, then Linear-ReLU layers, then a Linear to the class logits.

    Args:
        in_features: Pixels per image (28 * 28).
        hidden_dims: Width of each hidden layer; the seed has (512, 512).
        num_classes: Number of output logits.
        dropout: Dropout after each hidden ReLU (0 = the seed, and no ``Dropout`` layers are added).
    """

    def __init__(
        self,
        in_features: int = 28 * 28,
        hidden_dims: Sequence[int] = (512, 512),
        num_classes: int = 10,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        layers: list[nn.Module] = []
        width = in_features
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        # Same attribute name as the seed, so its state_dict keys (linear_relu_stack.0.weight, ...) match.
        self.linear_relu_stack = nn.Sequential(*layers)

    def forward(self, images: Tensor) -> Tensor:
        # (B, 1, 28, 28) -> (B, 784) -> (B, num_classes)
        return self.linear_relu_stack(self.flatten(images))


class SmallCNN(nn.Module):
    """A small VGG-style net: two conv blocks (32 and 64 channels), then a 256-wide classifier.

    Args:
        in_channels: Image channels (1 for Fashion-MNIST).
        num_classes: Number of output logits.
        dropout: Dropout before each Linear layer.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, dropout: float = 0.25) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
                nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]

        # (B, 1, 28, 28) -> (B, 32, 14, 14) -> (B, 64, 7, 7)
        self.features = nn.Sequential(*block(in_channels, 32), *block(32, 64))
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (B, 64, 7, 7) -> (B, 3136)
            nn.Dropout(dropout),
            nn.Linear(64 * 7 * 7, 256),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(256, num_classes),
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.classifier(self.features(images))


def build_net(
    name: str, image_shape: Sequence[int], num_classes: int, hidden_dims: Sequence[int], dropout: float
) -> nn.Module:
    """Build the network called ``name`` ("mlp" or "cnn") for images of ``image_shape`` (C, H, W)."""
    channels, height, width = image_shape
    if name == "mlp":
        return MLP(channels * height * width, hidden_dims, num_classes, dropout)
    if name == "cnn":
        return SmallCNN(channels, num_classes, dropout)
    raise ValueError(f"unknown net '{name}': choose 'mlp' or 'cnn'")


# The hyperparameters that define the network, in build_net's order: the one hparams -> network mapping, used by
# the LightningModule, by `export` (model.json) and by every loader of an export.
NET_HPARAMS = ("net", "image_shape", "num_classes", "hidden_dims", "dropout")


def net_from_hparams(hparams: Mapping) -> nn.Module:
    """``build_net`` from a mapping that holds ``NET_HPARAMS`` (a checkpoint's hyperparameters, ``model.json``)."""
    return build_net(*(hparams[key] for key in NET_HPARAMS))
