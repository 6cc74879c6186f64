"""A full disk, a zip bomb, an import into itself, an interrupted write, the umask: one line each,
exit 1, no crash signal, no temp file or staging folder left, the user's files untouched.

A full disk is simulated where it is written (ENOSPC from posix_fallocate, a write, paddle.save,
to_csv) or where free space is read (shutil.disk_usage), and real where this runs as root: a 2 MB
tmpfs, with the command in a subprocess so a SIGBUS would show as a negative return code.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from clitools import fake_run, flow, one_line_error
from trees import lemon_tree

from kaggle_flow.errors import DiskFullError
from kaggle_flow.fileio import HEADROOM, atomic_path, human_size

REPO = Path(__file__).resolve().parents[1]
_real_disk_usage = shutil.disk_usage


def leftovers(root: Path) -> list[str]:
    """Temp files and import staging folders under `root` (symlinked folders not followed)."""
    found = []
    for parent, dirs, files in os.walk(root):
        found += [os.path.join(parent, n) for n in files if n.endswith(".tmp")]
        found += [os.path.join(parent, n) for n in dirs if ".import." in n]
    return found


def fake_free(monkeypatch: pytest.MonkeyPatch, free: int, where: Callable[[str], bool] = lambda p: True) -> None:
    """shutil.disk_usage reports `free` bytes for the paths `where` accepts, the truth elsewhere."""

    def disk_usage(path: str | os.PathLike[str]) -> object:
        real = _real_disk_usage(path)
        return real._replace(free=free) if where(str(path)) else real

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)


def enospc(*_: object, **__: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def check_figures(line: str) -> tuple[float, float]:
    """'X needed, Y free (Z short)': Z is X - Y, to the rounding of the figures; returns (X, Y) in bytes."""
    unit = {"bytes": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}
    found = re.findall(r"([\d.]+) (bytes|kB|MB|GB) (needed|free|short)", line)
    assert [w for _, _, w in found] == ["needed", "free", "short"], line
    needed, free, short = (float(v) * unit[u] for v, u, _ in found)
    assert abs(needed - free - short) <= 0.15 * max(needed, 1e3), line
    return needed, free


def lemon_zip(tmp_path: Path, name: str = "lemon.zip") -> Path:
    tree = lemon_tree(tmp_path / "src")
    file = tmp_path / name
    with zipfile.ZipFile(file, "w") as zf:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                zf.write(path, "lemon_lesson/" + path.relative_to(tree).as_posix())
    return file


def add_member(archive: Path, name: str, zeros_mb: int = 0, noise_mb: int = 0) -> Path:
    """Append a deflated member of zeros (a zip bomb's payload) and/or random bytes."""
    with zipfile.ZipFile(archive, "a", zipfile.ZIP_DEFLATED) as zf:
        with zf.open(name, "w") as fh:
            for _ in range(zeros_mb):
                fh.write(bytes(1 << 20))
            fh.write(np.random.default_rng(0).integers(0, 256, noise_mb << 20, dtype=np.uint8).tobytes())
    return archive


# --- fileio ----------------------------------------------------------------------------------------


def test_sizes_read_as_a_user_reads_them() -> None:
    from kaggle_flow.fileio import parse_size

    assert [human_size(n) for n in (950, 12_345, 124_000_000, 999_960, 1.5e9)] == [
        "950 bytes", "12.3 kB", "124.0 MB", "1.0 MB", "1.5 GB"
    ]
    assert [parse_size(t, "--max-size") for t in ("50GB", "500 MB", "2GiB", "1000")] == [50e9, 500e6, 2**31, 1000]


def test_an_interrupted_or_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out" / "folds.csv"
    target.parent.mkdir()
    target.write_text("old\n")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:  # what SIGTERM becomes in the CLI
        tmp.write_text("half")
        raise KeyboardInterrupt
    with pytest.raises(DiskFullError, match=r"^not enough free space in .*out for folds.csv: the disk is full \("):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            enospc()
    assert target.read_text() == "old\n"
    assert leftovers(tmp_path) == []


# --- the image cache -------------------------------------------------------------------------------


def test_cache_on_a_full_disk_is_one_line_before_any_decoding(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kaggle_flow.data import images as data

    assert flow("split", "digits").exit_code == 0
    decoded = []
    monkeypatch.setattr(data, "decode", lambda *a: decoded.append(a) or data.load_image(*a))
    fake_free(monkeypatch, 500_000)
    line = one_line_error(flow("train", "digits", "--model", "smallcnn", "--epochs", "1", "--size", "8"))
    assert line.startswith("Error: not enough free space in runs/digits/cache for the image cache (1500 images at 8 px): ")
    needed, free = check_figures(line)
    assert free == 500_000 and needed >= 1500 * 8 * 8 + HEADROOM
    assert decoded == []
    assert list((workdir / "runs/digits/cache").glob("*")) == [] and leftovers(workdir) == []


@pytest.mark.parametrize("where", ["reserve", "write"])
def test_cache_when_the_disk_refuses_a_write_is_one_line(workdir: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """The free space looked enough (a quota, another writer): ENOSPC from posix_fallocate, or from
    a write half-way through the rows on a filesystem that cannot reserve blocks."""
    from kaggle_flow.data import images as data

    assert flow("split", "digits").exit_code == 0
    if where == "reserve":
        monkeypatch.setattr(os, "posix_fallocate", enospc)
        what = re.escape("the image cache (1500 images at 8 px)")
    else:
        monkeypatch.delattr(os, "posix_fallocate")
        monkeypatch.setattr(data, "CHUNK_BYTES", 64 * 200)  # 8 chunks: the third write fails
        writes = []

        class FullDisk:
            def __init__(self, fh: object) -> None:
                self.fh = fh

            def __getattr__(self, name: str) -> object:
                return getattr(self.fh, name)

            def __enter__(self) -> FullDisk:
                return self

            def __exit__(self, *exc: object) -> None:
                self.fh.close()  # type: ignore[attr-defined]

            def write(self, chunk: bytes) -> int:
                writes.append(len(chunk))
                if len(writes) == 4:  # the header, two chunks, then the disk is full
                    enospc()
                return self.fh.write(chunk)  # type: ignore[attr-defined,no-any-return]

        monkeypatch.setattr(data, "open", lambda *a: FullDisk(open(*a)), raising=False)
        what = r"8px-1ch-[0-9a-f]{16}\.npy"  # the write fails: the file is named
    line = one_line_error(flow("train", "digits", "--model", "smallcnn", "--epochs", "1", "--size", "8"))
    assert re.fullmatch(rf"Error: not enough free space in runs/digits/cache for {what}: "
                        r"the disk is full \([\d.]+ (bytes|kB|MB|GB) free\)", line), line
    assert list((workdir / "runs/digits/cache").glob("*")) == [] and leftovers(workdir) == []


def test_interrupted_cache_build_leaves_no_temp(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kaggle_flow.data import images as data

    paths = sorted(str(p) for p in (workdir / "data/digits/train").iterdir())[:40]
    monkeypatch.setattr(data, "CHUNK_BYTES", 8 * 8 * 5)  # chunks of 5 rows: some are written before the stop
    calls = []

    def decode(*args: object) -> np.ndarray:
        calls.append(args)
        if len(calls) == 23:
            raise KeyboardInterrupt
        return data.load_image(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(data, "decode", decode)
    with pytest.raises(KeyboardInterrupt):
        data.build_cache(paths, 8, 1, workdir / "cache")
    assert list((workdir / "cache").iterdir()) == []


def test_cache_written_in_chunks_holds_every_image_in_order(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kaggle_flow.data import images as data

    paths = sorted(str(p) for p in (workdir / "data/digits/train").iterdir())[:13]
    paths.insert(6, str(workdir / "missing.png"))
    monkeypatch.setattr(data, "CHUNK_BYTES", 8 * 8 * 3 * 4)  # 4 rows a chunk, both buffers used in turn
    cache = data.build_cache(paths, 8, 3, workdir / "cache")
    expected = [data.load_image(p, 8, 3) if i != 6 else np.zeros((8, 8, 3), np.uint8) for i, p in enumerate(paths)]
    np.testing.assert_array_equal(np.asarray(cache.images), np.stack(expected))
    assert list(cache.failed) == [paths[6]]
    assert np.load(cache.file).shape == (14, 8, 8, 3)  # a plain .npy, readable without the memory map


# --- checkpoints and submissions -------------------------------------------------------------------


def test_checkpoint_on_a_full_disk_is_one_line(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`flow train` stops at the first checkpoint the run folder has no room for (the cache fits)."""
    assert flow("split", "digits").exit_code == 0
    fake_free(monkeypatch, 50_000, where=lambda p: "-smallcnn-f0" in p)
    result = flow("train", "digits", "--model", "smallcnn", "--epochs", "1", "--size", "8")
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert errors == [result.output.splitlines()[-1]]
    run = workdir / errors[0].split(" in ")[1].split(" for ")[0]
    assert errors[0].startswith(f"Error: not enough free space in runs/digits/{run.name} for the checkpoint best.pdparams: ")
    needed, free = check_figures(errors[0])
    assert free == 50_000 and needed >= 1.4e6  # smallcnn: 108,506 float32 parameters (434 kB) + HEADROOM
    assert not run.exists() and leftovers(workdir) == []  # nothing saved: no run folder


def test_checkpoint_write_refused_by_the_disk_leaves_no_part(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import paddle

    from kaggle_flow.engine.checkpoint import Checkpointer
    from kaggle_flow.models import create_model

    run = fake_run(workdir / "runs/digits", "r1")
    before = (run.path / "best.pdparams").read_bytes()
    weights = create_model("smallcnn", 10, 1).state_dict()
    needed = sum(v.numpy().nbytes for v in weights.values()) + HEADROOM
    real_save = paddle.save

    def save(obj: object, path: str) -> None:
        real_save(obj, path)  # the bytes land, then the disk says no (as on close or fsync)
        enospc()

    monkeypatch.setattr(paddle, "save", save)
    with pytest.raises(DiskFullError, match=rf"^not enough free space in {re.escape(str(run.path))} for best.pdparams: the disk is full"):
        Checkpointer(run).save_best(create_model("smallcnn", 10, 1))
    monkeypatch.setattr(paddle, "save", real_save)
    fake_free(monkeypatch, needed - 2000)
    with pytest.raises(DiskFullError) as info:
        Checkpointer(run).save_best(create_model("smallcnn", 10, 1))
    assert str(info.value) == (
        f"not enough free space in {run.path} for the checkpoint best.pdparams: "
        f"{human_size(needed)} needed, {human_size(needed - 2000)} free (2.0 kB short)"
    )
    assert (run.path / "best.pdparams").read_bytes() == before and leftovers(workdir) == []


def _probs(workdir: Path) -> Path:
    folder = workdir / "probs"
    folder.mkdir()
    np.save(folder / "test_probs.npy", np.random.default_rng(0).dirichlet(np.ones(10), 297).astype(np.float32))
    return folder / "test_probs.npy"


def test_submission_on_a_full_disk_is_one_line(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    probs = _probs(workdir)
    fake_free(monkeypatch, 50_000)
    line = one_line_error(flow("submit", "digits", "--probs", probs))
    assert line == "Error: not enough free space in submissions/digits for the submission (297 rows): 1.1 MB needed, 50.0 kB free (1.0 MB short)"
    assert not (workdir / "submissions").exists() and leftovers(workdir) == []


def test_submission_write_refused_by_the_disk_is_one_line(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    probs = _probs(workdir)
    real_to_csv = pd.DataFrame.to_csv

    def to_csv(self: pd.DataFrame, path: object, **kwargs: object) -> None:
        real_to_csv(self, path, **kwargs)
        if "ledger" not in str(path):  # the ledger's pending row is written, then the CSV fails
            enospc()

    monkeypatch.setattr(pd.DataFrame, "to_csv", to_csv)
    line = one_line_error(flow("submit", "digits", "--probs", probs))
    assert re.fullmatch(r"Error: not enough free space in submissions/digits for \d{8}-\d{6}_probs\.csv: the disk is full \(.+ free\)", line), line
    assert list((workdir / "submissions/digits").iterdir()) == [] and leftovers(workdir) == []


# --- imports ---------------------------------------------------------------------------------------


def test_import_on_a_full_disk_is_one_line(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = lemon_zip(workdir)
    with zipfile.ZipFile(archive) as zf:
        needed = sum(m.file_size for m in zf.infolist()) + HEADROOM
    fake_free(monkeypatch, 100_000)
    assert one_line_error(flow("import", "lemon", archive)) == (
        f"Error: not enough free space in data for lemon.zip unpacked: {human_size(needed)} needed, "
        f"100.0 kB free ({human_size(needed - 100_000)} short)"
    )
    assert not (workdir / "data/lemon").exists() and leftovers(workdir) == []


def test_import_when_the_disk_fills_up_keeps_the_old_data(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = lemon_zip(workdir)
    assert flow("import", "lemon", archive).exit_code == 0
    before = sorted(p.relative_to(workdir) for p in (workdir / "data/lemon").rglob("*"))
    real_copy = shutil.copyfileobj

    def copyfileobj(src: object, dst: object, *args: object) -> None:
        real_copy(src, dst, *args)
        if "test_images" in str(getattr(dst, "name", "")):
            enospc()

    monkeypatch.setattr(shutil, "copyfileobj", copyfileobj)
    line = one_line_error(flow("import", "lemon", archive, "--force"))
    assert re.fullmatch(r"Error: not enough free space in data for lemon.zip unpacked: the disk is full \(.+ free\)", line), line
    assert sorted(p.relative_to(workdir) for p in (workdir / "data/lemon").rglob("*")) == before
    assert leftovers(workdir) == []


def test_folder_import_when_the_disk_fills_up_stops_at_once(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = lemon_tree(workdir / "download")
    copied, real_copyfile = [], shutil.copyfile

    def copyfile(src: str, dst: str, **kwargs: object) -> str:
        copied.append(src)
        if len(copied) == 3:
            enospc()
        return real_copyfile(src, dst, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(shutil, "copyfile", copyfile)
    line = one_line_error(flow("import", "lemon", tree))
    assert re.fullmatch(r"Error: not enough free space in data for a copy of download: the disk is full \(.+ free\)", line), line
    assert len(copied) == 3  # copytree would have gone on through every file
    assert not (workdir / "data/lemon").exists() and leftovers(workdir) == []


def test_interrupted_import_leaves_no_staging_folder(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kaggle_flow.competition import get_competition
    from kaggle_flow.table.importer import import_data

    archive = lemon_zip(workdir)

    def copyfileobj(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "copyfileobj", copyfileobj)
    with pytest.raises(KeyboardInterrupt):
        import_data(get_competition("lemon"), archive, workdir / "data/lemon")
    assert not (workdir / "data/lemon").exists() and leftovers(workdir) == []


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid lemon download plus 300 MB of zeros, about 0.3 MB on disk."""
    folder = tmp_path_factory.mktemp("bomb")
    return add_member(lemon_zip(folder, "bomb.zip"), "lemon_lesson/padding.bin", zeros_mb=300)


def test_zip_bomb_is_refused_from_its_listing(workdir: Path, bomb: Path) -> None:
    archive = Path(shutil.copy(bomb, workdir / "bomb.zip"))
    with zipfile.ZipFile(archive) as zf:
        total = sum(m.file_size for m in zf.infolist())
    packed = archive.stat().st_size
    assert packed < 10**6 and total > 300 * 2**20
    bomb_line = (
        f"Error: bomb.zip: unpacks to {human_size(total)} from {human_size(packed)} ({total / packed:.0f}:1, "
        "largest member 'lemon_lesson/padding.bin'), more than 200:1; refused as a likely zip bomb (pass --allow-large if it is genuine)"
    )
    assert one_line_error(flow("import", "lemon", archive)) == bomb_line
    assert one_line_error(flow("import", "lemon", archive, "--max-size", "1GB")) == bomb_line  # the size is not the problem
    assert one_line_error(flow("import", "lemon", archive, "--max-size", "100MB")) == (
        f"Error: bomb.zip: unpacks to {human_size(total)} (largest member 'lemon_lesson/padding.bin', 314.6 MB), "
        "more than the 100.0 MB limit; pass --max-size to raise it"
    )
    assert one_line_error(flow("import", "lemon", archive, "--max-size", "lots")) == (
        "Error: --max-size takes a size such as 50GB or 500MB (got 'lots')"
    )
    assert not (workdir / "data/lemon").exists() and leftovers(workdir) == []


def test_a_bomb_member_among_real_files_is_refused(workdir: Path) -> None:
    archive = add_member(lemon_zip(workdir), "lemon_lesson/noise.bin", noise_mb=1)
    archive = add_member(archive, "lemon_lesson/padding.bin", zeros_mb=40)  # the archive as a whole: ~40:1
    with zipfile.ZipFile(archive) as zf:
        pad = zf.getinfo("lemon_lesson/padding.bin")
    assert one_line_error(flow("import", "lemon", archive)) == (
        f"Error: lemon.zip: member 'lemon_lesson/padding.bin' unpacks to 41.9 MB from {human_size(pad.compress_size)} "
        f"({pad.file_size / pad.compress_size:.0f}:1), more than 1000:1; refused as a likely zip bomb (pass --allow-large if it is genuine)"
    )
    assert not (workdir / "data/lemon").exists()


def test_allow_large_imports_a_genuine_archive(workdir: Path) -> None:
    archive = add_member(lemon_zip(workdir), "lemon_lesson/blank.bin", zeros_mb=20)
    assert flow("import", "lemon", archive).exit_code == 1
    result = flow("import", "lemon", archive, "--allow-large")
    assert result.exit_code == 0, result.output
    assert (workdir / "data/lemon/blank.bin").stat().st_size == 20 << 20


def test_import_into_itself_is_refused(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert flow("import", "lemon", lemon_tree(workdir / "download")).exit_code == 0
    lemon = workdir / "data/lemon"
    before = sorted(p.relative_to(workdir) for p in lemon.rglob("*"))
    assert one_line_error(flow("import", "lemon", "data/lemon/train_images", "--force")) == (
        "Error: data/lemon/train_images: lies inside the target folder data/lemon, which the import replaces; move it out first"
    )
    assert one_line_error(flow("import", "lemon", "data/lemon", "--force")) == (
        "Error: data/lemon: is the target folder data/lemon itself; import from the download, not from its copy"
    )
    assert one_line_error(flow("import", "lemon", "data", "--force")) == (
        f"Error: data: holds the target folder data/lemon ({lemon.resolve()}), so it would be copied into itself; "
        "import from a folder outside it, running flow from your working folder"
    )
    monkeypatch.chdir(lemon)  # `flow import lemon . --force` from inside the data folder
    assert one_line_error(flow("import", "lemon", ".", "--force")) == (
        f"Error: .: holds the target folder data/lemon ({lemon.resolve()}/data/lemon), so it would be copied into itself; "
        "import from a folder outside it, running flow from your working folder"
    )
    assert sorted(p.relative_to(workdir) for p in lemon.rglob("*")) == before and leftovers(workdir) == []


# --- file modes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_outputs_follow_the_umask(workdir: Path, umask: int, file_mode: int, dir_mode: int) -> None:
    from kaggle_flow.data.images import build_cache

    archive = lemon_zip(workdir)
    old = os.umask(umask)
    try:
        assert flow("split", "digits").exit_code == 0
        assert flow("import", "lemon", archive).exit_code == 0
        cache = build_cache([str(workdir / "data/lemon/test_images/test_0000.jpg")], 8, 3, workdir / "cache")
        assert flow("submit", "digits", "--probs", _probs(workdir)).exit_code == 0
    finally:
        os.umask(old)
    files = [workdir / "runs/digits/folds.csv", workdir / "data/lemon/train_images.csv", cache.file,
             cache.file.with_suffix(".json"), *(workdir / "submissions/digits").iterdir()]
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {f.name: oct(file_mode) for f in files}
    assert oct((workdir / "data/lemon").stat().st_mode & 0o777) == oct(dir_mode)


# --- a real small disk -----------------------------------------------------------------------------


@pytest.fixture
def small_disk(workdir: Path) -> Iterator[Path]:
    """A 2 MB tmpfs as the working folder (data/digits still links to the embedded data)."""
    folder = workdir / "small"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("needs root and a tmpfs mount")
    try:
        (folder / "data").mkdir()
        (folder / "data/digits").symlink_to((workdir / "data/digits").resolve(), target_is_directory=True)
        os.chdir(folder)
        yield folder
    finally:
        os.chdir(workdir)
        subprocess.run(["umount", "-l", str(folder)], check=False)


SUBPROCESS = """
import collections, os, shutil, sys
if sys.argv[1] != "checked":  # the free space looks plenty: the reservation, or the writes, meet the full disk
    shutil.disk_usage = lambda path: collections.namedtuple("usage", "total used free")(10**12, 0, 10**12)
if sys.argv[1] == "write":
    del os.posix_fallocate
sys.argv[1:2] = []
from kaggle_flow.cli import main
main()
"""


@pytest.mark.parametrize("layer", ["checked", "reserve", "write"])
def test_cache_bigger_than_a_real_disk_is_one_line_and_no_crash(small_disk: Path, layer: str) -> None:
    assert flow("split", "digits").exit_code == 0
    free_before = shutil.disk_usage(small_disk).free
    env = {**os.environ, "PYTHONPATH": str(REPO), "FLOW_NO_PROGRESS": "1"}
    command = [sys.executable, "-c", SUBPROCESS, layer, "train", "digits", "--model", "smallcnn", "--epochs", "1", "--size", "64"]
    done = subprocess.run(command, cwd=small_disk, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, (done.returncode, done.stderr[-3000:])  # a SIGBUS is -7 (or paddle's 135)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    if layer == "checked":
        assert lines[0].startswith("Error: not enough free space in runs/digits/cache for the image cache (1500 images at 64 px): ")
        needed, free = check_figures(lines[0])
        assert needed > 1500 * 64 * 64 > 2**21 >= free
    else:
        what = "the image cache \\(1500 images at 64 px\\)" if layer == "reserve" else r"64px-1ch-[0-9a-f]{16}\.npy"
        assert re.fullmatch(rf"Error: not enough free space in runs/digits/cache for {what}: the disk is full \(.+ free\)", lines[0]), lines
    assert leftovers(small_disk) == [] and list((small_disk / "runs/digits/cache").glob("*")) == []
    assert shutil.disk_usage(small_disk).free >= free_before - 64 * 1024  # the space is given back


def test_zip_bomb_with_allow_large_on_a_real_small_disk(small_disk: Path, bomb: Path) -> None:
    archive = Path(shutil.copy(bomb, small_disk / "bomb.zip"))
    line = one_line_error(flow("import", "lemon", archive, "--allow-large"))
    assert line.startswith("Error: not enough free space in data for bomb.zip unpacked: ")
    assert check_figures(line)[0] > 300e6
    assert not (small_disk / "data/lemon").exists() and leftovers(small_disk) == []


def test_commands_on_a_disk_already_full_are_one_line(small_disk: Path) -> None:
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as fh, pytest.raises(OSError):
        while True:
            fh.write(bytes(64 * 1024))
    assert shutil.disk_usage(small_disk).free < 64 * 1024
    assert re.fullmatch(  # split hashes the images for their near twins first, and caches the hashes
        r"Error: not enough free space in runs/digits/eda for hashes.csv: the disk is full \(.+ free\)",
        one_line_error(flow("split", "digits")),
    )
    assert re.fullmatch(
        r"Error: not enough free space in runs/digits for folds.csv: the disk is full \(.+ free\)",
        one_line_error(flow("split", "digits", "--ignore-near")),
    )
    assert leftovers(small_disk) == []
