"""Kaggle's own API in the loop: upload a checked submission, read the leaderboard back into the ledger.

Everything goes through the official `kaggle` package (an optional extra: `pip install -e .[kaggle]`).
Importing it authenticates, and without credentials it prints a page of help and exits, so it is
imported only inside the functions that talk to Kaggle, after `require_credentials` has made sure
there is something to authenticate with. Every failure is one line (`KaggleError`): no credentials
(and where they go), rules not accepted, the daily limit, no network, an unknown competition. A key
never reaches a message: `redact` takes every known secret out of text that came from outside.

The ledger records an upload (`lb_ref`, Kaggle's reference; `lb_time`, UTC; `lb_status` pending) and
`refresh` settles it from Kaggle's list of submissions: status, public and private score, Kaggle's
error text. A failed upload leaves the CSV and its row, status `not sent` with the reason.

`downloaded` fetches a competition's archive into a temporary folder beside where its files go
(removed on every path); `init_from_kaggle` writes competitions/NAME.toml from it, with its slug,
and imports it: one download for both.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from kaggle_flow.competition import Competition, check_kaggle_slug, load_file
from kaggle_flow.errors import FlowError
from kaggle_flow.submit.ledger import COLUMNS, edit_ledger, read_ledger, set_leaderboard
from kaggle_flow.table.importer import import_data, init_competition, new_toml
from kaggle_flow.table.init_toml import Inferred
from kaggle_flow.table.sample import check_metric

NOT_SENT = "not sent"
OUTSIDE = "made outside flow"  # the lb_note of a Kaggle submission without a flow CSV
MATCH_WITHIN = dt.timedelta(hours=1)  # a ledger upload and Kaggle's record of it: the same file, this close in time
WHERE = "put them in ~/.kaggle/kaggle.json ({\"username\": ..., \"key\": ...}), or set KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN"


class KaggleError(FlowError):
    """Kaggle said no, or could not be asked: one line, with no secret in it."""


def _config_file() -> Path:
    """kaggle.json where the kaggle package looks: $KAGGLE_CONFIG_DIR, ~/.kaggle, else ~/.config/kaggle."""
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return Path(os.environ["KAGGLE_CONFIG_DIR"]) / "kaggle.json"
    legacy = Path.home() / ".kaggle"
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle"
    return (legacy if legacy.is_dir() or not xdg.is_dir() else xdg) / "kaggle.json"


def _secrets() -> list[str]:
    """Every key and token flow could send, to keep out of anything it prints or writes."""
    found = [os.environ.get(name, "") for name in ("KAGGLE_KEY", "KAGGLE_API_TOKEN")]
    try:
        found.append(str(json.loads(_config_file().read_text()).get("key", "")))
    except (OSError, ValueError, AttributeError):
        pass
    return [s for s in found if len(s) >= 4]


def redact(text: str) -> str:
    """`text` with every known key replaced by ***."""
    for secret in _secrets():
        text = text.replace(secret, "***")
    return text


def require_credentials() -> None:
    """A one-line KaggleError saying where credentials go, when there are none to authenticate with."""
    if os.environ.get("KAGGLE_API_TOKEN") or (os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY")):
        return
    if any((Path.home() / ".kaggle" / name).is_file() for name in ("access_token", "access_token.txt")):
        return
    try:
        config = json.loads(_config_file().read_text())
    except (OSError, ValueError):
        config = None
    if not (isinstance(config, dict) and config.get("username") and config.get("key")):
        raise KaggleError(f"no Kaggle credentials: {WHERE}")


def _api() -> Any:
    """An authenticated KaggleApi."""
    require_credentials()
    try:
        from kaggle.api.kaggle_api_extended import (
            KaggleApi,  # the optional kaggle package; it authenticates at import
        )
    except ImportError:
        raise KaggleError("the kaggle package is not installed: pip install 'kaggle-flow[kaggle]' (`make` installs it)") from None

    api = KaggleApi()
    try:
        api.authenticate()
    except SystemExit:  # the package's own answer to credentials it cannot use
        raise KaggleError(f"Kaggle did not accept the credentials: {WHERE}") from None
    return api


def failure(exc: BaseException, slug: str) -> str:
    """The one-line reason for a failed call about competition `slug`."""
    import requests  # a dependency of the kaggle package, loaded with it

    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return "no network: Kaggle could not be reached"
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    text = redact(" ".join(str(exc).split()))[:300]
    lowered = text.lower()
    if status == 401:
        return f"Kaggle did not accept the credentials (401): {WHERE}"
    if "rules" in lowered:
        return f"the rules of '{slug}' are not accepted: accept them at https://www.kaggle.com/competitions/{slug}/rules"
    if status == 429 or "daily" in lowered or "limit" in lowered:
        return f"the daily submission limit of '{slug}' is reached: {text}"
    if status == 404:
        return f"no competition '{slug}' on Kaggle (404): the slug is SLUG in kaggle.com/competitions/SLUG (a TOML's `kaggle`)"
    return f"Kaggle answered {status or 'an error'}: {text}"


def _call(slug: str, fn: Callable[[], Any]) -> Any:
    """Call the API, every failure turned into a one-line KaggleError."""
    try:
        return fn()
    except KaggleError:
        raise
    except Exception as exc:  # requests' errors and the package's own
        raise KaggleError(failure(exc, slug)) from None


def _utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def upload(submissions_dir: Path, file: Path, slug: str, message: str) -> str:
    """Upload `file` (in the ledger already) to competition `slug`; its row records the upload.

    On failure the row says `not sent` and why, the CSV stays, and the error says how to resend.
    """
    try:
        api = _api()
        sent = _call(slug, lambda: api.competition_submit(str(file), message, slug, quiet=True))
        if sent is None or sent.message == getattr(api, "COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE", None):
            raise KaggleError("the upload of the file failed")
    except KaggleError as exc:
        set_leaderboard(submissions_dir, file, lb_status=NOT_SENT, lb_note=str(exc), lb_time=_utc_now())
        raise KaggleError(f"{file.name} not sent to Kaggle: {exc}; resend it with `flow submit --kaggle --file {file}`") from None
    ref = str(sent.ref or "")
    set_leaderboard(submissions_dir, file, lb_status="pending", lb_ref=ref, lb_time=_utc_now(), lb_note=redact(message))
    return ref


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


def refresh(submissions_dir: Path, slug: str) -> Settled:
    """Settle the ledger from Kaggle's submissions of `slug`; one new row per submission made outside flow."""
    api = _api()
    subs = [sub for sub in _call(slug, lambda: api.competition_submissions(slug, page_size=100)) or [] if sub is not None]
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


def slug_of(comp: Competition) -> str:
    """The competition's Kaggle slug: `kaggle = "SLUG"` in its TOML, else its name."""
    return comp.kaggle or comp.name


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


def download(slug: str, folder: Path) -> Path:
    """Download the files of competition `slug` (Kaggle sends one archive) into `folder`; the archive's path."""
    api = _api()
    _call(slug, lambda: api.competition_download_files(slug, path=str(folder), force=True, quiet=True))
    archives = sorted(p for p in Path(folder).glob(f"{slug}.*") if p.is_file())
    if not archives:
        raise KaggleError(f"Kaggle sent no files for '{slug}'")
    return archives[0]


def check_slug(slug: str) -> str:
    """`slug` when it can name a Kaggle competition; a one-line KaggleError saying what can otherwise."""
    try:
        return check_kaggle_slug(slug)
    except ValueError as exc:
        raise KaggleError(str(exc).removeprefix("kaggle: ")) from None


@contextlib.contextmanager
def downloaded(slug: str, beside: Path) -> Iterator[Path]:
    """The archive of competition `slug`, downloaded into a temporary folder in `beside` (made if missing),
    which is removed when the block ends, however it ends. A FlowError of the block names the archive
    as Kaggle sent it: the temporary folder is gone by the time the line is read."""
    check_slug(slug)
    require_credentials()
    beside.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".kaggle-", dir=beside) as folder:
        archive = download(slug, Path(folder))
        try:
            yield archive
        except FlowError as exc:
            raise type(exc)(str(exc).replace(str(archive), archive.name)) from None


def init_from_kaggle(
    name: str, slug: str, folder: Path = Path("competitions"), *, metric: str | None = None, data_dir: Path | None = None,
) -> tuple[Path, Inferred]:
    """Write competitions/NAME.toml from the files of Kaggle competition `slug`, as `flow init --from`
    writes it from their archive, with `kaggle = "SLUG"`, and import the same archive into `data_dir`
    (one download, however large; None: the TOML alone). Everything that can be checked is, before
    the download; an import that fails leaves the TOML, which `flow import NAME --kaggle` reads."""
    new_toml(name, folder)
    if metric is not None:
        check_metric(metric)
    if data_dir is not None and data_dir.is_dir() and any(data_dir.iterdir()):
        raise FlowError(f"{data_dir}: already holds data; remove it first, or write the TOML with --from and that folder")
    with downloaded(slug, folder.parent) as archive:
        file, inferred = init_competition(name, archive, folder, metric=metric, kaggle=slug)
        if data_dir is not None:
            try:
                import_data(load_file(file), archive, data_dir)
            except FlowError as exc:
                raise type(exc)(f"wrote {file}, but the import failed: {exc}; then: flow import {name} --kaggle") from None
    return file, inferred
