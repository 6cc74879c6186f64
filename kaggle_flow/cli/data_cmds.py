"""Commands: competitions, init, import, split, balance."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kaggle_flow.cli.app import CompArg, DataOpt, StrictOpt, app


@app.command("competitions")
def competitions_cmd() -> None:
    """List the competitions flow knows, with classes, layout and whether the data is here.

    Example: flow competitions
    """
    from kaggle_flow import console
    from kaggle_flow.competition import competition_files, load_file
    from kaggle_flow.sources import is_materialized

    rows = []
    for name, file in competition_files().items():
        comp = load_file(file)
        data = Path("data") / name
        if comp.data.embedded:
            present = "yes" if is_materialized(data) else "embedded"
        else:
            present = "yes" if data.is_dir() else "no"
        rows.append((name, comp.num_classes, comp.layout.kind, comp.metric, present, comp.title))
    console.table(None, ["name", "classes", "layout", "metric", "data", "title"], rows)


@app.command("init")
def init_cmd(
    name: Annotated[str, typer.Argument(help="Name of the new competition.")],
    source: Annotated[Path, typer.Option("--from", help="A folder with one sub-folder per class, or a CSV of id,label.")],
) -> None:
    """Write competitions/NAME.toml by inspecting a folder-per-class tree or a labels CSV.

    Example: flow init flowers --from ~/Downloads/flowers
    """
    from kaggle_flow import console
    from kaggle_flow.importer import init_competition

    file = init_competition(name, source)
    console.info(f"Wrote {file}; check the classes and the submission format, then: flow import {name} {source}")


@app.command("import")
def import_cmd(
    comp: Annotated[str, typer.Argument(help="Competition name.")],
    source: Annotated[Path, typer.Argument(help="The downloaded .zip, or a folder.")],
    force: Annotated[bool, typer.Option("--force", help="Replace data already in data/COMP.")] = False,
    data: DataOpt = None,
) -> None:
    """Unpack a downloaded archive (or copy a folder) into data/COMP and check its layout.

    Example: flow import lemon ~/Downloads/lemon_lesson.zip
    """
    from kaggle_flow import console
    from kaggle_flow.importer import import_data
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace(comp, data)
    target = import_data(ws.comp, source, ws.data_dir, force=force)
    table = ws.table(quiet=True)
    n_train = int((table["split"] == "train").sum())
    console.info(f"Imported {ws.comp.name} into {target}: {n_train} training and {len(table) - n_train} test images")


@app.command("split")
def split_cmd(
    comp: CompArg = None,
    folds: Annotated[Optional[int], typer.Option("--folds", help="Stratified K folds.", metavar="K")] = None,
    val_size: Annotated[
        Optional[float], typer.Option("--val-size", help="One stratified hold-out of this share.", metavar="F")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 42,
    data: DataOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Split the training images into stratified folds and save runs/COMP/folds.csv.

    Examples: flow split mnist --folds 5 ; flow split lemon --val-size 0.2 --seed 1
    """
    from kaggle_flow import console
    from kaggle_flow.fileio import write_csv
    from kaggle_flow.split import fold_counts, make_folds
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace(comp, data)
    if folds is None and val_size is None:
        folds = 5
    result = make_folds(ws.table(strict=strict), folds=folds, val_size=val_size, seed=seed, class_names=ws.comp.classes)
    write_csv(ws.folds_file(), result)
    counts = fold_counts(result, ws.comp.classes)
    columns = ["class"] + [("train only" if f == -1 else f"fold {f}") for f in counts.columns]
    console.table("Images per class and fold", columns, [(n, *row) for n, row in zip(counts.index, counts.to_numpy())])
    what = f"{folds} stratified folds" if folds else f"a stratified {val_size:.0%} hold-out (fold 0)"
    console.info(f"Saved {what} of {len(result)} images to {ws.folds_file()}")


@app.command("balance")
def balance_cmd(
    comp: CompArg = None,
    fold: Annotated[int, typer.Option("--fold", help="Balance the training rows of this fold.")] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 42,
    data: DataOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Label shuffling: pad every class to the largest one, on the training rows of a fold.

    Example: flow balance lemon --fold 0
    """
    from kaggle_flow import console
    from kaggle_flow.balance import label_shuffle
    from kaggle_flow.fileio import write_csv
    from kaggle_flow.split import train_val
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace(comp, data)
    train, _ = train_val(ws.table(strict=strict), ws.folds(), fold)
    balanced = label_shuffle(train, seed=seed)
    out = ws.balanced_file(fold)
    write_csv(out, balanced[["id", "label"]])
    before = train["label"].value_counts().reindex(range(ws.comp.num_classes), fill_value=0)
    after = balanced["label"].value_counts().reindex(range(ws.comp.num_classes), fill_value=0)
    rows = [(name, int(b), int(a)) for name, b, a in zip(ws.comp.classes, before, after)]
    console.table(f"Label shuffling, fold {fold} (training rows only)", ["class", "before", "after"], rows)
    console.info(f"Saved {len(balanced)} rows ({len(train)} images) to {out}")
