"""The submission ledger: submissions/COMP/ledger.csv, one row per submission file.

A row says which run (its id and kind: single, cv, ensemble) and recipe made a file (with `excluded`: the training rows `flow review --exclude` left out; `pseudo`: the test images `flow train --pseudo` added), its
cross-validation score (the run's best validation score, the out-of-fold score of a CV run) and,
once `flow score` has run, its local score on the known test labels, and its leaderboard: public and
private score, the upload's status (pending, complete, error, not sent, by hand), Kaggle's
reference and upload time, and a note (Kaggle's error text, why an upload failed). Every change reads the file,
edits the frame and writes it back through a temp file and a rename, so the ledger is never half
written, and does so holding a lock (`edit_ledger`: flock on the submissions folder itself), so that
several `flow submit` at once each keep their row; reading alone takes no lock (a read-only folder
lists). A ledger written before a column existed reads with that column blank.

A submission and its row are one transaction (`recording`): the row is written first, marked
pending, then the CSV is renamed into place, then the row is settled. A kill between the two
leaves a pending row, which `reconcile` settles from what is on disk: kept when the CSV exists,
dropped when it was never written. A CSV in the folder without a row gets one.
"""

from __future__ import annotations

import contextlib
import os
import re
import time

try:
    import fcntl
except ImportError:  # Windows: no flock; the ledger's changes are not locked there
    fcntl = None  # type: ignore[assignment]
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from kaggle_flow.fileio import read_csv, reap_temps, write_csv, writer_alive, writer_tag
from kaggle_flow.runs import Run, RunFolder

if TYPE_CHECKING:
    from kaggle_flow.config import RunConfig

LEDGER = "ledger.csv"
LB_COLUMNS = ["public_score", "private_score", "lb_status", "lb_ref", "lb_time", "lb_note"]
COLUMNS = ["time", "file", "run", "kind", "model", "epochs", "lr", "batch_size", "preset", "excluded", "pseudo", "tta", "cv_score", "local_score", *LB_COLUMNS, "state"]
PENDING = "pending"  # the state of a row whose CSV is being written ("pending HOST.PID": its writer); "" once it is
RECIPE_KEYS = ("model", "epochs", "lr", "batch_size", "preset")


def ledger_file(submissions_dir: Path) -> Path:
    return Path(submissions_dir) / LEDGER


def read_ledger(submissions_dir: Path) -> pd.DataFrame:
    """The ledger (empty, with its columns, when there is none yet)."""
    file = ledger_file(submissions_dir)
    if not file.is_file():
        return pd.DataFrame({c: pd.Series(dtype=str) for c in COLUMNS})
    frame = read_csv(file)
    for column in COLUMNS:
        if column not in frame.columns:
            frame[column] = ""
    return frame[COLUMNS + [c for c in frame.columns if c not in COLUMNS]]


@contextlib.contextmanager
def ledger_lock(submissions_dir: Path) -> Iterator[None]:
    """Held around one read-modify-write of the ledger: another process's change waits for it."""
    folder = Path(submissions_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    handle = os.open(folder, os.O_RDONLY)  # the folder itself: no lock file left; a new open file, so threads exclude each other too
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # releases the lock


def edit_ledger(submissions_dir: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:
    """Read the ledger, change it and write it back, all under the ledger's lock."""
    with ledger_lock(submissions_dir):
        frame = change(read_ledger(submissions_dir))
        write_csv(ledger_file(submissions_dir), frame)
    return frame


def recipe_summary(config: RunConfig | None) -> dict[str, str]:
    """Model, epochs, lr, batch size and preset of a training run's config, `excluded`: how many
    ids `flow review --exclude` listed for training to leave out, and `pseudo`: the pseudo-labelled test
    images that joined training, e.g. "812 at p>=0.95 from RUN" (blank without a config, or none)."""
    if config is None:
        return dict.fromkeys((*RECIPE_KEYS, "excluded", "pseudo"), "")
    pseudo = "" if config.pseudo is None else (
        f"{config.pseudo_count} at p>={config.pseudo_threshold:g}{' soft' if config.pseudo_soft else ''} from {config.pseudo}")
    return {**{key: str(getattr(config, key)) for key in RECIPE_KEYS}, "excluded": str(config.excluded) if config.excluded else "",
            "pseudo": pseudo}


def _fmt(score: float | None) -> str:
    return "" if score is None else f"{float(score):.6f}"


def add_entry(
    submissions_dir: Path,
    *,
    file: Path,
    run: RunFolder | str,
    cv_score: float | None = None,
    tta: bool = False,
    when: float | None = None,
    state: str = "",
) -> pd.DataFrame:
    """Append one submission's row and return the new ledger.

    `run` is the run or ensemble that made the file, or only a name (probabilities saved outside a run
    folder); an ensemble and a name have no recipe.

    Example:
        >>> add_entry(ws.submissions_dir, file=path, run=run, cv_score=run.summary.best_score)
    """
    name, kind = (run, "") if isinstance(run, str) else (run.id, run.kind)
    config = run.config if isinstance(run, Run) else None
    row = {
        "time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when if when is not None else time.time())),
        "file": Path(file).name,
        "run": name,
        "kind": kind,
        **recipe_summary(config),
        "tta": "yes" if tta else "no",
        "cv_score": _fmt(cv_score),
        "local_score": "",
        **dict.fromkeys(LB_COLUMNS, ""),
        "state": state,
    }
    return edit_ledger(submissions_dir, lambda frame: pd.concat([frame, pd.DataFrame([row])], ignore_index=True))


def set_local_score(submissions_dir: Path, file: Path, score: float) -> bool:
    """Fill the local score of `file`'s row; False when the file is not in the ledger."""
    return _set_columns(submissions_dir, file, {"local_score": _fmt(score)})


def _set_columns(submissions_dir: Path, file: Path | str, fields: dict[str, str], *, last: bool = False) -> bool:
    """Set columns of `file`'s rows (`last`: its newest row) under the lock; False (nothing written) when it has none."""
    with ledger_lock(submissions_dir):
        frame = read_ledger(submissions_dir)
        hit = frame["file"] == Path(file).name
        if not hit.any():
            return False
        if last:
            hit = hit & (frame.index == frame.index[hit][-1])
        for column, value in fields.items():
            frame.loc[hit, column] = value
        write_csv(ledger_file(submissions_dir), frame)
    return True


def set_leaderboard(submissions_dir: Path, file: Path | str, *, last: bool = False, **fields: str) -> bool:
    """Set leaderboard columns (public_score, lb_status, ...) of `file`'s rows (`last`: its newest row,
    the upload of a file sent again); False when it has none."""
    unknown = set(fields) - set(LB_COLUMNS)
    if unknown:
        raise ValueError(f"not leaderboard columns: {sorted(unknown)}")
    return _set_columns(submissions_dir, file, fields, last=last)


def repeat_entry(submissions_dir: Path, file: Path | str) -> None:
    """A second row for `file`, its leaderboard columns blank: the file sent again, the first upload's row kept."""
    def repeat(frame: pd.DataFrame) -> pd.DataFrame:
        row = frame[frame["file"] == Path(file).name].iloc[[-1]].assign(**dict.fromkeys(LB_COLUMNS, ""))
        return pd.concat([frame, row], ignore_index=True)

    edit_ledger(submissions_dir, repeat)


@contextlib.contextmanager
def recording(
    submissions_dir: Path, *, file: Path, run: RunFolder | str, cv_score: float | None = None, tta: bool = False, when: float | None = None
) -> Iterator[None]:
    """Write `file` inside this block: its row goes in first as pending and is settled after the block.

    A failure inside the block (KeyboardInterrupt and SIGTERM included) removes the row again.
    """
    existed = ledger_file(submissions_dir).is_file()
    add_entry(submissions_dir, file=file, run=run, cv_score=cv_score, tta=tta, when=when, state=f"{PENDING} {writer_tag()}")
    try:
        yield
    except BaseException:
        _drop_row(submissions_dir, Path(file).name, keep_empty=existed)
        raise
    edit_ledger(submissions_dir, lambda frame: frame.assign(state=frame["state"].mask(frame["file"] == Path(file).name, "")))


def _drop_row(submissions_dir: Path, name: str, *, keep_empty: bool) -> None:
    """Take `name`'s row out again; a ledger left without rows that did not exist before goes."""
    with ledger_lock(submissions_dir):
        frame = read_ledger(submissions_dir)
        frame = frame[frame["file"] != name]
        if frame.empty and not keep_empty:
            ledger_file(submissions_dir).unlink(missing_ok=True)
        else:
            write_csv(ledger_file(submissions_dir), frame)


SUBMISSION_NAME = re.compile(r"^(\d{8}-\d{6})_(.+)\.csv$")  # TIME_RUN.csv, as submit.submission_name writes it


def reconcile(submissions_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """The ledger agreeing with the folder, and one note per row it settled, dropped or added.

    Saved when anything changed and the folder is writable (a read-only folder still lists): then
    worked out again under the ledger's lock, so that a row another process adds meanwhile stays.
    """
    reap_temps(submissions_dir)  # the temps of a submission or ledger a kill -9 cut short
    frame, notes = _reconciled(submissions_dir)
    if notes:
        with contextlib.suppress(OSError), ledger_lock(submissions_dir):
            frame, notes = _reconciled(submissions_dir)
            if notes:
                write_csv(ledger_file(submissions_dir), frame)
    return frame.reset_index(drop=True), notes


def _interrupted(state: str) -> bool:
    """A pending row whose writer is gone (a plain "pending": written before rows named their writer)."""
    word, _, writer = state.partition(" ")
    return word == PENDING and not (writer and writer_alive(writer))


def _reconciled(submissions_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    frame = read_ledger(submissions_dir)
    folder, notes = Path(submissions_dir), []
    pending = frame["state"].map(_interrupted).astype(bool)
    for name in frame.loc[pending, "file"]:
        written = (folder / name).is_file()
        notes.append(f"{name}: {'written before an interruption; its ledger row is kept' if written else 'never written (interrupted); its ledger row is dropped'}")
    missing_file = pending & ~frame["file"].map(lambda n: (folder / n).is_file())
    frame = frame.loc[~missing_file]
    frame = frame.assign(state=frame["state"].mask(pending, ""))
    known = set(frame["file"])
    extra = sorted(p for p in folder.glob("*.csv") if p.name != LEDGER and p.name not in known and SUBMISSION_NAME.match(p.name))
    rows = []
    for path in extra:
        stamp, run = SUBMISSION_NAME.match(path.name).groups()  # type: ignore[union-attr]
        when = time.mktime(time.strptime(stamp, "%Y%m%d-%H%M%S"))
        rows.append({**dict.fromkeys(COLUMNS, ""), "time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when)), "file": path.name, "run": run})
        notes.append(f"{path.name}: a submission without a ledger row; added (run {run!r}, recipe unknown)")
    if rows:
        frame = pd.concat([frame, pd.DataFrame(rows)], ignore_index=True)
    return frame, notes
