"""A family of plain residual CNNs for training from scratch on CPU: resnet-t, -s, -m, -l.

Only dense 3x3 (and 1x1 shortcut) convolutions, the operation paddle's CPU kernels (oneDNN) run
fastest; depthwise convolutions, cheap on paper, are several times slower per image there. The
layout is ResNet's (He et al. 2016) with a 3x3 stem whose stride follows the training size, so a
28 px digit keeps its full resolution and a 224 px photo is reduced 4x before the first stage:

    image_size    stem                        first stage at     e.g.
    < 64 / None   3x3 conv, stride 1          the input size     28 -> 28, 32 -> 32
    64 - 127      3x3 conv, stride 2          1/2                64 -> 32, 96 -> 48
    >= 128        3x3 conv stride 2, max pool 1/4                128 -> 32, 224 -> 56

The stride is not a parameter: every size has the same weights, so a checkpoint trained at one size
loads at any other. Convolutions start Kaiming-normal (fan-in, ReLU gain). `zero_init_residual`
(the last BatchNorm of each residual branch at gamma 0, so every block starts as the identity, Goyal
et al. 2017) is off: on 4,000 MNIST digits with flow's recipe (Adam 3e-3, one-cycle, 600 steps of
32) resnet-t reached 96.8% / 97.4% held-out with it and 98.1% / 97.9% without (two seeds).
"""

from __future__ import annotations

from dataclasses import dataclass

import paddle
import paddle.nn as nn
import paddle.nn.functional as F


@dataclass(frozen=True)
class Preset:
    widths: tuple[int, ...]  # channels of each stage; every stage after the first halves the resolution
    blocks: tuple[int, ...]  # residual blocks per stage


PRESETS: dict[str, Preset] = {
    "resnet-t": Preset((16, 24, 48, 96), (1, 1, 1, 1)),
    "resnet-s": Preset((24, 48, 96, 192), (1, 1, 2, 1)),
    "resnet-m": Preset((32, 64, 128, 256), (2, 2, 2, 2)),
    "resnet-l": Preset((64, 128, 256, 512), (2, 2, 2, 2)),  # ResNet-18's widths and depth
}


def stem_stride(image_size: int | None) -> int:
    """How much the stem reduces an image of the training size (1, 2 or 4); None: a small image."""
    if image_size is None or image_size < 64:
        return 1
    return 2 if image_size < 128 else 4


def _conv(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Conv2D:
    return nn.Conv2D(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias_attr=False,
                     weight_attr=nn.initializer.KaimingNormal())


def _bn(channels: int, gamma: float = 1.0) -> nn.BatchNorm2D:
    return nn.BatchNorm2D(channels, weight_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(gamma)))


class BasicBlock(nn.Layer):
    """Two 3x3 conv-BN with a ReLU between; identity shortcut, or 1x1 conv-BN when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, zero_init: bool = False) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv(c_in, c_out, stride=stride), _bn(c_out)
        self.conv2, self.bn2 = _conv(c_out, c_out), _bn(c_out, gamma=0.0 if zero_init else 1.0)
        changes = stride != 1 or c_in != c_out
        self.shortcut = nn.Sequential(_conv(c_in, c_out, 1, stride), _bn(c_out)) if changes else nn.Identity()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Layer):
    """Stem, stages of basic blocks (stride 2 from the second on), global average pool, dropout, `head`."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        *,
        widths: tuple[int, ...],
        blocks: tuple[int, ...],
        image_size: int | None = None,
        dropout: float = 0.2,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        stride = stem_stride(image_size)
        self.stem = nn.Sequential(_conv(in_channels, widths[0], stride=min(stride, 2)), _bn(widths[0]), nn.ReLU())
        self.pool = nn.MaxPool2D(3, 2, padding=1) if stride == 4 else nn.Identity()
        stages, c_in = [], widths[0]
        for i, (width, n) in enumerate(zip(widths, blocks)):
            layers = [BasicBlock(c_in if j == 0 else width, width, 2 if i > 0 and j == 0 else 1, zero_init_residual)
                      for j in range(n)]
            stages.append(nn.Sequential(*layers))
            c_in = width
        self.stages = nn.Sequential(*stages)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.stages(self.pool(self.stem(x)))
        return self.head(self.dropout(paddle.flatten(F.adaptive_avg_pool2d(x, 1), 1)))


def build(name: str, num_classes: int, in_channels: int = 3, image_size: int | None = None) -> ResNet:
    preset = PRESETS[name]
    return ResNet(num_classes, in_channels, widths=preset.widths, blocks=preset.blocks, image_size=image_size)
