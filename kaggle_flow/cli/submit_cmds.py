"""Commands: predict, submit, score, submissions, export, run."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from kaggle_flow.cli.app import CompArg, DataOpt, StrictOpt, app
from kaggle_flow.cli.options import training_options

if TYPE_CHECKING:
    import pandas as pd

    from kaggle_flow.workspace import Workspace

RunOpt = Annotated[
    Optional[str],
    typer.Option("--run", help="Run id under runs/COMP (or a run folder); default: the best run.", metavar="RUN", show_default=False),
]
BestOpt = Annotated[bool, typer.Option("--best", help="Use the run with the best validation score (the default).")]
TtaOpt = Annotated[bool, typer.Option("--tta", help="Test-time augmentation: average each test image with its mirror where the recipe flips, else with four small shifts.")]
EnsembleOpt = Annotated[
    Optional[str],
    typer.Option("--ensemble", help="Average the probabilities of these runs (comma-separated).", metavar="RUN1,RUN2", show_default=False),
]
FoldsOpt = Annotated[
    Optional[str],
    typer.Option("--folds", help="'all': average the fold models of a cross-validation run (`flow train --folds all`).", metavar="all", show_default=False),
]

KaggleOpt = Annotated[bool, typer.Option("--kaggle", help="Upload the CSV to the Kaggle competition (needs the kaggle extra and credentials).")]
MessageOpt = Annotated[
    Optional[str],
    typer.Option("--message", "-m", help="The Kaggle submission's description; default: the run, its recipe, its CV score.", show_default=False),
]
ResendOpt = Annotated[
    Optional[Path],
    typer.Option("--file", help="With --kaggle: upload this submission CSV again instead of writing a new one.", metavar="FILE", show_default=False),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="With --kaggle --file: send a file Kaggle has had already once more.")]


@app.command("predict")
def predict_cmd(
    comp: CompArg = None,
    run: RunOpt = None,
    best: BestOpt = False,
    tta: TtaOpt = False,
    ensemble: EnsembleOpt = None,
    folds: FoldsOpt = None,
    data: DataOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Predict the test images with a run and save the probabilities as test_probs.npy in its folder.

    With --ensemble the runs' probabilities are averaged and saved under runs/COMP/ensemble-TIME/
    (its config.json lists the members; `flow submit --run ensemble-TIME` submits it).

    Examples: flow predict lemon --best --tta ; flow predict digits --ensemble r1,r2 ; flow predict lemon --folds all
    """
    from kaggle_flow import console
    from kaggle_flow.errors import FlowError
    from kaggle_flow.fileio import ensure_writable
    from kaggle_flow.submit.choice import RunChoice
    from kaggle_flow.submit.predict import predict_test, tta_description
    from kaggle_flow.workspace import open_workspace

    if best and (run is not None or ensemble is not None):
        raise FlowError("--best picks the run: leave out --run and --ensemble")
    ws = open_workspace(comp, data)
    ensure_writable(ws.runs_dir)
    pred = predict_test(ws, RunChoice(run=run, tta=tta, ensemble=ensemble, folds=folds), strict=strict)
    if pred.new_ensemble:
        console.info(f"Averaged {ensemble} into {pred.run.path} (submit it with `flow submit --run {pred.run.id}`)")
    else:
        console.info(f"Predicted with {pred.run.path}" + (f" (with TTA: each image averaged with {tta_description(pred.run)})" if tta else ""))
    console.counts_table(f"Predicted classes of {len(pred.test)} test images", pred.counts, ws.class_names())
    console.info(f"Saved the test probabilities ({pred.probs.shape[0]} x {pred.probs.shape[1]}) to {pred.run.test_probs}")


@app.command("submit")
def submit_cmd(
    comp: CompArg = None,
    run: RunOpt = None,
    tta: TtaOpt = False,
    ensemble: EnsembleOpt = None,
    folds: FoldsOpt = None,
    probs_file: Annotated[
        Optional[Path],
        typer.Option("--probs", help="Submit saved probabilities (a test_probs.npy) instead of predicting.", metavar="FILE", show_default=False),
    ] = None,
    kaggle: KaggleOpt = False,
    message: MessageOpt = None,
    file: ResendOpt = None,
    force: ForceOpt = False,
    data: DataOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Predict the test set, check the CSV against the competition's format, write submissions/COMP/.

    The file is checked before it is written (every test id once, labels in the class set, the
    columns and row order of the sample submission; probabilities in [0, 1], rows summing to 1); a
    failed check writes nothing. The submission is added to submissions/COMP/ledger.csv (see `flow
    submissions`).

    Where the competition is scored by log loss, the probabilities are calibrated first: one
    temperature fitted to the log loss of the run's out-of-fold predictions (label smoothing caps
    every probability; with fewer than 100 of them the probabilities are written as predicted), and
    each is clipped to [1e-15, 1 - 1e-15], as scikit-learn's log loss does.

    With --kaggle the CSV is then uploaded to the competition on Kaggle (`kaggle = "SLUG"` in its TOML,
    else its name); `flow submissions --refresh` reads the scores back. A failed upload keeps the
    CSV, its ledger row says `not sent` and why, and `--kaggle --file FILE` sends it again (checked
    first, as a new CSV is; a file Kaggle has had already goes again only with --force).

    Examples: flow submit mnist ; flow submit lemon --run 20250101-120000-resnet18 --tta ; flow submit digits --ensemble r1,r2 ;
    flow submit digits --kaggle -m "first try"
    """
    from kaggle_flow.errors import FlowError
    from kaggle_flow.fileio import ensure_writable
    from kaggle_flow.submit.choice import RunChoice
    from kaggle_flow.submit.submission import submit
    from kaggle_flow.workspace import open_workspace

    if (file is not None or message is not None or force) and not kaggle:
        raise FlowError("--file, --message and --force go with --kaggle")
    ws = open_workspace(comp, data)
    for folder in (ws.submissions_dir, ws.runs_dir):  # the CSV and its ledger row; the run's test_probs.npy
        ensure_writable(folder)
    if kaggle:
        from kaggle_flow.kaggle_api import require_credentials

        require_credentials()  # before any predicting
    sub = None
    if file is None:
        sub = submit(ws, RunChoice(run=run, tta=tta, ensemble=ensemble, folds=folds), probs_file=probs_file, strict=strict)
        sub.show(ws.class_names())
        file = sub.file
    if kaggle:
        _upload(ws, Path(file), message, force=force, resent=sub is None)


def _upload(ws: Workspace, file: Path, message: str | None, *, force: bool, resent: bool) -> None:
    """Send a submission CSV of the ledger to Kaggle and say where its score will come from."""
    from kaggle_flow import console
    from kaggle_flow.kaggle_api import slug_of
    from kaggle_flow.submit.kaggle import send

    ref = send(ws, file, message, force=force, check=resent)
    console.info(f"Sent {file.name} to Kaggle competition '{slug_of(ws.comp)}' (ref {ref}, pending); `flow submissions --refresh` reads its score")


@app.command("score")
def score_cmd(
    comp: CompArg = None,
    file: Annotated[
        Optional[Path], typer.Argument(help="Submission CSV; default: the newest one of the competition.", show_default=False)
    ] = None,
    data: DataOpt = None,
) -> None:
    """Score a submission against the test labels, where they are known locally (embedded data sets).

    The score is written into the submission's row of submissions/COMP/ledger.csv.

    Examples: flow score mnist ; flow score mnist submissions/mnist/20250101-120000_r1.csv
    """
    from kaggle_flow import console
    from kaggle_flow.submit.score import local_score
    from kaggle_flow.workspace import open_workspace

    if file is None and comp is not None and comp.lower().endswith(".csv"):
        comp, file = None, Path(comp)  # `flow score FILE`: the competition is the current one
    result = local_score(open_workspace(comp, data), file)
    console.info(result.line)


@app.command("submissions")
def submissions_cmd(
    comp: CompArg = None,
    lb: Annotated[
        Optional[tuple[str, str]],
        typer.Option("--lb", help="Record a public leaderboard score by hand for a submission file.", metavar="FILE SCORE", show_default=False),
    ] = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Read status and scores of the Kaggle submissions into the ledger first.")] = False,
) -> None:
    """List the submissions of a competition: run, recipe, CV, local, public and private score.

    The ledger is first made to agree with the folder: a row left pending by an interrupted
    `flow submit` is kept or dropped by whether its CSV exists, a CSV without a row gets one.
    Where submissions have a CV and a leaderboard score, submissions/COMP/cv_vs_lb.png plots one
    against the other, and from three on the rank correlation is printed under the table.

    --refresh reads the competition's submissions from Kaggle first: status (pending, complete, error
    with Kaggle's text), public and private score; a submission made outside flow gets a row.

    Examples: flow submissions mnist ; flow submissions lemon --lb 20250101-120000_r1.csv 0.912 ; flow submissions --refresh
    """
    from kaggle_flow import console
    from kaggle_flow.submit.leaderboard import record_score
    from kaggle_flow.submit.ledger import ledger_file, reconcile
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace(comp)
    ledger, notes = reconcile(ws.submissions_dir)
    for note in notes:
        console.warn(note)
    if lb is not None:
        name = record_score(ws.submissions_dir, *lb)
        console.info(f"Recorded the public score {float(lb[1]):.4f} of {name}")
        ledger, _ = reconcile(ws.submissions_dir)
    if refresh:
        from kaggle_flow.kaggle_api import slug_of
        from kaggle_flow.submit.kaggle import refresh as refresh_from_kaggle

        done = refresh_from_kaggle(ws.submissions_dir, slug_of(ws.comp))
        added = f", {done.added} made outside flow added" if done.added else ""
        console.info(f"Read Kaggle's submissions of '{slug_of(ws.comp)}': {done.settled} settled{added}")
        ledger, _ = reconcile(ws.submissions_dir)
    if ledger.empty:
        console.info(f"No submissions yet for '{ws.comp.name}' ({ledger_file(ws.submissions_dir)} is empty); run `flow submit`")
        return
    _ledger_table(f"Submissions of {ws.comp.name} ({ledger_file(ws.submissions_dir)})", ledger)
    for r in ledger.itertuples(index=False):  # why Kaggle failed a submission, or why it was never sent
        if r.lb_status in ("error", "not sent") and r.lb_note:
            console.warn(f"{r.file}: {r.lb_status}: {r.lb_note}")
    _cv_vs_lb(ws, ledger)


def _ledger_table(title: str, ledger: pd.DataFrame) -> None:
    """The ledger's rows, a column blank in every row left out. On a narrow terminal the rows are
    numbered and each file name (the one thing to copy) is whole on a line under the table, with its recipe."""
    from kaggle_flow import console

    def short(score: str) -> str:
        return f"{float(score):.4f}" if score else "-"

    records = [  # the file name is TIME_RUN.csv, so it says the run too; the ledger CSV has every column
        {"file": r.file, "kind": r.kind, "model": r.model, "epochs": r.epochs, "lr": r.lr, "preset": r.preset, "excluded": r.excluded, "pseudo": r.pseudo, "tta": r.tta,
         "lb": r.lb_status, "cv": short(r.cv_score), "local": short(r.local_score), "public": short(r.public_score), "private": short(r.private_score)}
        for r in ledger.itertuples(index=False)
    ]
    scores = ["cv", "local", "public", "private"]
    columns = [c for c in records[0] if c in scores or any(r[c] for r in records)]
    rows = [[r[c] or "-" for c in columns] for r in records]
    wide = sum(max(len(c), *(len(str(r[i])) for r in rows)) + 2 for i, c in enumerate(columns))
    if wide <= console.out.width:
        console.table(title, columns, rows, compact=True)
        return
    recipe = [c for c in ("model", "epochs", "lr", "preset", "excluded", "pseudo") if c in columns]
    narrow = [c for c in columns if c != "file" and c not in recipe]
    console.table(title, ["#", *narrow], [(i, *(r[c] or "-" for c in narrow)) for i, r in enumerate(records, 1)], compact=True)
    for i, r in enumerate(records, 1):
        line, made_by = f"{i:>3}  {r['file']}", "  ".join(f"{c} {r[c]}" for c in recipe if r[c])
        fits = len(line) + 2 + len(made_by) <= console.out.width
        console.info(f"{line}  {made_by}" if fits else f"{line}\n     {made_by}" if made_by else line)


def _cv_vs_lb(ws: Workspace, ledger: pd.DataFrame) -> None:
    """The rank correlation lines and the CV-against-leaderboard plot, where there are scores to compare."""
    from kaggle_flow import console
    from kaggle_flow.metrics import METRICS
    from kaggle_flow.submit.leaderboard import PLOT, correlation_lines, plot_cv_vs_lb

    for line in correlation_lines(ledger):
        console.info(line)
    with contextlib.suppress(OSError):  # a read-only folder still lists
        plot = plot_cv_vs_lb(ledger, METRICS[ws.comp.metric], ws.submissions_dir / PLOT)
        if plot is not None:
            console.info(f"CV against leaderboard: {plot}")


@app.command("export")
def export_cmd(
    run: Annotated[Optional[str], typer.Argument(help="Run id or folder; default: the best run.", show_default=False)] = None,
    comp: Annotated[
        Optional[str], typer.Option("--comp", help="Competition; default: the last one used here.", show_default=False)
    ] = None,
    onnx: Annotated[bool, typer.Option("--onnx", help="Also write export/model.onnx (needs paddle2onnx).")] = False,
) -> None:
    """Save a run's best model for inference without flow: paddle.jit (+ ONNX) and preprocess.json.

    The files land in runs/COMP/RUN/export/: model.pdmodel (or model.json) + model.pdiparams, and
    preprocess.json (image size, channels, mean, std, class names).

    Examples: flow export --comp mnist ; flow export 20250101-120000-smallcnn --onnx
    """
    from kaggle_flow import console
    from kaggle_flow.fileio import ensure_writable
    from kaggle_flow.runs import competition_of
    from kaggle_flow.submit.export import export
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace(comp or competition_of(run))
    ensure_writable(ws.runs_dir)
    done = export(ws, run, onnx=onnx)
    console.info(f"Exported {done.run.id} to {done.folder}: " + ", ".join(f.name for f in done.files))


# --- flow run ------------------------------------------------------------------------------------


@app.command("run")
@training_options
def run_cmd(comp: CompArg = None, data: DataOpt = None, strict: StrictOpt = False, *, flags: Any, launch: Any) -> None:
    """The whole flow, one step after another: eda, split, balance, train, submit, score.

    Takes every option of `flow train`. The split is the one in runs/COMP/folds.csv, else the
    default of `flow split`; label shuffling is on when `flow balance`, the recipe or --balance say
    so. The run that training made is submitted, and scored where the test labels are known.

    Examples: flow run mnist ; flow run mnist --epochs 3 ; flow run digits --model resnet18 --sizes 32 --lr 1e-3
    """
    from kaggle_flow import console
    from kaggle_flow.fileio import ensure_writable
    from kaggle_flow.pipeline import run_flow
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace(comp, data)
    for folder in (ws.runs_dir, ws.submissions_dir):
        ensure_writable(folder)
    done = run_flow(ws, flags, launch, strict=strict)
    wall = f"total wall time {done.seconds:.1f} s"
    if done.submission is None:
        console.info(f"\nflow run {ws.comp.name}: run {done.run.id}; {wall}")
        return
    outcome = "no local score" if done.score is None else f"local {done.score.metric} {done.score.value:.4f}"
    console.info(f"\nflow run {ws.comp.name}: {outcome} (run {done.run.id}); {wall}")
