"""runs/COMP/exclude.json: the training rows later `flow train` runs leave out, written and read here alone.

    {"ids": [...], "source": "where the list came from", "fingerprint": "..."}

`flow review --exclude` writes it (the label issues it found, or the ids of a CSV edited by hand) and
`flow review --no-exclude` removes it. Training leaves the listed ids out of its training rows only:
a listed id in the validation fold stays there, so the validation score stays comparable with the
runs before the list. The input files are never touched. A run records the list's size and
fingerprint in its config.json (`excluded`, `exclude_fingerprint`) and reads the same list back when
it is resumed, or by each process of a data-parallel run; a list changed under a run is one line.
No paddle here: `flow review` writes the list.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kaggle_flow import console
from kaggle_flow.errors import DataError, FlowError
from kaggle_flow.fileio import write_json

EXCLUDE = "exclude.json"  # in runs/COMP, beside balance.json


def exclude_file(comp_dir: Path) -> Path:
    """runs/COMP/exclude.json."""
    return Path(comp_dir) / EXCLUDE


def fingerprint(ids: Iterable[str]) -> str:
    """The list's identity, whatever its order: what a run's config.json records."""
    return hashlib.sha1("\n".join(sorted(set(ids))).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Exclusion:
    """The ids training leaves out, and where the list came from (a review's label_issues.csv, a CSV)."""

    ids: tuple[str, ...]
    source: str
    file: Path

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def config_keys(self) -> dict[str, object]:
        """What a new run's RunConfig records of the list."""
        return {"excluded": len(self.ids), "exclude_fingerprint": self.fingerprint}


def read_exclusion(comp_dir: Path) -> Exclusion | None:
    """The list in runs/COMP/exclude.json; None when there is none (never made, or `--no-exclude`)."""
    file = exclude_file(comp_dir)
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        ids = data["ids"]
        source = str(data.get("source", ""))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        ids = None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise DataError(f"{file}: not an exclusion list; rewrite it with `flow review --exclude` (or remove it: `flow review --no-exclude`)")
    return Exclusion(tuple(ids), source, file)


def write_exclusion(comp_dir: Path, ids: Iterable[str], source: str) -> Exclusion:
    """Record the ids (each once, in the order given) for later training; the list written."""
    unique = tuple(dict.fromkeys(ids))
    file = write_json(exclude_file(comp_dir), {"ids": list(unique), "source": source, "fingerprint": fingerprint(unique)})
    return Exclusion(unique, source, file)


def remove_exclusion(comp_dir: Path) -> Exclusion | None:
    """Training uses every row again: the list removed; the one that was there (None: none was)."""
    try:
        found = read_exclusion(comp_dir)
    except DataError:  # a damaged list is removed all the same
        found = None
    exclude_file(comp_dir).unlink(missing_ok=True)
    return found


def current_keys(comp_dir: Path) -> dict[str, object]:
    """The RunConfig keys of a new run: the list now in runs/COMP, or none."""
    found = read_exclusion(comp_dir)
    return found.config_keys() if found is not None else {"excluded": 0, "exclude_fingerprint": None}


def run_exclusion(comp_dir: Path, run_name: str, recorded: str | None) -> Exclusion | None:
    """The list a run was started with (its config's fingerprint), read back; a changed one is a FlowError."""
    if recorded is None:
        return None
    found = read_exclusion(comp_dir)
    if found is None or found.fingerprint != recorded:
        what = "is gone" if found is None else f"has changed (fingerprint {found.fingerprint})"
        raise FlowError(
            f"{run_name} started leaving out the rows of {exclude_file(comp_dir)} (fingerprint {recorded}), and that list {what}: "
            f"put it back, or train a new run"
        )
    return found


def without_excluded(train_rows: pd.DataFrame, val_rows: pd.DataFrame, exclusion: Exclusion | None, *, say: bool) -> pd.DataFrame:
    """The training rows less the listed ids; validation is never changed. `say`: print the one line."""
    if exclusion is None:
        return train_rows
    listed = set(exclusion.ids)
    hit = train_rows["id"].isin(listed)
    if say:
        kept = int(val_rows["id"].isin(listed).sum())
        stays = f"; {kept} listed {'row is a validation row and stays' if kept == 1 else 'rows are validation rows and stay'}" if kept else ""
        console.info(
            f"Leaving out {console.plural(int(hit.sum()), 'training row')} of {len(train_rows)} listed in {exclusion.file} "
            f"({exclusion.source}){stays}; validation keeps every row, so its score stays comparable"
        )
    return train_rows.loc[~hit].reset_index(drop=True)
