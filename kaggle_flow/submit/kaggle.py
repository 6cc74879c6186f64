"""Kaggle in the loop, the submission end: upload a checked submission, read the leaderboard back into the ledger.

The client (credentials, the kaggle import, errors as one line) is kaggle_api.py; the download is
table/kaggle_download.py.

The ledger records an upload (`lb_ref`, Kaggle's reference; `lb_time`, UTC; `lb_status` pending) and
`refresh` settles it from Kaggle's list of submissions: status, public and private score, Kaggle's
error text. A failed upload leaves the CSV and its row, status `not sent` with the reason.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from kaggle_flow.errors import FlowError, NotFoundError
from kaggle_flow.kaggle_api import KaggleError, call, client, redact, slug_of
from kaggle_flow.submit.ledger import COLUMNS, edit_ledger, ledger_file, read_ledger, repeat_entry, set_leaderboard
from kaggle_flow.submit.submission import check_written

if TYPE_CHECKING:
    from kaggle_flow.workspace import Workspace

NOT_SENT = "not sent"
SENT = ("pending", "complete", "error")  # the lb_status of a file Kaggle has had
OUTSIDE = "made outside flow"  # the lb_note of a Kaggle submission without a flow CSV
PAGE = 100  # submissions asked for at a time (Kaggle's most)
MAX_PAGES = 100  # then stop: 10,000 submissions is more than any team makes
MATCH_WITHIN = dt.timedelta(hours=1)  # a ledger upload and Kaggle's record of it: the same file, this close in time


def _utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def upload(submissions_dir: Path, file: Path, slug: str, message: str) -> str:
    """Upload `file` (in the ledger already) to competition `slug`; its row records the upload.

    On failure the row says `not sent` and why, the CSV stays, and the error says how to resend.
    """
    try:
        api = client()
        sent = call(slug, lambda: api.competition_submit(str(file), message, slug, quiet=True))
        if sent is None or sent.message == getattr(api, "COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE", None):
            raise KaggleError("the upload of the file failed")
    except KaggleError as exc:
        set_leaderboard(submissions_dir, file, last=True, lb_status=NOT_SENT, lb_note=str(exc), lb_time=_utc_now())
        raise KaggleError(f"{file.name} not sent to Kaggle: {exc}; resend it with `flow submit --kaggle --file {file}`") from None
    ref = str(sent.ref or "")
    set_leaderboard(submissions_dir, file, last=True, lb_status="pending", lb_ref=ref, lb_time=_utc_now(), lb_note=redact(message))
    return ref


def send(ws: Workspace, file: Path, message: str | None, *, force: bool = False, check: bool = True) -> str:
    """`flow submit --kaggle`: send a submission CSV of the ledger (`check`: checked again first, as one
    written before); Kaggle's reference. A file Kaggle has had already goes again only with `force`,
    on a row of its own, so the first upload keeps its status and scores."""
    rows = read_ledger(ws.submissions_dir)
    rows = rows[rows["file"] == file.name]
    if not file.is_file() or rows.empty:
        raise NotFoundError(f"{file}: not a submission in {ledger_file(ws.submissions_dir)} (`flow submissions` lists them)")
    last = rows.iloc[-1]
    sent = bool(last["lb_ref"]) or last["lb_status"] in SENT
    if sent and not force:
        raise KaggleError(f"{file.name} was sent to Kaggle already (ref {last['lb_ref'] or '?'}, {last['lb_status']}); pass --force to send it again")
    if check:
        try:
            check_written(ws, file)
        except FlowError as exc:
            raise type(exc)(f"{exc}; not sent to Kaggle") from None
    if sent:
        repeat_entry(ws.submissions_dir, file)
    return upload(ws.submissions_dir, file, slug_of(ws.comp), message or default_message(ws.submissions_dir, file, ws.comp.metric))


@dataclass(frozen=True)
class Settled:
    """What `refresh` did: rows settled, rows added for submissions made outside flow."""

    settled: int
    added: int


def _status(sub: Any) -> str:
    return str(getattr(sub.status, "name", sub.status) or "PENDING").lower()


def _when(sub: Any) -> dt.datetime | None:
    date = getattr(sub, "date", None)
    return None if date is None else date.replace(tzinfo=None)


def _match(frame: pd.DataFrame, sub: Any) -> int | None:
    """The ledger row of a Kaggle submission: by Kaggle's reference, else by file name and upload time."""
    ref = str(sub.ref or "")
    hits = frame.index[(frame["lb_ref"] == ref) & (ref != "")]
    if len(hits):
        return int(hits[0])
    when = _when(sub)
    for i in frame.index[(frame["file"] == (sub.file_name or "")) & (frame["lb_ref"] == "")]:
        sent = frame.at[i, "lb_time"]
        if when is None or not sent or abs(dt.datetime.strptime(sent, "%Y-%m-%d %H:%M:%S") - when) <= MATCH_WITHIN:
            return int(i)
    return None


def _fields(sub: Any) -> dict[str, str]:
    status = _status(sub)
    note = redact(" ".join((sub.error_description or "").split())) if status == "error" else ""
    return {
        "lb_status": status,
        "lb_ref": str(sub.ref or ""),
        "public_score": str(sub.public_score or ""),
        "private_score": str(sub.private_score or ""),
        **({"lb_note": note} if note else {}),
    }


def _submissions(api: Any, slug: str) -> list[Any]:
    """Every submission of `slug`, page after page, until a page comes back short (or brings nothing new)."""
    subs: list[Any] = []
    seen: set[str] = set()
    for page in range(1, MAX_PAGES + 1):
        batch = [s for s in call(slug, lambda: api.competition_submissions(slug, page_number=page, page_size=PAGE)) or [] if s is not None]
        new = [s for s in batch if str(s.ref) not in seen]
        seen.update(str(s.ref) for s in new)
        subs += new
        if len(batch) < PAGE or not new:
            break
    return subs


def refresh(submissions_dir: Path, slug: str) -> Settled:
    """Settle the ledger from Kaggle's submissions of `slug`; one new row per submission made outside flow."""
    subs = _submissions(client(), slug)
    counts = Settled(settled=0, added=0)

    def settle(frame: pd.DataFrame) -> pd.DataFrame:  # under the ledger's lock: a submit meanwhile keeps its row
        nonlocal counts
        extra = []
        for sub in subs:
            row = _match(frame, sub)
            if row is None:
                when = _when(sub)
                stamp = when.strftime("%Y-%m-%d %H:%M:%S") if when else ""
                extra.append({**dict.fromkeys(COLUMNS, ""), "time": stamp, "file": sub.file_name or "", **_fields(sub), "lb_time": stamp, "lb_note": OUTSIDE})
                continue
            for column, value in _fields(sub).items():
                frame.at[row, column] = value
        counts = Settled(settled=len(subs) - len(extra), added=len(extra))
        return pd.concat([frame, pd.DataFrame(extra)], ignore_index=True) if extra else frame

    edit_ledger(submissions_dir, settle)
    return counts


def default_message(submissions_dir: Path, file: Path, metric: str) -> str:
    """The run, its recipe in a few words and its CV score, from `file`'s ledger row."""
    frame = read_ledger(submissions_dir)
    rows = frame[frame["file"] == Path(file).name]
    if rows.empty:
        return f"flow: {Path(file).name}"
    row = rows.iloc[-1]
    recipe = ", ".join(p for p in (row["model"], f"{row['epochs']} epoch{'' if row['epochs'] == '1' else 's'}" if row["epochs"] else "", f"lr {row['lr']}" if row["lr"] else "", "TTA" if row["tta"] == "yes" else "") if p)
    cv = f"CV {metric} {float(row['cv_score']):.4f}" if row["cv_score"] else "no CV score"
    return f"flow run {row['run']}" + (f" ({recipe})" if recipe else "") + f"; {cv}"
