"""The networks of the study.

Claims (checked in ``tests/studies/workloads/test_models.py``):

- ``resnet20`` is the CIFAR ResNet of He et al. 2016 (section 4.2) as the RAdam authors ran
  it (their ``cifar_imagenet/models/cifar/resnet.py``, from bearpaw's pytorch-classification):
  a 3x3 conv with 16 filters, three stages of three basic blocks with 16, 32 and 64 filters
  (the first block of stages 2 and 3 halves the feature map with stride 2), global average
  pooling and a linear layer. Where the shape changes, the shortcut is a strided 1x1 conv
  with batch norm (He et al.'s option B); everywhere else it is the identity. That gives
  272,474 parameters for 10 classes. He et al.'s own CIFAR net used option A (identity,
  subsampled and zero-padded in channels, no parameters): ``shortcut="A"`` builds it, with
  269,722 parameters; both are the "0.27M" of their Table 6. Init as the authors' code:
  convolutions Kaiming-normal with fan-out (``normal(0, sqrt(2 / (k*k*out_channels)))``),
  batch norms weight 1 bias 0, the linear layer torch's default.
- ``cnn`` is a small CNN for 28x28 Fashion-MNIST: two 3x3 conv layers (32, 64 filters) each
  with ReLU and 2x2 max-pooling, then 128 hidden units and the classifier.
- ``mlp`` is a multilayer perceptron for the 8x8 digits: two hidden layers of 128 ReLU units.
  ``cnn`` and ``mlp`` start from Kaiming-normal weights (fan-in) and zero biases.
- All three accept channels_last inputs and run under bf16 autocast (used on GPUs).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from studies.errors import SpecError

MODELS: tuple[str, ...] = ("resnet20", "cnn", "mlp")

Shortcut = Literal["A", "B"]


class ShortcutA(nn.Module):
    """He et al.'s option A shortcut: take every other pixel, pad the new channels with zeros."""

    def __init__(self, *, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra = planes - in_planes  # zero channels to add, split evenly before and after

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        before = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, before, self.extra - before))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a shortcut around them; ReLU after the sum."""

    def __init__(
        self, *, in_planes: int, planes: int, stride: int = 1, shortcut: Shortcut = "B"
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if (stride != 1 or in_planes != planes) and shortcut == "A":
            self.shortcut = ShortcutA(in_planes=in_planes, planes=planes, stride=stride)
        elif stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet of depth 6n+2 (n blocks per stage; n=3 is ResNet-20)."""

    def __init__(
        self,
        *,
        blocks_per_stage: int = 3,
        num_classes: int = 10,
        in_channels: int = 3,
        shortcut: Shortcut = "B",
    ) -> None:
        if shortcut not in ("A", "B"):
            raise SpecError(f"shortcut must be 'A' or 'B', got {shortcut!r}", field="shortcut")
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages: list[nn.Module] = []
        in_planes = 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks: list[nn.Module] = []
            for i in range(blocks_per_stage):
                blocks.append(
                    BasicBlock(
                        in_planes=in_planes,
                        planes=planes,
                        stride=stride if i == 0 else 1,
                        shortcut=shortcut,
                    )
                )
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(64, num_classes)  # torch's default init, as the authors' code
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.stages(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        logits: Tensor = self.fc(out)
        return logits


def resnet20(
    num_classes: int = 10, *, in_channels: int = 3, shortcut: Shortcut = "B"
) -> CifarResNet:
    """ResNet-20 for CIFAR: 272,474 parameters with 10 classes, 3 input channels and the
    authors' projection shortcuts ("B"); 269,722 with He et al.'s zero-padding ones ("A")."""
    return CifarResNet(
        blocks_per_stage=3, num_classes=num_classes, in_channels=in_channels, shortcut=shortcut
    )


class SmallCNN(nn.Module):
    """conv3x3(32)-ReLU-maxpool, conv3x3(64)-ReLU-maxpool, linear(128)-ReLU, linear."""

    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: int = 28,  # pixels per side; must be divisible by 4 (two 2x2 poolings)
        channels: tuple[int, int] = (32, 64),
        hidden: int = 128,  # units
    ) -> None:
        super().__init__()
        if image_size % 4:
            raise SpecError(f"cnn needs an image size divisible by 4, got {image_size}")
        self.conv1 = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.conv2 = nn.Conv2d(channels[0], channels[1], 3, padding=1)
        self.fc1 = nn.Linear(channels[1] * (image_size // 4) ** 2, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)
        _kaiming_init(self)

    def forward(self, x: Tensor) -> Tensor:
        out = F.max_pool2d(F.relu(self.conv1(x)), 2)
        out = F.max_pool2d(F.relu(self.conv2(out)), 2)
        out = F.relu(self.fc1(torch.flatten(out, 1)))
        logits: Tensor = self.fc2(out)
        return logits


class MLP(nn.Module):
    """Flattened pixels -> hidden ReLU layers -> logits."""

    def __init__(
        self,
        *,
        num_inputs: int,
        num_classes: int = 10,
        hidden: tuple[int, ...] = (128, 128),  # units per hidden layer
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = num_inputs
        for units in hidden:
            layers += [nn.Linear(width, units), nn.ReLU()]
            width = units
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)
        _kaiming_init(self)

    def forward(self, x: Tensor) -> Tensor:
        # reshape, not view: a channels_last batch is not contiguous in NCHW order.
        logits: Tensor = self.net(torch.flatten(x, 1))
        return logits


def build_model(name: str, *, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """The network ``name`` (one of ``MODELS``) for images ``in_channels`` x ``image_size``^2."""
    if name == "resnet20":
        return resnet20(num_classes, in_channels=in_channels)
    if name == "cnn":
        return SmallCNN(num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    if name == "mlp":
        return MLP(num_inputs=in_channels * image_size * image_size, num_classes=num_classes)
    raise SpecError(f"unknown model {name!r}; expected one of {MODELS}", field="model")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _kaiming_init(model: nn.Module) -> None:
    """Kaiming-normal weights (fan-in, ReLU gain) for every conv and linear layer, zero biases;
    batch norms at weight 1, bias 0 (torch's default, restated)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
