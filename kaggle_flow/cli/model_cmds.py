"""Commands: models, augment."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from kaggle_flow.cli.app import CompArg, DataOpt, StrictOpt, app


@app.command("models")
def models_cmd(
    filter_: Annotated[
        Optional[str], typer.Option("--filter", help="Only models whose name or description contains TEXT.", metavar="TEXT")
    ] = None,
) -> None:
    """List the models `flow train --model` accepts: parameters (for 10 classes), smallest input, ImageNet weights.

    Examples: flow models ; flow models --filter mobile
    """
    from kaggle_flow import console
    from kaggle_flow.models import has_pretrained, list_models, param_count

    text = (filter_ or "").lower()
    rows = [
        (m.name, f"{param_count(m.name, 10):,}", f"{m.min_size} px", "yes" if has_pretrained(m.name) else "no", m.description)
        for m in list_models()
        if text in m.name.lower() or text in m.description.lower()
    ]
    if not rows:
        console.info(f"No model matches '{filter_}'.")
        return
    console.table(None, ["name", "params", "min size", "imagenet", "description"], rows)


@app.command("augment")
def augment_cmd(
    comp: CompArg = None,
    preset: Annotated[str, typer.Option("--preset", help="Augmentation preset (see --list).")] = "medium",
    list_: Annotated[bool, typer.Option("--list", help="Print every preset and its transforms, then stop.")] = False,
    n: Annotated[int, typer.Option("--n", help="How many images in the grid.")] = 16,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (which images, which augmentations).")] = 0,
    size: Annotated[
        Optional[int], typer.Option("--size", help="Image size in px (default: the competition's).", show_default=False)
    ] = None,
    erasing: Annotated[float, typer.Option("--erasing", help="Random erasing probability.")] = 0.0,
    cutout: Annotated[float, typer.Option("--cutout", help="Cutout probability.")] = 0.0,
    gridmask: Annotated[float, typer.Option("--gridmask", help="GridMask probability.")] = 0.0,
    data: DataOpt = None,
    strict: StrictOpt = False,
) -> None:
    """See what an augmentation preset does: save a grid of augmented training images to runs/COMP/augment_PRESET.png.

    Examples: flow augment mnist --preset affine ; flow augment --list ; flow augment lemon --preset heavy --n 25 --cutout 0.5
    """
    from kaggle_flow import console
    from kaggle_flow.augment import describe_preset, get_preset, list_presets, preview
    from kaggle_flow.layouts import labelled

    if list_:
        for p in list_presets():
            console.info(f"{p.name}: {p.description}")
            for line in describe_preset(p.name, size or 224):
                console.info(f"    {line}")
        return
    get_preset(preset)  # an unknown preset fails before any data is read
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace(comp, data)
    table = ws.table(strict=strict)
    out = ws.runs_dir / f"augment_{preset}.png"
    preview(
        labelled(table), ws.comp.classes, preset, size or ws.comp.image_size, ws.comp.channels, out,
        n=n, seed=seed, erasing=erasing, cutout=cutout, gridmask=gridmask,
    )
    console.info(f"Saved {out}")
