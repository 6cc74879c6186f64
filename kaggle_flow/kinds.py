"""Submission kinds: what a row of a submission holds besides its id, one registry entry each.

    label, probability, probabilities, top_k, tags   (KINDS, at the end: each entry's description says what a row holds)

An entry owns everything its kind does, so a new kind is one class and one entry here:

    value_columns   the columns after the id, from the competition's classes and [submission] table
    targets         the targets (kaggle_flow.target) it writes for: tags a set of classes, label and top_k one
    values          the columns' values from the test probabilities (`flow submit`; tags: at the run's thresholds)
    check           what the check before writing refuses, one line naming the line and value
    score           a submitted file's rows read as the kind writes them, scored by a metric (`flow score`)
    recognize       whether a sample_submission.csv holds this kind, and its [submission] keys (`flow init`)
    assumed_metric  the metric `flow init` assumes without --metric, and why

Look-ups go through the registry: `KINDS[comp.submission.kind].values(comp, probs, thresholds)`. This module
sits below competition.py (which takes its Literal of kinds from here), table/ and submit/, and
imports none of them; the cells of a submission (numbers, labels, probabilities) are read and
checked by cells.py.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from kaggle_flow.cells import (
    allowed_labels,
    checked_probabilities,
    class_label,
    csv_line,
    is_number,
    label_index,
    submitted_probabilities,
    text_cell,
)
from kaggle_flow.errors import DataError, FlowError
from kaggle_flow.metrics import METRICS, Metric, clip_probabilities, mean_average_precision, needs_probabilities, ranked_classes
from kaggle_flow.registry import Registry
from kaggle_flow.target import TARGETS
from kaggle_flow.thresholds import Thresholds, apply

if TYPE_CHECKING:
    import pandas as pd

    from kaggle_flow.competition import Competition, SubmissionFormat

PROBABILITY_SUM_TOLERANCE = 1e-6  # how far a row of `probabilities` may sum from 1


def _scaled(comp: Competition, probs: np.ndarray) -> np.ndarray:
    """Rows renormalized to sum to 1 and, for a competition scored by log loss, clipped by
    LOGLOSS_EPS as the scorer does; a multi-label target's probabilities (each class on its own) as they are."""
    if TARGETS[comp.target].activation != "softmax":
        return probs
    with np.errstate(invalid="ignore", divide="ignore"):  # a row of zeros: NaN, refused by the check
        probs = probs / probs.sum(axis=1, keepdims=True)
    return clip_probabilities(probs) if comp.metric == "logloss" else probs


@dataclass(frozen=True)
class SampleValues:
    """The value columns of a sample_submission.csv as `flow init` reads them (copied columns left out)."""

    file: Path  # the sample, for the error lines
    columns: list[str]  # the value columns, after the id
    cells: list[str]  # the first value column's first cells, stripped
    classes: list[str]
    metric: str | None  # --metric, when given
    target: str = "single"  # the download's labels: one class an image, or several (kaggle_flow.target)


def _listed(value: str, allowed: set[str], what: str, pos: int, word: str) -> list[str]:
    """The space-separated classes of a submitted cell; one line for one not in `allowed` or given twice."""
    items = value.split()
    bad = [t for t in items if t not in allowed]
    if bad:
        raise FlowError(f"submission line {csv_line(pos)}: {word} '{bad[0]}' is not a class ({what})")
    if len(set(items)) != len(items):
        twice = next(t for t in items if items.count(t) > 1)
        raise FlowError(f"submission line {csv_line(pos)}: {word} '{twice}' is given twice in '{value}'")
    return items


@dataclass(frozen=True)
class Kind(ABC):
    """One submission kind: its columns, values, check, scoring and recognition (see the module doc)."""

    name: str
    description: str  # one line: what a row holds besides its id
    checked: str  # what the check before writing makes sure of (`flow submit`'s "checked:" line)
    metric: str  # the metric `flow init` assumes for a sample of this kind ({k}: the sample's k)
    metric_why: str  # and why, as `flow init` says it
    toml_keys: tuple[str, ...]  # the [submission] keys `flow init` writes for it, in order (then copied and sample)
    tried: int  # `flow init` tries the kinds on a sample in this order, lowest first (label, which takes any column, last)
    holds_text: bool = False  # its values are text (a label, labels): an empty cell is refused
    probabilities: bool = False  # it writes probabilities, so a metric of probabilities can score it
    targets: tuple[str, ...] = ("single",)  # the targets whose answers it writes (kaggle_flow.target)

    def value_columns(self, fmt: SubmissionFormat, classes: list[str]) -> list[str]:
        """The columns after the id."""
        return [fmt.label_column]

    def check_fits(self, fmt: SubmissionFormat, classes: list[str]) -> None:
        """A ValueError (one line, naming the key) when the kind cannot be written for these classes."""

    @abstractmethod
    def values(self, comp: Competition, probs: np.ndarray, thresholds: Thresholds | None = None) -> dict[str, list[object]]:
        """The value columns, one entry per row of the [n, num_classes] float64 `probs` (checked before);
        `thresholds`: the run's, where the kind decides sets of classes (None: 0.5 a class)."""

    @abstractmethod
    def check(self, comp: Competition, frame: pd.DataFrame) -> None:
        """A FlowError naming the line and value the site would reject (ids and empty text are checked before)."""

    @abstractmethod
    def score(self, comp: Competition, metric: Metric, y_true: np.ndarray, frame: pd.DataFrame, order: np.ndarray, file: Path) -> float:
        """The metric of a submitted file's rows; `order`: the row of `frame` for each solution row
        (values are read in file order, so an error names the file's line)."""

    def solution_labels(self, comp: Competition, frame: pd.DataFrame, file: Path) -> np.ndarray | None:
        """Class indices of a solution written in this kind's own columns; None: its label column."""
        return None

    @abstractmethod
    def recognize(self, sample: SampleValues) -> dict[str, object] | None:
        """The [submission] keys (kind aside) when the sample holds this kind, else None."""

    def holds(self, sub: dict[str, object], classes: list[str]) -> str:
        """What its one value column holds, as `flow init` says it."""
        return "the class"

    def found_line(self, sub: dict[str, object], classes: list[str]) -> str:
        """What `flow init` says it found in the sample (after "submission: ")."""
        return f"'{sub['id_column']}' ({sub['id_form']}), '{sub['label_column']}' = {self.holds(sub, classes)}"

    def assumed_metric(self, sub: dict[str, object], target: str = "single") -> tuple[str, str]:
        """The metric `flow init` assumes without --metric, and why."""
        return self.metric.format(k=sub.get("k", 5)), self.metric_why


class _Ranked(Kind):
    """A kind of labels, best first (label: one, top_k: up to k), scored by a label metric or map@K."""

    @abstractmethod
    def ranking(self, comp: Competition, frame: pd.DataFrame, file: Path) -> np.ndarray:
        """[n, m] class indices of the submitted rows, best first; -1 pads a row of fewer labels."""

    def score(self, comp: Competition, metric: Metric, y_true: np.ndarray, frame: pd.DataFrame, order: np.ndarray, file: Path) -> float:
        ranked = self.ranking(comp, frame, file)[order]
        if metric.k is not None:
            return mean_average_precision(y_true, ranked, metric.k)
        if metric.scores != "labels":
            raise FlowError(f"{file}: {needs_probabilities(metric.name)}; this submission holds labels (kind {self.name})")
        return metric.of_labels(y_true, ranked[:, 0], comp.num_classes)


class Label(_Ranked):
    def values(self, comp: Competition, probs: np.ndarray, thresholds: Thresholds | None = None) -> dict[str, list[object]]:
        return {comp.submission.label_column: [class_label(comp, c) for c in probs.argmax(axis=1)]}

    def check(self, comp: Competition, frame: pd.DataFrame) -> None:
        labels = frame[comp.submission.label_column]
        allowed, what = allowed_labels(comp)
        bad = (~labels.astype(str).str.strip().isin(allowed)).to_numpy()
        if bad.any():
            pos = int(bad.nonzero()[0][0])
            raise FlowError(f"submission line {csv_line(pos)}: label '{labels.iloc[pos]}' is not a class ({what})")

    def ranking(self, comp: Competition, frame: pd.DataFrame, file: Path) -> np.ndarray:
        """The one label of each row, in the one form the site reads (`[submission] label_form`): a class
        name in an index column would score there as a wrong row, or not at all, so it is an error here."""
        values = frame[comp.submission.label_column].str.strip()
        allowed, hint = label_index(comp)
        bad = (~values.isin(set(allowed))).to_numpy()
        if bad.any():
            pos = int(bad.nonzero()[0][0])
            value = values.iloc[pos]
            also = f"; '{value}' is class {comp.classes.index(value)}" if comp.submission.label_form == "index" and value in comp.classes else ""
            raise DataError(f"{file} line {pos + 2}: label '{value}' is not {hint}{also}")
        return values.map(allowed).to_numpy(dtype=int)[:, None]

    def recognize(self, sample: SampleValues) -> dict[str, object] | None:
        if len(sample.columns) != 1:
            return None
        cells, classes = sample.cells, sample.classes
        numbers = bool(cells) and all(is_number(c) for c in cells)
        named = bool(cells) and all(c in classes for c in cells) and not all(c.isdigit() for c in cells)
        indices = classes == [str(i) for i in range(len(classes))]
        return {"label_column": sample.columns[0], "label_form": "name" if named or not (numbers or indices) else "index"}


class Probability(Kind):
    def check_fits(self, fmt: SubmissionFormat, classes: list[str]) -> None:
        if fmt.positive is None and len(classes) != 2:
            raise ValueError(f"submission.positive: name the class whose probability is written ({len(classes)} classes)")

    def values(self, comp: Competition, probs: np.ndarray, thresholds: Thresholds | None = None) -> dict[str, list[object]]:
        sub = comp.submission
        return {sub.label_column: _scaled(comp, probs)[:, sub.positive_index(comp.classes)].tolist()}

    def check(self, comp: Competition, frame: pd.DataFrame) -> None:
        checked_probabilities(frame, self.value_columns(comp.submission, comp.classes))

    def score(self, comp: Competition, metric: Metric, y_true: np.ndarray, frame: pd.DataFrame, order: np.ndarray, file: Path) -> float:
        sub = comp.submission
        p = submitted_probabilities(frame, [sub.label_column], file)[order, 0]
        positive = (y_true == sub.positive_index(comp.classes)).astype(int)  # the class against the rest
        return metric(positive, np.column_stack([1 - p, p]))

    def recognize(self, sample: SampleValues) -> dict[str, object] | None:
        """Two classes, and fractions in [0, 1], or 0/1 defaults with a metric of probabilities."""
        cells, classes, metric = sample.cells, sample.classes, sample.metric
        if len(sample.columns) != 1 or len(classes) != 2:
            return None
        numbers = bool(cells) and all(is_number(c) for c in cells)
        fractional = numbers and all(0 <= float(c) <= 1 for c in cells) and any(not float(c).is_integer() for c in cells)
        wants_probs = metric is not None and METRICS[metric].scores == "probabilities" and METRICS[metric].k is None
        if not (fractional or wants_probs):
            return None
        named_classes = classes != ["0", "1"]  # 0/1: the default, the second class, needs no name
        return {"label_column": sample.columns[0], "positive": classes[1] if named_classes else None}

    def holds(self, sub: dict[str, object], classes: list[str]) -> str:
        return f"the probability of '{sub.get('positive') or classes[-1]}'"


class Probabilities(Kind):
    def value_columns(self, fmt: SubmissionFormat, classes: list[str]) -> list[str]:
        return list(fmt.columns) or list(classes)

    def values(self, comp: Competition, probs: np.ndarray, thresholds: Thresholds | None = None) -> dict[str, list[object]]:
        probs = _scaled(comp, probs)
        return {column: probs[:, c].tolist() for c, column in enumerate(self.value_columns(comp.submission, comp.classes))}

    def check(self, comp: Competition, frame: pd.DataFrame) -> None:
        columns = self.value_columns(comp.submission, comp.classes)
        sums = checked_probabilities(frame, columns).sum(axis=1)
        if TARGETS[comp.target].activation != "softmax":
            return  # multi-label: each class's probability on its own
        off = np.abs(sums - 1) > PROBABILITY_SUM_TOLERANCE
        if off.any():
            pos = int(off.nonzero()[0][0])
            raise FlowError(
                f"submission line {csv_line(pos)}: the probabilities ({', '.join(columns)}) sum to {sums[pos]:.9g}, "
                f"not 1 (within {PROBABILITY_SUM_TOLERANCE:g})"
            )

    def score(self, comp: Competition, metric: Metric, y_true: np.ndarray, frame: pd.DataFrame, order: np.ndarray, file: Path) -> float:
        return metric(y_true, submitted_probabilities(frame, self.value_columns(comp.submission, comp.classes), file)[order])

    def solution_labels(self, comp: Competition, frame: pd.DataFrame, file: Path) -> np.ndarray | None:
        """A solution of one 0/1 column per class with a single 1 in each row (when it has no label column);
        multi-label: the true sets, from 0/1 columns with any number of 1s or the label column's tags."""
        columns = self.value_columns(comp.submission, comp.classes)
        several = TARGETS[comp.target].several
        if several and comp.submission.label_column in frame.columns:
            return tag_sets(comp, frame, file)
        if comp.submission.label_column in frame.columns or not set(columns) <= set(frame.columns):
            return None
        one_hot = frame[columns].apply(lambda c: c.str.strip())
        ok = one_hot.isin(["0", "1"]).all(axis=1).to_numpy() & (several | (one_hot == "1").sum(axis=1).eq(1).to_numpy())
        if not ok.all():
            pos = int((~ok).nonzero()[0][0])
            what = "a value other than 0 and 1" if several else "not one class marked 1"
            raise DataError(f"{file} line {pos + 2}: {what} in {', '.join(columns)}")
        ones = (one_hot == "1").to_numpy()
        return ones.astype(np.uint8) if several else ones.argmax(axis=1)

    def recognize(self, sample: SampleValues) -> dict[str, object] | None:
        """More than one value column: one per class, else one line naming them."""
        columns, classes = sample.columns, sample.classes
        if len(columns) <= 1:
            return None
        if len(columns) != len(classes):
            raise DataError(f"{sample.file}: {len(columns)} value columns ({', '.join(columns)}) for {len(classes)} "
                            f"classes ({', '.join(classes)}); one value column, or one per class")
        return {"columns": columns} if columns != classes else {}

    def found_line(self, sub: dict[str, object], classes: list[str]) -> str:
        columns = sub["columns"] if "columns" in sub else classes
        return f"a probability per class ({', '.join(map(str, columns))})"

    def assumed_metric(self, sub: dict[str, object], target: str = "single") -> tuple[str, str]:
        if target == "multi":
            return "mean_auc", "the sample holds a probability per class, each class on its own"
        return super().assumed_metric(sub, target)


class TopK(_Ranked):
    def values(self, comp: Competition, probs: np.ndarray, thresholds: Thresholds | None = None) -> dict[str, list[object]]:
        ranked = ranked_classes(_scaled(comp, probs), comp.submission.k)
        return {comp.submission.label_column: [" ".join(str(class_label(comp, c)) for c in row) for row in ranked]}

    def check(self, comp: Competition, frame: pd.DataFrame) -> None:
        allowed, what = allowed_labels(comp)
        k = comp.submission.k
        for pos, value in enumerate(frame[comp.submission.label_column].astype(str)):
            guesses = _listed(value, allowed, what, pos, "label")
            if len(guesses) > k:
                raise FlowError(f"submission line {csv_line(pos)}: {len(guesses)} labels in '{value}', more than k = {k}")

    def ranking(self, comp: Competition, frame: pd.DataFrame, file: Path) -> np.ndarray:
        allowed, hint = label_index(comp)
        k = comp.submission.k
        out = np.full((len(frame), k), -1, dtype=int)
        for pos, value in enumerate(frame[comp.submission.label_column]):
            guesses = value.split()
            bad = [g for g in guesses if g not in allowed]
            if bad or not guesses or len(guesses) > k:
                what = f"label '{bad[0]}' is not {hint}" if bad else f"'{value}' is not 1 to {k} labels"
                raise DataError(f"{file} line {pos + 2}: {what}")
            out[pos, : len(guesses)] = [allowed[g] for g in guesses]
        return out

    def recognize(self, sample: SampleValues) -> dict[str, object] | None:
        """Cells of more than one word ("3 1 4"): k is the most a row holds."""
        tokens = [c.split() for c in sample.cells]
        if len(sample.columns) != 1 or not any(len(t) > 1 for t in tokens):
            return None
        words = {w for t in tokens for w in t}
        return {"label_column": sample.columns[0], "k": max(len(t) for t in tokens),
                "label_form": "index" if all(w.isdigit() for w in words) else "name"}

    def holds(self, sub: dict[str, object], classes: list[str]) -> str:
        return f"the {sub.get('k')} most probable classes"


class Tags(Kind):
    """Each image's set of classes, space-separated (Planet's `agriculture clear primary`, HPA's `0 5 25`):
    the classes at or above the run's thresholds, in class order; an image with none, an empty cell."""

    def values(self, comp: Competition, probs: np.ndarray, thresholds: Thresholds | None = None) -> dict[str, list[object]]:
        sets = apply(probs, thresholds)
        return {comp.submission.label_column: [" ".join(str(class_label(comp, j)) for j in np.flatnonzero(row)) for row in sets]}

    def check(self, comp: Competition, frame: pd.DataFrame) -> None:
        allowed, what = allowed_labels(comp)
        for pos, value in enumerate(frame[comp.submission.label_column]):
            _listed(text_cell(value), allowed, what, pos, "tag")

    def score(self, comp: Competition, metric: Metric, y_true: np.ndarray, frame: pd.DataFrame, order: np.ndarray, file: Path) -> float:
        if metric.scores != "labels":
            raise FlowError(f"{file}: {needs_probabilities(metric.name)}; this submission holds tags (kind {self.name})")
        return metric.of_labels(y_true, tag_sets(comp, frame, file)[order], comp.num_classes)

    def solution_labels(self, comp: Competition, frame: pd.DataFrame, file: Path) -> np.ndarray | None:
        """The true sets: the solution's label column, tags as the submission writes them."""
        if comp.submission.label_column not in frame.columns:
            return None
        return tag_sets(comp, frame, file)

    def recognize(self, sample: SampleValues) -> dict[str, object] | None:
        """One column of a multi-label download: its words say names or indices (the sample's default
        row may hold words that are no class: Planet's `primary clear agriculture road water`)."""
        if len(sample.columns) != 1:
            return None
        words = {w for c in sample.cells for w in c.split()}
        codes = sample.classes == [str(i) for i in range(len(sample.classes))]
        index = bool(words) and all(w.isdigit() for w in words) and (codes or not set(words) <= set(sample.classes))
        return {"label_column": sample.columns[0], "label_form": "index" if index or (codes and not words) else "name"}

    def holds(self, sub: dict[str, object], classes: list[str]) -> str:
        return f"space-separated class {'indices' if sub.get('label_form') == 'index' else 'names'} (tags)"


def tag_sets(comp: Competition, frame: pd.DataFrame, file: Path) -> np.ndarray:
    """0/1 [n, num_classes]: the classes of each row of a submitted (or solution) file's tags."""
    allowed, hint = label_index(comp)
    out = np.zeros((len(frame), comp.num_classes), dtype=np.uint8)
    for pos, value in enumerate(frame[comp.submission.label_column]):
        for tag in text_cell(value).split():
            if tag not in allowed:
                raise DataError(f"{file} line {pos + 2}: tag '{tag}' is not {hint}")
            out[pos, allowed[tag]] = 1
    return out


KINDS: Registry[Kind] = Registry("submission kind", [
    Label("label", description="one column: the class, as its index or its name (label_form)",
          checked="every test id once, labels in the class set",
          metric="accuracy", metric_why="the sample holds a class",
          toml_keys=("kind", "id_column", "label_column", "id_form", "label_form"), tried=3, holds_text=True),
    Probability("probability", description="one column: the probability of the `positive` class (binary contests)",
                checked="every test id once, probabilities in [0, 1]",
                metric="auc", metric_why="the sample holds one probability",
                toml_keys=("kind", "id_column", "label_column", "id_form", "positive"), tried=2, probabilities=True),
    Probabilities("probabilities", description="a column per class (`columns`, default the class names), each row summing to 1 "
                  "(multi-label: each on its own)",
                  checked="every test id once, probabilities in [0, 1] summing to 1 per row",
                  metric="logloss", metric_why="the sample holds a probability per class",
                  toml_keys=("kind", "id_column", "id_form", "columns"), tried=0, probabilities=True, targets=("single", "multi")),
    TopK("top_k", description="one column: the `k` most probable classes, space-separated, best first",
         checked="every test id once, top-k labels in the class set and distinct",
         metric="map@{k}", metric_why="the sample ranks classes",
         toml_keys=("kind", "id_column", "label_column", "id_form", "label_form", "k"), tried=1, holds_text=True),
    Tags("tags", description="one column: the classes of a multi-label image, space-separated (\"\" for none)",
         checked="every test id once, tags in the class set and distinct",
         metric="mean_f2", metric_why="the sample holds space-separated tags",
         toml_keys=("kind", "id_column", "label_column", "id_form", "label_form"), tried=1, targets=("multi",)),
])

SubmissionKind = Literal[tuple(KINDS)]  # type: ignore[valid-type]  # the names, for the TOML's `kind`


def list_kinds() -> list[Kind]:
    """The kinds, in the registry's order (the order a bad `kind` lists them)."""
    return list(KINDS.values())


def without_sample(target: str) -> Kind:
    """The kind `flow init` writes for a download without a sample: one class a row, or a set of tags."""
    return KINDS["tags"] if target == "multi" else KINDS["label"]


def fitting(target: str) -> list[str]:
    """The kinds that write the answers of `target`, for the line that refuses another."""
    return [k.name for k in KINDS.values() if target in k.targets]


def recognize(sample: SampleValues) -> tuple[Kind, dict[str, object]]:
    """The kind a sample holds and its [submission] keys: the first kind of the sample's target, in
    `tried` order, that takes it."""
    for kind in sorted(KINDS.values(), key=lambda k: k.tried):
        if sample.target not in kind.targets:
            continue
        keys = kind.recognize(sample)
        if keys is not None:
            return kind, {"kind": kind.name, **keys}
    raise DataError(f"{sample.file}: no submission kind holds its values")  # label takes any one column
