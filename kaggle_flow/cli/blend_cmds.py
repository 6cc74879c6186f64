"""Command: blend (weights for several runs, chosen on their out-of-fold predictions)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from kaggle_flow.cli.app import app


@app.command("blend")
def blend_cmd(
    names: Annotated[
        Optional[list[str]],
        typer.Argument(help="[COMP] [RUN...]: the competition (default: the last one used here), then the runs to blend "
                       "(default: the finished runs of the current folds).", metavar="[COMP] [RUN...]", show_default=False),
    ] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Members chosen at most, with replacement (weights in steps of 1/STEPS).")] = 50,
    patience: Annotated[int, typer.Option("--patience", min=1, help="Stop after this many steps without a better blend.")] = 5,
) -> None:
    """Weights for several runs, chosen on their out-of-fold predictions, written as an ensemble run.

    Caruana's ensemble selection: start from the best run, add again and again the run (one already
    in included) that most improves the CV of the blend, keep the best blend seen; a run's weight is
    the times it was chosen over all chosen. The blend's CV is never below its best run's. For AUC
    (auc, mean_auc) the runs' ranks, scaled to [0, 1], are averaged instead of their probabilities.

    Runs validated on other rows (another fold or folds.csv), of another competition or class list
    are refused. The blend is written to runs/COMP/ensemble-TIME/ (config.json: members and weights;
    oof.csv; summary.json: its CV), which `flow submit --run ensemble-TIME` predicts and submits.

    Examples: flow blend ; flow blend digits ; flow blend digits RUN1 RUN2 RUN3 --steps 100
    """
    from kaggle_flow import console
    from kaggle_flow.competition import list_competitions
    from kaggle_flow.fileio import ensure_writable
    from kaggle_flow.submit.blend import blend_runs
    from kaggle_flow.workspace import open_workspace

    names = list(names or [])
    comp = names.pop(0) if names and names[0] in list_competitions() else None  # a run is never named like a competition
    ws = open_workspace(comp)
    ensure_writable(ws.runs_dir)
    done = blend_runs(ws, names, steps=steps, patience=patience)
    how = "ranks averaged" if done.rank else "probabilities averaged"
    console.info(f"Blending {len(done.runs)} runs on their {done.rows} out-of-fold rows by {done.metric} ({how})")
    if done.left_out:
        console.info(f"Left out: {console.shortlist(done.left_out, 10)}")
    rows = [(r.id, f"{s:.4f}", f"{w:.3f}") for r, s, w in zip(done.runs, done.scores, done.weights)]
    rows += [("equal weights", f"{done.equal_score:.4f}", "-"), ("blend", f"{done.score:.4f}", "-")]
    console.table(None, ["run", done.metric, "weight"], rows)
    console.info(f"Wrote {done.ensemble.path} (CV {done.metric} {done.score:.4f}); submit it with `flow submit --run {done.ensemble.id}`")
