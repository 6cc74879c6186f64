"""Commands: review (after training, from a run's out-of-fold predictions; no paddle)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from kaggle_flow.cli.app import CompArg, DataOpt, app

if TYPE_CHECKING:
    from kaggle_flow.submit.review import Review

SHOWN = 10  # label issues in the printed table


@app.command("review")
def review_cmd(
    comp: CompArg = None,
    file: Annotated[
        Optional[Path], typer.Argument(help="With --exclude: a CSV with an `id` column (e.g. an edited label_issues.csv).", show_default=False)
    ] = None,
    run: Annotated[
        Optional[str], typer.Option("--run", help="Run id under runs/COMP (or a run folder); default: the best run, as `flow submit` picks it.",
                                    metavar="RUN", show_default=False),
    ] = None,
    exclude: Annotated[bool, typer.Option("--exclude", help="Leave the label issues found (or the ids of FILE) out of later `flow train` runs.")] = False,
    no_exclude: Annotated[bool, typer.Option("--no-exclude", help="Later `flow train` runs use every row again (removes runs/COMP/exclude.json).")] = False,
    top: Annotated[int, typer.Option("--top", help="Images in the top-losses and label-issues galleries.", min=1, max=64)] = 16,
    data: DataOpt = None,
) -> None:
    """Top losses, confused classes and likely label errors of a run, from its out-of-fold predictions.

    Reads runs/COMP/RUN/oof.csv (no model is loaded; a multi-label run is reviewed as sets) and writes runs/COMP/RUN/review/: top_losses.png,
    confused.png, label_issues.png and label_issues.csv (id, label, suggested, score; cleanlab's
    find_label_issues ranked by self-confidence, most likely first; score = the label quality score,
    lower = more likely wrong). A cross-validation run (`flow train --folds all`) reviews every
    training row; a single run only its validation fold.

    --exclude writes the issues to runs/COMP/exclude.json; `flow review --exclude FILE` the ids of a
    CSV you edited. Later `flow train` runs leave those rows out of training (never out of
    validation, so scores stay comparable) until `flow review --no-exclude`. The data is never changed.

    Examples: flow review digits ; flow review --run 20250101-120000-smallcnn-cv5 --exclude ;
    flow review digits --exclude runs/digits/RUN/review/label_issues.csv ; flow review --no-exclude
    """
    from kaggle_flow import console
    from kaggle_flow.errors import FlowError
    from kaggle_flow.exclusion import remove_exclusion
    from kaggle_flow.fileio import ensure_writable
    from kaggle_flow.submit.review import exclude_issues, exclude_listed, review_run
    from kaggle_flow.workspace import open_workspace

    if file is None and comp is not None and comp.lower().endswith(".csv"):
        comp, file = None, Path(comp)  # `flow review --exclude FILE`: the competition is the current one
    if file is not None and not exclude:
        raise FlowError(f"{file}: a file goes with --exclude (flow review --exclude {file})")
    if no_exclude and (exclude or run is not None):
        raise FlowError("--no-exclude turns the exclusion off: leave out --exclude and --run")
    ws = open_workspace(comp, data)
    ensure_writable(ws.runs_dir)
    if no_exclude:
        gone = remove_exclusion(ws.runs_dir)
        console.info(f"Later training uses every row again (removed {gone.file}, {len(gone)} ids)" if gone else
                     f"No exclusion list for '{ws.comp.name}' ({ws.runs_dir / 'exclude.json'}): training uses every row")
        return
    if file is not None:
        listed = exclude_listed(ws, file)
        console.info(f"Later `flow train {ws.comp.name}` runs leave out {listed.source}: {len(listed)} training rows ({listed.file})")
        return
    done = review_run(ws, run, top=top)
    _show(done)
    if exclude:
        listed = exclude_issues(ws, done)
        console.info(f"Later `flow train {ws.comp.name}` runs leave out these {len(listed)} rows from training, never from "
                     f"validation ({listed.file}; `flow review --no-exclude` takes them back)")


def _show(done: Review) -> None:
    from kaggle_flow import console

    console.info(done.scope)
    if done.unreadable:
        console.warn(f"left out of the galleries, unreadable: {console.shortlist(f'{i} ({why})' for i, why in done.unreadable.items())}")
    shown = done.issues.head(SHOWN)
    if not shown.empty:
        console.table(f"Likely label errors (cleanlab, most likely first; score: lower = more likely wrong), top {len(shown)}",
                      ["id", "label", "suggested", "score"], [(r.id, r.label, r.suggested, f"{r.score:.3f}") for r in shown.itertuples()])
    pairs = ", ".join(f"{p.label} -> {p.predicted} ({p.count})" for p in done.pairs.head(3).itertuples()) or "none"
    console.info(f"{console.plural(len(done.issues), 'likely label error')} among {done.rows:,} rows ({len(done.issues) / max(done.rows, 1):.1%}); "
                 f"most confused (label -> predicted): {pairs}")
    console.info(f"Wrote {done.folder}: " + ", ".join(f.name for f in done.files))
