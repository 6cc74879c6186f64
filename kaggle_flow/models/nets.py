"""Small classifiers written here, and paddle.vision's AlexNet and GoogLeNet freed of a fixed input size."""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import paddle.vision.models as pvm


def _conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2D(c_in, c_out, 3, padding=1, bias_attr=False), nn.BatchNorm2D(c_out), nn.ReLU())


class SmallCNN(nn.Layer):
    """A fast BatchNorm CNN for tiny images (8-64 px): 16, pool, 32-32, pool, 64-128, global pool, linear.

    Only one thin convolution runs at full resolution (where a 3x3 convolution costs the most), then
    two per stage at 1/2 and 1/4; the global average pool keeps it size-agnostic. About 108k
    parameters and 7 M multiply-adds per 28 px image: 12 epochs of 3,600 MNIST digits take under two
    minutes on one CPU core and reach about 98.5% held-out accuracy.

    Each of its outputs sees 30 px of the image: enough for a 28 px digit, too little for 48-64 px
    images whose objects take most of the image. `stages=3` (smallcnn3) adds a pool and a 128-wide
    convolution at 1/8, which widens that view to 50 px (256k parameters; at 56 px about 2/3 of
    smallcnn's training speed on a CPU).
    """

    def __init__(self, num_classes: int, in_channels: int = 1, width: int = 32, dropout: float = 0.2, stages: int = 2) -> None:
        super().__init__()
        w = width
        third = [nn.MaxPool2D(2, 2), _conv_bn(4 * w, 4 * w)] if stages == 3 else []
        self.features = nn.Sequential(
            _conv_bn(in_channels, w // 2),
            nn.MaxPool2D(2, 2),
            _conv_bn(w // 2, w),
            _conv_bn(w, w),
            nn.MaxPool2D(2, 2),
            _conv_bn(w, 2 * w),
            _conv_bn(2 * w, 4 * w),
            *third,
        )
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.pool(self.features(x))
        return self.fc(self.dropout(paddle.flatten(x, 1)))


class LeNet(nn.Layer):
    """LeNet-5 as in paddle.vision (same layer names), with any input channels and any size >= 28.

    paddle's LeNet is fixed to 1x28x28; an adaptive pool to 5x5 before the classifier frees the size.
    """

    def __init__(self, num_classes: int, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2D(in_channels, 6, 3, stride=1, padding=1),
            nn.ReLU(),
            nn.MaxPool2D(2, 2),
            nn.Conv2D(6, 16, 5, stride=1, padding=0),
            nn.ReLU(),
            nn.MaxPool2D(2, 2),
        )
        self.pool = nn.AdaptiveAvgPool2D(5)
        self.fc = nn.Sequential(nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, num_classes))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.fc(paddle.flatten(self.pool(self.features(x)), 1))


class AlexNet(pvm.AlexNet):
    """paddle's AlexNet with an adaptive 6x6 pool before the classifier, so it takes any size >= 63."""

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes=num_classes)
        self._adaptive = nn.AdaptiveAvgPool2D(6)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._conv2(self._conv1(x))
        x = F.relu(self._conv4(F.relu(self._conv3(x))))
        x = paddle.flatten(self._adaptive(self._conv5(x)), 1)
        x = F.relu(self._fc6(self._drop1(x)))
        x = F.relu(self._fc7(self._drop2(x)))
        return self._fc8(x)


class GoogLeNet(pvm.GoogLeNet):
    """paddle's GoogLeNet returning the main logits only; the two auxiliary heads are dropped.

    The auxiliary heads need 224 px inputs and return extra outputs a plain classifier loss cannot use.
    """

    _AUX = ("_pool_o1", "_pool_o2", "_conv_o1", "_conv_o2", "_fc_o1", "_fc_o2", "_drop_o1", "_drop_o2", "_out1", "_out2")

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes=num_classes)
        for name in self._AUX:
            if hasattr(self, name):
                delattr(self, name)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._pool(self._conv_2(self._conv_1(self._pool(self._conv(x)))))
        x = self._pool(self._ince3b(self._ince3a(x)))
        x = self._ince4e(self._ince4d(self._ince4c(self._ince4b(self._ince4a(x)))))
        x = self._ince5b(self._ince5a(self._pool(x)))
        x = paddle.flatten(self._pool_5(x), 1)
        return self._fc_out(self._drop(x))
