"""The classifier head and the backbone under it, for `--freeze`: train the head on a frozen backbone."""

from __future__ import annotations

import paddle
import paddle.nn as nn

from kaggle_flow.errors import FlowError
from kaggle_flow.models.channels import sublayer
from kaggle_flow.models.registry import MODELS


def head_parameters(model: nn.Layer, name: str) -> list[paddle.Tensor]:
    """The parameters of the classifier head (the registry's `head` layer): what `--freeze` trains."""
    path = MODELS[name].head
    if path is None:
        raise FlowError(f"--freeze: {name} has no separable classifier head")
    inner = model._layers if isinstance(model, paddle.DataParallel) else model
    return list(sublayer(inner, path).parameters())


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
