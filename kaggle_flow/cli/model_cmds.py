"""Commands: models, augment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from kaggle_flow.cli.app import CompArg, DataOpt, StrictOpt, app

if TYPE_CHECKING:
    from kaggle_flow.models import ModelInfo

SPEED_SIZE = 64  # px timed by `flow models --speed` without a competition size (the automatic recipe's CPU size)


@app.command("models")
def models_cmd(
    comp: Annotated[
        Optional[str],
        typer.Argument(
            help="Competition: count for its classes and channels (default: the one used last here, else 10 classes, RGB).",
            show_default=False,
        ),
    ] = None,
    filter_: Annotated[
        Optional[str], typer.Option("--filter", help="Only models whose name or description contains TEXT.", metavar="TEXT")
    ] = None,
    speed: Annotated[bool, typer.Option("--speed", help="Also time training here (a few seconds a model).")] = False,
    model: Annotated[
        Optional[str],
        typer.Option("--model", help="Only this model (timed even when slow).", metavar="NAME", show_default=False),
    ] = None,
    size: Annotated[
        Optional[int],
        typer.Option("--size", help=f"Image size to time, px (default: the competition's, else {SPEED_SIZE}).", min=1,
                     show_default=False),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size to time.", min=1)] = 32,
    seconds: Annotated[float, typer.Option("--seconds", help="Seconds of timed steps per model.", min=0.01)] = 2.0,
) -> None:
    """List the models `flow train --model` accepts: parameters, smallest input, ImageNet weights, training speed.

    --speed times forward + backward + Adam steps on random images, live, where `flow train` would run
    (the GPU, else every usable CPU core); models too slow to time in a few seconds are noted, not timed.

    Examples: flow models ; flow models --filter mobile ; flow models lemon --speed ;
    flow models --speed --model resnet-s --size 128
    """
    from kaggle_flow import console
    from kaggle_flow.machine import cpu_threads
    from kaggle_flow.models import MODELS, has_pretrained, list_models, param_count

    name, classes, channels, comp_size = _counted_for(comp)
    size = size or comp_size
    chosen = [MODELS[model]] if model else list_models(filter_ or "")
    if not chosen:
        console.info(f"No model matches '{filter_}'.")
        return
    rows, device = [], "cpu"
    for m in console.progress(chosen, len(chosen) if speed else None, "timing", min_total=2):
        pretrained = "yes" if has_pretrained(m.name) else "no"
        row = [m.name, f"{param_count(m.name, classes, channels):,}", f"{m.min_size} px", pretrained]
        if speed:
            cell, device = _speed_cell(m, size, batch_size, classes, channels, seconds, slow_ok=model is not None,
                                       device=device)
            row.append(cell)
        rows.append([*row, m.description])
    columns = ["name", "params", "min size", "imagenet", *(["train img/s"] if speed else []), "description"]
    title = f"{console.plural(classes, 'class', 'classes')}, {console.plural(channels, 'channel')}"
    title += f" ({name})" if name else ""
    console.table(title, columns, rows)
    if speed:
        where = f"the CPU, {cpu_threads()} threads" if device == "cpu" else "the GPU"
        console.info(f"Training images/s at {size} px, batch {batch_size}, on {where}, measured now: other work on "
                     "this machine lowers them.")


def _counted_for(comp: str | None) -> tuple[str | None, int, int, int]:
    """The competition `flow models` counts for (named, else the one used last here, else none), its
    classes, channels and the size to time: its image size, SPEED_SIZE where that is auto or there is none."""
    from kaggle_flow.competition import get_competition
    from kaggle_flow.workspace import remembered, resolve_name

    name = resolve_name(comp) if comp or remembered() else None
    if name is None:
        return None, 10, 3, SPEED_SIZE
    c = get_competition(name)
    return name, c.num_classes, c.channels, SPEED_SIZE if c.image_size == "auto" else int(c.image_size)


def _speed_cell(m: ModelInfo, size: int, batch_size: int, classes: int, channels: int, seconds: float, *, slow_ok: bool,
                device: str) -> tuple[str, str]:
    """The `train img/s` cell of one model and the device it was timed on (`device` unchanged when untimed)."""
    from kaggle_flow.engine.speed import train_speed

    if size < m.min_size:
        return f"needs {m.min_size} px", device
    timed = train_speed(m.name, size=size, batch_size=batch_size, num_classes=classes, in_channels=channels,
                        seconds=seconds, max_step_s=float("inf") if slow_ok else 10.0)
    return (f"{timed.images_per_s:,.1f}" if timed.images_per_s else timed.note), timed.device


@app.command("augment")
def augment_cmd(
    comp: CompArg = None,
    preset: Annotated[str, typer.Option("--preset", help="Augmentation preset (see --list).")] = "medium",
    list_: Annotated[bool, typer.Option("--list", help="Print every preset and its transforms, then stop.")] = False,
    n: Annotated[int, typer.Option("--n", help="How many images in the grid.")] = 16,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (which images, which augmentations).")] = 0,
    size: Annotated[
        Optional[int],
        typer.Option("--size", help="Image size in px (default: the competition's; 128 where it is auto).", min=1,
                     show_default=False),
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
    from kaggle_flow.data.augment import PRESETS, PREVIEW_SIZE, describe_preset, preview
    from kaggle_flow.table.layouts import labelled

    if list_:
        for p in PRESETS.values():
            console.info(f"{p.name}: {p.description}")
            for line in describe_preset(p.name, size or 224):
                console.info(f"    {line}")
        return
    PRESETS[preset]  # an unknown preset fails before any data is read
    from kaggle_flow.fileio import ensure_writable
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace(comp, data)
    ensure_writable(ws.runs_dir)
    table = ws.table(strict=strict)
    if size is None and ws.comp.image_size == "auto":
        size = PREVIEW_SIZE
        console.info(f"{ws.comp.name}'s image size is auto (flow train chooses it from the data and the machine): "
                     f"previewing at {size} px; --size N shows another")
    out = ws.runs_dir / f"augment_{preset}.png"
    preview(
        labelled(table), ws.class_names(), preset, int(size or ws.comp.image_size), ws.comp.channels, out,
        n=n, seed=seed, erasing=erasing, cutout=cutout, gridmask=gridmask,
    )
    console.info(f"Saved {out}")
