"""Input channels: the first convolution of an RGB model rebuilt for grey (or any count) images.

A grey model gets the ImageNet filters summed over RGB (the way timm adapts input convolutions), so
a grey image gives the activations its RGB copy would, and the pretrained weights still help.
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
    """An RGB filter bank [out, 3, k, k] turned into [out, in_channels, k, k] with the same response.

    Grey: the sum over RGB (a grey image repeated to RGB gives the same activations). Otherwise the
    RGB filters are cycled and rescaled by 3 / in_channels.
    """
    if in_channels == 1:
        return weight.sum(axis=1, keepdims=True)
    reps = -(-in_channels // weight.shape[1])
    return np.tile(weight, (1, reps, 1, 1))[:, :in_channels] * (weight.shape[1] / in_channels)


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
