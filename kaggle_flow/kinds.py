"""Submission kinds: what a row of a submission holds besides its id, one registry entry each.

    label, probability, probabilities, top_k   (KINDS, at the end: each entry's description says what a row holds)

An entry owns everything its kind does, so a new kind is one class and one entry here:

    value_columns   the columns after the id, from the competition's classes and [submission] table
    values          the columns' values from the test probabilities (`flow submit`)
    check           what the check before writing refuses, one line naming the line and value
    score           a submitted file's rows read as the kind writes them, scored by a metric (`flow score`)
    recognize       whether a sample_submission.csv holds this kind, and its [submission] keys (`flow init`)
    assumed_metric  the metric `flow init` assumes without --metric, and why

Look-ups go through the registry: `KINDS[comp.submission.kind].values(comp, probs)`. This module
sits below competition.py (which takes its Literal of kinds from here), table/ and submit/, and
imports none of them; pandas is imported by the one helper that parses numbers, so `flow --help`,
which loads the competitions, does not load it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from kaggle_flow.errors import DataError, FlowError
from kaggle_flow.metrics import METRICS, Metric, clip_probabilities, mean_average_precision, needs_probabilities, ranked_classes
from kaggle_flow.registry import Registry

if TYPE_CHECKING:
    import pandas as pd

    from kaggle_flow.competition import Competition, SubmissionFormat

PROBABILITY_SUM_TOLERANCE = 1e-6  # how far a row of `probabilities` may sum from 1


def _line(pos: int) -> int:
    """CSV line of a frame row (line 1 is the header)."""
    return pos + 2


def is_number(text: str) -> bool:
    """Whether a sample's cell reads as a number (0.5, 3, 1e-3)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _numbers(values: pd.Series) -> np.ndarray:
    """A column's cells as floats, NaN where a cell is not a number."""
    import pandas as pd  # pandas: kept out of `flow --help`, which loads this module through competition.py

    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)


def class_label(comp: Competition, index: int) -> int | str:
    """A class as the submission writes it: its index, or its name (`[submission] label_form`)."""
    return comp.classes[index] if comp.submission.label_form == "name" else int(index)


def _scaled(comp: Competition, probs: np.ndarray) -> np.ndarray:
    """Rows renormalized to sum to 1 and, for a competition scored by log loss, clipped by
    LOGLOSS_EPS as the scorer does."""
    with np.errstate(invalid="ignore", divide="ignore"):  # a row of zeros: NaN, refused by the check
        probs = probs / probs.sum(axis=1, keepdims=True)
    return clip_probabilities(probs) if comp.metric == "logloss" else probs


def _allowed_labels(comp: Competition) -> tuple[set[str], str]:
    """The labels the format writes, and how the check before writing says so."""
    if comp.submission.label_form == "name":
        return set(comp.classes), f"classes: {', '.join(comp.classes)}"
    return {str(i) for i in range(comp.num_classes)}, f"a class index 0-{comp.num_classes - 1}"


def _label_index(comp: Competition) -> tuple[dict[str, int], str]:
    """The labels the submission form writes -> class index, and how `flow score` says what is allowed."""
    if comp.submission.label_form == "name":
        return {name: i for i, name in enumerate(comp.classes)}, f"a class name of '{comp.name}': {', '.join(comp.classes)}"
    hint = f"a class index 0-{comp.num_classes - 1}, as the submission format of '{comp.name}' writes labels"
    return {str(i): i for i in range(comp.num_classes)}, hint


def _checked_probabilities(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """[n, len(columns)] probabilities of a submission about to be written; a FlowError naming the
    line, column and value outside [0, 1] (NaN too)."""
    values = np.empty((len(frame), len(columns)))
    for c, column in enumerate(columns):
        raw = frame[column]
        numbers = _numbers(raw)
        bad = ~((numbers >= 0) & (numbers <= 1))  # NaN too
        if bad.any():
            pos = int(bad.nonzero()[0][0])
            raise FlowError(
                f"submission line {_line(pos)}: column '{column}' value '{raw.iloc[pos]}' is not a probability in [0, 1]"
            )
        values[:, c] = numbers
    return values


def _submitted_probabilities(frame: pd.DataFrame, columns: list[str], file: Path) -> np.ndarray:
    """[n, len(columns)] probabilities of a file `flow score` reads; a one-line error naming the line,
    column and value outside [0, 1]."""
    out = np.empty((len(frame), len(columns)))
    for c, column in enumerate(columns):
        numbers = _numbers(frame[column].str.strip())
        bad = ~((numbers >= 0) & (numbers <= 1))
        if bad.any():
            pos = int(bad.nonzero()[0][0])
            raise DataError(f"{file} line {pos + 2}: column '{column}' value '{frame[column].iloc[pos]}' is not a probability in [0, 1]")
        out[:, c] = numbers
    return out


@dataclass(frozen=True)
class SampleValues:
    """The value columns of a sample_submission.csv as `flow init` reads them (copied columns left out)."""

    file: Path  # the sample, for the error lines
    columns: list[str]  # the value columns, after the id
    cells: list[str]  # the first value column's first cells, stripped
    classes: list[str]
    metric: str | None  # --metric, when given


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

    def value_columns(self, fmt: SubmissionFormat, classes: list[str]) -> list[str]:
        """The columns after the id."""
        return [fmt.label_column]

    def check_fits(self, fmt: SubmissionFormat, classes: list[str]) -> None:
        """A ValueError (one line, naming the key) when the kind cannot be written for these classes."""

    @abstractmethod
    def values(self, comp: Competition, probs: np.ndarray) -> dict[str, list[object]]:
        """The value columns, one entry per row of the [n, num_classes] float64 `probs` (checked before)."""

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

    def assumed_metric(self, sub: dict[str, object]) -> tuple[str, str]:
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
    def values(self, comp: Competition, probs: np.ndarray) -> dict[str, list[object]]:
        return {comp.submission.label_column: [class_label(comp, c) for c in probs.argmax(axis=1)]}

    def check(self, comp: Competition, frame: pd.DataFrame) -> None:
        labels = frame[comp.submission.label_column]
        allowed, what = _allowed_labels(comp)
        bad = (~labels.astype(str).str.strip().isin(allowed)).to_numpy()
        if bad.any():
            pos = int(bad.nonzero()[0][0])
            raise FlowError(f"submission line {_line(pos)}: label '{labels.iloc[pos]}' is not a class ({what})")

    def ranking(self, comp: Competition, frame: pd.DataFrame, file: Path) -> np.ndarray:
        """The one label of each row, in the one form the site reads (`[submission] label_form`): a class
        name in an index column would score there as a wrong row, or not at all, so it is an error here."""
        values = frame[comp.submission.label_column].str.strip()
        allowed, hint = _label_index(comp)
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

    def values(self, comp: Competition, probs: np.ndarray) -> dict[str, list[object]]:
        sub = comp.submission
        return {sub.label_column: _scaled(comp, probs)[:, sub.positive_index(comp.classes)].tolist()}

    def check(self, comp: Competition, frame: pd.DataFrame) -> None:
        _checked_probabilities(frame, self.value_columns(comp.submission, comp.classes))

    def score(self, comp: Competition, metric: Metric, y_true: np.ndarray, frame: pd.DataFrame, order: np.ndarray, file: Path) -> float:
        sub = comp.submission
        p = _submitted_probabilities(frame, [sub.label_column], file)[order, 0]
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

    def values(self, comp: Competition, probs: np.ndarray) -> dict[str, list[object]]:
        probs = _scaled(comp, probs)
        return {column: probs[:, c].tolist() for c, column in enumerate(self.value_columns(comp.submission, comp.classes))}

    def check(self, comp: Competition, frame: pd.DataFrame) -> None:
        columns = self.value_columns(comp.submission, comp.classes)
        sums = _checked_probabilities(frame, columns).sum(axis=1)
        off = np.abs(sums - 1) > PROBABILITY_SUM_TOLERANCE
        if off.any():
            pos = int(off.nonzero()[0][0])
            raise FlowError(
                f"submission line {_line(pos)}: the probabilities ({', '.join(columns)}) sum to {sums[pos]:.9g}, "
                f"not 1 (within {PROBABILITY_SUM_TOLERANCE:g})"
            )

    def score(self, comp: Competition, metric: Metric, y_true: np.ndarray, frame: pd.DataFrame, order: np.ndarray, file: Path) -> float:
        return metric(y_true, _submitted_probabilities(frame, self.value_columns(comp.submission, comp.classes), file)[order])

    def solution_labels(self, comp: Competition, frame: pd.DataFrame, file: Path) -> np.ndarray | None:
        """A solution of one 0/1 column per class with a single 1 in each row (when it has no label column)."""
        columns = self.value_columns(comp.submission, comp.classes)
        if comp.submission.label_column in frame.columns or not set(columns) <= set(frame.columns):
            return None
        one_hot = frame[columns].apply(lambda c: c.str.strip())
        ok = one_hot.isin(["0", "1"]).all(axis=1).to_numpy() & (one_hot == "1").sum(axis=1).eq(1).to_numpy()
        if not ok.all():
            pos = int((~ok).nonzero()[0][0])
            raise DataError(f"{file} line {pos + 2}: not one class marked 1 in {', '.join(columns)}")
        return (one_hot == "1").to_numpy().argmax(axis=1)

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


class TopK(_Ranked):
    def values(self, comp: Competition, probs: np.ndarray) -> dict[str, list[object]]:
        ranked = ranked_classes(_scaled(comp, probs), comp.submission.k)
        return {comp.submission.label_column: [" ".join(str(class_label(comp, c)) for c in row) for row in ranked]}

    def check(self, comp: Competition, frame: pd.DataFrame) -> None:
        allowed, what = _allowed_labels(comp)
        k = comp.submission.k
        for pos, value in enumerate(frame[comp.submission.label_column].astype(str)):
            guesses = value.split()
            bad = [g for g in guesses if g not in allowed]
            if bad:
                raise FlowError(f"submission line {_line(pos)}: label '{bad[0]}' is not a class ({what})")
            if len(set(guesses)) != len(guesses):
                twice = next(g for g in guesses if guesses.count(g) > 1)
                raise FlowError(f"submission line {_line(pos)}: label '{twice}' is given twice in '{value}'")
            if len(guesses) > k:
                raise FlowError(f"submission line {_line(pos)}: {len(guesses)} labels in '{value}', more than k = {k}")

    def ranking(self, comp: Competition, frame: pd.DataFrame, file: Path) -> np.ndarray:
        allowed, hint = _label_index(comp)
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


KINDS: Registry[Kind] = Registry("submission kind", [
    Label("label", description="one column: the class, as its index or its name (label_form)",
          checked="every test id once, labels in the class set",
          metric="accuracy", metric_why="the sample holds a class",
          toml_keys=("kind", "id_column", "label_column", "id_form", "label_form"), tried=3, holds_text=True),
    Probability("probability", description="one column: the probability of the `positive` class (binary contests)",
                checked="every test id once, probabilities in [0, 1]",
                metric="auc", metric_why="the sample holds one probability",
                toml_keys=("kind", "id_column", "label_column", "id_form", "positive"), tried=2, probabilities=True),
    Probabilities("probabilities", description="a column per class (`columns`, default the class names), each row summing to 1",
                  checked="every test id once, probabilities in [0, 1] summing to 1 per row",
                  metric="logloss", metric_why="the sample holds a probability per class",
                  toml_keys=("kind", "id_column", "id_form", "columns"), tried=0, probabilities=True),
    TopK("top_k", description="one column: the `k` most probable classes, space-separated, best first",
         checked="every test id once, top-k labels in the class set and distinct",
         metric="map@{k}", metric_why="the sample ranks classes",
         toml_keys=("kind", "id_column", "label_column", "id_form", "label_form", "k"), tried=1, holds_text=True),
])

SubmissionKind = Literal[tuple(KINDS)]  # type: ignore[valid-type]  # the names, for the TOML's `kind`


def list_kinds() -> list[Kind]:
    """The kinds, in the registry's order (the order a bad `kind` lists them)."""
    return list(KINDS.values())


def recognize(sample: SampleValues) -> tuple[Kind, dict[str, object]]:
    """The kind a sample holds and its [submission] keys: the first kind, in `tried` order, that takes it."""
    for kind in sorted(KINDS.values(), key=lambda k: k.tried):
        keys = kind.recognize(sample)
        if keys is not None:
            return kind, {"kind": kind.name, **keys}
    raise DataError(f"{sample.file}: no submission kind holds its values")  # label takes any one column
