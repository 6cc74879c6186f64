"""Commands: train, lr-find, runs."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from kaggle_flow.cli.app import CompArg, DataOpt, StrictOpt, app
from kaggle_flow.cli.options import TRAINING_OPTIONS, training_options


@app.command("train")
@training_options
def train_cmd(
    comp: CompArg = None,
    resume: Annotated[
        Optional[str], typer.Option("--resume", help="Continue the run RUN from its last checkpoint (its own settings).", metavar="RUN", show_default=False)
    ] = None,
    data: DataOpt = None,
    strict: StrictOpt = False,
    *,
    flags: Any,  # config.Flags (its import would slow `flow --help`)
    launch: Any,
) -> None:
    """Train a model on one fold (or all folds) and save the run in runs/COMP/RUN-ID/.

    Every option defaults to the competition's recipe (its TOML's [train] table). Without
    runs/COMP/folds.csv the default split is made first (see `flow split`).

    With --nproc N (or --gpus), flow starts N data-parallel processes itself (paddle.distributed):
    --batch-size is per process, so the global batch is N times larger; --scale-lr raises the
    learning rate to match (the linear scaling rule). Every process's log is in RUN/log/.

    Examples: flow train mnist ; flow train lemon --lr 3e-4 --model mobilenet_v2 --preset medium --balance ;
    flow train digits --folds all ; flow train mnist --resume 20261122-153012-smallcnn-f0 ;
    flow train lemon --weights runs/lemon/20261122-153012-resnet18-f0/best.pdparams ;
    flow train lemon --nproc 4 --scale-lr ; flow train lemon --gpus 0,1 --amp-level bf16 --sync-bn
    """
    from kaggle_flow.fileio import ensure_writable
    from kaggle_flow.engine.train import train
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace(comp, data)
    ensure_writable(ws.runs_dir)
    train(ws, flags, strict=strict, resume=resume, launch=launch)


@app.command("lr-find")
def lr_find_cmd(
    comp: CompArg = None,
    model: TRAINING_OPTIONS["model"] = None,
    size: TRAINING_OPTIONS["image_size"] = None,
    batch_size: TRAINING_OPTIONS["batch_size"] = None,
    optimizer: TRAINING_OPTIONS["optimizer"] = None,
    start: Annotated[float, typer.Option("--start", help="The first learning rate tried.")] = 1e-7,
    end: Annotated[float, typer.Option("--end", help="The last learning rate tried.")] = 10.0,
    steps: Annotated[int, typer.Option("--steps", help="Training steps (one per learning rate, evenly apart on a log scale).")] = 100,
    data: DataOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Sweep the learning rate (fastai's lr_find) on the recipe `flow train` would use, and suggest one.

    One training step per rate, from --start to --end exponentially; the loss smoothed, the sweep
    stopped once it passes 4x its lowest. The suggestion is fastai's valley (the longest fall of the
    smoothed loss), plotted in runs/COMP/lr_find.png and printed as the `flow train` command to copy.
    Nothing of the sweep is kept: no run folder. `flow train --lr find` runs it first and uses it.

    Examples: flow lr-find mnist ; flow lr-find lemon --model resnet-s --size 64 --batch-size 32 ;
    flow lr-find digits --start 1e-5 --end 1 --steps 50
    """
    from kaggle_flow import console
    from kaggle_flow.cli.options import recipe_flags
    from kaggle_flow.engine import lr_find
    from kaggle_flow.fileio import ensure_writable
    from kaggle_flow.workspace import open_workspace

    flags = recipe_flags(model, size, batch_size, optimizer)
    sweep = lr_find.Sweep(start, end, steps).check()
    ws = open_workspace(comp, data)
    ensure_writable(ws.runs_dir)
    found = lr_find.find(ws, flags, sweep, strict=strict)
    given = "".join(f" {flag} {value}" for flag, value in (("--model", model), ("--size", size), ("--batch-size", batch_size),
                                                          ("--optimizer", optimizer)) if value is not None)
    console.info(f"Train with it: flow train {ws.comp.name}{given} --lr {found.suggestion:.1e}")


@app.command("runs")
def runs_cmd(comp: CompArg = None) -> None:
    """List the training runs of a competition: model, recipe, best score, epochs, time, processes.

    A run stopped without a summary is `resumable` (a checkpoint: the line under the table gives
    the --resume command) or has `no checkpoint` (stopped in its first epoch); a run folder that
    cannot be read is `damaged`, with the reason.

    Example: flow runs mnist
    """
    from kaggle_flow import console
    from kaggle_flow.run_table import list_runs
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
    parallel = bool((runs["procs"] > 1).any()) and console.out.width >= 90  # when a run had several (and it fits)
    table = Table(title=f"Runs of {ws.comp.name} ({ws.runs_dir}), best = best validation {ws.comp.metric}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("run", no_wrap=True)  # whole, so it can be copied into --run / --resume
    names = ("model", "fold", "best", "epochs", "time", "status") + (("procs",) if parallel else ()) + (("recipe",) if wide else ())
    for name in names:
        table.add_column(name, justify="left" if name in ("model", "status", "recipe") else "right", no_wrap=name == "status")
    for r in runs.itertuples():
        time_s = f"{fmt(r.duration_s, '.0f')}s" if fmt(r.duration_s, ".0f") else ""
        cells = [r.run, str(r.model), str(r.fold), fmt(r.best_score, ".4f"), str(r.epochs), time_s, str(r.status)]
        table.add_row(*cells, *([str(r.procs or "")] if parallel else []), *([str(r.recipe)] if wide else []))
    console.out.print(table)
    for r in runs.itertuples():
        if r.note:
            (console.warn if r.status == "damaged" else console.info)(r.note)
