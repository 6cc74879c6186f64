"""What a run leaves for people, written by rank 0 alone: metrics.csv, the epoch lines, VisualDL
scalars, summary.json, the printed summary, oof.csv, the curves and confusion plots (per-class
precision and recall for a multi-label target), and its fitted thresholds (thresholds.json).

`RunLog.open` gives rank 0 (and a single process) a RunLog; every other process of a
data-parallel run gets a QuietLog, which takes the same calls and writes nothing, so the loop that
calls it has one path. VisualDL off (or not installed) is a writer that does nothing too.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kaggle_flow import console
from kaggle_flow.config import RunConfig
from kaggle_flow.engine.checkpoint import Progress, load_checkpoint, model_description
from kaggle_flow.engine.loop import Evaluation, TrainState, evaluate
from kaggle_flow.engine.plots import plot_confusion, plot_curves, plot_precision_recall
from kaggle_flow.engine.step import Parallel
from kaggle_flow.fileio import write_csv
from kaggle_flow.metrics import METRICS
from kaggle_flow.models.weights import set_weights
from kaggle_flow.oof import OutOfFold, write_oof
from kaggle_flow.runs import Run, Summary
from kaggle_flow.target import TARGETS
from kaggle_flow.thresholds import Thresholds, fit_thresholds, read_thresholds, write_thresholds

if TYPE_CHECKING:
    from kaggle_flow.engine.fold_data import FoldData

SCALARS = ("lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_metric")  # VisualDL's train/KEY
PRECISION_RECALL = "precision_recall.png"  # in the run folder, in place of confusion.png for a multi-label target


class NoWriter:
    """VisualDL off: scalars go nowhere."""

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        pass

    def close(self) -> None:
        pass


def visualdl_writer(run: Run) -> Any:
    """VisualDL's LogWriter into RUN/visualdl, or a NoWriter (with a warning) when visualdl is missing."""
    try:
        from visualdl import LogWriter
    except ImportError:
        console.warn("--visualdl: visualdl is not installed (pip install visualdl); no VisualDL logs written")
        return NoWriter()
    return LogWriter(logdir=str(run.path / "visualdl"))


class RunLog:
    """The record of one run as rank 0 writes it; `history` holds the rows of metrics.csv."""

    def __init__(self, run: Run, class_names: list[str] | None = None) -> None:
        self.run, self.config, self.started = run, run.config, time.time()
        self.class_names = list(class_names or run.config.classes)  # as the summary and confusion.png show them
        self.params = 0  # the model's parameter count, once it is built
        self.history: list[dict[str, Any]] = []
        self.writer: Any = NoWriter()

    @classmethod
    def open(cls, run: Run, parallel: Parallel, class_names: list[str] | None = None) -> RunLog:
        """This process's log: a RunLog on rank 0, a QuietLog on every other."""
        return cls(run, class_names) if parallel.is_main else QuietLog(run)

    def __enter__(self) -> RunLog:
        if self.config.visualdl:
            self.writer = visualdl_writer(self.run)
        return self

    def __exit__(self, *exc: object) -> None:
        self.writer.close()

    def info(self, message: str) -> None:
        console.info(message)

    def resumed(self, progress: Progress) -> None:
        """metrics.csv up to the last checkpoint's epoch becomes the history again."""
        rows = pd.read_csv(self.run.metrics_file).to_dict("records")
        self.history = [r for r in rows if int(r["epoch"]) <= progress.epoch]
        config = self.config
        console.info(f"Continuing after epoch {progress.epoch} of {config.epochs} (best {config.metric} {progress.best_score:.4f} at epoch {progress.best_epoch})")

    def announce(self, data: FoldData, state: TrainState) -> None:
        """What is about to train, on what, how: the lines before the first epoch."""
        config = self.config
        if config.auto:
            names = {"image_size": "size", "batch_size": "batch"}
            lines = [f"  {names.get(k, k):<7} {why}" for k, why in config.auto.items()]
            console.info("Automatic recipe (a flag overrides each):\n" + "\n".join(lines))
        if config.freeze_epochs:
            console.info(f"Backbone frozen for epochs 1-{config.freeze_epochs} (only the new head trains), then every layer trains")
        elif config.freeze:
            console.info("Backbone frozen: only the new classifier head trains")
        if config.balance:
            console.info(f"Label shuffling on (every class as often as the largest, redrawn each epoch): {config.balance_reason}")
        processes = ""
        if data.world > 1:
            lr = f" (lr {config.lr:g} x {data.world}, --scale-lr)" if config.scale_lr else ""
            processes = f"{data.world} {state.place.upper()} processes of {config.batch_size} images a step (global batch {data.global_batch}){lr}, "
        amp = f" amp {state.precision.mode}" if state.precision.enabled else ""
        console.info(
            f"Training {config.model} ({self.params:,} parameters) on {console.plural(len(data.train_rows), 'image')}, "
            + ("nothing held out (full refit)" if config.full else f"validating on {len(data.val_rows)} (fold {config.fold})")
            + f"; {console.plural(config.epochs, 'epoch')} of {console.plural(data.steps_per_epoch, 'step')}, {processes}"
            f"{config.optimizer} lr {config.peak_lr:g} {config.schedule}, {state.place}{amp} -> {self.run.path}"
        )

    def epoch(self, row: dict[str, Any], improved: bool, images_per_s: float) -> None:
        """One finished epoch: its row in metrics.csv and VisualDL, and its line."""
        self.history.append(row)
        write_csv(self.run.metrics_file, pd.DataFrame(self.history), float_format="%.6g")
        for key in SCALARS:
            if key in row:
                self.writer.add_scalar(f"train/{key}", float(row[key]), row["epoch"])
        config = self.config
        line = f"epoch {row['epoch']:>3}/{config.epochs}  {row['size']}px  lr {row['lr']:.2e}  train_loss {row['train_loss']:.4f}  "
        if "val_loss" in row:
            acc = f"val_{TARGETS[config.target].accuracy}"  # val_acc, or val_label_acc: per-label accuracy
            line += f"val_loss {row['val_loss']:.4f}  {acc} {row['val_acc']:.4f}  {config.metric} {row['val_metric']:.4f}{' *' if improved else ''}  "
        console.info(f"{line}{images_per_s:.0f} img/s")

    def write_summary(self, status: str, progress: Progress, reason: str = "") -> Summary:
        """summary.json as the run stands; a resumed run adds its time to the earlier one's."""
        config, timing = self.config, progress.timing
        return self.run.write_summary(Summary(
            status=status, reason=reason, metric=config.metric, best_score=progress.best_score if math.isfinite(progress.best_score) else None,
            best_epoch=progress.best_epoch, epochs_done=progress.epoch, epochs=config.epochs,
            best_loss=progress.best_loss if math.isfinite(progress.best_loss) else None,
            best_reason=progress.best.reason(config.metric) if math.isfinite(progress.best_score) else "",
            duration_s=round(self.run.summary.duration_s + time.time() - self.started, 1),
            images_per_s=round(float(np.mean([t["images_per_s"] for t in timing])), 1) if timing else None,
            timing=timing, params=self.params,
        ))

    def finish(self, state: TrainState, data: FoldData, progress: Progress, status: str) -> Summary:
        """The best model's out-of-fold predictions, confusion matrix, curves and summary."""
        config, run = self.config, self.run
        plot_curves(pd.DataFrame(self.history), config.metric, run.curves)
        best, oof = None, None
        val_loader = data.whole_val_loader()
        if val_loader is not None:
            set_weights(state.model, load_checkpoint(run.best, config.competition), run.best, model_description(config))
            best = evaluate(state.model, val_loader, data.val_labels, config, state.precision)
            oof = OutOfFold(data.val_rows["id"].to_numpy(), data.val_labels, best.pred, best.probs)
            write_oof(run.oof, oof, data.target)
            self._plot_classes(best, data.val_labels, f"validation, epoch {progress.best_epoch}")
        reason = chance_level(config, data.val_labels, progress.best_score) if val_loader is not None else ""
        summary = self.write_summary(status, progress, reason=reason)
        self._print_summary(summary, best, data.val_labels)
        if oof is not None and not run.is_fold:  # a cross-validation run fits them on every fold's, once
            fit_run_thresholds(run, oof)
        return summary

    def _plot_classes(self, best: Evaluation, labels: np.ndarray, title: str) -> None:
        """confusion.png, or for a target decided at thresholds each class's precision and recall."""
        target, k, run = TARGETS[self.config.target], self.config.num_classes, self.run
        if target.thresholded:
            plot_precision_recall(best.precision, best.recall, target.counts(labels, k), self.class_names, run.path / PRECISION_RECALL,
                                  title=title)
        else:
            plot_confusion(_confusion(labels, best.pred, k), self.class_names, run.confusion, title=title)

    def _print_summary(self, summary: Summary, best: Evaluation | None, labels: np.ndarray) -> None:
        config, target = self.config, TARGETS[self.config.target]
        rows = [("run", self.run.id), ("status", summary.status)]
        if best is not None:
            row = next(r for r in self.history if r["epoch"] == summary.best_epoch)
            rows += [
                (f"best val {config.metric}", f"{summary.best_score:.4f} (epoch {summary.best_epoch})"),
                (f"val {'per-label ' if target.thresholded else ''}accuracy / loss", f"{row['val_acc']:.4f} / {row['val_loss']:.4f}"),
            ]
        else:
            rows.append(("validation", f"none: trained on every labelled image ({config.full_from or 'given --epochs'})"))
        rows += [("epochs", f"{summary.epochs_done}/{summary.epochs}"), ("time", f"{summary.duration_s:.0f} s")]
        if best is not None:
            rows.append(("worst class recall", f"{self.class_names[int(np.argmin(best.recall))]} {float(np.min(best.recall)):.3f}"))
            if target.thresholded:
                rows.append(("worst class precision", f"{self.class_names[int(np.argmin(best.precision))]} {float(np.min(best.precision)):.3f}"))
        if summary.reason:
            rows.append(("warning", summary.reason))
        console.table(f"Training summary ({config.model}, {'full refit' if config.full else f'fold {config.fold}'})", ["", "value"], rows)
        if best is not None and target.thresholded:  # in place of the confusion matrix
            counts = target.counts(labels, config.num_classes)
            console.table("Per class on validation, at 0.5", ["class", "images", "precision", "recall"],
                          [(n, str(int(c)), f"{p:.3f}", f"{r:.3f}") for n, c, p, r in zip(self.class_names, counts, best.precision, best.recall)])
        if summary.best_reason:  # the metric first, a tie within one image's worth to the lower val loss
            console.info(f"Best {summary.best_reason}")
        plot = PRECISION_RECALL if target.thresholded else self.run.confusion.name
        saved = "best.pdparams, metrics.csv, curves.png" + ("" if config.full else f", {plot}, oof.csv")
        console.info(f"Saved {self.run.path}: {saved}")


def chance_level(config: RunConfig, labels: np.ndarray, best_score: float) -> str:
    """Why a run learned nothing, when its best score is no better than a constant prediction: the
    class shares of the labels for every image (its arg-max is the largest class, so for accuracy
    that class's share); "" when it did better."""
    if len(labels) == 0 or not math.isfinite(best_score):
        return ""
    shares = TARGETS[config.target].counts(labels, config.num_classes) / len(labels)
    largest = int(shares.argmax())
    metric = METRICS[config.metric]
    constant = float(metric(labels, np.tile(shares, (len(labels), 1))))
    if metric.better(best_score, constant) and abs(best_score - constant) > 1e-9:
        return ""
    return (f"at chance level: the best {config.metric} {best_score:.4f} is no better than always predicting the largest "
            f"class '{config.classes[largest]}' ({constant:.4f}); the model learned nothing")


def fit_run_thresholds(run: Run, oof: OutOfFold) -> Thresholds | None:
    """For a target decided at per-class thresholds: fitted to the competition's metric on the run's
    out-of-fold predictions, said in one line with the score at 0.5, saved as RUN/thresholds.json
    (what `flow submit` decides with); None for a target decided by the arg-max."""
    config = run.config
    if not TARGETS[config.target].thresholded or not len(oof):
        return None
    found = fit_thresholds(oof.labels, oof.probs, METRICS[config.metric])
    file = write_thresholds(run.path, found)
    console.info(f"Thresholds fitted on {len(oof):,} out-of-fold predictions: {found.summary(config.metric)} -> {file}")
    return found


def keep_source_thresholds(run: Run) -> None:
    """A full refit holds nothing out: it decides at the thresholds of the validated run it refits (their thresholds.json)."""
    source = run.comp_dir / run.config.full_from if run.config.full_from else None
    found = read_thresholds(source) if source is not None else None
    if found is not None:
        write_thresholds(run.path, found)
        console.info(f"Thresholds of {run.config.full_from} kept for the refit (fitted on its out-of-fold predictions)")


def _confusion(labels: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    from sklearn.metrics import confusion_matrix  # heavy: for the run's end only

    return confusion_matrix(labels, pred, labels=list(range(k)))


class QuietLog(RunLog):
    """The log of a data-parallel process other than rank 0: it prints and writes nothing."""

    def __enter__(self) -> RunLog:
        return self

    def info(self, message: str) -> None:
        pass

    def resumed(self, progress: Progress) -> None:
        pass

    def announce(self, data: FoldData, state: TrainState) -> None:
        pass

    def epoch(self, row: dict[str, Any], improved: bool, images_per_s: float) -> None:
        pass

    def write_summary(self, status: str, progress: Progress, reason: str = "") -> Summary:
        return Summary(status=status)

    def finish(self, state: TrainState, data: FoldData, progress: Progress, status: str) -> Summary:
        return Summary(status=status)
