"""The working directory: which competition is current, where its data and runs live.

    data/COMP/           raw competition files (or --data DIR)
    runs/COMP/           eda/ (+ hashes.csv, the perceptual hash cache), folds.csv + folds.json (its fingerprint), balance.json, one folder per run
    submissions/COMP/    submission CSVs
    .flow/current        the competition used last in this directory
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kaggle_flow import console
from kaggle_flow.competition import Competition, get_competition
from kaggle_flow.errors import DataError, FlowError
from kaggle_flow.fileio import read_csv, write_text
from kaggle_flow.names import check_name
from kaggle_flow.table import sources
from kaggle_flow.table.layouts import class_names, read_table

STATE_DIR = Path(".flow")
CACHE = "cache"


def cache_dir_of(runs_dir: Path) -> Path:
    """The image cache of the competition whose runs live in runs_dir (runs/COMP)."""
    return Path(runs_dir) / CACHE


def current_file() -> Path:
    return STATE_DIR / "current"


def remembered() -> str | None:
    """The competition used last here, or None (an unreadable .flow/current counts as none)."""
    try:
        return current_file().read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def resolve_name(name: str | None) -> str:
    """The competition named, or the one used last here (and say which)."""
    if name:
        return name
    last = remembered()
    if last:
        console.info(f"Using competition '{last}' (the last one used here)")
        return last
    raise FlowError("no competition given and none used before in this directory: name one, e.g. `flow eda mnist`")


def remember(name: str) -> None:
    """Make `name` the current competition, best effort: in a read-only working folder or on a full
    disk the commands still work, they just leave the current competition as it was."""
    if remembered() == name:
        return
    try:
        write_text(current_file(), name + "\n")
    except (OSError, FlowError):  # read-only (OSError), a full disk (DiskFullError)
        pass


@dataclass(frozen=True)
class Workspace:
    """One competition in the working directory."""

    comp: Competition
    data_dir: Path
    runs_dir: Path
    submissions_dir: Path

    def eda_dir(self) -> Path:
        return self.runs_dir / "eda"

    def cache_dir(self) -> Path:
        """runs/COMP/cache: decoded images, shared by every run and fold of the competition."""
        return cache_dir_of(self.runs_dir)

    def folds_file(self) -> Path:
        return self.runs_dir / "folds.csv"

    def folds_meta_file(self) -> Path:
        """folds.json: the fingerprint of the table folds.csv was made from (see split.load_folds)."""
        return self.runs_dir / "folds.json"

    def balance_file(self) -> Path:
        """balance.json: whether later training shuffles labels (see balance.balance_setting)."""
        return self.runs_dir / "balance.json"

    def hashes_file(self) -> Path:
        """hashes.csv: the perceptual hash of each image file, by path, size and mtime (explore.twins)."""
        return self.eda_dir() / "hashes.csv"

    def broken_file(self) -> Path:
        return self.eda_dir() / "broken.csv"

    def ensure_data(self) -> Path:
        """The data folder; embedded competitions are written on first use."""
        if self.comp.data.embedded:
            return sources.materialize(self.comp, self.data_dir)
        if not self.data_dir.is_dir():
            raise DataError(f"{self.data_dir}: no data for '{self.comp.name}' here; {self.comp.data.how}")
        return self.data_dir

    def table(self, *, strict: bool = False, quiet: bool = False, keep_test: bool = False) -> pd.DataFrame:
        """The canonical table, less the images `flow eda` found broken (an error with strict).

        With keep_test, broken test images stay: a submission needs a row for every test id, and
        prediction gives an unreadable image the average prediction of the readable ones.
        """
        table = read_table(self.ensure_data(), self.comp)
        broken = self.broken_ids()
        if broken:
            hit = table["id"].isin(broken)
            if keep_test and not strict:
                kept = hit & (table["split"] == "test")
                if kept.any() and not quiet:
                    names = console.shortlist(table.loc[kept, "id"])
                    n = int(kept.sum())
                    console.warn(
                        f"{console.plural(n, 'broken test image')} {'keeps its' if n == 1 else 'keep their'} row, "
                        f"predicted as the average of the others: {names}"
                    )
                hit &= table["split"] != "test"
            if hit.any():
                names = console.shortlist(table.loc[hit, "id"])
                if strict:
                    raise DataError(f"{self.broken_file()}: {console.plural(int(hit.sum()), 'broken image')}: {names}")
                if not quiet:
                    console.warn(f"leaving out {console.plural(int(hit.sum()), 'broken image')} found by `flow eda`: {names}")
                table = table.loc[~hit].reset_index(drop=True)
        return table

    def class_names(self) -> list[str]:
        """The classes as tables and plots show them: the names of the layout's label map (cassava's
        codes 0-4 as disease names), else the classes themselves; submissions keep the codes."""
        return class_names(self.data_dir, self.comp)

    def broken_ids(self) -> set[str]:
        file = self.broken_file()
        if not file.is_file():
            return set()
        return set(read_csv(file, ["id"])["id"])


def open_workspace(name: str | None, data: Path | None = None, *, remember_it: bool = True) -> Workspace:
    """Resolve the competition (named or current) and its folders; remember it as current
    (remember_it=False: the caller remembers it once its command has succeeded)."""
    comp = get_competition(check_name(resolve_name(name)))
    if remember_it:
        remember(comp.name)
    return Workspace(
        comp=comp,
        data_dir=Path(data) if data else Path("data") / comp.name,
        runs_dir=Path("runs") / comp.name,
        submissions_dir=Path("submissions") / comp.name,
    )
