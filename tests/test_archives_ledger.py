"""Archives as they come from the wild (re-zipped on a Mac, damaged, password-protected, zips four
levels deep), an import killed with kill -9, and several `flow submit` writing one ledger at once."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

import pytest
from clitools import flow, one_line_error
from kaggle_trees import expected_counts, make
from test_faults_files import MakeReadOnly, digits_done, read_only  # noqa: F401  (fixtures)

from kaggle_flow import fileio
from kaggle_flow.submit.ledger import read_ledger

APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        "  # the start of an AppleDouble file


def _cactus(root: Path) -> Path:
    """The older Aerial Cactus download (train.zip and test.zip inside) and its TOML in competitions/."""
    archive = make("aerial_cactus_zip", root)
    Path("competitions").mkdir(exist_ok=True)
    shutil.copy(root / "aerial_cactus_zip.toml", "competitions/cac.toml")
    return archive


def _macos_zip(archive: Path, out: Path) -> Path:
    """`archive` re-zipped by a Mac: an AppleDouble `._NAME` under __MACOSX/ beside every entry, in
    the nested zips too, and one `._NAME` beside a nested zip at the top."""

    def copy(src: zipfile.ZipFile, dst: zipfile.ZipFile) -> None:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith(".zip"):
                buffer = io.BytesIO()
                with zipfile.ZipFile(io.BytesIO(data)) as inner, zipfile.ZipFile(buffer, "w") as rezipped:
                    copy(inner, rezipped)
                data = buffer.getvalue()
            dst.writestr(info.filename, data)
            parent, name = os.path.split(info.filename.rstrip("/"))
            dst.writestr(f"__MACOSX/{parent + '/' if parent else ''}._{name}", APPLE_DOUBLE)

    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(out, "w") as dst:
        copy(src, dst)
        dst.writestr("._train.zip", APPLE_DOUBLE)
    return out


@pytest.mark.parametrize("unzipped", [False, True], ids=["zip", "folder"])
def test_a_download_rezipped_on_a_mac_inits_and_imports(workdir: Path, tmp_path: Path, unzipped: bool) -> None:
    download = _macos_zip(_cactus(tmp_path / "d"), tmp_path / "d" / "mac.zip")
    if unzipped:  # unpacked by the Finder: the AppleDouble files sit beside the nested zips
        with zipfile.ZipFile(download) as zf:
            zf.extractall(tmp_path / "d" / "mac")
        download = tmp_path / "d" / "mac"
    result = flow("init", "mac", "--from", download, "--metric", "auc")
    assert result.exit_code == 0, result.output
    result = flow("import", "cac", download)
    assert result.exit_code == 0, result.output
    counts = expected_counts("aerial_cactus_zip")
    assert f"{counts['train']} training and {counts['test']} test images" in result.output
    unpacked = [p.relative_to(workdir / "data" / "cac").as_posix() for p in (workdir / "data" / "cac").rglob("*")]
    assert [p for p in unpacked if "__MACOSX" in p or os.path.basename(p).startswith("._")] == []


# --- damaged and password-protected archives ---------------------------------------------------------


def _data_start(archive: Path, member: str) -> tuple[int, zipfile.ZipInfo]:
    """Where `member`'s compressed bytes start in `archive`."""
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(member)
    with open(archive, "rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
    return info.header_offset + 30 + name_len + extra_len, info


def _damage(archive: Path, member: str) -> None:
    """A bit flipped in `member`: a deflated one no longer inflates (zlib.error), a stored one fails its CRC."""
    start, info = _data_start(archive, member)
    data = bytearray(archive.read_bytes())
    if info.compress_type == zipfile.ZIP_DEFLATED:
        data[start] = 0xFF  # block type 3: "invalid block type"
    else:
        data[start + info.compress_size // 2] ^= 0x01
    archive.write_bytes(bytes(data))


def _encrypt(archive: Path) -> None:
    """Every member marked encrypted, as `zip -P` marks them (zipfile cannot write a password)."""
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        offsets, central = [m.header_offset for m in zf.infolist()], zf.start_dir
    for offset in offsets:
        data[offset + 6] |= 1
    at = data.find(b"PK\x01\x02", central)
    while at != -1:
        data[at + 8] |= 1
        at = data.find(b"PK\x01\x02", at + 4)
    archive.write_bytes(bytes(data))


def _flat_cactus(root: Path, compression: int) -> Path:
    """The newer Aerial Cactus download as one zip (images at the top, no nested zips)."""
    tree = make("aerial_cactus", root)
    Path("competitions").mkdir(exist_ok=True)
    shutil.copy(root / "aerial_cactus.toml", "competitions/cac.toml")
    archive = root / "cactus.zip"
    with zipfile.ZipFile(archive, "w", compression) as zf:
        for path in sorted(tree.rglob("*")):
            zf.write(path, path.relative_to(tree).as_posix())
    return archive


@pytest.fixture(autouse=True)
def own_temp_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The temp folder of this test alone: what `_left_behind` finds there is this test's, never a
    `flow init` of a test running beside it."""
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))


def _left_behind(workdir: Path) -> list[str]:
    """What a failed init or import left: a TOML, anything in data/ besides the embedded data, a temp outline."""
    found = [p.name for p in (workdir / "competitions").glob("*.toml") if p.name != "cac.toml"]
    found += [p.name for p in (workdir / "data").iterdir() if p.name not in ("digits", "mnist")]
    return found + [p.name for p in Path(tempfile.gettempdir()).glob("flow-init-broken.*")]


DAMAGED = {
    "deflated-csv": (zipfile.ZIP_DEFLATED, "train.csv", "is damaged (Error -3 while decompressing data: invalid block type)"),
    "stored-csv": (zipfile.ZIP_STORED, "train.csv", "is damaged (Bad CRC-32 for file 'train.csv')"),
    "deflated-image": (zipfile.ZIP_DEFLATED, "train/", "is damaged (Error -3 while decompressing data: invalid block type)"),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_a_damaged_member_is_one_line_naming_the_archive_and_member(workdir: Path, tmp_path: Path, case: str) -> None:
    compression, member, why = DAMAGED[case]
    archive = _flat_cactus(tmp_path / "d", compression)
    if member.endswith("/"):
        with zipfile.ZipFile(archive) as zf:
            member = next(m for m in zf.namelist() if m.startswith(member) and m.endswith(".jpg"))
    _damage(archive, member)
    expected = f"Error: d/cactus.zip: member '{member}' {why}; download it again"
    if member.endswith(".csv"):  # `flow init` reads the CSVs only
        assert one_line_error(flow("init", "broken", "--from", archive)) == expected
        assert _left_behind(workdir) == []
    assert one_line_error(flow("import", "cac", archive)) == expected
    assert _left_behind(workdir) == []


def test_a_damaged_nested_zip_is_one_line_naming_it(workdir: Path, tmp_path: Path) -> None:
    archive = _cactus(tmp_path / "d")
    with zipfile.ZipFile(archive) as zf, zipfile.ZipFile(tmp_path / "d" / "deflated.zip", "w", zipfile.ZIP_DEFLATED) as out:
        for info in zf.infolist():
            out.writestr(info.filename, zf.read(info))
    archive = tmp_path / "d" / "deflated.zip"
    _damage(archive, "train.zip")
    expected = "Error: d/deflated.zip: member 'train.zip' is damaged (Error -3 while decompressing data: invalid block type); download it again"
    assert one_line_error(flow("init", "broken", "--from", archive)) == expected
    assert one_line_error(flow("import", "cac", archive)) == expected
    assert _left_behind(workdir) == []


def test_a_password_protected_zip_is_one_line(workdir: Path, tmp_path: Path) -> None:
    archive = _flat_cactus(tmp_path / "d", zipfile.ZIP_DEFLATED)
    _encrypt(archive)
    with zipfile.ZipFile(archive) as zf:
        first = zf.namelist()[0]
    expected = (f"Error: d/cactus.zip: member '{first}' is encrypted (a password-protected zip); "
                "unpack it with its password and pass the folder")
    assert one_line_error(flow("init", "broken", "--from", archive)) == expected
    assert one_line_error(flow("import", "cac", archive)) == expected
    assert _left_behind(workdir) == []


def test_zips_four_levels_deep_are_refused_naming_the_depth(workdir: Path, tmp_path: Path) -> None:
    tree = make("aerial_cactus", tmp_path / "d")
    Path("competitions").mkdir()
    shutil.copy(tmp_path / "d" / "aerial_cactus.toml", "competitions/cac.toml")
    inner = tmp_path / "d" / "level3.zip"
    with zipfile.ZipFile(inner, "w") as zf:
        for path in sorted(tree.rglob("*")):
            zf.write(path, path.relative_to(tree).as_posix())
    for level in (2, 1, 0):  # level2.zip holds level3.zip, ..., deep.zip (level 0) holds level1.zip
        outer = tmp_path / "d" / (f"level{level}.zip" if level else "deep.zip")
        with zipfile.ZipFile(outer, "w") as zf:
            zf.write(inner, inner.name)
        inner = outer
    expected = ("Error: d/deep.zip/level1.zip/level2.zip/level3.zip: a zip 3 levels down in the download; "
                "flow unpacks zips at most 2 levels down: unpack it yourself and pass the folder")
    assert one_line_error(flow("init", "broken", "--from", inner)) == expected
    unpacked_as = expected.replace("level1.zip/level2.zip/", "level1/level2/")  # where import met it: unpacked into folders
    assert one_line_error(flow("import", "cac", inner)) == unpacked_as
    assert _left_behind(workdir) == []


# --- an import killed with kill -9 -----------------------------------------------------------------


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(done.stdout)  # a process that has ended


def test_the_staging_folder_of_a_killed_import_is_removed_by_the_next(workdir: Path, tmp_path: Path) -> None:
    archive = _flat_cactus(tmp_path / "d", zipfile.ZIP_STORED)
    data, host = workdir / "data", fileio._host_tag()
    staged = {
        "dead": f".cac.import.{host}.{_dead_pid()}.0123abcd",
        "live": f".other.import.{host}.{os.getpid()}.0123abcd",  # this test's own process, still importing
        "no_marker": f".cac.import.{host}.{_dead_pid()}.4567abcd",  # a folder of that name, not made by flow
        "foreign": f".cac.import.other-machine.{_dead_pid()}.89abcdef",  # another machine's: its PID means nothing here
    }
    for key, name in staged.items():
        (data / name / "files").mkdir(parents=True)
        (data / name / "files" / "big.bin").write_bytes(b"\0" * 1000)
        if key != "no_marker":
            (data / name / fileio.STAGING_MARKER).write_text("")
    result = flow("import", "cac", archive)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in data.iterdir() if p.name.startswith(".")) == sorted(
        staged[k] for k in ("live", "no_marker", "foreign"))


def test_a_killed_import_mid_replace_gives_the_old_data_back(workdir: Path, tmp_path: Path) -> None:
    """kill -9 between moving the old data aside and moving the new into place: the old comes back."""
    archive = _flat_cactus(tmp_path / "d", zipfile.ZIP_STORED)
    data = workdir / "data"
    staging = data / f".cac.import.{fileio._host_tag()}.{_dead_pid()}.0123abcd"
    (staging / "replaced").mkdir(parents=True)
    (staging / "replaced" / "mine.txt").write_text("the data imported before")
    (staging / fileio.STAGING_MARKER).write_text("")
    line = one_line_error(flow("import", "cac", archive))
    assert line == "Error: data/cac: already holds data; pass --force to replace it"
    assert (data / "cac" / "mine.txt").read_text() == "the data imported before"
    assert not staging.exists()


# --- several `flow submit` at once -----------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from kaggle_flow.submit.ledger import add_entry, recording, set_local_score
    folder, me, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.001)
    for i in range(8):
        name = f"20250101-1200{i:02d}_{me}.csv"
        with recording(folder, file=folder / name, run=me, cv_score=0.5 + i / 100):
            (folder / name).write_text("id,label\\n")
        set_local_score(folder, folder / name, 0.25)
""")


def test_concurrent_submissions_keep_every_ledger_row(tmp_path: Path) -> None:
    folder, go = tmp_path / "submissions" / "comp", tmp_path / "go"
    folder.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(folder), f"run{k}", str(go)], env=env) for k in range(4)]
    go.touch()
    assert [w.wait(timeout=300) for w in writers] == [0] * 4
    ledger = read_ledger(folder)
    assert sorted(ledger["file"]) == sorted(f"20250101-1200{i:02d}_run{k}.csv" for k in range(4) for i in range(8))
    assert set(ledger["state"]) == {""} and set(ledger["local_score"]) == {"0.250000"}
    assert sorted(set(ledger["cv_score"])) == [f"{0.5 + i / 100:.6f}" for i in range(8)]


def test_submissions_in_a_read_only_folder_lists_what_it_cannot_settle(
    workdir: Path, digits_done: Path, read_only: MakeReadOnly
) -> None:
    """The ledger's lock is taken only to write: a read-only folder still lists, a CSV without a row too."""
    shutil.copy(digits_done, digits_done.with_name("20250102-120000_r2.csv"))
    read_only(workdir)
    result = flow("submissions", "digits")
    assert result.exit_code == 0, result.output
    assert "20250102-120000_r2.csv: a submission without a ledger row; added (run 'r2', recipe unknown)" in result.output
    assert read_ledger(digits_done.parent)["file"].tolist() == [digits_done.name]  # nothing written


def test_flow_submissions_leaves_the_pending_row_of_a_submit_still_writing(tmp_path: Path) -> None:
    """A `flow submit` between its ledger row and its CSV's rename: a `flow submissions` meanwhile keeps
    its row pending (the writer is alive) and settles only the row whose writer died."""
    from kaggle_flow.submit.ledger import add_entry, reconcile

    folder = tmp_path / "submissions" / "comp"
    folder.mkdir(parents=True)
    host = fileio.writer_tag().rpartition(".")[0]
    add_entry(folder, file=folder / "20250101-120000_live.csv", run="live", cv_score=0.9, state=f"pending {fileio.writer_tag()}")
    add_entry(folder, file=folder / "20250101-120001_dead.csv", run="dead", cv_score=0.8, state=f"pending {host}.{_dead_pid()}")
    frame, notes = reconcile(folder)
    assert list(frame["file"]) == ["20250101-120000_live.csv"]
    assert frame["state"].iloc[0].startswith("pending ") and frame["cv_score"].iloc[0] == "0.900000"
    assert notes == ["20250101-120001_dead.csv: never written (interrupted); its ledger row is dropped"]
    (folder / "20250101-120000_live.csv").write_text("id,label\n")  # the submit's CSV renamed into place
    frame, notes = reconcile(folder)
    assert list(frame["file"]) == ["20250101-120000_live.csv"] and notes == []  # its row, not a "recipe unknown" one
