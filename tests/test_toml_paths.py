"""A competition TOML is shared data: no path it names reaches outside the data folder, flow deletes
only folders it made, a label that pandas reads as missing is refused, and two test images with
one submission id are named rather than one of them dropped."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from clitools import flow, one_line_error
from trees import write_image

from kaggle_flow.competition import load_file
from kaggle_flow.errors import ConfigError, DataError
from kaggle_flow.table.layouts import read_table
from kaggle_flow.table.pixels import FINGERPRINT

SIDE = 4  # px of the pixel layout's images: 16 columns a row
INSIDE = ": a TOML's paths are relative to the data folder and stay inside it (no absolute path, no '..')"


def _pixel_csv(path: Path, rows: int = 20, label: bool = True) -> Path:
    rng = np.random.default_rng(0)
    header = (["label"] if label else []) + [f"pixel{i}" for i in range(SIDE * SIDE)]
    lines = [",".join(header)]
    for k in range(rows):
        values = [str(v) for v in rng.integers(0, 256, SIDE * SIDE)]
        lines.append(",".join(([str(k % 2)] if label else []) + values))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _pixel_toml(workdir: Path, name: str, **layout: str) -> Path:
    keys = {"kind": "pixels", "train_csv": "train.csv", "image_side": SIDE, "train_dir": "train", "test_dir": "test",
            **layout}
    body = "\n".join(f"{k} = {v!r}" if isinstance(v, int) else f'{k} = "{v}"' for k, v in keys.items())
    file = workdir / "competitions" / f"{name}.toml"
    file.parent.mkdir(exist_ok=True)
    file.write_text(f'title = "{name}"\nclasses = ["0", "1"]\nchannels = 1\nmean = [0.5]\nstd = [0.25]\n\n'
                    f"[layout]\n{body}\n")
    return file


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file below `folder` (links not followed) with the SHA-1 of its bytes."""
    return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def _own_folder(path: Path) -> Path:
    """A folder that is not flow's, with files of its own."""
    path.mkdir(parents=True)
    (path / "thesis.txt").write_text("years of work\n")
    (path / "photo.png").write_bytes(b"\x89PNG not really")
    return path


# --- case 1: paths of a TOML stay inside the data folder ------------------------------------------


@pytest.mark.parametrize("key", ["train_dir", "test_dir", "valid_dir", "train_csv", "test_csv", "valid_csv", "label_map"])
@pytest.mark.parametrize("value", ["/some/folder", "../../../../x", "train/../../x"])
def test_a_toml_path_outside_the_data_folder_is_refused_on_load(workdir: Path, key: str, value: str) -> None:
    file = _pixel_toml(workdir, "evil", **{key: value})
    with pytest.raises(ConfigError) as err:
        load_file(file)
    assert str(err.value) == f'{file}: layout.{key} = "{value}"{INSIDE}'


@pytest.mark.parametrize("key", ["sample", "solution"])
def test_a_submission_file_outside_the_data_folder_is_refused_on_load(workdir: Path, key: str) -> None:
    file = _pixel_toml(workdir, "evil")
    file.write_text(file.read_text() + f'\n[submission]\n{key} = "/etc/passwd"\n')
    with pytest.raises(ConfigError) as err:
        load_file(file)
    assert str(err.value) == f'{file}: submission.{key} = "/etc/passwd"{INSIDE}'


def test_eda_never_touches_a_folder_outside_the_data_folder(workdir: Path, tmp_path: Path) -> None:
    outside = _own_folder(tmp_path / "precious")
    before = _snapshot(outside)
    _pixel_csv(workdir / "data" / "evil" / "train.csv")
    toml = _pixel_toml(workdir, "evil", train_dir=str(outside))
    line = one_line_error(flow("eda", "evil"))
    assert line == f'Error: {toml}: layout.train_dir = "{outside}"{INSIDE}'
    assert _snapshot(outside) == before


def test_a_link_out_of_the_data_folder_is_refused(workdir: Path, tmp_path: Path) -> None:
    outside = _own_folder(tmp_path / "precious")
    before = _snapshot(outside)
    data = workdir / "data" / "evil"
    _pixel_csv(data / "train.csv")
    (data / "train").symlink_to(outside, target_is_directory=True)
    toml = _pixel_toml(workdir, "evil")
    line = one_line_error(flow("eda", "evil"))
    assert line == (f'Error: {toml}: layout.train_dir = "train" leads to {outside.resolve()}, '
                    "outside the data folder data/evil (a link)")
    assert _snapshot(outside) == before and (data / "train").is_symlink()


@pytest.mark.parametrize("value", [".", "", "./", "train/.."])
def test_a_pixel_layout_writes_into_a_folder_of_its_own(workdir: Path, value: str) -> None:
    file = _pixel_toml(workdir, "evil", train_dir=value)
    with pytest.raises(ConfigError) as err:
        load_file(file)
    assert str(err.value) == (f'{file}: layout.train_dir = "{value}" is the data folder itself: a pixel layout '
                              "writes its PNGs into a folder of their own (e.g. \"train\")")


def test_pixels_never_replace_a_folder_flow_did_not_make(workdir: Path, tmp_path: Path) -> None:
    data = tmp_path / "download"
    _pixel_csv(data / "train.csv")
    own = _own_folder(data / "train")
    before = _snapshot(data)
    _pixel_toml(workdir, "digitrec")
    line = one_line_error(flow("eda", "digitrec", "--data", data))
    assert line == (f"Error: {own.relative_to(workdir)}: a folder flow did not write (no {FINGERPRINT} file in it): the PNGs of train.csv "
                    "go into a folder of their own; move it, or name a new folder in the competition's layout")
    assert _snapshot(data) == before
    assert not [p.name for p in data.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_data_option_leaves_a_download_folder_as_it_was(workdir: Path, tmp_path: Path) -> None:
    download = tmp_path / "download"
    _pixel_csv(download / "train.csv")
    _pixel_csv(download / "test.csv", rows=6, label=False)
    (download / "notes.txt").write_text("mine\n")
    _own_folder(download / "mine")
    before = _snapshot(download)
    _pixel_toml(workdir, "digitrec", test_csv="test.csv")
    for _ in range(2):  # the second read finds the folders flow wrote and keeps them
        result = flow("eda", "digitrec", "--data", download)
        assert result.exit_code == 0, result.output
    after = _snapshot(download)
    assert {k: v for k, v in after.items() if k.split("/")[0] not in ("train", "test")} == before
    made = sorted(k for k in after if k not in before)
    assert len(made) == 20 + 6 + 2 and f"train/{FINGERPRINT}" in made and f"test/{FINGERPRINT}" in made
    (download / "train.csv").write_text((download / "train.csv").read_text().replace("\n0,", "\n1,", 1))
    table = read_table(download, load_file(workdir / "competitions" / "digitrec.toml"))  # new CSV: written again
    assert table["label"].tolist()[:2] == [1, 1]


def test_embedded_data_never_replaces_a_folder_of_the_users(workdir: Path, tmp_path: Path) -> None:
    own = _own_folder(tmp_path / "mine")
    before = _snapshot(own)
    line = one_line_error(flow("eda", "digits", "--data", own))
    assert line == (f"Error: {own.relative_to(workdir)}: holds files that are not the embedded digits data; "
                    "flow writes it only into a new or empty folder")
    assert _snapshot(own) == before and not list(tmp_path.glob(".mine.*"))  # no staging folder left


# --- case 5: a label that pandas reads as missing is no class ---------------------------------------


def _label_tree(root: Path, bad: str) -> Path:
    """train.csv (id,label) naming train/*.png, its fourth row's label `bad`; a flat test/."""
    labels = ["cat", "dog", "cat", bad, "dog", "cat"]
    for i in range(len(labels)):
        write_image(root / "train" / f"img_{i}.png", seed=i)
    for i in range(2):
        write_image(root / "test" / f"t_{i}.png", seed=100 + i)
    (root / "train.csv").write_text("id,label\n" + "".join(f"img_{i}.png,{v}\n" for i, v in enumerate(labels)))
    return root


MISSING_WORDS = ["NaN", "NA", "null", "None", "n/a", "nan", "#N/A"]


@pytest.mark.parametrize("word", MISSING_WORDS)
def test_init_refuses_a_label_pandas_reads_as_missing(workdir: Path, tmp_path: Path, word: str) -> None:
    tree = _label_tree(tmp_path / "download", word)
    line = one_line_error(flow("init", "pets", "--from", tree))
    assert line == (f"Error: {(tree / 'train.csv').relative_to(workdir)} line 5: label '{word}' is a word for a "
                    "missing value (pandas reads it as NaN), not a class")
    assert not (workdir / "competitions" / "pets.toml").exists()


@pytest.mark.parametrize("word", MISSING_WORDS)
def test_reading_the_table_refuses_a_label_pandas_reads_as_missing(workdir: Path, tmp_path: Path, word: str) -> None:
    tree = _label_tree(tmp_path / "pets", word)
    file = workdir / "competitions" / "pets.toml"
    file.parent.mkdir()
    file.write_text(f'title = "pets"\nclasses = ["cat", "dog", "{word}"]\n\n[layout]\nkind = "csv"\n'
                    'train_csv = "train.csv"\nlabel_form = "name"\n')
    with pytest.raises(DataError) as err:
        read_table(tree, load_file(file))
    assert str(err.value) == (f"{tree / 'train.csv'} line 5: label '{word}' is a word for a missing value "
                              "(pandas reads it as NaN), not a class")


def test_an_empty_label_is_one_line_too(workdir: Path, tmp_path: Path) -> None:
    tree = _label_tree(tmp_path / "download", "")
    line = one_line_error(flow("init", "pets", "--from", tree))
    assert line == f"Error: {(tree / 'train.csv').relative_to(workdir)} line 5: empty label"


# --- case 7: two test images of one submission id -----------------------------------------------


def test_two_test_images_of_one_name_are_named_not_dropped(workdir: Path, tmp_path: Path) -> None:
    """test/day/ and test/night/ each hold same.png: the sample's ids are file names, so the
    submission cannot hold both; one line names both files and nothing is written."""
    tree = tmp_path / "raw" / "pets"
    for label, name in enumerate(["cat", "dog"]):
        for i in range(4):
            write_image(tree / "train" / name / f"{name}_{i}.png", seed=10 * label + i)
    names = [f"t_{i:02d}.png" for i in range(16)] + ["same.png"]
    for i, name in enumerate(names):
        write_image(tree / "test" / "day" / name, seed=100 + i)
    write_image(tree / "test" / "night" / "same.png", seed=999)  # 18 test images, 17 names
    (tree / "sample_submission.csv").write_text("id,label\n" + "".join(f"{n},0\n" for n in names))
    (workdir / "competitions").mkdir()
    (workdir / "competitions" / "pets.toml").write_text(
        'title = "pets"\nclasses = ["cat", "dog"]\n\n[layout]\nkind = "folders"\n')
    probs = np.full((18, 2), 0.5, dtype=np.float32)
    np.save(tmp_path / "test_probs.npy", probs)
    line = one_line_error(flow("submit", "pets", "--data", tree, "--probs", tmp_path / "test_probs.npy"))
    test = (tree / "test").relative_to(workdir)
    assert line == (f"Error: {test}/day/same.png and {test}/night/same.png: two test images with the one submission "
                    "id 'same.png' (its ids are the files' names); rename one, or move it out of the test folder")
    assert not (workdir / "submissions" / "pets").exists() or not list((workdir / "submissions" / "pets").glob("*.csv"))


def test_the_staging_folder_of_a_killed_pixel_write_is_removed_by_the_next(workdir: Path) -> None:
    """kill -9 while the PNGs of a pixel CSV were written left `.train.pixels.HOST.PID.RANDOM`: the next
    command that writes them removes it; a live writer's folder and a folder flow did not mark stay."""
    import os
    import subprocess
    import sys

    from kaggle_flow import fileio

    data = workdir / "data" / "digitrec"
    _pixel_csv(data / "train.csv")
    _pixel_toml(workdir, "digitrec")
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True).stdout)
    host = fileio._host_tag()
    staged = {"dead": f".train.pixels.{host}.{dead}.0123abcd", "live": f".train.pixels.{host}.{os.getpid()}.0123abcd",
              "no_marker": f".train.pixels.{host}.{dead}.4567abcd"}
    for key, name in staged.items():
        (data / name).mkdir()
        (data / name / "1.png").write_bytes(b"\x89PNG half written")
        if key != "no_marker":
            (data / name / fileio.STAGING_MARKER).write_text("")
    result = flow("eda", "digitrec")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in data.iterdir() if p.name.startswith(".")) == sorted([staged["live"], staged["no_marker"]])
    assert (data / "train" / FINGERPRINT).is_file() and not (data / "train" / fileio.STAGING_MARKER).exists()
