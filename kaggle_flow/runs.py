"""What a run folder is: a training `Run` or an `Ensemble`, and how runs are found, listed and named.

    runs/COMP/RUN-ID/
      config.json      the RunConfig (recipe + flags + competition facts)
      metrics.csv      one row per epoch: epoch, size, lr, train/val loss and accuracy, val_metric, recall_*
      best.pdparams    the weights (EMA weights with --ema) of the epoch with the best val_metric
      last.pdparams    the weights after the last finished epoch, with last.pdopt (optimizer) and
      last.pdopt       last.pdstate (epoch, schedule, EMA, scaler, best so far, the config):
      last.pdstate     what `--resume` continues from
      summary.json     status, best_score, best_epoch, epochs_done, duration_s, images/s
      curves.png       loss, metric and learning rate per epoch
      confusion.png    validation confusion matrix of the best model
      oof.csv          id, label, pred, prob_0..prob_{K-1} for the validation rows (best model)
      test_probs.npy   test-set probabilities, once predicted

Three kinds of training run (a `Run`, its config a RunConfig) and the `Ensemble` share that layout:
  single    one model validated on one fold
  cv        `--folds all`: fold0/, fold1/, ... each a single run, plus the parent's config.json,
            oof.csv (every fold's validation rows) and summary.json (the CV score)
  full      `flow train --full`: a validated run's recipe trained again on every labelled row, for
            the epochs that run found best; no validation (best.pdparams = the last weights)
  ensemble  `flow predict --ensemble A,B`: a config.json (EnsembleConfig) listing its members, test_probs.npy;
            `flow blend`: also their weights, oof.csv (the blended out-of-fold predictions), summary.json (its CV)

RUN-ID is `YYYYMMDD-HHMMSS-MODEL-fK` (`-cvK` for cross-validation, `ensemble-TIME` for an ensemble),
made unique with a suffix. A folder whose config.json cannot be read is a DamagedRun: `flow runs`
lists it with the reason (run_table.py), and picking the newest or best run refuses to pass over it.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kaggle_flow.config import RunConfig, load_config
from kaggle_flow.errors import FlowError, NotFoundError
from kaggle_flow.fileio import write_json
from kaggle_flow.metrics import METRICS
from kaggle_flow.names import named_folders  # also what engine/configure.py takes from here
from kaggle_flow.run_state import FAILED, Summary, read_summary, state_of
from kaggle_flow.target import TargetName
from kaggle_flow.workspace import cache_dir_of

if TYPE_CHECKING:
    from kaggle_flow.competition import Competition
    from kaggle_flow.workspace import Workspace

RunKind = Literal["single", "cv", "full", "ensemble"]
ENSEMBLE_PREFIX = "ensemble-"


class EnsembleConfig(BaseModel):
    """config.json of an ensemble: the member runs (relative to runs/COMP) whose probabilities it averages
    (`flow blend`: with the weights it chose on their out-of-fold predictions, see submit/blend.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["ensemble"] = "ensemble"
    competition: str
    classes: list[str]
    target: TargetName = "single"  # the members' (kaggle_flow.target)
    members: list[str]
    tta: bool = False
    weights: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] | None = None  # one per member; None: equal
    rank: bool = False  # average each class's ranks scaled to [0, 1], not the probabilities (a blend for AUC)

    @model_validator(mode="after")
    def _one_weight_each(self) -> EnsembleConfig:
        if self.weights is not None and (len(self.weights) != len(self.members) or not sum(self.weights) > 0):
            raise ValueError(f"weights: one per member ({len(self.members)}), not all 0")
        return self

    def member_weights(self) -> list[float]:
        return self.weights if self.weights is not None else [1.0 / len(self.members)] * len(self.members)


@dataclass(frozen=True)
class Run:
    """A training run's folder and its config; every file name of a run is spelled here and nowhere else."""

    path: Path
    config: RunConfig

    # --- what it is ---
    @property
    def kind(self) -> RunKind:
        if self.config.full:
            return "full"
        return "cv" if self.config.folds == "all" else "single"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def is_fold(self) -> bool:
        """Whether this run is a fold of a cross-validation run (its folder holds a config.json)."""
        return (self.path.parent / "config.json").is_file()

    @property
    def id(self) -> str:
        """The name `--run` and `--resume` take: RUN, or RUN/foldK for a fold of a CV run."""
        return f"{self.path.parent.name}/{self.name}" if self.is_fold else self.name

    @property
    def parent(self) -> Run | None:
        """The cross-validation run this run is a fold of."""
        return load_run(self.path.parent) if self.is_fold else None

    @property
    def comp_dir(self) -> Path:
        """runs/COMP: where the competition's folds, cache and runs live."""
        return self.path.parent.parent if self.is_fold else self.path.parent

    @property
    def cache_dir(self) -> Path:
        """runs/COMP/cache: the decoded images this run's competition shares."""
        return cache_dir_of(self.comp_dir)

    def folds(self) -> list[Run]:
        """The fold runs of a cross-validation run, in fold order ([] for the other kinds)."""
        found = [p for p in self.path.glob("fold*") if p.name[4:].isdigit() and (p / "config.json").is_file()]
        return [load_run(p) for p in sorted(found, key=lambda p: int(p.name[4:]))]

    # --- its files ---
    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def summary_file(self) -> Path:
        return self.path / "summary.json"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def best(self) -> Path:
        return self.path / "best.pdparams"

    @property
    def last(self) -> Path:
        return self.path / "last.pdparams"

    @property
    def last_opt(self) -> Path:
        return self.path / "last.pdopt"

    @property
    def last_state(self) -> Path:
        return self.path / "last.pdstate"

    @property
    def oof(self) -> Path:
        return self.path / "oof.csv"

    @property
    def test_probs(self) -> Path:
        return self.path / "test_probs.npy"

    @property
    def curves(self) -> Path:
        return self.path / "curves.png"

    @property
    def confusion(self) -> Path:
        return self.path / "confusion.png"

    # --- its state ---
    @property
    def summary(self) -> Summary:
        return read_summary(self.summary_file)[0]  # a damaged one reads as none (state_of says why)

    def write_summary(self, summary: Summary) -> Summary:
        write_json(self.summary_file, summary.model_dump())
        return summary

    def validation_score(self) -> float | None:
        """The score a submission of this run can be judged by: its own, or for a full refit the
        validated run it refits."""
        if self.config.full and self.config.full_from:
            try:
                return load_run(self.comp_dir / self.config.full_from).summary.best_score
            except FlowError:
                return None
        return self.summary.best_score

    def has_weights(self) -> bool:
        """Whether it can predict: its best weights, or every fold's."""
        if self.kind == "cv":
            folds = self.folds()
            return bool(folds) and all(f.has_weights() for f in folds)
        return self.best.is_file() and self.summary.status != FAILED

    def check_fits(self, comp: Competition) -> None:
        """A one-line FlowError when the run was trained for another competition or class list."""
        _check_fits(self.path, self.config, comp)


@dataclass(frozen=True)
class Ensemble:
    """An ensemble's folder: the mean of its members' predictions, with nothing trained of its own."""

    path: Path
    config: EnsembleConfig

    kind: ClassVar[RunKind] = "ensemble"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def id(self) -> str:  # the name `--run` takes: an ensemble is never a fold
        return self.name

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def test_probs(self) -> Path:
        return self.path / "test_probs.npy"

    @property
    def oof(self) -> Path:  # a blend's: its members' out-of-fold predictions, blended
        return self.path / "oof.csv"

    @property
    def summary_file(self) -> Path:  # a blend's: its CV score
        return self.path / "summary.json"

    def members(self) -> list[RunFolder]:
        """The runs it averages (each of any kind, an ensemble included)."""
        return [load_run(self.path.parent / m) for m in self.config.members]

    def has_weights(self) -> bool:
        return True  # it can always predict: its members were checked when it was made

    def validation_score(self) -> float | None:
        """A blend's CV (its blended out-of-fold score); None for an ensemble of equal weights, never validated."""
        return read_summary(self.summary_file)[0].best_score

    def check_fits(self, comp: Competition) -> None:
        _check_fits(self.path, self.config, comp)


RunFolder = Run | Ensemble  # a folder of runs/COMP: what `--run` names and what can predict the test set


def _check_fits(path: Path, config: RunConfig | EnsembleConfig, comp: Competition) -> None:
    if config.competition != comp.name:
        raise FlowError(f"{path}: a run of '{config.competition}', not of '{comp.name}'")
    if list(config.classes) != list(comp.classes):
        raise FlowError(f"{path}: trained with classes {config.classes}, '{comp.name}' now has {list(comp.classes)}")
    if config.target != comp.target:
        raise FlowError(f"{path}: trained for target = \"{config.target}\", '{comp.name}' now has target = \"{comp.target}\"")


def load_run(path: Path | str) -> RunFolder:
    """The run or ensemble in a folder; a one-line error when it is neither (or its config.json is broken)."""
    path = Path(path)
    file = path / "config.json"
    if not file.is_file():
        raise NotFoundError(f"{path}: not a run folder (no config.json)")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FlowError(f"{file}: not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise FlowError(f"{file}: not a JSON object")
    if data.get("kind") == "ensemble":
        try:
            return Ensemble(path, EnsembleConfig.model_validate(data))
        except ValueError as exc:
            raise FlowError(f"{file}: not an ensemble config: {str(exc).splitlines()[0]}") from None
    return Run(path, load_config(data, file))


def competition_of(name: str | None) -> str | None:
    """The competition of a run given as a path to its folder (`flow export runs/digits/RUN`), else None."""
    if name is None or not (Path(name) / "config.json").is_file():
        return None
    return load_run(name).config.competition


def _new_folder(runs_dir: Path, stem: str) -> Path:
    runs_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = runs_dir / (stem if n == 1 else f"{stem}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise FlowError(f"{runs_dir}: cannot find a free run name for {stem}")


def create_run(runs_dir: Path, config: RunConfig) -> Run:
    """A fresh runs/COMP/YYYYMMDD-HHMMSS-MODEL-TAG folder with its config.json."""
    tag = "full" if config.full else f"cv{config.n_folds}" if config.folds == "all" else f"f{config.fold}"
    path = _new_folder(Path(runs_dir), f"{time.strftime('%Y%m%d-%H%M%S')}-{config.model}-{tag}")
    config = config.model_copy(update={"run": path.name})
    write_json(path / "config.json", config.model_dump(mode="json"))
    return Run(path, config)


def create_fold(parent: Run, fold: int, *, write: bool = True) -> Run:
    """The fold K sub-run of a cross-validation run (its folder and config.json; kept when it exists).

    `write=False` (the processes of a data-parallel run other than rank 0): the Run, nothing written.
    """
    path = parent.path / f"fold{fold}"
    if (path / "config.json").is_file():
        return load_run(path)  # type: ignore[return-value]  # a fold's config.json is a RunConfig
    config = parent.config.for_fold(fold, f"{parent.name}/fold{fold}")
    if write:
        path.mkdir(parents=True, exist_ok=True)
        write_json(path / "config.json", config.model_dump(mode="json"))
    return Run(path, config)


def create_ensemble(runs_dir: Path, members: list[RunFolder], comp: Competition, *, tta: bool = False,
                    weights: list[float] | None = None, rank: bool = False) -> Ensemble:
    """runs/COMP/ensemble-TIME/ with a config.json listing its members (and a blend's weights)."""
    path = _new_folder(Path(runs_dir), f"{ENSEMBLE_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}")
    config = EnsembleConfig(competition=comp.name, classes=list(comp.classes), target=comp.target, members=[m.id for m in members], tta=tta,
                            weights=weights, rank=rank)
    write_json(path / "config.json", config.model_dump(mode="json"))
    return Ensemble(path, config)


@dataclass(frozen=True)
class DamagedRun:
    """A folder of runs/COMP whose config.json cannot be read: listed with the reason, never picked."""

    path: Path
    reason: str  # the one line load_run gave

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"


def scan_runs(runs_dir: Path) -> tuple[list[RunFolder], list[DamagedRun]]:
    """The runs of runs/COMP and its damaged run folders, each oldest first (folds are inside their parent)."""
    runs_dir = Path(runs_dir)
    found: list[RunFolder] = []
    damaged: list[DamagedRun] = []
    for path in runs_dir.iterdir() if runs_dir.is_dir() else ():
        if path.is_dir() and (path / "config.json").is_file():
            try:
                found.append(load_run(path))
            except FlowError as exc:
                damaged.append(DamagedRun(path, str(exc)))
    return sorted(found, key=creation_order), sorted(damaged, key=creation_order)


def all_runs(runs_dir: Path) -> list[RunFolder]:
    """The runs of runs/COMP, oldest first, without the damaged folders (see scan_runs)."""
    return scan_runs(runs_dir)[0]


def creation_order(run: RunFolder | DamagedRun) -> tuple[str, int, str]:
    """Oldest first: the time stamp in the name, then when config.json was written (same second)."""
    stamp = re.search(r"\d{8}-\d{6}", run.name)
    try:
        written = run.config_file.stat().st_mtime_ns
    except OSError:
        written = 0
    return (stamp.group(0) if stamp else "", written, run.name)


def resolve_run(ws: Workspace, name: str | None, *, best: bool = False) -> RunFolder:
    """The run of the workspace's competition that a name means.

    Args:
        ws: the Workspace (its runs_dir is runs/COMP).
        name: a run id (`20261122-153012-smallcnn-f0`), a fold of a CV run (`RUN/fold1`), a path to a
            run folder, `best`, `last`, or None.
        best: with name None, the run with the highest best_score (else the newest usable run).

    Raises NotFoundError listing the runs when the name matches none, and a FlowError naming a
    damaged run that would have been picked (the newest, or one that may score best): another run
    is never taken in its place without a word.
    """
    runs, damaged = scan_runs(ws.runs_dir)
    if name is None or name in ("best", "last"):
        return _pick(ws, runs, damaged, by_score=name == "best" or (name is None and best))
    found = named_folders(name, [Path(ws.runs_dir)])
    if found:
        return load_run(found[0])
    known = ", ".join(r.name for r in runs[-10:]) or "none"
    raise NotFoundError(f"unknown run '{name}' in {ws.runs_dir} (runs: {known})")


Broken = tuple[RunFolder | DamagedRun, str, float | None]  # a damaged run folder, why, its score's key when known


def _refuse_passing_over(broken: list[Broken], chosen: Run | None, best: float | None, *, by_score: bool) -> None:
    """A FlowError naming the damaged run that would have been picked before `chosen`: the newest
    one, or (by score) one whose score is unknown or at least the best usable score."""
    first = (lambda b: (b[2] is None, b[2] or 0.0)) if by_score else (lambda b: creation_order(b[0]))
    for folder, why, score in sorted(broken, key=first, reverse=True):  # the one it would have picked first
        if by_score:
            passed_over = best is None or score is None or score >= best
        else:
            passed_over = chosen is None or creation_order(folder) > creation_order(chosen)
        if passed_over:
            which = "may be the best run" if by_score else "is the newest run"
            raise FlowError(f"{why}; it {which}, so no other is picked in its place: repair or remove {folder.path}, or name the run to use")


def _pick(ws: Workspace, runs: list[RunFolder], damaged: list[DamagedRun], *, by_score: bool) -> Run:
    """The newest usable training run, or the one with the best score (its refit when there is one)."""
    trained = [r for r in runs if isinstance(r, Run)]
    key = METRICS[ws.comp.metric].key  # scores compared as keys: larger is better, log loss too

    def ranked(score: float | None) -> float | None:
        return None if score is None else key(score)

    broken: list[Broken] = [(r, why, ranked(r.summary.best_score)) for r in trained if (why := state_of(r).damaged)]
    broken += [(d, d.reason, ranked(read_summary(d.path / "summary.json")[0].best_score)) for d in damaged]
    usable = [r for r in trained if r.has_weights() and all(r is not b for b, _, _ in broken)]
    scores = {r.path: ranked(r.summary.best_score) for r in usable}  # summary.json read once per run
    scored = [r for r in usable if scores[r.path] is not None]
    if by_score and scored:
        winner = max(scored, key=lambda r: (scores[r.path], r.name))
        refits = [r for r in usable if r.kind == "full" and r.config.full_from == winner.id]
        chosen: Run | None = refits[-1] if refits else winner  # the best recipe, refitted on all the data when it was
    else:
        chosen = usable[-1] if usable else None
    _refuse_passing_over(broken, chosen, scores[winner.path] if by_score and scored else None, by_score=by_score)
    if chosen is None:
        raise NotFoundError(f"{ws.runs_dir}: no finished training run yet; train one with `flow train {ws.comp.name}`")
    return chosen
