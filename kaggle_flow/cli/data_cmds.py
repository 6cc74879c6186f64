"""Commands: competitions, init, import, split, balance."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kaggle_flow.cli.app import CompArg, DataOpt, NearOpt, StrictOpt, app

MANY_FOLDS = 8  # `flow split` headers its columns "fold K" up to this many folds, by the bare number above it


@app.command("competitions")
def competitions_cmd() -> None:
    """List the competitions flow knows, with classes, layout and whether the data is here.

    A competition TOML that does not load is listed as broken, with its reason below the table.

    Example: flow competitions
    """
    from kaggle_flow import console
    from kaggle_flow.competition import load_all
    from kaggle_flow.errors import ConfigError
    from kaggle_flow.table.sources import is_materialized

    rows, broken = [], []
    for name, comp in load_all().items():
        if isinstance(comp, ConfigError):
            rows.append((name, "-", "-", "-", "-", "broken (see below)"))
            broken.append(str(comp))
            continue
        data = Path("data") / name
        if comp.data.embedded:
            present = "yes" if is_materialized(data) else "embedded"
        else:
            present = "yes" if data.is_dir() else "no"
        rows.append((name, comp.num_classes, comp.layout.kind, comp.metric, present, comp.title))
    console.table(None, ["name", "classes", "layout", "metric", "data", "title"], rows)
    for reason in broken:
        console.warn(reason)


@app.command("init")
def init_cmd(
    name: Annotated[str, typer.Argument(help="Name of the new competition.")],
    source: Annotated[
        Optional[Path],
        typer.Option("--from", help="The download (its .zip or the unpacked folder), a folder per class, or a labels CSV.", show_default=False),
    ] = None,
    kaggle: Annotated[
        Optional[str],
        typer.Option("--kaggle", help="Download the files of this Kaggle competition, read them and import them (needs the kaggle extra and credentials).", metavar="SLUG", show_default=False),
    ] = None,
    metric: Annotated[
        Optional[str], typer.Option("--metric", help="The metric: accuracy, kappa, macro_f1, logloss, auc, mean_auc, map@K, ... [default: from the sample].", metavar="M", show_default=False)
    ] = None,
) -> None:
    """Write competitions/NAME.toml from a download: layout, classes, submission format and metric.

    The download is --from a file or folder here (then `flow import` it), or --kaggle SLUG: the files
    of that Kaggle competition, downloaded once into a temporary folder (removed after), read for the
    TOML (the slug written as its `kaggle`) and imported into data/NAME. The submission is read from sample_submission.csv; the metric from --metric, else
    assumed from the sample (accuracy for a class, logloss for a probability per class, auc for one
    probability).

    Examples: flow init cactus --from aerial-cactus-identification.zip --metric auc ; flow init flowers --from ~/Downloads/flowers ;
    flow init recognizer --kaggle digit-recognizer --metric accuracy
    """
    from kaggle_flow import console
    from kaggle_flow.errors import FlowError
    from kaggle_flow.fileio import ensure_writable
    from kaggle_flow.table.importer import init_competition

    if (source is None) == (kaggle is None):
        raise FlowError("give one of --from DOWNLOAD (a .zip or folder here) and --kaggle SLUG (a Kaggle competition)")
    folder = ensure_writable(Path("competitions"))
    if kaggle is not None:
        from kaggle_flow.table.kaggle_download import init_from_kaggle

        data_dir = ensure_writable(Path("data")) / name
        file, inferred = init_from_kaggle(name, kaggle, folder, metric=metric, data_dir=data_dir)
    else:
        file, inferred = init_competition(name, source, folder, metric=metric)
    for what, where in inferred.found:
        console.info(f"{what} ({where})")
    for line in inferred.warnings:
        console.warn(line)
    for line in inferred.notes:
        console.info(line)
    if kaggle is None:
        console.info(f"Wrote {file}; next: flow import {name} {source}")
        return
    from kaggle_flow.table.layouts import describe_counts, split_counts
    from kaggle_flow.workspace import open_workspace, remember

    counts = split_counts(open_workspace(name, remember_it=False).table(quiet=True))
    remember(name)
    console.info(f"Wrote {file} and imported the files into {data_dir}: {describe_counts(counts)}; next: flow run {name}")


@app.command("import")
def import_cmd(
    comp: Annotated[str, typer.Argument(help="Competition name.")],
    source: Annotated[
        Optional[str],
        typer.Argument(help="The downloaded .zip, or a folder; with --kaggle, the Kaggle competition's slug [default: the TOML's `kaggle`, else COMP].", show_default=False),
    ] = None,
    kaggle: Annotated[
        bool, typer.Option("--kaggle", help="Download the files from Kaggle instead (needs the kaggle extra and credentials).")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace data already in data/COMP.")] = False,
    max_size: Annotated[
        Optional[str],
        typer.Option("--max-size", help="Refuse an archive that unpacks to more than SIZE [default: 20GB].", metavar="SIZE", show_default=False),
    ] = None,
    allow_large: Annotated[
        bool, typer.Option("--allow-large", help="No limit on an archive's unpacked size or compression ratio (free space is still checked).")
    ] = False,
    data: DataOpt = None,
) -> None:
    """Unpack a downloaded archive (or copy a folder) into data/COMP and check its layout.

    With --kaggle the archive is first downloaded from Kaggle into a temporary folder beside data/COMP
    (removed after); the competition is SOURCE when given, else `kaggle = "SLUG"` in COMP's TOML, else COMP.
    The competition becomes the current one only when the import succeeds. An archive is checked
    from its listing first: more than --max-size unpacked, a compression ratio no download has (a
    zip bomb), or more than the free space is refused before anything is written.

    Examples: flow import lemon ~/Downloads/lemon_lesson.zip ; flow import big big.zip --max-size 50GB ;
    flow import recognizer --kaggle ; flow import digits --kaggle digit-recognizer
    """
    from kaggle_flow import console
    from kaggle_flow.errors import FlowError
    from kaggle_flow.fileio import ensure_writable
    from kaggle_flow.table.archive import archive_limits
    from kaggle_flow.table.importer import check_target, import_data
    from kaggle_flow.table.layouts import describe_counts, split_counts
    from kaggle_flow.workspace import open_workspace, remember

    ws = open_workspace(comp, data, remember_it=False)  # nothing written before the import is checked
    ensure_writable(ws.data_dir.parent)  # the staging folder and the rename are there
    limits = archive_limits(max_size, allow_large)
    if kaggle:
        from kaggle_flow.kaggle_api import slug_of
        from kaggle_flow.table.kaggle_download import downloaded

        slug = source or slug_of(ws.comp)
        check_target(ws.data_dir, force=force)  # before a download of any size
        with downloaded(slug, ws.data_dir.parent) as archive:  # beside data/COMP
            console.info(f"Downloaded {archive.name} from Kaggle competition '{slug}'")
            target = import_data(ws.comp, archive, ws.data_dir, force=force, limits=limits)
    elif source is None:
        hint = f"--kaggle to download '{ws.comp.kaggle}' from Kaggle" if ws.comp.kaggle else "--kaggle [SLUG] to download it from Kaggle"
        raise FlowError(f"give the downloaded .zip or folder, or {hint}")
    else:
        target = import_data(ws.comp, Path(source), ws.data_dir, force=force, limits=limits)
    counts = split_counts(ws.table(quiet=True))
    remember(ws.comp.name)
    console.info(f"Imported {ws.comp.name} into {target}: {describe_counts(counts)}")


@app.command("split")
def split_cmd(
    comp: CompArg = None,
    folds: Annotated[Optional[int], typer.Option("--folds", help="Stratified K folds of all labelled images.", metavar="K")] = None,
    val_size: Annotated[
        Optional[float],
        typer.Option("--val-size", help="One stratified hold-out of this share of all labelled images.", metavar="F"),
    ] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed [default: 42].", show_default=False)] = None,
    near: NearOpt = None,
    ignore_near: Annotated[bool, typer.Option("--ignore-near", help="Split groups of near twins freely.")] = False,
    data: DataOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Choose the validation images and save runs/COMP/folds.csv (with runs/COMP/folds.json, the
    fingerprint of the data it was made from: later steps refuse folds made from other data).

    Without --folds or --val-size: the download's own validation set as fold 0 when it has one,
    else a stratified 10% hold-out (seed 42). --folds K and --val-size F pool the download's
    training and validation images. Near twins (images whose perceptual hashes differ in at most
    --near bits, as `flow eda` finds them) are grouped, and a group is kept in one fold; the
    download's own validation set is kept as it is (twins across it are reported as a leak).

    Examples: flow split zodiac ; flow split mnist --folds 5 ; flow split lemon --val-size 0.2 --seed 1
    """
    from kaggle_flow import console
    from kaggle_flow.explore.split import describe_folds, fold_counts, split_competition
    from kaggle_flow.fileio import ensure_writable
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace(comp, data)
    ensure_writable(ws.runs_dir)
    result = split_competition(ws, folds=folds, val_size=val_size, seed=seed, strict=strict, near=near, ignore_near=ignore_near)
    counts = fold_counts(result, ws.class_names())
    many = len(counts.columns) > MANY_FOLDS  # bare fold numbers keep 16 folds within 80 columns
    columns = ["class"] + [("train only" if f == -1 else str(f) if many else f"fold {f}") for f in counts.columns]
    title = "Images per class and fold" + (" (columns: the folds)" if many else "")
    console.table(title, columns, [(n, *row) for n, row in zip(counts.index, counts.to_numpy())])
    if result.attrs["near_note"]:
        console.info(result.attrs["near_note"])
    console.info(f"Saved {describe_folds(result)} to {ws.folds_file()} ({console.plural(len(result), 'labelled image')})")


@app.command("balance")
def balance_cmd(
    comp: CompArg = None,
    fold: Annotated[int, typer.Option("--fold", help="Show the counts of this fold's training rows.")] = 0,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed of the draw counted [default: 42]; training redraws every epoch.", show_default=False)] = None,
    off: Annotated[bool, typer.Option("--off", help="Turn label shuffling off for later training.")] = False,
    data: DataOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Label shuffling on for this competition's later training: every class padded to the largest.

    Shows the class counts of a fold's training rows before and after, and records the setting in
    runs/COMP/balance.json (training redraws the list every epoch; validation rows never enter).
    `flow train --balance/--no-balance` overrides it for one run.

    Examples: flow balance lemon ; flow balance lemon --fold 2 ; flow balance lemon --off
    """
    from kaggle_flow import console
    from kaggle_flow.explore.balance import set_balance, turn_on
    from kaggle_flow.fileio import ensure_writable
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace(comp, data)
    ensure_writable(ws.runs_dir)
    name = ws.comp.name
    if off:
        file = set_balance(ws, False)
        console.info(f"Label shuffling is off for later `flow train {name}` runs ({file}); `flow balance {name}` turns it on")
        return
    counts = turn_on(ws, fold=fold, seed=seed, strict=strict)
    rows = counts[["class", "before", "after"]].itertuples(index=False)
    console.table(f"Label shuffling, fold {fold} (training rows only)", ["class", "before", "after"], rows)
    console.info(
        f"Label shuffling is on for later `flow train {name}` runs ({ws.balance_file()}); "
        f"`flow balance {name} --off` or `flow train --no-balance` turns it off"
    )
