"""Commands: weights (list), weights get, weights add: the ImageNet weights in paddle's cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kaggle_flow.cli.app import FlowGroup, app

weights_app = typer.Typer(
    cls=FlowGroup,
    invoke_without_command=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(weights_app, name="weights")

ModelArg = Annotated[str, typer.Argument(help="A model with ImageNet weights (see `flow weights`).", metavar="MODEL")]


@weights_app.callback()
def weights_cmd(ctx: typer.Context) -> None:
    """List the models with ImageNet weights: parameters, the weights file, whether it is in paddle's cache now.

    The automatic recipe of `flow train` starts from these weights on RGB photos when they are here (or
    can be downloaded). On a machine without network, download them elsewhere and `flow weights add` them.

    Examples: flow weights ; flow weights get resnet18 ; flow weights add resnet18 ~/Downloads/resnet18.pdparams
    """
    if ctx.invoked_subcommand is not None:
        return
    from kaggle_flow import console
    from kaggle_flow.models import imagenet_weights, weights_home

    rows = [[w.name, f"{w.params:,}", w.file, _size(w.size)] for w in imagenet_weights()]
    console.table("Models with ImageNet weights", ["name", "params", "file", "cached"], rows)
    console.info(f"Cache: {weights_home()}")


def _size(size: int | None) -> str:
    return "no" if size is None else f"yes, {size / 2**20:,.1f} MiB"


@weights_app.command("get")
def get_cmd(model: ModelArg) -> None:
    """Download a model's ImageNet weights into paddle's cache (paddle's own downloader, md5 checked).

    Examples: flow weights get resnet18 ; flow weights get resnet50
    """
    from kaggle_flow import console
    from kaggle_flow.models import download_imagenet

    console.info(f"{model}: {download_imagenet(model)}")


@weights_app.command("add")
def add_cmd(
    model: ModelArg,
    file: Annotated[Path, typer.Argument(help="The .pdparams file of the model's ImageNet weights.", metavar="FILE")],
) -> None:
    """Check a weights file against the model (every key, every shape) and copy it into paddle's cache.

    For a machine without network: download the file elsewhere (`flow weights get MODEL` there, or the
    URL of paddle.vision's model table), bring it over and add it here.

    Examples: flow weights add resnet18 resnet18.pdparams ; flow weights add mobilenet_v2 /mnt/usb/mobilenet_v2_x1.0.pdparams
    """
    from kaggle_flow import console
    from kaggle_flow.models import add_imagenet_weights

    console.info(f"{model}: {file} checked and copied to {add_imagenet_weights(model, file)}")


