"""Input channels: the first convolution of an RGB model rebuilt for grey (or any count) images.

The RGB filters of ImageNet weights are adapted to the model's input channels (`adapt_conv_weight`):

    1 channel     the filters summed over RGB (as timm adapts input convolutions): a grey image gives
                  the activations its RGB copy would
    2 channels    the first two (red and green) filters as they are
    3 channels    as they are
    4-8 channels  red, green, blue as they are; each further channel (HPA's yellow) gets the mean of
                  the three, so a channel the weights never saw starts as a colour-blind filter
"""

from __future__ import annotations

import numpy as np
import paddle.nn as nn

from kaggle_flow.errors import FlowError


def sublayer(model: nn.Layer, path: str) -> nn.Layer:
    """The layer at a dotted path of `named_sublayers` ("classifier.6")."""
    for part in path.split(".") if path else []:
        model = model[int(part)] if part.isdigit() else getattr(model, part)
    return model


def first_conv(model: nn.Layer) -> tuple[nn.Layer, str, nn.Conv2D]:
    """The first Conv2D of a model (in registration order, which is forward order here) and its parent."""
    for path, layer in model.named_sublayers():
        if isinstance(layer, nn.Conv2D):
            outer, _, last = path.rpartition(".")
            return sublayer(model, outer), last, layer
    raise FlowError(f"{type(model).__name__}: no convolution found to adapt the input channels")


def adapt_conv_weight(weight: np.ndarray, in_channels: int) -> np.ndarray:
    """A filter bank [out, S, k, k] (S = 3: RGB) turned into [out, in_channels, k, k] (the module docstring).

    One channel: the sum over the S (a grey image repeated to RGB gives the same activations); fewer
    than S: the first in_channels as they are; more: the S as they are, each further one their mean.
    """
    if in_channels == 1:
        return weight.sum(axis=1, keepdims=True)
    if in_channels <= weight.shape[1]:
        return weight[:, :in_channels].copy()
    mean = weight.mean(axis=1, keepdims=True)
    return np.concatenate([weight, np.repeat(mean, in_channels - weight.shape[1], axis=1)], axis=1)


def set_in_channels(model: nn.Layer, in_channels: int) -> nn.Layer:
    parent, name, conv = first_conv(model)
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
    new.weight.set_value(adapt_conv_weight(conv.weight.numpy(), in_channels).astype("float32"))
    if conv.bias is not None:
        new.bias.set_value(conv.bias.numpy())
    setattr(parent, name, new)
    return model
