"""Kaggle's faults as one line each, against the fake Kaggle (tests/fake_kaggle.py): logging in with a
token (KAGGLE_API_TOKEN, `kaggle auth login`'s credentials.json), a file sent again, rate limits,
permissions, paging, and the labels of cv_vs_lb.png."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clitools import flow, one_line_error
from test_kaggle_api import KEY, _error, _ledger, _no_key, _submit, fake  # noqa: F401  (the fixture and its helpers)

from fake_kaggle import FakeKaggle

TOKEN = "KGAT_0123456789abcdef0123456789abcdef"  # a made-up access token: it must show up nowhere


@pytest.fixture
def token(fake: FakeKaggle, monkeypatch: pytest.MonkeyPatch) -> FakeKaggle:  # noqa: F811
    """Credentials as KAGGLE_API_TOKEN only, a token the fake knows."""
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_API_TOKEN", TOKEN)
    fake.tokens[TOKEN] = "flowtester"
    return fake


def test_token_logs_in_and_sends(workdir: Path, token: FakeKaggle) -> None:
    result, file = _submit(workdir)
    assert result.exit_code == 0, result.output
    assert token.uploads["tok1"] == file.read_bytes()
    assert token.auth[-1] == f"Bearer {TOKEN}"
    _no_key(workdir, result.output)
    assert TOKEN not in result.output


def test_token_without_network_is_one_line_and_not_sent(workdir: Path, token: FakeKaggle, monkeypatch: pytest.MonkeyPatch) -> None:
    from kagglesdk import kaggle_env

    monkeypatch.setitem(kaggle_env._env_to_endpoint, kaggle_env.KaggleEnv.PROD, "http://127.0.0.1:9/api")  # nothing listens on port 9
    result, file = _submit(workdir)
    assert _error(result).startswith(f"Error: {file.name} not sent to Kaggle: no network: Kaggle could not be reached;")
    row = _ledger(workdir).iloc[0]
    assert row["lb_status"] == "not sent" and row["lb_note"] == "no network: Kaggle could not be reached"
    assert one_line_error(flow("submissions", "digits", "--refresh")) == "Error: no network: Kaggle could not be reached"


@pytest.mark.parametrize(("status", "line"), [
    (401, "Kaggle did not accept the credentials (401)"),
    (404, "Kaggle did not accept the credentials of KAGGLE_API_TOKEN"),
])
def test_token_the_server_rejects_is_one_line(workdir: Path, token: FakeKaggle, status: int, line: str) -> None:
    token.fail["IntrospectToken"] = (status, "Unauthenticated" if status == 401 else "Not found")
    result, file = _submit(workdir)
    error = _error(result)
    assert line in error and "Authentication required" not in result.output, result.output
    assert _ledger(workdir)["lb_status"].tolist() == ["not sent"]
    refreshed = one_line_error(flow("submissions", "digits", "--refresh"))
    assert line in refreshed and TOKEN not in refreshed


def _credentials(home: Path, *, expires: dt.datetime) -> Path:
    """~/.kaggle/credentials.json as `kaggle auth login` writes it (kagglesdk.kaggle_creds.KaggleCredentials.save)."""
    file = home / ".kaggle/credentials.json"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps({"refresh_token": "refresh-" + KEY, "access_token": TOKEN, "access_token_expiration": expires.isoformat(),
                                "username": "flowtester", "scopes": []}))
    return file


@pytest.mark.parametrize("fresh", [True, False])
def test_credentials_of_kaggle_auth_login_are_found(workdir: Path, fake: FakeKaggle, monkeypatch: pytest.MonkeyPatch, fresh: bool) -> None:  # noqa: F811
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    now = dt.datetime.now(dt.timezone.utc)
    _credentials(Path.home(), expires=now + dt.timedelta(hours=6) if fresh else now - dt.timedelta(days=1))
    fake.refresh_tokens["refresh-" + KEY] = "flowtester"
    result, file = _submit(workdir)
    assert result.exit_code == 0, result.output
    assert fake.uploads["tok1"] == file.read_bytes()
    assert fake.auth[-1] == (f"Bearer {TOKEN}" if fresh else "Bearer access1")  # an expired token is exchanged first
    _no_key(workdir, result.output)


def test_a_file_sent_again_is_checked_first(workdir: Path, fake: FakeKaggle) -> None:  # noqa: F811
    solution = pd.read_csv(workdir / "data/digits/solution.csv")
    np.save(workdir / "probs.npy", np.eye(10, dtype=np.float32)[solution["label"].to_numpy()])
    assert flow("submit", "digits", "--probs", "probs.npy").exit_code == 0  # written, not sent
    (file,) = [p for p in (workdir / "submissions/digits").glob("*.csv") if p.name != "ledger.csv"]
    frame = pd.read_csv(file, dtype=str)
    frame.head(99).to_csv(file, index=False)  # cut short
    line = one_line_error(flow("submit", "digits", "--kaggle", "--file", f"submissions/digits/{file.name}"))
    assert line == (f"Error: submissions/digits/{file.name}: test id '{frame.iloc[99, 0]}' is missing "
                    f"({len(frame) - 99} test ids have no row); not sent to Kaggle")
    assert fake.submissions == []


def test_a_file_sent_already_needs_force_and_keeps_the_first(workdir: Path, fake: FakeKaggle) -> None:  # noqa: F811
    result, file = _submit(workdir)
    assert result.exit_code == 0, result.output
    again = ("submit", "digits", "--kaggle", "--file", f"submissions/digits/{file.name}")
    assert one_line_error(flow(*again)) == (f"Error: {file.name} was sent to Kaggle already (ref 1000, pending); "
                                            "pass --force to send it again")
    assert len(fake.submissions) == 1
    result = flow(*again, "--force")
    assert result.exit_code == 0, result.output
    assert "(ref 1001, pending)" in result.output
    fake.score(1000, "", status="ERROR", error="bad rows")
    fake.score(1001, "0.98700")
    result = flow("submissions", "digits", "--refresh")
    assert "2 settled" in result.output and "made outside flow" not in result.output, result.output
    ledger = _ledger(workdir)
    assert ledger[["file", "lb_ref", "lb_status", "lb_note", "public_score"]].values.tolist() == [
        [file.name, "1000", "error", "bad rows", ""],
        [file.name, "1001", "complete", ledger["lb_note"].iloc[1], "0.98700"],
    ]
    assert result.output.count("bad rows") == 1


@pytest.mark.parametrize(("status", "message", "line"), [
    (429, "Too Many Requests", "Kaggle's rate limit is reached (429): try again later"),
    (403, "Permission 'competitions.participate' was denied",
     "Kaggle denied access to 'digits' (403): either its rules are not accepted (accept them at "
     "https://www.kaggle.com/competitions/digits/rules) or there is no competition 'digits' you can see "
     "(the slug is SLUG in kaggle.com/competitions/SLUG)"),
])
def test_rate_limit_and_permission_say_what_they_are(workdir: Path, fake: FakeKaggle, status: int, message: str, line: str) -> None:  # noqa: F811
    fake.fail["StartSubmissionUpload"] = (status, message)
    result, file = _submit(workdir)
    assert _error(result) == (f"Error: {file.name} not sent to Kaggle: {line}; "
                              f"resend it with `flow submit --kaggle --file submissions/digits/{file.name}`")


def test_refresh_reads_every_page(workdir: Path, fake: FakeKaggle) -> None:  # noqa: F811
    fake.submissions.extend({"ref": n, "fileName": f"by-hand-{n}.csv", "date": "2025-01-01T12:00:00.000Z", "status": "COMPLETE",
                             "publicScore": "0.5"} for n in range(250, 0, -1))
    result = flow("submissions", "digits", "--refresh")
    assert "0 settled, 250 made outside flow added" in result.output, result.output
    assert sorted(_ledger(workdir)["lb_ref"].astype(int)) == list(range(1, 251))
