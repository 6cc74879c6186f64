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
import paddle.nn as nn
import paddle.utils.download as download

from kaggle_flow import console
from kaggle_flow.errors import FlowError
from kaggle_flow.models.channels import adapt_conv_weight, first_conv
from kaggle_flow.models.state_file import UnreadableState, check_fits, read_state

RGB = 3  # the input channels of ImageNet weights: the only first convolution adapted to another count

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


def pretrained_names() -> list[str]:
    """The models with ImageNet weights, in paddle.vision's order."""
    return list(_PRETRAINED)


def weights_home() -> Path:
    """paddle's weights cache (`paddle.utils.download.WEIGHTS_HOME`, ~/.cache/paddle/hapi/weights), read when asked."""
    return Path(download.WEIGHTS_HOME)


def _source(name: str) -> tuple[str, str]:
    """The URL and md5 of a model's ImageNet weights, from paddle.vision's own table."""
    if name not in _PRETRAINED:
        with_weights = ", ".join(_PRETRAINED)
        raise FlowError(f"no pretrained weights for {name} (available for: {with_weights}): train from scratch")
    module, key = _PRETRAINED[name]
    return importlib.import_module(f"paddle.vision.models.{module}").model_urls[key]


def imagenet_file_name(name: str) -> str:
    """The file name paddle looks for in its weights cache: resnet18.pdparams, mobilenet_v3_small_x1.0.pdparams."""
    return os.path.basename(_source(name)[0])


def cached_imagenet(name: str) -> Path | None:
    """The model's ImageNet weights in paddle's cache, None when the file is not there."""
    path = weights_home() / imagenet_file_name(name)
    return path if path.is_file() else None


def online(name: str = "resnet18") -> bool:
    """Whether the host of the ImageNet weights answers within seconds (offline: False, quickly)."""
    host = urlparse(_source(name)[0]).hostname or ""
    try:  # fail in seconds, not after paddle's retries with no timeout
        socket.create_connection((host, 443), timeout=5).close()
    except OSError:
        return False
    return True


def fetch_pretrained(name: str) -> Path:
    """The local path of a model's ImageNet weights, downloaded on first use; a FlowError offline."""
    cached = cached_imagenet(name)
    if cached is not None:
        return cached
    return _download(name, f"cannot fetch the pretrained weights for {name} (no network?): pass --weights FILE or train from scratch")


def download_imagenet(name: str) -> Path:
    """`flow weights get`: the ImageNet weights through paddle's own downloader, into its cache."""
    cached = cached_imagenet(name)
    if cached is not None:
        return cached
    return _download(name, f"no network: cannot download {name}'s ImageNet weights; copy the file {imagenet_file_name(name)} "
                           f"into {weights_home()} or use `flow weights add {name} FILE`")


def _download(name: str, failed: str) -> Path:
    url, md5 = _source(name)
    if not online(name):
        raise FlowError(failed)
    try:
        return Path(download.get_weights_path_from_url(url, md5))
    except Exception:
        raise FlowError(failed) from None


def check_state(model: nn.Layer, file: str | Path, what: str) -> None:
    """Every key of `model` in the file and no other, each of the right shape; else one line naming the first mismatch.

    `what` names the model in the message ("resnet18 (1,000 ImageNet classes)"). A file that is no paddle
    state dict (truncated, another format) is one line too.
    """
    check_fits(shapes(model), _read_state(file), file, what)


def shapes(model: nn.Layer) -> dict[str, list[int]]:
    """Each key of the model's state dict -> its shape: what a weights file must match."""
    return {key: list(value.shape) for key, value in model.state_dict().items()}


def set_weights(model: nn.Layer, state: Any, file: str | Path, what: str) -> None:
    """Set the model's weights from `state` (read from `file` by read_state), every key and shape its own;
    else one line naming the file and the first mismatch, before anything is set."""
    if not isinstance(state, dict):
        raise FlowError(f"{file}: not a state dict of weights (expected a dict of parameter name -> array)")
    check_fits(shapes(model), state, file, what)
    model.set_state_dict(state)


def _read_state(file: str | Path) -> Mapping[str, Any]:
    path = Path(file)
    if not path.is_file():
        raise FlowError(f"{path}: weights file not found")
    try:
        state = read_state(path)
    except UnreadableState as exc:
        raise FlowError(f"{path}: not a paddle weights file ({exc})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # a checkpoint that wraps the state dict
    if not isinstance(state, dict) or not state:
        raise FlowError(f"{path}: not a paddle state dict (expected a dict of parameter name -> array)")
    return state


def load_weights(
    model: nn.Layer, file: str | Path, num_classes: int, *, name: str = "this model", new_head_ok: bool = False
) -> None:
    """Load a state dict into `model`, adapting the two places that may legitimately differ.

    The first convolution is adapted from RGB (3 input channels, as ImageNet weights have) to the model's
    input channels (models.channels.adapt_conv_weight), and a classifier head of
    another class count is left at its fresh initialization (with a warning unless new_head_ok, as for
    the ImageNet weights). Any other missing or unexpected key or shape mismatch is an error naming the
    file (models.state_file.check_fits), so a checkpoint of another model never half-loads; a first
    convolution of another count than 3 (a 4-channel checkpoint into a grey model) is such a mismatch.
    """
    state = {k: np.asarray(v) for k, v in _read_state(file).items()}
    own = model.state_dict()
    _, _, first = first_conv(model)
    head = {p.name for layer in model.sublayers() if isinstance(layer, nn.Linear) and layer.weight.shape[-1] == num_classes
            for p in layer.parameters()}

    def adapted(key: str, got: np.ndarray) -> bool:  # RGB filters for other channels, or a head of another class count
        param, want = own[key], list(own[key].shape)
        return param.name in head or (param.name == first.weight.name and got.ndim == 4 and got.shape[1] == RGB
                                      and list(got.shape[:1] + got.shape[2:]) == want[:1] + want[2:])

    check_fits(shapes(model), state, file, name, may_differ=adapted)
    loaded, skipped = {}, []
    for key, param in own.items():
        want, got = list(param.shape), state[key]
        if list(got.shape) == want:
            loaded[key] = got
        elif param.name == first.weight.name:
            loaded[key] = adapt_conv_weight(got, want[1]).astype(got.dtype)
        else:
            loaded[key] = param  # the head keeps its fresh initialization
            skipped.append(key)
    if skipped and not new_head_ok:
        console.warn(f"{file}: classifier head of another class count; {', '.join(skipped)} left freshly initialized")
    model.set_state_dict(loaded)
