"""PyTorch definitions equivalent to fastconv.models, with the same state-dict keys.

Only for optional cross-checks (tests and benches skip when torch is absent): a model's
``state_dict()`` moves between the two libraries unchanged.
"""
import torch
from torch import nn


class Residual(nn.Module):
    """``body(x) + shortcut(x)`` (identity shortcut when None), as fastconv.nn.Residual."""

    def __init__(self, body, shortcut=None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x):
        return self.body(x) + (x if self.shortcut is None else self.shortcut(x))


def basic_block(cin, cout, stride):
    body = nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
    shortcut = None
    if stride != 1 or cin != cout:
        shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    return nn.Sequential(Residual(body, shortcut), nn.ReLU())


def cifar_resnet(n, in_channels=1, num_classes=10):
    stages, cin = [], 16
    for i, width in enumerate((16, 32, 64)):
        blocks = []
        for j in range(n):
            blocks.append(basic_block(cin, width, 2 if i > 0 and j == 0 else 1))
            cin = width
        stages.append(nn.Sequential(*blocks))
    return nn.Sequential(nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                         *stages, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))


def vgg_small(in_channels=1, num_classes=10):
    layers, cin = [], in_channels
    for width in (32, 64, 128):
        for _ in range(2):
            layers += [nn.Conv2d(cin, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            cin = width
        layers.append(nn.MaxPool2d(2))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


def lenet5(num_classes=10):
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, num_classes))


TORCH_MODELS = {"lenet5": lenet5, "resnet8": lambda c=1, k=10: cifar_resnet(1, c, k),
                "resnet20": lambda c=1, k=10: cifar_resnet(3, c, k), "vgg_small": vgg_small}


def from_fastconv(model, name, dtype=torch.float32):
    """The torch model equivalent to fastconv ``model`` (of builder ``name``), same weights."""
    tm = TORCH_MODELS[name]().to(dtype)
    tm.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()},
                       strict=True)
    return tm
