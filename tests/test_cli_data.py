from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd
from clitools import flow, one_line_error
from trees import garbage_tree, lemon_tree, palm_tree, zodiac_tree


def test_competitions_lists_all(workdir: Path) -> None:
    result = flow("competitions")
    assert result.exit_code == 0, result.output
    for name in ("digits", "garbage", "lemon", "mnist", "palm", "zodiac"):
        assert name in result.output


def test_split_then_balance_on_embedded_mnist(workdir: Path) -> None:
    result = flow("split", "mnist", "--folds", "5", "--seed", "1")
    assert result.exit_code == 0, result.output
    folds = pd.read_csv(workdir / "runs/mnist/folds.csv")
    assert len(folds) == 4000 and sorted(folds["fold"].unique()) == [0, 1, 2, 3, 4]
    assert "Saved 5 stratified folds of 4000 images to runs/mnist/folds.csv" in result.output

    result = flow("balance", "--fold", "2")  # competition remembered from the last command
    assert result.exit_code == 0, result.output
    assert "Using competition 'mnist' (the last one used here)" in result.output
    balanced = pd.read_csv(workdir / "runs/mnist/balanced_fold2.csv")
    val_ids = set(folds.loc[folds["fold"] == 2, "id"])
    assert not set(balanced["id"]) & val_ids
    assert balanced["label"].value_counts().nunique() == 1


def test_no_competition_yet(workdir: Path) -> None:
    assert one_line_error(flow("split")) == (
        "Error: no competition given and none used before in this directory: name one, e.g. `flow eda mnist`"
    )


def test_missing_data_folder(workdir: Path) -> None:
    assert one_line_error(flow("split", "lemon")) == (
        "Error: data/lemon: no data for 'lemon' here; download the lemon_lesson data set from AI Studio, "
        "then: flow import lemon lemon_lesson.zip"
    )


def test_split_class_too_small(workdir: Path, tmp_path: Path) -> None:
    root = lemon_tree(tmp_path / "lemon", per_class=3)
    assert one_line_error(flow("split", "lemon", "--data", str(root), "--folds", "5")) == (
        "Error: class 'excellent' has 3 images, fewer than the 5 folds asked for"
    )


def test_bad_csv_through_cli(workdir: Path, tmp_path: Path) -> None:
    root = lemon_tree(tmp_path / "lemon")
    (root / "train_images.csv").write_text("id,class_num\ntrain_0_000.jpg,zero\n")
    before = (root / "train_images.csv").read_bytes()
    assert one_line_error(flow("split", "lemon", "--data", str(root))) == (
        f"Error: {root}/train_images.csv line 2: unknown label 'zero' (a class index 0-3)"
    )
    assert (root / "train_images.csv").read_bytes() == before


def test_split_on_each_layout(workdir: Path, tmp_path: Path) -> None:
    for name, make in (("zodiac", zodiac_tree), ("palm", palm_tree), ("garbage", garbage_tree)):
        root = make(tmp_path / name)
        result = flow("split", name, "--data", str(root), "--folds", "2")
        assert result.exit_code == 0, (name, result.output)
        assert (workdir / "runs" / name / "folds.csv").is_file()


def _zip(folder: Path, file: Path, prefix: str = "lemon_lesson/") -> Path:
    with zipfile.ZipFile(file, "w") as zf:
        for path in folder.rglob("*"):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(folder).as_posix())
    return file


def test_import_zip(workdir: Path, tmp_path: Path) -> None:
    archive = _zip(lemon_tree(tmp_path / "src"), tmp_path / "lemon.zip")
    result = flow("import", "lemon", str(archive))
    assert result.exit_code == 0, result.output
    assert "Imported lemon into data/lemon: 16 training and 5 test images" in result.output
    assert (workdir / "data/lemon/train_images.csv").is_file()
    assert one_line_error(flow("import", "lemon", str(archive))) == (
        "Error: data/lemon: already holds data; pass --force to replace it"
    )


def test_import_refuses_zip_slip(workdir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../evil.txt", "x")
    line = one_line_error(flow("import", "lemon", str(archive)))
    assert line == f"Error: {archive}: entry '../../evil.txt' would land outside " + line.split("outside ")[1]
    assert line.endswith("; refused")
    assert not (workdir / "data/lemon").exists()
    assert not list(tmp_path.rglob("evil.txt"))


def test_import_wrong_layout_keeps_nothing(workdir: Path, tmp_path: Path) -> None:
    archive = _zip(garbage_tree(tmp_path / "src"), tmp_path / "garbage.zip", prefix="")
    line = one_line_error(flow("import", "lemon", str(archive)))
    assert line.startswith("Error: the files do not match the 'lemon' layout: ")
    assert not (workdir / "data/lemon").exists()
    assert [p.name for p in (workdir / "data").iterdir()] == ["digits", "mnist"]


def test_init_from_folders_then_split(workdir: Path, tmp_path: Path) -> None:
    root = folder_root = garbage_tree(tmp_path / "shapes")
    result = flow("init", "shapes", "--from", str(folder_root))
    assert result.exit_code == 0, result.output
    text = (workdir / "competitions/shapes.toml").read_text()
    assert 'classes = ["other", "recyclable"]' in text and 'kind = "folders"' in text
    assert flow("import", "shapes", str(root)).exit_code == 0
    result = flow("split", "shapes", "--folds", "2")
    assert result.exit_code == 0, result.output


def test_init_from_csv(workdir: Path, tmp_path: Path) -> None:
    root = lemon_tree(tmp_path / "lem")
    result = flow("init", "lem", "--from", str(root / "train_images.csv"))
    assert result.exit_code == 0, result.output
    text = (workdir / "competitions/lem.toml").read_text()
    assert 'classes = ["0", "1", "2", "3"]' in text
    assert 'train_dir = "train_images"' in text and 'test_dir = "test_images"' in text
    assert one_line_error(flow("init", "lem", "--from", str(root))) == (
        "Error: competitions/lem.toml: already exists; edit it or remove it first"
    )
