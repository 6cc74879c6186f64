"""Commands: predict, submit, score, submissions, export, run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from kaggle_flow.cli.app import CompArg, DataOpt, StrictOpt, app

if TYPE_CHECKING:
    import numpy as np

    from kaggle_flow.workspace import Workspace

RunOpt = Annotated[
    Optional[str],
    typer.Option("--run", help="Run id under runs/COMP (or a run folder); default: the best run.", metavar="RUN", show_default=False),
]
BestOpt = Annotated[bool, typer.Option("--best", help="Use the run with the best validation score (the default).")]
TtaOpt = Annotated[bool, typer.Option("--tta", help="Test-time augmentation: average the image and its mirror.")]
EnsembleOpt = Annotated[
    Optional[str],
    typer.Option("--ensemble", help="Average the probabilities of these runs (comma-separated).", metavar="RUN1,RUN2", show_default=False),
]
FoldsOpt = Annotated[
    Optional[str],
    typer.Option("--folds", help="'all': average the fold models of a cross-validation run (`flow train --folds all`).", metavar="all", show_default=False),
]


def _distribution_table(ws: Workspace, title: str, probs: np.ndarray, train_labels: Any | None = None) -> None:
    from kaggle_flow import console
    from kaggle_flow.submit import class_distribution

    pred = class_distribution(ws.comp, probs.argmax(axis=1))
    n_pred = max(int(pred.sum()), 1)
    if train_labels is None:
        rows = [(name, int(c), f"{c / n_pred:.1%}") for name, c in pred.items()]
        console.table(title, ["class", "predicted", "share"], rows)
        return
    train = class_distribution(ws.comp, train_labels)
    n_train = max(int(train.sum()), 1)
    rows = [
        (name, int(t), f"{t / n_train:.1%}", int(p), f"{p / n_pred:.1%}")
        for name, t, p in zip(ws.comp.classes, train, pred)
    ]
    console.table(title, ["class", "train", "train share", "predicted", "predicted share"], rows)


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
    from kaggle_flow.submit import predict_test, read_test_rows, save_probs
    from kaggle_flow.workspace import open_workspace

    if best and (run is not None or ensemble is not None):
        raise FlowError("--best picks the run: leave out --run and --ensemble")
    ws = open_workspace(comp, data)
    test = read_test_rows(ws, strict=strict)
    pred = predict_test(ws, test, run=run, tta=tta, ensemble=ensemble, folds=folds)
    run_dir, probs = pred.run_dir, pred.probs
    out = save_probs(run_dir, probs)
    if pred.new_ensemble:
        console.info(f"Averaged {ensemble} into {run_dir} (submit it with `flow submit --run {run_dir.name}`)")
    else:
        console.info(f"Predicted with {run_dir}" + (" (with TTA)" if tta else ""))
    _distribution_table(ws, f"Predicted classes of {len(test)} test images", probs)
    console.info(f"Saved the test probabilities ({probs.shape[0]} x {probs.shape[1]}) to {out}")


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
    data: DataOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Predict the test set, check the CSV against the competition's format, write submissions/COMP/.

    The file is checked before it is written (every test id once, labels in the class set, the
    columns and row order of the sample submission); a failed check writes nothing. The submission
    is added to submissions/COMP/ledger.csv (see `flow submissions`).

    Examples: flow submit mnist ; flow submit lemon --run 20250101-120000-resnet18 --tta ; flow submit digits --ensemble r1,r2
    """
    from kaggle_flow import console
    from kaggle_flow.errors import FlowError
    from kaggle_flow.ledger import add_entry
    from kaggle_flow.submit import (
        cv_score,
        is_ensemble,
        load_probs,
        predict_test,
        read_config,
        read_sample,
        read_test_rows,
        write_submission,
    )
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace(comp, data)
    table = ws.table(strict=strict, keep_test=True)
    test = read_test_rows(ws, table=table)
    sample = read_sample(ws.comp, ws.ensure_data())
    if probs_file is not None:
        if run is not None or ensemble is not None or folds is not None:
            raise FlowError("--probs gives the probabilities: leave out --run, --ensemble and --folds")
        probs = load_probs(probs_file, len(test), ws.comp)
        run_dir = Path(probs_file).resolve().parent
    else:
        pred = predict_test(ws, test, run=run, tta=tta, ensemble=ensemble, folds=folds)
        run_dir, probs = pred.run_dir, pred.probs
    path, frame = write_submission(
        ws.comp, test, probs, sample, submissions_dir=ws.submissions_dir, run_dir=run_dir, keep_probs=probs_file is None
    )
    config = read_config(run_dir) if (run_dir / "config.json").is_file() else {}
    score = None if is_ensemble(config) else cv_score(run_dir)
    add_entry(ws.submissions_dir, file=path, run=run_dir.name, config=config, cv_score=score, tta=tta)
    train_labels = table.loc[table["split"] == "train", "label"].to_numpy(dtype=int)
    _distribution_table(ws, f"Classes: training set vs. predicted ({run_dir.name})", probs, train_labels)
    console.info(f"Wrote {path} ({len(frame)} rows, checked: every test id once, labels in the class set)")


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
    from kaggle_flow.errors import FlowError
    from kaggle_flow.ledger import set_local_score
    from kaggle_flow.score import newest_submission, score_submission, solution_file
    from kaggle_flow.workspace import open_workspace

    if file is None and comp is not None and comp.lower().endswith(".csv"):
        comp, file = None, Path(comp)  # `flow score FILE`: the competition is the current one
    ws = open_workspace(comp, data)
    solution = solution_file(ws.comp, ws.ensure_data())
    if solution is None:
        name = ws.comp.submission.solution or "solution.csv"
        raise FlowError(f"no local labels for '{ws.comp.name}' ({ws.data_dir / name} not found): score it on the competition site")
    file = file if file is not None else newest_submission(ws.submissions_dir)
    value = score_submission(ws.comp, file, solution)
    if Path(file).parent.resolve() == ws.submissions_dir.resolve():
        set_local_score(ws.submissions_dir, file, value)
    console.info(f"Local {ws.comp.metric} of {file}: {value:.4f}")


@app.command("submissions")
def submissions_cmd(comp: CompArg = None) -> None:
    """List the submissions of a competition: run, recipe, CV score and local score.

    Example: flow submissions mnist
    """
    from kaggle_flow import console
    from kaggle_flow.ledger import ledger_file, read_ledger
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace(comp)
    ledger = read_ledger(ws.submissions_dir)
    if ledger.empty:
        console.info(f"No submissions yet for '{ws.comp.name}' ({ledger_file(ws.submissions_dir)} is empty); run `flow submit`")
        return
    def short(score: str) -> str:
        return f"{float(score):.4f}" if score else "-"

    rows = [  # the time is in the file name; the ledger CSV has every column
        (r.file, r.run, r.model, r.epochs, r.lr, r.preset, r.tta, short(r.cv_score), short(r.local_score))
        for r in ledger.itertuples(index=False)
    ]
    columns = ["file", "run", "model", "epochs", "lr", "preset", "tta", "cv", "local"]
    console.table(f"Submissions of {ws.comp.name} ({ledger_file(ws.submissions_dir)})", columns, rows)


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
    from kaggle_flow.export import export_run
    from kaggle_flow.runs import resolve_run
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace(comp)
    run_dir = resolve_run(ws, run, best=run is None)
    files = export_run(run_dir, onnx=onnx)
    console.info(f"Exported {run_dir.name} to {files[0].parent}: " + ", ".join(f.name for f in files))


@app.command(
    "run",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def run_cmd(
    ctx: typer.Context,
    comp: CompArg = None,
    val_size: Annotated[float, typer.Option("--val-size", help="Hold-out share for validation.", metavar="F")] = 0.1,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the split, the balancing and training.")] = 42,
    data: DataOpt = None,
) -> None:
    """The whole flow, one step after another: eda, split, balance, train, submit, score.

    Training uses the competition's default recipe; any other option is passed on to `flow train`.

    Examples: flow run mnist ; flow run mnist --epochs 3 ; flow run digits --model resnet18 --sizes 32 --lr 1e-3
    """
    from typer.main import get_command

    from kaggle_flow import console
    from kaggle_flow.workspace import resolve_name

    name = resolve_name(comp)
    extra = list(ctx.args)
    data_args = ["--data", str(data)] if data else []
    steps: list[tuple[str, list[str]]] = [
        ("eda", [name, *data_args]),
        ("split", [name, "--val-size", str(val_size), "--seed", str(seed), *data_args]),
        ("balance", [name, "--fold", "0", "--seed", str(seed), *data_args]),
        ("train", [name, "--fold", "0", "--seed", str(seed), *data_args, *extra]),
        ("submit", [name, *data_args]),  # --run: the run just trained (added below)
        ("score", [name, *data_args]),
    ]
    group = get_command(app)
    start = time.perf_counter()
    for i, (step, args) in enumerate(steps, start=1):
        if step == "score" and not _has_solution(name, data):
            console.info(f"\n== {i}/{len(steps)} flow score: skipped (no local labels; score it on the competition site)")
            continue
        if step == "submit":
            args = [*args, "--run", _newest_run(name)]
        console.info(f"\n== {i}/{len(steps)} flow {step} {' '.join(args)}")
        step_start = time.perf_counter()
        code = group.main([step, *args], prog_name="flow", standalone_mode=False)
        if code not in (None, 0):
            raise typer.Exit(int(code))  # the step has printed its error
        console.info(f"   ({step} took {time.perf_counter() - step_start:.1f} s)")
    console.info(f"\nflow run {name}: {_last_score(name)}; total wall time {time.perf_counter() - start:.1f} s")


def _last_score(name: str) -> str:
    from kaggle_flow.ledger import read_ledger
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace(name, remember_it=False)
    ledger = read_ledger(ws.submissions_dir)
    score = ledger["local_score"].iloc[-1] if len(ledger) else ""
    return f"local {ws.comp.metric} {float(score):.4f}" if score else "no local score"


def _newest_run(name: str) -> str:
    from kaggle_flow.runs import resolve_run
    from kaggle_flow.workspace import open_workspace

    return resolve_run(open_workspace(name, remember_it=False), None, best=False).name


def _has_solution(name: str, data: Path | None) -> bool:
    from kaggle_flow.score import solution_file
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace(name, data, remember_it=False)
    return solution_file(ws.comp, ws.ensure_data()) is not None
