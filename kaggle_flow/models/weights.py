"""Model weights from files: paddle.vision's ImageNet downloads, checkpoints, and loading either into a model."""

from __future__ import annotations

import importlib
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import paddle
import paddle.nn as nn

from kaggle_flow import console
from kaggle_flow.errors import FlowError
from kaggle_flow.models.channels import adapt_conv_weight, first_conv

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
    """Whether paddle.vision has ImageNet weights for the model (`--pretrained`)."""
    return name in _PRETRAINED


def fetch_pretrained(name: str) -> Path:
    """The local path of a model's ImageNet weights, downloaded on first use; a FlowError offline."""
    if name not in _PRETRAINED:
        with_weights = ", ".join(_PRETRAINED)
        raise FlowError(f"no pretrained weights for {name} (available for: {with_weights}): train from scratch")
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
    _, _, first = first_conv(model)
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
            loaded[key] = adapt_conv_weight(got, want[1]).astype(got.dtype)
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
