"""Commands: train, runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kaggle_flow.cli.app import CompArg, DataOpt, StrictOpt, app

_R = "(default: the competition's recipe)"


@app.command("train")
def train_cmd(
    comp: CompArg = None,
    model: Annotated[Optional[str], typer.Option("--model", help=f"Model name, see `flow models` {_R}.", show_default=False)] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help=f"Epochs {_R}.", show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help=f"Images per step {_R}.", show_default=False)] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help=f"Peak learning rate {_R}.", show_default=False)] = None,
    optimizer: Annotated[Optional[str], typer.Option("--optimizer", help=f"adam, adamw or sgd {_R}.", show_default=False)] = None,
    weight_decay: Annotated[Optional[float], typer.Option("--weight-decay", help=f"Weight decay {_R}.", show_default=False)] = None,
    schedule: Annotated[Optional[str], typer.Option("--schedule", help=f"cosine, step or constant {_R}.", show_default=False)] = None,
    warmup_epochs: Annotated[
        Optional[float], typer.Option("--warmup-epochs", help=f"Linear warmup from 0, in epochs {_R}.", show_default=False)
    ] = None,
    label_smoothing: Annotated[
        Optional[float], typer.Option("--label-smoothing", help=f"Label smoothing epsilon {_R}.", show_default=False)
    ] = None,
    loss: Annotated[Optional[str], typer.Option("--loss", help=f"ce, weighted or focal {_R}.", show_default=False)] = None,
    preset: Annotated[
        Optional[str], typer.Option("--preset", help=f"Augmentation preset, see `flow augment` {_R}.", show_default=False)
    ] = None,
    erasing: Annotated[Optional[float], typer.Option("--erasing", help=f"Random erasing probability {_R}.", show_default=False)] = None,
    cutout: Annotated[Optional[float], typer.Option("--cutout", help=f"Cutout probability {_R}.", show_default=False)] = None,
    gridmask: Annotated[Optional[float], typer.Option("--gridmask", help=f"GridMask probability {_R}.", show_default=False)] = None,
    mixup: Annotated[Optional[float], typer.Option("--mixup", help=f"Mixup Beta parameter, 0 = off {_R}.", show_default=False)] = None,
    cutmix: Annotated[Optional[float], typer.Option("--cutmix", help=f"CutMix Beta parameter, 0 = off {_R}.", show_default=False)] = None,
    ema: Annotated[
        Optional[float], typer.Option("--ema", help=f"Decay of the weights' moving average, e.g. 0.999; 0 = off {_R}.", show_default=False)
    ] = None,
    balance: Annotated[
        Optional[bool],
        typer.Option("--balance/--no-balance", help=f"Label shuffling: every class as often as the largest, redrawn each epoch {_R}.", show_default=False),
    ] = None,
    sizes: Annotated[
        Optional[str],
        typer.Option("--sizes", help="Progressive resizing, e.g. 64,128,224: epochs divided among the sizes; the last is the final size.", show_default=False),
    ] = None,
    fold: Annotated[Optional[int], typer.Option("--fold", help="Validation fold of runs/COMP/folds.csv (default 0).", show_default=False)] = None,
    folds: Annotated[
        Optional[str], typer.Option("--folds", help="'all': one run per fold, out-of-fold predictions and the CV score.", metavar="all", show_default=False)
    ] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help=f"Random seed; the same seed repeats a CPU run {_R}.", show_default=False)] = None,
    patience: Annotated[
        Optional[int], typer.Option("--patience", help=f"Stop after N epochs without improvement; 0 = never {_R}.", show_default=False)
    ] = None,
    resume: Annotated[
        Optional[str], typer.Option("--resume", help="Continue the run RUN from its last checkpoint (its own settings).", metavar="RUN", show_default=False)
    ] = None,
    amp: Annotated[bool, typer.Option("--amp", help="Mixed precision (GPU only; ignored on CPU).")] = False,
    pretrained: Annotated[
        Optional[bool], typer.Option("--pretrained/--scratch", help=f"Start from ImageNet weights {_R}.", show_default=False)
    ] = None,
    weights: Annotated[
        Optional[Path], typer.Option("--weights", help="Start from this .pdparams file.", metavar="FILE", show_default=False)
    ] = None,
    max_params: Annotated[
        Optional[int], typer.Option("--max-params", help="Refuse models with more parameters (default: the competition's limit).", show_default=False)
    ] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="DataLoader worker processes (default 0: the main process).", show_default=False)] = None,
    visualdl: Annotated[bool, typer.Option("--visualdl", help="Write VisualDL logs into the run folder.")] = False,
    data: DataOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Train a model on one fold (or all folds) and save the run in runs/COMP/RUN-ID/.

    Every option defaults to the competition's recipe (its TOML's [train] table). Without
    runs/COMP/folds.csv a stratified 10% hold-out is made first.

    Examples: flow train mnist ; flow train lemon --lr 3e-4 --model mobilenet_v2 --preset medium --balance ;
    flow train digits --folds all ; flow train mnist --resume 20261122-153012-smallcnn-f0
    """
    from kaggle_flow.train import parse_sizes, train
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace(comp, data)
    overrides = {
        "model": model, "epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer,
        "weight_decay": weight_decay, "schedule": schedule, "warmup_epochs": warmup_epochs,
        "label_smoothing": label_smoothing, "loss": loss, "preset": preset, "erasing": erasing, "cutout": cutout,
        "gridmask": gridmask, "mixup": mixup, "cutmix": cutmix, "ema": ema, "balance": balance,
        "sizes": parse_sizes(sizes) if sizes is not None else None, "fold": fold, "folds": folds, "seed": seed,
        "patience": patience, "amp": amp or None, "pretrained": pretrained,
        "weights": str(weights) if weights is not None else None, "max_params": max_params, "workers": workers,
        "visualdl": visualdl or None,
    }
    train(ws, overrides, strict=strict, resume=resume)


@app.command("runs")
def runs_cmd(comp: CompArg = None) -> None:
    """List the training runs of a competition: model, recipe, best score, epochs, time.

    Example: flow runs mnist
    """
    from kaggle_flow import console
    from kaggle_flow.runs import list_runs
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace(comp)
    runs = list_runs(ws.runs_dir)
    if runs.empty:
        console.info(f"No runs yet in {ws.runs_dir}; train one with: flow train {ws.comp.name}")
        return

    from rich import box
    from rich.table import Table

    def fmt(value: object, spec: str) -> str:
        return "" if value is None or value != value else format(value, spec)

    wide = console.out.width >= 120  # the recipe column only where it fits
    table = Table(title=f"Runs of {ws.comp.name} ({ws.runs_dir}), best = best validation {ws.comp.metric}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("run", no_wrap=True)  # whole, so it can be copied into --run / --resume
    for name in ("model", "fold", "best", "epochs", "time", "status") + (("recipe",) if wide else ()):
        table.add_column(name, justify="left" if name in ("model", "status", "recipe") else "right")
    for r in runs.itertuples():
        time_s = f"{fmt(r.duration_s, '.0f')}s" if fmt(r.duration_s, ".0f") else ""
        cells = [r.run, str(r.model), str(r.fold), fmt(r.best_score, ".4f"), str(r.epochs), time_s, str(r.status)]
        table.add_row(*cells, *([str(r.recipe)] if wide else []))
    console.out.print(table)
