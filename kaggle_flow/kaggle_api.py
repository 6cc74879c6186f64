"""Kaggle's own API client, shared by the download (table/kaggle_download.py) and the upload (submit/kaggle.py).

Everything goes through the official `kaggle` package (an optional extra: `pip install -e .[kaggle]`).
Importing it authenticates, and without credentials it prints a page of help and exits, so it is
imported only inside `client`, after `require_credentials` has made sure there is something to
authenticate with. Every failure is one line (`KaggleError`): no credentials (and where they go),
rules not accepted, the daily limit, the rate limit, no network, an unknown competition. A key never reaches a
message: `redact` takes every known secret out of text that came from outside.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kaggle_flow.competition import Competition, check_kaggle_slug
from kaggle_flow.errors import FlowError

WHERE = ("put them in ~/.kaggle/kaggle.json ({\"username\": ..., \"key\": ...}), or set KAGGLE_USERNAME and KAGGLE_KEY, "
         "or KAGGLE_API_TOKEN, or run `kaggle auth login`")
LOGIN = Path("~/.kaggle/credentials.json")  # where `kaggle auth login` keeps its tokens (kagglesdk's KaggleCredentials), whatever KAGGLE_CONFIG_DIR says
TOKEN_FILES = ("access_token", "access_token.txt")  # an access token in ~/.kaggle, as kagglesdk reads it


class KaggleError(FlowError):
    """Kaggle said no, or could not be asked: one line, with no secret in it."""


def slug_of(comp: Competition) -> str:
    """The competition's Kaggle slug: `kaggle = "SLUG"` in its TOML, else its name."""
    return comp.kaggle or comp.name


def check_slug(slug: str) -> str:
    """`slug` when it can name a Kaggle competition; a one-line KaggleError saying what can otherwise."""
    try:
        return check_kaggle_slug(slug)
    except ValueError as exc:
        raise KaggleError(str(exc).removeprefix("kaggle: ")) from None


def _config_file() -> Path:
    """kaggle.json where the kaggle package looks: $KAGGLE_CONFIG_DIR, ~/.kaggle, else ~/.config/kaggle."""
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return Path(os.environ["KAGGLE_CONFIG_DIR"]) / "kaggle.json"
    legacy = Path.home() / ".kaggle"
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle"
    return (legacy if legacy.is_dir() or not xdg.is_dir() else xdg) / "kaggle.json"


def _json(file: Path) -> dict[str, Any]:
    """A credentials file's fields; {} when it is missing or not a JSON object."""
    try:
        found = json.loads(file.expanduser().read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _text(file: Path) -> str:
    try:
        return file.expanduser().read_text().strip()
    except OSError:
        return ""


def _secrets() -> list[str]:
    """Every key and token flow could send, to keep out of anything it prints or writes."""
    token = os.environ.get("KAGGLE_API_TOKEN", "")
    found = [os.environ.get("KAGGLE_KEY", ""), token, _text(Path(token)) if token else "", str(_json(_config_file()).get("key", ""))]
    found += [_text(Path("~/.kaggle") / name) for name in TOKEN_FILES]
    found += [str(_json(LOGIN).get(name, "")) for name in ("refresh_token", "access_token")]
    return [s for s in found if len(s) >= 4]


def redact(text: str) -> str:
    """`text` with every known key replaced by ***."""
    for secret in _secrets():
        text = text.replace(secret, "***")
    return text


def _source() -> str | None:
    """The credentials kaggle logs in with, named as a user finds them, in the order it tries them; None: none."""
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    for name in TOKEN_FILES:
        if (Path.home() / ".kaggle" / name).is_file():
            return f"~/.kaggle/{name}"
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME and KAGGLE_KEY"
    config = _json(_config_file())
    if config.get("username") and config.get("key"):
        return str(_config_file())
    if _json(LOGIN).get("refresh_token"):
        return f"{LOGIN} (kaggle auth login)"
    return None


def require_credentials() -> None:
    """A one-line KaggleError saying where credentials go, when there are none to authenticate with."""
    if _source() is None:
        raise KaggleError(f"no Kaggle credentials: {WHERE}")


def client() -> Any:
    """An authenticated KaggleApi. The package prints a page of help (and, importing, logs in once
    more); what it prints is dropped, what went wrong is one line."""
    require_credentials()
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            from kaggle.api.kaggle_api_extended import (
                KaggleApi,  # the optional kaggle package; it authenticates at import
            )
    except ImportError:
        raise KaggleError("the kaggle package is not installed: pip install 'kaggle-flow[kaggle]' (`make` installs it)") from None

    api = KaggleApi()
    try:
        with contextlib.redirect_stdout(printed):
            api.authenticate()
    except SystemExit:  # the package's own answer to credentials it cannot use (a token it was refused, too)
        raise KaggleError(f"Kaggle did not accept the credentials of {_source()}: {WHERE}") from None
    except Exception as exc:  # requests' errors and the package's own: no network, a 401
        raise KaggleError(failure(exc, "")) from None
    return api


def failure(exc: BaseException, slug: str) -> str:
    """The one-line reason for a failed call about competition `slug` ("": logging in)."""
    import requests  # a dependency of the kaggle package, loaded with it

    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return "no network: Kaggle could not be reached"
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    text = redact(" ".join(str(exc).split()))[:300]
    lowered = text.lower()
    if status == 401:
        return f"Kaggle did not accept the credentials (401): {WHERE}"
    if not slug:
        return f"Kaggle answered {status or 'an error'} at login: {text}"
    if "rules" in lowered:
        return f"the rules of '{slug}' are not accepted: accept them at https://www.kaggle.com/competitions/{slug}/rules"
    if "daily" in lowered or "allowance" in lowered or (status != 429 and "limit" in lowered):
        return f"the daily submission limit of '{slug}' is reached: {text}"
    if status == 429:
        return "Kaggle's rate limit is reached (429): try again later"
    if status == 403:  # Kaggle's word for both: "Permission 'competitions.participate' was denied"
        return (f"Kaggle denied access to '{slug}' (403): either its rules are not accepted (accept them at "
                f"https://www.kaggle.com/competitions/{slug}/rules) or there is no competition '{slug}' you can see "
                "(the slug is SLUG in kaggle.com/competitions/SLUG)")
    if status == 404:
        return f"no competition '{slug}' on Kaggle (404): the slug is SLUG in kaggle.com/competitions/SLUG (a TOML's `kaggle`)"
    return f"Kaggle answered {status or 'an error'}: {text}"


def call(slug: str, fn: Callable[[], Any]) -> Any:
    """Call the API, every failure turned into a one-line KaggleError."""
    try:
        return fn()
    except KaggleError:
        raise
    except Exception as exc:  # requests' errors and the package's own
        raise KaggleError(failure(exc, slug)) from None
