"""`flow submit --kaggle`, `flow submissions --refresh`, `flow init --kaggle` and `flow import --kaggle`
through the installed kaggle package, against a fake Kaggle on 127.0.0.1 (tests/fake_kaggle.py): the
happy path and each failure line."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clitools import flow, one_line_error
from kaggle_trees import expected_counts, make

from kaggle_flow.competition import load_file

if importlib.util.find_spec("kaggle") is None:  # found, not imported: importing it authenticates and makes its config folder
    pytest.skip("the kaggle extra is not installed (pip install -e .[kaggle])", allow_module_level=True)

from fake_kaggle import DAILY, RULES, FakeKaggle, serving  # noqa: E402

from kaggle_flow.kaggle_api import slug_of  # noqa: E402

KEY = "f00dfeedc0ffee1234567890abcdef99"  # a made-up key: it must show up nowhere
SLUG = "digits"  # the embedded digits competition has no `kaggle` key: its name is the slug


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeKaggle]:
    home = tmp_path_factory.mktemp("home")
    config = tmp_path_factory.getbasetemp() / "kaggle-config"  # one for the session: the package reads it once, at import
    config.mkdir(exist_ok=True)
    (config / "kaggle.json").unlink(missing_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config))
    monkeypatch.setenv("KAGGLE_USERNAME", "flowtester")
    monkeypatch.setenv("KAGGLE_KEY", KEY)
    monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)
    with serving(FakeKaggle(competitions={SLUG})) as server:
        yield server


def _submit(workdir: Path, *extra: str) -> tuple[object, Path]:
    solution = pd.read_csv(workdir / "data/digits/solution.csv")
    np.save(workdir / "probs.npy", np.eye(10, dtype=np.float32)[solution["label"].to_numpy()])
    result = flow("submit", "digits", "--probs", "probs.npy", "--kaggle", *extra)
    files = sorted(p for p in (workdir / "submissions/digits").glob("*.csv") if p.name != "ledger.csv")
    return result, files[-1] if files else workdir / "none.csv"


def _error(result: object) -> str:
    """The one error line a failed `flow submit --kaggle` ends with (the CSV was written and shown before it)."""
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output  # type: ignore[attr-defined]
    lines = [line for line in result.output.splitlines() if line.strip()]  # type: ignore[attr-defined]
    assert sum(line.startswith("Error:") for line in lines) == 1
    return lines[-1]


def _ledger(workdir: Path) -> pd.DataFrame:
    return pd.read_csv(workdir / "submissions/digits/ledger.csv", dtype=str, keep_default_na=False)


def _no_key(workdir: Path, *texts: str) -> None:
    for text in texts:
        assert KEY not in text
    for path in workdir.rglob("*"):
        if path.is_file() and path.suffix in (".csv", ".json", ".log", ".txt", ".toml"):
            assert KEY not in path.read_text(errors="replace"), path


def test_submit_then_refresh(workdir: Path, fake: FakeKaggle, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    result, file = _submit(workdir, "-m", "first try")
    assert result.exit_code == 0, result.output
    assert f"Sent {file.name} to Kaggle competition 'digits' (ref 1000, pending)" in result.output
    assert fake.uploads["tok1"] == file.read_bytes()
    assert fake.submissions[0]["fileName"] == file.name and fake.submissions[0]["description"] == "first try"
    posts = [a for a, p in zip(fake.auth, fake.paths) if p.startswith("/api/")]
    assert posts and all(a.startswith("Basic ") for a in posts)  # KAGGLE_USERNAME / KAGGLE_KEY went as basic auth
    row = _ledger(workdir).iloc[0]
    assert (row["lb_status"], row["lb_ref"]) == ("pending", "1000") and row["lb_time"]

    fake.score(1000, "0.98700", "0.98100")
    fake.submissions.append({"ref": 7, "fileName": "by-hand.csv", "date": "2025-01-01T12:00:00.000Z", "status": "ERROR", "errorDescription": "bad rows"})
    result = flow("submissions", "digits", "--refresh")
    assert result.exit_code == 0, result.output
    assert "Read Kaggle's submissions of 'digits': 1 settled, 1 made outside flow added" in result.output
    ledger = _ledger(workdir)
    assert ledger[["file", "lb_status", "public_score", "private_score"]].values.tolist() == [
        [file.name, "complete", "0.98700", "0.98100"],
        ["by-hand.csv", "error", "", ""],
    ]
    assert ledger["lb_note"].iloc[1] == "made outside flow"
    assert flow("submissions", "digits", "--refresh").exit_code == 0  # a second refresh adds nothing
    assert len(_ledger(workdir)) == 2
    _no_key(workdir, result.output, caplog.text)


def test_default_message_names_run_and_cv(workdir: Path, fake: FakeKaggle) -> None:
    result, file = _submit(workdir)
    assert result.exit_code == 0, result.output
    assert fake.submissions[0]["description"] == f"flow run {workdir.name}; no CV score"


@pytest.mark.parametrize(
    ("method", "status", "message", "line"),
    [
        ("StartSubmissionUpload", 403, RULES, "the rules of 'digits' are not accepted: accept them at https://www.kaggle.com/competitions/digits/rules"),
        ("CreateSubmission", 429, DAILY, f"the daily submission limit of 'digits' is reached: {DAILY}"),
        ("StartSubmissionUpload", 401, "Unauthorized", "Kaggle did not accept the credentials (401)"),
        ("StartSubmissionUpload", 500, f"oops {KEY}", "Kaggle answered 500: oops ***"),
    ],
)
def test_failed_upload_is_not_sent_and_resends(workdir: Path, fake: FakeKaggle, method: str, status: int, message: str, line: str) -> None:
    fake.fail[method] = (status, message)
    result, file = _submit(workdir)
    error = _error(result)
    assert error.startswith(f"Error: {file.name} not sent to Kaggle: ") and line in error, error
    assert error.endswith(f"resend it with `flow submit --kaggle --file submissions/digits/{file.name}`")
    row = _ledger(workdir).iloc[0]
    assert file.is_file() and row["lb_status"] == "not sent" and line in row["lb_note"]
    _no_key(workdir, result.output)
    del fake.fail[method]
    result = flow("submit", "digits", "--kaggle", "--file", f"submissions/digits/{file.name}")
    assert result.exit_code == 0, result.output
    assert _ledger(workdir)["lb_status"].tolist() == ["pending"]  # the same row, sent now


def test_unknown_slug(workdir: Path, fake: FakeKaggle) -> None:
    fake.competitions.clear()
    result, _ = _submit(workdir)
    assert "no competition 'digits' on Kaggle (404)" in _error(result)
    assert "no competition 'digits' on Kaggle (404)" in one_line_error(flow("submissions", "digits", "--refresh"))


def test_no_network(workdir: Path, fake: FakeKaggle, monkeypatch: pytest.MonkeyPatch) -> None:
    from kagglesdk import kaggle_env

    monkeypatch.setitem(kaggle_env._env_to_endpoint, kaggle_env.KaggleEnv.PROD, "http://127.0.0.1:9/api")  # nothing listens on port 9
    result, file = _submit(workdir)
    assert _error(result).startswith(f"Error: {file.name} not sent to Kaggle: no network: Kaggle could not be reached;")
    assert "no network" in one_line_error(flow("submissions", "digits", "--refresh"))


def test_no_credentials_says_where_they_go(workdir: Path, fake: FakeKaggle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    result, _ = _submit(workdir)
    assert one_line_error(result) == (
        "Error: no Kaggle credentials: put them in ~/.kaggle/kaggle.json ({\"username\": ..., \"key\": ...}), "
        "or set KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN, or run `kaggle auth login`"
    )
    assert not list(workdir.glob("submissions/*/*.csv"))  # checked before predicting
    assert fake.paths == []
    (Path(os.environ["KAGGLE_CONFIG_DIR"]) / "kaggle.json").write_text(json.dumps({"username": "flowtester", "key": KEY}))
    result, _ = _submit(workdir)
    assert result.exit_code == 0, result.output
    _no_key(workdir, result.output)


def _zipped(folder: Path) -> bytes:
    """The files under `folder` as one zip, the way Kaggle sends a competition's files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _leftovers(*folders: Path) -> list[str]:
    """The temporary download folders left in `folders`."""
    return [p.name for folder in folders if folder.is_dir() for p in folder.iterdir() if p.name.startswith(".kaggle-")]


def test_import_downloads_from_kaggle(workdir: Path, fake: FakeKaggle, embedded_data: Path) -> None:
    fake.files["digit-recognizer"] = _zipped(embedded_data / "digits")
    fake.competitions.add("digit-recognizer")
    result = flow("import", "digits", "--kaggle", "digit-recognizer", "--data", "elsewhere/digits")
    assert result.exit_code == 0, result.output
    assert "Downloaded digit-recognizer.zip from Kaggle competition 'digit-recognizer'" in result.output
    assert "Imported digits into elsewhere/digits" in result.output
    assert _leftovers(workdir / "elsewhere") == []  # the download is gone
    assert "no competition 'nope' on Kaggle (404)" in one_line_error(flow("import", "digits", "--kaggle", "nope", "--data", "other/digits"))
    assert _leftovers(workdir / "other") == []
    assert one_line_error(flow("import", "digits")) == "Error: give the downloaded .zip or folder, or --kaggle [SLUG] to download it from Kaggle"
    fake.files["digit-recognizer"] = _zipped(embedded_data / "digits" / "test")  # images, but no train.csv
    result = flow("import", "digits", "--kaggle", "digit-recognizer", "--data", "third/digits")
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert result.exit_code == 1 and line.endswith(" digit-recognizer.zip/train.csv: file not found") and ".kaggle-" not in line, line
    assert _leftovers(workdir / "third") == [] and not (workdir / "third/digits").exists()


@pytest.fixture
def digit_recognizer(fake: FakeKaggle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Kaggle's digit-recognizer on the fake (a generated download, bench/kaggle_trees.py); the same archive here."""
    folder = tmp_path_factory.mktemp("downloads")
    archive = folder / "digit-recognizer.zip"
    archive.write_bytes(_zipped(make("digit_recognizer", folder)))
    fake.files["digit-recognizer"] = archive.read_bytes()
    fake.competitions.add("digit-recognizer")
    return archive


def test_init_from_kaggle_imports_with_one_download_then_import_takes_the_tomls_slug(
    workdir: Path, fake: FakeKaggle, digit_recognizer: Path,
) -> None:
    result = flow("init", "dr", "--kaggle", "digit-recognizer", "--metric", "accuracy")
    assert result.exit_code == 0, result.output
    counts = expected_counts("digit_recognizer")
    assert (f"Wrote competitions/dr.toml and imported the files into data/dr: {counts['train']} training and "
            f"{counts['test']} test images; next: flow run dr") in result.output
    assert [p for p in fake.paths if p.startswith("/files/")] == ["/files/digit-recognizer.zip"]  # one download for both
    assert (workdir / ".flow/current").read_text().strip() == "dr"
    comp = load_file(workdir / "competitions/dr.toml")
    assert (comp.kaggle, slug_of(comp), comp.num_classes) == ("digit-recognizer", "digit-recognizer", 10)
    assert _leftovers(workdir) == []
    # the TOML `flow init --from` writes from the same archive, with the slug and its import line
    assert flow("init", "dr2", "--from", digit_recognizer, "--metric", "accuracy").exit_code == 0
    from_archive = (workdir / "competitions/dr2.toml").read_text()
    from_archive = from_archive.replace('title = "dr2"\n', 'title = "dr"\nkaggle = "digit-recognizer"\n')
    from_archive = from_archive.replace(f'how = "flow import dr2 {digit_recognizer}"', 'how = "flow import dr --kaggle"')
    assert (workdir / "competitions/dr.toml").read_text() == from_archive

    line = one_line_error(flow("import", "dr"))
    assert line == "Error: give the downloaded .zip or folder, or --kaggle to download 'digit-recognizer' from Kaggle"
    assert one_line_error(flow("import", "dr", "--kaggle")) == "Error: data/dr: already holds data; pass --force to replace it"
    result = flow("import", "dr", "--kaggle", "--force")
    assert result.exit_code == 0, result.output
    assert "Downloaded digit-recognizer.zip from Kaggle competition 'digit-recognizer'" in result.output
    assert f"Imported dr into data/dr: {counts['train']} training and {counts['test']} test images" in result.output
    assert _leftovers(workdir, workdir / "data") == []
    assert [p for p in fake.paths if p.startswith("/files/")] == ["/files/digit-recognizer.zip"] * 2


def test_init_from_kaggle_refuses_a_data_folder_in_use_and_keeps_the_toml_of_a_failed_import(
    workdir: Path, fake: FakeKaggle, digit_recognizer: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    (workdir / "data/dr").mkdir(parents=True)
    (workdir / "data/dr/mine.txt").write_text("kept")
    line = one_line_error(flow("init", "dr", "--kaggle", "digit-recognizer", "--metric", "accuracy"))
    assert line.startswith("Error: data/dr: already holds data; remove it first")
    assert fake.paths == [] and not (workdir / "competitions").exists()
    (workdir / "data/dr/mine.txt").unlink()

    from kaggle_flow.errors import DiskFullError
    from kaggle_flow.table import kaggle_download

    def full(comp: object, source: Path, target: Path, **kwargs: object) -> Path:
        raise DiskFullError(f"not enough free space in data for {source.name} unpacked")

    monkeypatch.setattr(kaggle_download, "import_data", full)
    line = one_line_error(flow("init", "dr", "--kaggle", "digit-recognizer", "--metric", "accuracy"))
    assert line == ("Error: wrote competitions/dr.toml, but the import failed: not enough free space in data for "
                    "digit-recognizer.zip unpacked; then: flow import dr --kaggle")
    assert load_file(workdir / "competitions/dr.toml").kaggle == "digit-recognizer"
    assert _leftovers(workdir, workdir / "data") == []


def test_init_from_kaggle_failures_write_nothing(workdir: Path, fake: FakeKaggle, tmp_path_factory: pytest.TempPathFactory) -> None:
    assert "no competition 'nope' on Kaggle (404)" in one_line_error(flow("init", "nope", "--kaggle", "nope"))
    notes = tmp_path_factory.mktemp("notes")
    (notes / "readme.txt").write_text("no images here")
    fake.files["notes"] = _zipped(notes)
    fake.competitions.add("notes")
    line = one_line_error(flow("init", "notes", "--kaggle", "notes"))
    assert line.startswith("Error: notes.zip") and ".kaggle-" not in line, line  # the archive as Kaggle sent it
    assert not (workdir / "competitions").exists()
    assert _leftovers(workdir) == []


def test_init_from_kaggle_refuses_before_downloading(workdir: Path, fake: FakeKaggle, digit_recognizer: Path) -> None:
    one_source = "Error: give one of --from DOWNLOAD (a .zip or folder here) and --kaggle SLUG (a Kaggle competition)"
    assert one_line_error(flow("init", "dr", "--from", digit_recognizer, "--kaggle", "digit-recognizer")) == one_source
    assert one_line_error(flow("init", "dr")) == one_source
    assert one_line_error(flow("init", "dr", "--kaggle", "Digit_Recognizer")) == (
        "Error: 'Digit_Recognizer' is not a Kaggle competition's slug (lowercase letters, digits and dashes, "
        "as in kaggle.com/competitions/digit-recognizer)"
    )
    assert one_line_error(flow("init", "dr", "--kaggle", "digit-recognizer", "--metric", "nope")).startswith("Error: --metric: ")
    assert one_line_error(flow("init", "digits", "--kaggle", "digit-recognizer")) == "Error: 'digits' is a built-in competition; pick another name"
    assert fake.paths == []
    assert not (workdir / "competitions").exists()


def test_without_the_kaggle_package_is_one_line(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAGGLE_USERNAME", "flowtester")
    monkeypatch.setenv("KAGGLE_KEY", KEY)
    monkeypatch.setitem(sys.modules, "kaggle.api.kaggle_api_extended", None)  # as when the extra is not installed
    line = "Error: the kaggle package is not installed: pip install 'kaggle-flow[kaggle]' (`make` installs it)"
    assert one_line_error(flow("init", "dr", "--kaggle", "digit-recognizer")) == line
    assert one_line_error(flow("import", "digits", "--kaggle", "--force")) == line
    assert not (workdir / "competitions").exists() and _leftovers(workdir, workdir / "data") == []
