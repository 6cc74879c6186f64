"""Which runs train: one fold, every fold (cross-validation), a full refit, or a resumed run.

    train(ws, overrides)      the RunConfig (the recipe overridden by flags), the folds
                              (runs/COMP/folds.csv, made with the one default when missing), the run
                              folder; then here `train_folder`, or the processes of a data-parallel
                              run (distributed.py), each of which calls `train_folder` (worker.py)
    train_folder(run, ...)    one `fit` (fit.py), or one per fold and the out-of-fold CV score

Ctrl-C, SIGTERM, SIGHUP or a failure before a fresh run's first checkpoint leaves no run folder
(a diverged run stays, marked failed); after it, the run is resumable and the line says how.
A resumed run keeps its own config: recipe flags beside --resume are refused.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kaggle_flow import console
from kaggle_flow.config import Flags
from kaggle_flow.engine import distributed, lr_find
from kaggle_flow.engine.checkpoint import Checkpointer
from kaggle_flow.engine.configure import refit_config, resolve_config
from kaggle_flow.engine.fit import fit
from kaggle_flow.engine.loop import EpochHook
from kaggle_flow.engine.runlog import RunLog, chance_level, fit_run_thresholds, keep_source_thresholds
from kaggle_flow.engine.step import Parallel
from kaggle_flow.errors import (
    DiskFullError,
    FlowError,
    NothingToResume,
    RankFailed,
    TrainingDiverged,
    TrainingInterrupted,
)
from kaggle_flow.exclusion import current_keys, run_exclusion, without_excluded
from kaggle_flow.explore.split import ensure_folds, train_val
from kaggle_flow.machine import forks_die_with_this, sigterm_as_interrupt
from kaggle_flow.metrics import METRICS
from kaggle_flow.oof import joined, read_oof, write_oof
from kaggle_flow.pseudo import PseudoLabels, cache_rows, read_pseudo, with_pseudo, write_pseudo
from kaggle_flow.recipe_keys import LR_FIND, flag_of
from kaggle_flow.run_state import FINISHED
from kaggle_flow.runs import (
    Run,
    Summary,
    create_fold,
    create_run,
    resolve_run,
)
from kaggle_flow.submit.teacher import find_teacher, pseudo_labels
from kaggle_flow.table.layouts import labelled
from kaggle_flow.target import TARGETS
from kaggle_flow.thresholds import epoch_score

if TYPE_CHECKING:
    from kaggle_flow.engine.distributed import Launch
    from kaggle_flow.workspace import Workspace


@contextlib.contextmanager
def _discard_unsaved(run: Run, *, fresh: bool) -> Iterator[None]:
    """Ctrl-C, or a failure, before a run's first checkpoint: nothing to resume, so a fresh run leaves
    no folder (`flow runs` would list it as "no summary" forever).

    With a checkpoint (an earlier epoch, or an earlier fold of a cross-validation run) the run stays
    and the message says how to continue it. Kept whatever happened: a diverged run (its summary
    says it failed, and why) and a failed process of a data-parallel run (its line names its log).
    """
    resume = f"flow train {run.config.competition} --resume {run.id.split('/')[0]}"
    try:
        yield
    except (KeyboardInterrupt, TrainingInterrupted) as exc:
        if not _saved(run):
            raise NothingToResume(f"interrupted before the first epoch ended: nothing saved, nothing to resume{_remove_if_fresh(run, fresh)}") from None
        if isinstance(exc, TrainingInterrupted) and not isinstance(exc, NothingToResume):
            raise  # it already says where to continue
        raise TrainingInterrupted(f"interrupted; continue with: {resume}") from None
    except RankFailed as exc:
        if exc.disk_full and _saved(run):
            raise DiskFullError(f"{exc}; once there is room, continue with: {resume}") from None
        raise
    except TrainingDiverged:
        raise
    except FlowError as exc:
        if not _saved(run):
            _remove_if_fresh(run, fresh)  # the line names what failed; an empty run folder is not worth a word
            raise
        if isinstance(exc, DiskFullError):
            raise DiskFullError(f"{exc}; once there is room, continue with: {resume}") from None
        raise
    except BaseException:  # anything else (a closed stdout: `flow train | head`): no empty folder either
        if not _saved(run):
            _remove_if_fresh(run, fresh)
        raise


def _saved(run: Run) -> bool:
    """Whether the run (or one of its folds) has a last checkpoint to resume."""
    return any(run.path.rglob(run.last_state.name))


def _remove_if_fresh(run: Run, fresh: bool) -> str:
    """A fresh run's folder removed: the words the error line ends with ("" for a resumed run)."""
    if not fresh:
        return ""
    shutil.rmtree(run.path, ignore_errors=True)
    return f" ({run.path} removed)"


def train(
    ws: Workspace,
    flags: Flags | dict[str, Any] | None = None,
    *,
    strict: bool = False,
    resume: str | None = None,
    on_epoch_end: EpochHook | None = None,
    launch: Launch | None = None,
) -> Run:
    """Train one fold (or every fold with folds="all") and return the run.

    Args:
        ws: the Workspace of the competition.
        flags: recipe keys and run options set by flags (None: "use the recipe"); a dict of them is
            read as Flags.
        strict: broken images found by `flow eda` are an error instead of being left out.
        resume: a run id whose last checkpoint to continue (its own config wins over `flags`).
        on_epoch_end: called as hook(epoch, row) after each epoch's checkpoint is saved (one process).
        launch: the processes to train in (`--nproc`, `--gpus`, `--nnodes`...). More than one: this
            process makes the run folder and the image caches, then starts paddle.distributed.launch
            and waits for it (distributed.py); the processes train the folder it made (worker.py).
    """
    sigterm_as_interrupt()  # paddle, imported with this module, replaced flow's handler: back before any file is made
    forks_die_with_this()  # DataLoader workers (--workers) end with this process, even when it is killed outright
    if resume is not None:
        _refuse_recipe_flags(ws, resume, Flags.of(flags))
    run = _run_to_resume(ws, resume) if resume is not None else None
    launch = distributed.launch_for(run, launch or distributed.Launch())
    if run is not None:
        console.info(f"Resuming {run.path}")
    options = Flags.of(flags).model_copy(update=launch.config_keys())
    # every option checked before anything is made or measured
    config = run.config if run is not None else resolve_config(ws, options)
    distributed.check(launch, sync_bn=config.sync_bn)
    teacher = find_teacher(ws, config.pseudo) if run is None and config.pseudo is not None else None  # before any file is made
    table = ws.table(strict=strict)
    folds = ensure_folds(ws, table)
    rows = labelled(table)
    if launch.world_size > 1 and launch.node_rank > 0:  # the run folder is node 0's
        return distributed.launch_training(ws, None, launch, rows, strict=strict, resume=resume is not None)
    fresh = run is None
    pseudo = pseudo_labels(ws, teacher, config, table)  # the teacher predicts once, before the run folder
    run = run or _new_run(ws, options, rows, folds, pseudo)
    with _discard_unsaved(run, fresh=fresh):
        if launch.world_size > 1:  # the processes read RUN/pseudo.csv; the caches hold its images too
            return distributed.launch_training(ws, run, launch, cache_rows(rows, run_pseudo(run)), strict=strict, resume=not fresh)
        train_folder(run, rows, folds, resume=not fresh, on_epoch_end=on_epoch_end, class_names=ws.class_names())
    return run


def _new_run(ws: Workspace, options: Flags, rows: pd.DataFrame, folds: pd.DataFrame, pseudo: PseudoLabels | None) -> Run:
    """The run folder with its config: a missing fold or a single hold-out for --folds all fails first.
    --lr find: the learning-rate finder runs on the training rows with the config built, and its
    suggestion becomes the lr (the automatic-recipe lines say so)."""
    finding = options.lr == LR_FIND
    options = options.model_copy(update={"lr": None}) if finding else options
    if options.full:
        config, train_rows = refit_config(ws, options, rows), rows
    else:
        fold = 0 if options.folds == "all" else (options.fold or 0)
        train_rows = train_val(rows, folds, fold)[0]
        config = resolve_config(ws, options, train_rows=train_rows)
    if finding:
        found = lr_find.sweep_lr(ws, config, train_rows, rows, lr_find.Sweep())
        why = f"{found.suggestion:.1e}: the learning-rate finder's suggestion (--lr find; {found.png})"
        config = config.model_copy(update={"lr": found.suggestion, "auto": {**config.auto, "lr": why}})
    if config.folds == "all":
        n_folds = int(folds["fold"].max()) + 1
        if n_folds < 2:
            raise FlowError(f"{ws.folds_file()}: a single hold-out, not K folds; make folds first: flow split {ws.comp.name} --folds 5")
        config = config.model_copy(update={"n_folds": n_folds})
    keys = {**current_keys(ws.runs_dir), **(pseudo.config_keys() if pseudo is not None else {})}
    run = create_run(ws.runs_dir, config.model_copy(update=keys))
    if pseudo is not None:
        write_pseudo(run.path, pseudo)
    return run


def train_folder(
    run: Run, rows: pd.DataFrame, folds: pd.DataFrame, *, resume: bool, on_epoch_end: EpochHook | None = None,
    class_names: list[str] | None = None,
) -> None:
    """Train a run whose folder exists: one fit, or one per fold. Every process of a data-parallel run
    does this on the folder the launching process made. `class_names`: the classes as the summary and
    confusion.png show them (Workspace.class_names), the run's classes when None."""
    config = run.config
    parallel = Parallel.launched(config.sync_bn).join()
    pseudo = run_pseudo(run)  # read once: every fold joins the same test rows
    if config.folds == "all":
        _cross_validate(run, rows, folds, on_epoch_end, parallel, class_names, pseudo)
        return
    if config.full:
        train_rows, val_rows = rows, rows.iloc[0:0]
    else:
        train_rows, val_rows = train_val(rows, folds, config.fold)
    train_rows = _training_rows(run, train_rows, val_rows, parallel, pseudo)
    fit(run, train_rows, val_rows, cache_rows(rows, pseudo), parallel=parallel, resume=resume, on_epoch_end=on_epoch_end,
        class_names=class_names)
    if config.full and parallel.is_main:
        keep_source_thresholds(run)


def _training_rows(run: Run, train_rows: pd.DataFrame, val_rows: pd.DataFrame, parallel: Parallel, pseudo: pd.DataFrame | None) -> pd.DataFrame:
    """The training rows less those `flow review --exclude` listed when the run started, plus the
    pseudo-labelled test rows (`--pseudo`); validation untouched."""
    exclusion = run_exclusion(run.comp_dir, run.id, run.config.exclude_fingerprint)
    return with_pseudo(without_excluded(train_rows, val_rows, exclusion, say=parallel.is_main), pseudo)


def run_pseudo(run: Run) -> pd.DataFrame | None:
    """The pseudo-labelled rows a run (or its CV parent) started with, from its pseudo.csv; None without --pseudo."""
    config = run.config
    if config.pseudo is None:
        return None
    top = run.parent if run.is_fold and run.parent is not None else run
    return read_pseudo(top.path, top.id, config.pseudo_count, config.num_classes)


LAUNCH_KEYS = ("nproc", "world_size")  # how many processes: a resumed run takes them (distributed.launch_for checks them)


def _refuse_recipe_flags(ws: Workspace, name: str, flags: Flags) -> None:
    """A resumed run keeps its own config: a recipe flag beside --resume would be silently ignored."""
    if flags.pseudo is not None:
        if _same_run(ws, flags.pseudo, name):
            raise FlowError(f"--pseudo {flags.pseudo}: the run being resumed; a run cannot label test images for its own training")
        raise FlowError(f"--pseudo goes with a new run: {name} continues with the training rows it started with")
    given = [key for key in flags.given() if key not in LAUNCH_KEYS]
    if given:
        names = ", ".join(flag_of(key) for key in given)
        raise FlowError(f"--resume continues {name} with its own settings; {names} cannot change it")


def _same_run(ws: Workspace, a: str, b: str) -> bool:
    try:
        return resolve_run(ws, a).path.resolve() == resolve_run(ws, b).path.resolve()
    except FlowError:
        return False


def _run_to_resume(ws: Workspace, name: str) -> Run:
    run = resolve_run(ws, name)
    if run.kind == "ensemble":
        raise FlowError(f"{run.path}: an ensemble, not a training run; nothing to resume")
    if run.config.competition != ws.comp.name:
        raise FlowError(f"{run.path}: a run of '{run.config.competition}', not of '{ws.comp.name}'")
    if run.is_fold:
        raise FlowError(f"{run.path}: a fold of a cross-validation run; resume the whole run: --resume {run.path.parent.name}")
    summary = run.summary
    if run.kind != "cv" and summary.status in FINISHED:
        raise FlowError(f"{run.path}: already finished ({summary.epochs_done} of {summary.epochs} epochs); nothing to resume")
    if run.kind != "cv":
        if not Checkpointer(run).has_last():
            raise FlowError(f"{run.path}: no checkpoint to resume (it stopped before its first epoch ended); start anew: flow train {ws.comp.name}")
        Checkpointer(run).check_last()  # a damaged file is one line here, before any process starts
    return run


def _cross_validate(
    run: Run, rows: pd.DataFrame, folds: pd.DataFrame, on_epoch_end: EpochHook | None, parallel: Parallel, class_names: list[str] | None,
    pseudo: pd.DataFrame | None,
) -> None:
    """One run per fold (finished folds of a resumed run are skipped), then the out-of-fold CV score."""
    log = RunLog.open(run, parallel)
    n_folds = int(folds["fold"].max()) + 1
    for k in range(n_folds):
        fold = create_fold(run, k, write=parallel.is_main)
        if fold.summary.status in ("finished", "stopped early"):
            continue
        log.info(f"Fold {k} of {n_folds}: {fold.path}")
        train_rows, val_rows = train_val(rows, folds, k)
        train_rows = _training_rows(fold, train_rows, val_rows, parallel, pseudo)
        resume_fold = Checkpointer(fold).has_last()
        with _discard_unsaved(fold, fresh=not resume_fold) if parallel.is_main else contextlib.nullcontext():
            fit(fold, train_rows, val_rows, cache_rows(rows, pseudo), parallel=parallel, resume=resume_fold, on_epoch_end=on_epoch_end, class_names=class_names)
    if parallel.is_main:  # the folds' files are rank 0's to read
        _cv_summary(run)


def _cv_summary(run: Run) -> Summary:
    """oof.csv of all folds together and the CV score of the out-of-fold predictions."""
    folds, target = run.folds(), TARGETS[run.config.target]
    oof = joined([read_oof(f.oof, run.config.num_classes, target) for f in folds])
    write_oof(run.oof, oof, target)
    labels = oof.labels
    cv = epoch_score(labels, oof.probs, METRICS[run.config.metric], run.config.target)  # as each fold's best epoch is scored
    summaries = [f.summary for f in folds]
    summary = run.write_summary(Summary(
        status="finished", reason=chance_level(run.config, labels, cv), metric=run.config.metric, best_score=cv, cv_score=cv,
        epochs=run.config.epochs,
        fold_scores=[s.best_score for s in summaries], epochs_done=round(float(np.mean([s.epochs_done for s in summaries]))),
        duration_s=round(sum(s.duration_s for s in summaries), 1),
    ))
    scores = ", ".join(f"{s:.4f}" for s in summary.fold_scores if s is not None)
    console.info(f"CV {run.config.metric} (out-of-fold, {len(folds)} folds): {cv:.4f}  [folds: {scores}]")
    if summary.reason:
        console.warn(summary.reason)
    fit_run_thresholds(run, oof)
    return summary
