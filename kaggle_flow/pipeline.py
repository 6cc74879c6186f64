"""`flow run`: the whole flow on one competition, one step after another: eda, split, balance, train,
submit, score, each the library call of its own command.

The flags are checked, as training will use them, before the first step. Each step prints a header
(`== 4/6 flow train COMP`) and its time, so a failure shows the step it stopped at. The split is the
one in runs/COMP/folds.csv, else the default of `flow split`; the run that training made is the one
submitted (never the best or the newest: another run made meanwhile is not taken), and the
submission is scored where the test labels are known. paddle is loaded with this module (training).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kaggle_flow import console
from kaggle_flow.engine import distributed, train
from kaggle_flow.engine.configure import resolve_config
from kaggle_flow.explore import eda, split
from kaggle_flow.explore.balance import balance_counts
from kaggle_flow.submit.choice import RunChoice
from kaggle_flow.submit.score import LocalScore, local_score, solution_file
from kaggle_flow.submit.submission import WrittenSubmission, submit
from kaggle_flow.table.layouts import describe_counts, no_test_images

if TYPE_CHECKING:
    import pandas as pd

    from kaggle_flow.config import Flags, RunConfig
    from kaggle_flow.engine.distributed import Launch
    from kaggle_flow.runs import Run
    from kaggle_flow.workspace import Workspace

STEPS = ("eda", "split", "balance", "train", "submit", "score")


@dataclass(frozen=True)
class FlowRun:
    """What `flow run` made: the run, its submission and local score where there are test images and labels."""

    run: Run
    submission: WrittenSubmission | None  # None: no test images to submit
    score: LocalScore | None  # None: nothing submitted, or no local test labels
    seconds: float  # the wall time of every step together


@contextlib.contextmanager
def _step(step: str, ws: Workspace) -> Iterator[None]:
    console.info(f"\n== {STEPS.index(step) + 1}/{len(STEPS)} flow {step} {ws.comp.name}")
    start = time.perf_counter()
    yield
    console.info(f"   ({step} took {time.perf_counter() - start:.1f} s)")


def run_flow(ws: Workspace, flags: Flags, launch: Launch, *, strict: bool = False) -> FlowRun:
    """Every step of the flow on `ws`'s competition, with `flags` (those of `flow train`) for training."""
    config = resolve_config(ws, flags)  # the flags checked before the first step, as training will use them
    distributed.check(launch, sync_bn=config.sync_bn)
    start = time.perf_counter()
    with _step("eda", ws):
        report = eda.run_eda(ws, strict=strict)
        broken = report["images"]["broken"]
        console.info(f"{describe_counts(report['images'])}, {broken} broken; the report and plots are in {ws.eda_dir()}")
    with _step("split", ws):
        table = ws.table(strict=strict)
        folds = split.ensure_folds(ws, table)
        console.info(f"Validation: {split.describe_folds(folds)} ({ws.folds_file()})")
    with _step("balance", ws):
        _balance_step(ws, table, folds, config)
    with _step("train", ws):
        run = train.train(ws, flags, strict=strict, launch=launch)
    if (table["split"] == "test").sum() == 0:
        console.info(f"\n== 5/6 flow submit, 6/6 flow score: skipped ({no_test_images(ws.data_dir, ws.comp, table)})")
        return FlowRun(run, None, None, time.perf_counter() - start)
    sub, score = _submit_and_score(ws, run, strict=strict)
    return FlowRun(run, sub, score, time.perf_counter() - start)


def _balance_step(ws: Workspace, table: pd.DataFrame, folds: pd.DataFrame, config: RunConfig) -> None:
    """The class counts of the fold's training rows before and after label shuffling, and whether training shuffles."""
    train_rows, _ = split.train_val(table, folds, config.fold)
    counts = balance_counts(train_rows, ws.class_names(), seed=config.seed)
    rows = counts[["class", "before", "after"]].itertuples(index=False)
    console.table(f"Label shuffling, fold {config.fold} (training rows only)", ["class", "before", "after"], rows)
    state = "on" if config.balance else "off"
    console.info(f"Label shuffling is {state} for this training: {config.balance_reason}")


def _submit_and_score(ws: Workspace, run: Run, *, strict: bool) -> tuple[WrittenSubmission, LocalScore | None]:
    """The run's checked submission, and its local score where the test labels are known."""
    with _step("submit", ws):
        sub = submit(ws, RunChoice(run=run.id), strict=strict)
        sub.show(ws.class_names())
    if solution_file(ws.comp, ws.ensure_data()) is None:
        console.info("\n== 6/6 flow score: skipped (no local labels; score it on the competition site)")
        return sub, None
    with _step("score", ws):
        score = local_score(ws, sub.file)
        console.info(score.line)
    return sub, score
