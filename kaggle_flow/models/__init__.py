"""Registry of paddle image classifiers, by name.

Every entry builds a `paddle.nn.Layer` that maps `[N, in_channels, H, W]` to logits `[N, num_classes]`
for any square size H = W >= its `min_size`. The paddle.vision models keep their own layer names, so
the ImageNet weights (`pretrained=True`) and checkpoints load by key; a grey (1-channel) input is
handled by giving the first convolution 1 input channel, initialized from the ImageNet filters summed
over RGB (the way timm adapts input convolutions), so the pretrained weights still help.

    create_model("resnet18", num_classes=4, in_channels=3, pretrained=True)
    create_model("resnet-s", num_classes=10, in_channels=1, image_size=28, weights="runs/mnist/r1/best.pdparams")

Every entry names its classifier head (the last linear layer), the part `--freeze` trains on top of a
frozen backbone (`head_parameters`, `set_backbone_trainable`); speed.py times a training step.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import paddle.vision.models as pvm

from kaggle_flow import console
from kaggle_flow.models import resnets
from kaggle_flow.errors import FlowError
from kaggle_flow.registry import Registry

# A builder takes (num_classes, in_channels, image_size) and returns the model with 3-channel input
# weights already adapted to in_channels; image_size (the training size, None: small) may shape the stem.
Builder = Callable[[int, int, int | None], nn.Layer]


@dataclass(frozen=True)
class ModelInfo:
    """One registered model: how to build it and the smallest input it handles."""

    name: str
    description: str
    min_size: int  # px: the smallest square input whose feature maps do not collapse
    builder: Builder
    head: str | None = None  # dotted path of the classifier's last Linear (None: no separable head)


# --- models written here ---------------------------------------------------------------------


def _conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2D(c_in, c_out, 3, padding=1, bias_attr=False), nn.BatchNorm2D(c_out), nn.ReLU())


class SmallCNN(nn.Layer):
    """A fast BatchNorm CNN for tiny images (8-64 px): 16, pool, 32-32, pool, 64-128, global pool, linear.

    Only one thin convolution runs at full resolution (where a 3x3 convolution costs the most), then
    two per stage at 1/2 and 1/4; the global average pool keeps it size-agnostic. About 108k
    parameters and 7 M multiply-adds per 28 px image: 12 epochs of 3,600 MNIST digits take under two
    minutes on one CPU core and reach about 98.5% held-out accuracy.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, width: int = 32, dropout: float = 0.2) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv_bn(in_channels, w // 2),
            nn.MaxPool2D(2, 2),
            _conv_bn(w // 2, w),
            _conv_bn(w, w),
            nn.MaxPool2D(2, 2),
            _conv_bn(w, 2 * w),
            _conv_bn(2 * w, 4 * w),
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


# --- input channels --------------------------------------------------------------------------


def _sublayer(model: nn.Layer, path: str) -> nn.Layer:
    """The layer at a dotted path of `named_sublayers` ("classifier.6")."""
    for part in path.split(".") if path else []:
        model = model[int(part)] if part.isdigit() else getattr(model, part)
    return model


def _first_conv(model: nn.Layer) -> tuple[nn.Layer, str, nn.Conv2D]:
    """The first Conv2D of a model (in registration order, which is forward order here) and its parent."""
    for path, layer in model.named_sublayers():
        if isinstance(layer, nn.Conv2D):
            outer, _, last = path.rpartition(".")
            return _sublayer(model, outer), last, layer
    raise FlowError(f"{type(model).__name__}: no convolution found to adapt the input channels")


def _adapt_conv_weight(weight: np.ndarray, in_channels: int) -> np.ndarray:
    """An RGB filter bank [out, 3, k, k] turned into [out, in_channels, k, k] with the same response.

    Grey: the sum over RGB (a grey image repeated to RGB gives the same activations). Otherwise the
    RGB filters are cycled and rescaled by 3 / in_channels.
    """
    if in_channels == 1:
        return weight.sum(axis=1, keepdims=True)
    reps = -(-in_channels // weight.shape[1])
    return np.tile(weight, (1, reps, 1, 1))[:, :in_channels] * (weight.shape[1] / in_channels)


def _set_in_channels(model: nn.Layer, in_channels: int) -> nn.Layer:
    parent, name, conv = _first_conv(model)
    if conv._in_channels == in_channels:
        return model
    new = nn.Conv2D(
        in_channels,
        conv._out_channels,
        conv._kernel_size,
        stride=conv._stride,
        padding=conv._padding,
        dilation=conv._dilation,
        groups=1,
        bias_attr=False if conv.bias is None else None,
    )
    new.weight.set_value(_adapt_conv_weight(conv.weight.numpy(), in_channels).astype("float32"))
    if conv.bias is not None:
        new.bias.set_value(conv.bias.numpy())
    setattr(parent, name, new)
    return model


def _vision(factory: Callable[..., nn.Layer], **kwargs: Any) -> Builder:
    def build(num_classes: int, in_channels: int, image_size: int | None) -> nn.Layer:
        return _set_in_channels(factory(num_classes=num_classes, **kwargs), in_channels)

    return build


def _family(name: str) -> Builder:
    return lambda k, c, size: resnets.build(name, k, c, image_size=size)


# --- the registry ----------------------------------------------------------------------------

MODELS: Registry[ModelInfo] = Registry("model", [
        ModelInfo("smallcnn", "Small BatchNorm CNN for tiny images (8-64 px, e.g. digits); fast on CPU", 8,
                  lambda k, c, size: SmallCNN(k, in_channels=c), head="fc"),
        ModelInfo("resnet-t", "Tiny plain ResNet, 3x3 convs only (fast on CPU): a first try on small data", 8,
                  _family("resnet-t"), head="head"),
        ModelInfo("resnet-s", "Small plain ResNet: the from-scratch choice for a few hundred to thousands of images",
                  8, _family("resnet-s"), head="head"),
        ModelInfo("resnet-m", "Medium plain ResNet (2 blocks a stage), from scratch", 8, _family("resnet-m"), head="head"),
        ModelInfo("resnet-l", "Large plain ResNet, ResNet-18's widths; its stem keeps small images' resolution", 8,
                  _family("resnet-l"), head="head"),
        ModelInfo("lenet", "LeNet-5 (1998), any size >= 28 via adaptive pooling", 28,
                  lambda k, c, size: LeNet(k, in_channels=c), head="fc.2"),
        ModelInfo("alexnet", "AlexNet (2012), adaptive 6x6 pool before the classifier", 63, _vision(AlexNet), head="_fc8"),
        ModelInfo("vgg11", "VGG-11 with batch norm", 32, _vision(pvm.vgg11, batch_norm=True), head="classifier.6"),
        ModelInfo("vgg16", "VGG-16 (ImageNet weights available)", 32, _vision(pvm.vgg16), head="classifier.6"),
        ModelInfo("googlenet", "GoogLeNet / Inception v1, main head only", 61, _vision(GoogLeNet), head="_fc_out"),
        ModelInfo("resnet18", "ResNet-18: the usual first choice for 64-512 px images", 32, _vision(pvm.resnet18), head="fc"),
        ModelInfo("resnet34", "ResNet-34", 32, _vision(pvm.resnet34), head="fc"),
        ModelInfo("resnet50", "ResNet-50 (bottleneck blocks)", 32, _vision(pvm.resnet50), head="fc"),
        ModelInfo("resnet101", "ResNet-101", 32, _vision(pvm.resnet101), head="fc"),
        ModelInfo("mobilenet_v2", "MobileNetV2 1.0: light, for small parameter budgets", 32, _vision(pvm.mobilenet_v2),
                  head="classifier.1"),
        ModelInfo("mobilenet_v3_small", "MobileNetV3-Small 1.0: the lightest ImageNet model here", 32,
                  _vision(pvm.mobilenet_v3_small), head="classifier.3"),
        ModelInfo("mobilenet_v3_large", "MobileNetV3-Large 1.0", 32, _vision(pvm.mobilenet_v3_large), head="classifier.3"),
        ModelInfo("shufflenet_v2", "ShuffleNetV2 x1.0: light and fast", 32, _vision(pvm.shufflenet_v2_x1_0), head="_fc"),
])

# name -> (paddle.vision module holding model_urls, key in it); the models with ImageNet weights.
_PRETRAINED: dict[str, tuple[str, str]] = {
    "alexnet": ("alexnet", "alexnet"),
    "vgg16": ("vgg", "vgg16"),
    "googlenet": ("googlenet", "googlenet"),
    "resnet18": ("resnet", "resnet18"),
    "resnet34": ("resnet", "resnet34"),
    "resnet50": ("resnet", "resnet50"),
    "resnet101": ("resnet", "resnet101"),
    "mobilenet_v2": ("mobilenetv2", "mobilenetv2_1.0"),
    "mobilenet_v3_small": ("mobilenetv3", "mobilenet_v3_small_x1.0"),
    "mobilenet_v3_large": ("mobilenetv3", "mobilenet_v3_large_x1.0"),
    "shufflenet_v2": ("shufflenetv2", "shufflenet_v2_x1_0"),
}



def has_pretrained(name: str) -> bool:
    return name in _PRETRAINED


def check_size(name: str, size: int) -> None:
    """Fail before training when the images are too small for the model."""
    info = MODELS[name]
    if size < info.min_size:
        raise FlowError(f"image size {size} is too small for {name}: it needs at least {info.min_size} px")


def count_params(model: nn.Layer) -> int:
    return int(sum(int(np.prod(p.shape)) for p in model.parameters()))


def param_count(name: str, num_classes: int = 10, in_channels: int = 3) -> int:
    """Parameters of a model, without allocating them (lazy init: instant even for VGG).

    Built for RGB (adapting the first convolution needs real weights), then corrected for its input.
    """
    with paddle.LazyGuard():
        model = MODELS[name].builder(num_classes, 3, None)
        weight = _first_conv(model)[2].weight
    return count_params(model) + int(np.prod(weight.shape)) // weight.shape[1] * (in_channels - 3)


def check_params(n: int, max_params: int | None, name: str) -> None:
    """Fail when a model breaks the competition's limit on the number of parameters."""
    if max_params is not None and n > max_params:
        raise FlowError(f"{name} has {n:,} parameters, over the competition's limit of {max_params:,}: pick a smaller model")


def create_model(
    name: str,
    num_classes: int,
    in_channels: int = 3,
    pretrained: bool = False,
    weights: str | Path | None = None,
    image_size: int | None = None,
) -> nn.Layer:
    """Build a registered model, optionally starting from ImageNet weights or a weights file.

    Args:
        name: a key of MODELS.
        num_classes: size of the output layer; with ImageNet weights and num_classes != 1000 the
            backbone is loaded and the classifier head stays freshly initialized.
        in_channels: 1 (grey) or 3 (RGB); other counts work too.
        pretrained: start from paddle.vision's ImageNet weights (downloaded once to ~/.cache/paddle).
        weights: a .pdparams state dict to load (a checkpoint of this model, or the ImageNet file
            downloaded by hand, e.g. when there is no network).
        image_size: the training size in px (None: a small image). The resnet-t/s/m/l family picks
            its stem stride from it (the parameters stay the same); the other models ignore it.
    """
    info = MODELS[name]
    if num_classes < 1:
        raise FlowError(f"num_classes must be at least 1 (got {num_classes})")
    if in_channels < 1:
        raise FlowError(f"in_channels must be at least 1 (got {in_channels})")
    model = info.builder(num_classes, in_channels, image_size)
    if weights is not None:
        load_weights(model, weights, num_classes, name=name)
    elif pretrained:
        load_weights(model, fetch_pretrained(name), num_classes, name=name, new_head_ok=True)
    return model


# --- weights ---------------------------------------------------------------------------------


def fetch_pretrained(name: str) -> Path:
    """The local path of a model's ImageNet weights, downloaded on first use; a FlowError offline."""
    if name not in _PRETRAINED:
        with_weights = ", ".join(_PRETRAINED)
        raise FlowError(f"no pretrained weights for {name} (available for: {with_weights}): train from scratch")
    import importlib

    from paddle.utils.download import WEIGHTS_HOME, get_weights_path_from_url

    module, key = _PRETRAINED[name]
    url, md5 = importlib.import_module(f"paddle.vision.models.{module}").model_urls[key]
    cached = Path(WEIGHTS_HOME) / os.path.basename(url)
    if cached.is_file():
        return cached
    failed = f"cannot fetch the pretrained weights for {name} (no network?): pass --weights FILE or train from scratch"
    host = urlparse(url).hostname or ""
    try:  # fail in seconds, not after paddle's retries with no timeout
        socket.create_connection((host, 443), timeout=5).close()
    except OSError:
        raise FlowError(failed) from None
    try:
        return Path(get_weights_path_from_url(url, md5))
    except Exception:
        raise FlowError(failed) from None


def _read_state(file: str | Path) -> Mapping[str, Any]:
    path = Path(file)
    if not path.is_file():
        raise FlowError(f"{path}: weights file not found")
    try:
        state = paddle.load(str(path))
    except Exception as exc:
        raise FlowError(f"{path}: not a paddle weights file ({type(exc).__name__}: {exc})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # a checkpoint that wraps the state dict
    if not isinstance(state, dict) or not state:
        raise FlowError(f"{path}: not a paddle state dict (expected a dict of parameter name -> array)")
    return state


def _as_array(value: Any) -> np.ndarray:
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def load_weights(
    model: nn.Layer, file: str | Path, num_classes: int, *, name: str = "this model", new_head_ok: bool = False
) -> None:
    """Load a state dict into `model`, adapting the two places that may legitimately differ.

    The first convolution is adapted from RGB to the model's input channels, and a classifier head of
    another class count is left at its fresh initialization (with a warning unless new_head_ok, as for
    the ImageNet weights). Any other missing key or shape mismatch is an error naming the file, so a
    checkpoint of another model never half-loads.
    """
    state = {k: _as_array(v) for k, v in _read_state(file).items()}
    own = model.state_dict()
    _, _, first = _first_conv(model)
    head = {p.name for layer in model.sublayers() if isinstance(layer, nn.Linear) and layer.weight.shape[-1] == num_classes
            for p in layer.parameters()}
    missing = [k for k in own if k not in state]
    if missing:
        raise FlowError(f"{file}: does not fit {name}: missing keys {console.shortlist(missing, 3)}")
    loaded, skipped, bad = {}, [], []
    for key, param in own.items():
        want, got = list(param.shape), state[key]
        if list(got.shape) == want:
            loaded[key] = got
        elif param.name == first.weight.name and got.ndim == 4 and list(got.shape[:1] + got.shape[2:]) == want[:1] + want[2:]:
            loaded[key] = _adapt_conv_weight(got, want[1]).astype(got.dtype)
        elif param.name in head:
            loaded[key] = param  # keeps its fresh initialization
            skipped.append(key)
        else:
            bad.append(f"{key} {list(got.shape)} vs {want}")
    if bad:
        raise FlowError(f"{file}: does not fit {name}: shape mismatch {console.shortlist(bad, 2, sep='; ')}")
    if skipped and not new_head_ok:
        console.warn(f"{file}: classifier head of another class count; {', '.join(skipped)} left freshly initialized")
    model.set_state_dict(loaded)


# --- the head, for --freeze ------------------------------------------------------------------


def head_parameters(model: nn.Layer, name: str) -> list[paddle.Tensor]:
    """The parameters of the classifier head (the registry's `head` layer): what `--freeze` trains."""
    path = MODELS[name].head
    if path is None:
        raise FlowError(f"--freeze: {name} has no separable classifier head")
    inner = model._layers if isinstance(model, paddle.DataParallel) else model
    return list(_sublayer(inner, path).parameters())


_BATCH_NORMS = (nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D)


def set_backbone_trainable(model: nn.Layer, name: str, trainable: bool) -> None:
    """Freeze (or thaw) every parameter outside the head: the transfer-learning recipe.

    A frozen backbone also freezes its BatchNorm statistics: the layers normalize with their running
    mean and variance (the pretrained ones) and stop updating them, in training mode too, so the
    loop's `model.train()` does not undo it (`use_global_stats`, not `eval()`). The optimizer may hold
    every parameter: a frozen one gets no gradient, so Adam and weight decay leave it alone.
    """
    head = {p.name for p in head_parameters(model, name)}
    for param in model.parameters():
        if param.name not in head:
            param.stop_gradient = not trainable
    for layer in model.sublayers():
        if isinstance(layer, _BATCH_NORMS):
            layer._use_global_stats = None if trainable else True  # None: batch statistics while training
