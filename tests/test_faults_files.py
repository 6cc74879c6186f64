"""Faults around files: a read-only working folder, a failed import, a broken competition TOML, CSV
headers as spreadsheets write them, and what `flow eda` says about alpha channels and broken images."""

from __future__ import annotations

import codecs
import errno
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from clitools import fake_run, flow, one_line_error
from PIL import Image
from trees import lemon_tree

from kaggle_flow.fileio import os_error_line
from kaggle_flow.submit.ledger import add_entry, read_ledger

MakeReadOnly = Callable[..., str]


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeReadOnly]:
    """make(folder) turns `folder` read-only and returns the reason flow will give: a read-only bind
    mount as root (chmod does not stop root), chmod 0555 otherwise; the test is skipped when neither
    stops a write. With enter=True (the default) the test then works inside `folder`."""
    undo: list[Callable[[], object]] = []

    def make(folder: Path, enter: bool = True) -> str:
        folder = folder.resolve()
        if os.geteuid() == 0:
            if subprocess.run(["mount", "--bind", folder, folder], capture_output=True).returncode != 0:
                pytest.skip("cannot bind-mount here")
            undo.append(lambda: subprocess.run(["umount", folder], capture_output=True))
            subprocess.run(["mount", "-o", "remount,bind,ro", folder], capture_output=True)
            reason = "read-only file system"
        else:
            for sub in [Path(d) for d, _, _ in os.walk(folder)]:
                sub.chmod(0o555)
                undo.append(lambda sub=sub: sub.chmod(0o755))
            reason = "permission denied"
        if enter:
            monkeypatch.chdir("/")
            monkeypatch.chdir(folder)  # entered again: a working folder opened before the mount writes underneath
        try:
            (folder / ".probe").touch()
        except OSError:
            return reason
        (folder / ".probe").unlink()
        pytest.skip("cannot make a read-only folder here")

    yield make
    os.chdir("/")  # a mount in use cannot be taken down
    for step in reversed(undo):
        step()


@pytest.fixture
def digits_done(workdir: Path) -> Path:
    """The digits competition with a run and a submission of the true labels in its ledger."""
    fake_run(workdir / "runs" / "digits", "r1", score=0.75)
    sub = workdir / "submissions" / "digits" / "20250101-120000_r1.csv"
    sub.parent.mkdir(parents=True)
    shutil.copy(workdir / "data" / "digits" / "solution.csv", sub)
    add_entry(sub.parent, file=sub, run="r1", cv_score=0.75)
    return sub


# --- a read-only working folder ----------------------------------------------------------------


def test_reading_commands_work_in_a_read_only_folder(
    workdir: Path, digits_done: Path, read_only: MakeReadOnly, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = read_only(workdir)
    monkeypatch.setenv("COLUMNS", "200")  # the boxed tables the patterns below read

    result = flow("runs", "digits")
    assert result.exit_code == 0, result.output
    assert re.search(r"^\s*r1 .* 0\.7500 ", result.stdout, re.M), result.stdout

    result = flow("submissions", "digits")
    assert result.exit_code == 0, result.output
    assert re.search(r"^\s*20250101-120000_r1\.csv .* 0\.7500 ", result.stdout, re.M), result.stdout  # run r1's file, its CV score

    result = flow("competitions")
    assert result.exit_code == 0, result.output
    assert re.search(r"^│ digits ", result.stdout, re.M)

    result = flow("score", "digits")
    assert result.exit_code == 0, result.output
    assert "Local accuracy of submissions/digits/20250101-120000_r1.csv: 1.0000" in result.stdout
    assert result.stderr == (
        "Warning: the score is not in submissions/digits/ledger.csv: "
        f"submissions/digits is not writable ({reason})\n"
    )
    assert read_ledger(digits_done.parent)["local_score"].tolist() == [""]
    assert not Path(".flow").exists()  # nothing remembered, and no complaint about it


@pytest.mark.parametrize(
    ("args", "folder"),
    [
        (["split", "digits"], "runs/digits"),
        (["balance", "digits"], "runs/digits"),
        (["eda", "digits"], "runs/digits/eda"),
        (["augment", "digits"], "runs/digits"),
        (["train", "digits", "--epochs", "1"], "runs/digits"),
        (["submit", "digits"], "submissions/digits"),
        (["init", "mine", "--from", "data/digits"], "competitions"),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else None,
)
def test_writing_commands_name_the_folder_they_cannot_write(
    workdir: Path, digits_done: Path, read_only: MakeReadOnly, args: list[str], folder: str
) -> None:
    reason = read_only(workdir)
    assert one_line_error(flow(*args)) == f"Error: {folder} is not writable ({reason})"


def test_a_write_failing_mid_command_is_one_line(workdir: Path, read_only: MakeReadOnly, monkeypatch: pytest.MonkeyPatch) -> None:
    """The safety net: an OSError no check foresaw still ends in the same line, not a traceback."""
    (workdir / "runs" / "digits").mkdir(parents=True)
    reason = read_only(workdir)
    monkeypatch.setattr("kaggle_flow.fileio.ensure_writable", lambda folder: Path(folder))
    assert one_line_error(flow("split", "digits")) == f"Error: runs/digits is not writable ({reason})"


def test_only_the_os_errors_a_user_can_fix_become_a_line() -> None:
    assert os_error_line(OSError(errno.ENOSPC, "No space left on device", "/nowhere/a.csv")) == "/nowhere: no space left on device"
    assert os_error_line(OSError(errno.ENOENT, "No such file or directory", "/nowhere/a.csv")) is None  # a bug: it shows


def test_a_read_only_data_folder_is_read_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_only: MakeReadOnly) -> None:
    root = lemon_tree(tmp_path / "lemon_data")
    read_only(root, enter=False)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    result = flow("split", "lemon", "--data", root, "--folds", "2")
    assert result.exit_code == 0, result.output
    assert "Saved 2 stratified folds (seed 42) to runs/lemon/folds.csv (16 labelled images)" in result.output


# --- the current competition ---------------------------------------------------------------------


def test_a_failed_import_leaves_the_current_competition_as_it_was(workdir: Path) -> None:
    assert flow("runs", "digits").exit_code == 0
    current = Path(".flow/current")
    assert current.read_text() == "digits\n"

    assert one_line_error(flow("import", "lemon", "lemon_lesson.zip")) == "Error: lemon_lesson.zip: not found"
    assert current.read_text() == "digits\n"
    (workdir / "wrong" / "pictures").mkdir(parents=True)
    error = one_line_error(flow("import", "lemon", workdir / "wrong"))
    assert error.startswith("Error: the files do not match the 'lemon' layout: ")
    assert current.read_text() == "digits\n"
    assert not Path("data/lemon").exists()

    result = flow("import", "lemon", lemon_tree(workdir / "lemon_lesson"))
    assert result.exit_code == 0, result.output
    assert current.read_text() == "lemon\n"


# --- competition TOMLs ---------------------------------------------------------------------------


def test_a_broken_toml_is_listed_without_hiding_the_others(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the boxed table the patterns below read
    folder = workdir / "competitions"
    folder.mkdir()
    (folder / "torn.toml").write_text('title = "Torn"\nclasses = ["a", "b"\n')
    (folder / "typo.toml").write_text('title = "Typo"\nclasses = ["a", "b"]\nclases = 3\n[layout]\nkind = "folders"\n')

    result = flow("competitions")
    assert result.exit_code == 0, result.output
    names = re.findall(r"^│ (\w+) ", result.stdout, re.M)
    assert names == ["digits", "garbage", "lemon", "mnist", "palm", "torn", "typo", "zodiac"]
    assert re.search(r"^│ torn +│ +- +│.*broken \(see below\)", result.stdout, re.M)
    torn = f"{folder / 'torn.toml'}: not valid TOML: Unclosed array (at end of document)"
    typo = f"{folder / 'typo.toml'}: unknown key 'clases'"
    assert result.stderr == f"Warning: {torn}\nWarning: {typo}\n"

    assert one_line_error(flow("eda", "torn")) == f"Error: {torn}"


# --- CSV headers ---------------------------------------------------------------------------------


def _spreadsheet_csv(file: Path) -> bytes:
    """Rewrite a CSV as some spreadsheets export it: a BOM, CRLF, cells padded with spaces."""
    lines = file.read_text().splitlines()
    head, rows = lines[0].split(","), [row.split(",") for row in lines[1:]]
    text = " , ".join(f"{h} " for h in head) + "\r\n" + "".join(" , ".join(f" {c} " for c in r) + "\r\n" for r in rows)
    data = codecs.BOM_UTF8 + text.encode()
    file.write_bytes(data)
    return data


def test_bom_crlf_and_padded_headers_are_read_and_said_once(workdir: Path) -> None:
    source = lemon_tree(workdir / "lemon_lesson")
    data = _spreadsheet_csv(source / "train_images.csv")

    result = flow("import", "lemon", source)  # reads the file twice: while checking, then once in place
    assert result.exit_code == 0, result.output
    warning = "Warning: train_images.csv: header names had a BOM and whitespace around them; read as 'id', 'class_num'"
    assert result.stderr.splitlines() == [warning]
    assert "Imported lemon into data/lemon: 16 training and 5 test images" in result.stdout

    result = flow("split", "lemon", "--folds", "2")
    assert result.exit_code == 0, result.output
    folds = pd.read_csv("runs/lemon/folds.csv", dtype=str)
    assert sorted(folds["id"]) == sorted(p.name for p in (source / "train_images").iterdir())  # ids without the padding
    assert (source / "train_images.csv").read_bytes() == data  # the input is never rewritten


def test_a_missing_column_quotes_the_names_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = lemon_tree(tmp_path / "lemon")
    csv = root / "train_images.csv"
    csv.write_text(csv.read_text().replace("id,class_num", "image id,class_num", 1))
    assert one_line_error(flow("split", "lemon", "--data", root)) == (
        "Error: lemon/train_images.csv: missing column 'id' (found: 'image id', 'class_num')"
    )
    csv.write_text(csv.read_text().replace("image id,class_num", "id,class_num,id ", 1))
    assert one_line_error(flow("split", "lemon", "--data", root)) == (
        "Error: lemon/train_images.csv: header names 'id' and 'id ' are the same name once trimmed"
    )


# --- eda -----------------------------------------------------------------------------------------


def test_eda_says_alpha_is_composited_on_white_as_decoding_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = lemon_tree(tmp_path / "lemon")
    see_through = root / "train_images" / "glass.png"
    Image.new("RGBA", (16, 16), (200, 0, 0, 0)).save(see_through)  # red, fully transparent
    with (root / "train_images.csv").open("a") as f:
        f.write("glass.png,0\n")

    result = flow("eda", "lemon", "--data", root)
    assert result.exit_code == 0, result.output
    assert (
        "Warning: 1 image in an unusual mode (RGBA 1), e.g. glass.png: alpha channel: composited on white when read"
    ) in result.stderr
    from kaggle_flow.data.images import load_image

    assert (load_image(see_through, 8, 3) == 255).all()  # what training sees: white, not the red underneath


def test_eda_class_table_adds_up_to_its_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from course_trees import make_lemon

    monkeypatch.chdir(tmp_path)
    root = make_lemon(tmp_path / "lemon", scale=0.1)  # 110 good training images, 3 broken ones listed too
    result = flow("eda", "lemon", "--data", root)
    assert result.exit_code == 0, result.output
    assert "lemon: 113 training and 20 test images; 3 broken training images left out: 110 in the table\n" in result.stdout
    counts = [int(n) for n in re.findall(r"^│ \w+ +│ +(\d+) │", result.stdout, re.M)]
    assert len(counts) == 4 and sum(counts) == 110
