"""The registered models by name: how each is built, its smallest input and head, its parameter count."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paddle
import paddle.nn as nn
import paddle.vision.models as pvm

from kaggle_flow.errors import FlowError
from kaggle_flow.fileio import atomic_path
from kaggle_flow.models import resnets
from kaggle_flow.models.channels import first_conv, set_in_channels
from kaggle_flow.models.nets import AlexNet, GoogLeNet, LeNet, SmallCNN
from kaggle_flow.models.weights import (
    cached_imagenet,
    check_state,
    fetch_pretrained,
    imagenet_file_name,
    load_weights,
    pretrained_names,
    weights_home,
)
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


def _vision(factory: Callable[..., nn.Layer], **kwargs: Any) -> Builder:
    def build(num_classes: int, in_channels: int, image_size: int | None) -> nn.Layer:
        return set_in_channels(factory(num_classes=num_classes, **kwargs), in_channels)

    return build


def _family(name: str) -> Builder:
    return lambda k, c, size: resnets.build(name, k, c, image_size=size)


MODELS: Registry[ModelInfo] = Registry("model", [
        ModelInfo("smallcnn", "Small BatchNorm CNN for tiny images (8-48 px, e.g. digits); fast on CPU", 8,
                  lambda k, c, size: SmallCNN(k, in_channels=c), head="fc"),
        ModelInfo("smallcnn3", "smallcnn with a third pooled stage, for 48-64 px images (it sees 50 px, smallcnn 30)", 16,
                  lambda k, c, size: SmallCNN(k, in_channels=c, stages=3), head="fc"),
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
        weight = first_conv(model)[2].weight
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
    # paddle's BatchNorm says this at every training step; it changes nothing flow does
    warnings.filterwarnings("ignore", message="When training, we now always track global mean and variance")
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


def list_models(text: str = "") -> list[ModelInfo]:
    """The models whose name or description holds `text` (any case), in registry order: `flow models --filter`."""
    text = text.lower()
    return [m for m in MODELS.values() if text in m.name.lower() or text in m.description.lower()]


@dataclass(frozen=True)
class ImagenetWeights:
    """A registered model with ImageNet weights, and whether paddle's cache holds them now (`flow weights`)."""

    name: str
    params: int  # with its ImageNet head of 1,000 classes
    file: str  # the name paddle looks for in its weights cache
    path: Path | None  # the cached file, None when it is not there

    @property
    def size(self) -> int | None:
        return self.path.stat().st_size if self.path is not None else None


def imagenet_weights() -> list[ImagenetWeights]:
    """The models of the registry that have ImageNet weights, in registry order, each with its cached file."""
    names = set(pretrained_names())
    return [ImagenetWeights(m.name, param_count(m.name, 1000), imagenet_file_name(m.name), cached_imagenet(m.name))
            for m in MODELS.values() if m.name in names]


def add_imagenet_weights(name: str, file: str | Path) -> Path:
    """Copy a weights file into paddle's cache as `name`'s ImageNet weights, once it is checked to fit.

    For a machine without network: the file downloaded elsewhere (`flow weights get` there). Every
    key of the model must be in the file with its shape (the 1,000-class head included); the copy is
    written to a temp file and renamed, so a half-copied file is never taken for the weights.
    """
    MODELS[name]  # an unknown name lists the valid ones
    imagenet_file_name(name)  # a model without ImageNet weights is one line
    with paddle.LazyGuard():  # shapes only: nothing allocated, even for VGG
        model = MODELS[name].builder(1000, 3, None)
    check_state(model, file, f"{name} (1,000 ImageNet classes)")
    target = weights_home() / imagenet_file_name(name)
    with atomic_path(target) as tmp:
        shutil.copyfile(file, tmp)
    return target
