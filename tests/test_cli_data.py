from __future__ import annotations

import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from clitools import flow, one_line_error, runner
from trees import garbage_tree, lemon_tree, palm_tree, zodiac_tree

from kaggle_flow.cli import app
from kaggle_flow.explore.balance import balance_setting
from kaggle_flow.explore.split import load_folds, train_val
from kaggle_flow.workspace import open_workspace


def test_competitions_lists_all(workdir: Path) -> None:
    result = flow("competitions")
    assert result.exit_code == 0, result.output
    for name in ("digits", "garbage", "lemon", "mnist", "palm", "zodiac"):
        assert name in result.output


def _table_rows(output: str, names: list[str]) -> dict[str, list[int]]:
    """The numbers of each class's row in a printed table."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if cells[0] in names:
            rows[cells[0]] = [int(c) for c in cells[1:]]
    return rows


def test_ten_folds_fit_an_80_column_terminal(workdir: Path) -> None:
    result = flow("split", "digits", "--folds", "10")
    assert result.exit_code == 0, result.output
    table = [line for line in result.output.splitlines() if line[:1] in "┏┃┡│└"]
    assert max(map(len, table)) <= 80 and "…" not in result.output  # headers wrap, counts stay
    folds = pd.read_csv(workdir / "runs/digits/folds.csv")
    counts = pd.crosstab(folds["id"].map(dict(zip(*open_workspace("digits").table(quiet=True)[["id", "label"]].T.to_numpy()))), folds["fold"])
    assert _table_rows(result.output, [str(c) for c in counts.index]) == {str(k): v.tolist() for k, v in counts.iterrows()}


@pytest.mark.parametrize("folds", [9, 16])
def test_many_folds_of_long_class_names_fit_80_columns(workdir: Path, tmp_path: Path, folds: int) -> None:
    root = lemon_tree(tmp_path / "lemon", per_class=2 * folds)
    result = runner.invoke(app, ["split", "lemon", "--data", str(root), "--folds", str(folds)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(map(len, lines[1:-1])) <= 80 and "…" not in result.output  # every column, its numbers whole
    row = next(line for line in lines if line.strip("│ ").startswith("off_grade"))
    assert [int(c) for c in row.replace("│", " ").split()[1:]] == [2] * folds


def test_split_then_balance_on_embedded_mnist(workdir: Path) -> None:
    result = flow("split", "mnist", "--folds", "5", "--seed", "1", "--ignore-near")  # folds of 800 exactly
    assert result.exit_code == 0, result.output
    folds = pd.read_csv(workdir / "runs/mnist/folds.csv")
    assert len(folds) == 4000 and sorted(folds["fold"].unique()) == [0, 1, 2, 3, 4]
    assert "Saved 5 stratified folds (seed 1) to runs/mnist/folds.csv (4000 labelled images)" in result.output

    result = flow("balance", "--fold", "2")  # competition remembered from the last command
    assert result.exit_code == 0, result.output
    assert "Using competition 'mnist' (the last one used here)" in result.output
    assert (
        "Label shuffling is on for later `flow train mnist` runs (runs/mnist/balance.json); "
        "`flow balance mnist --off` or `flow train --no-balance` turns it off"
    ) in result.output
    ws = open_workspace("mnist", remember_it=False)
    assert balance_setting(ws) is True
    train = folds[folds["fold"] != 2]  # the training rows of fold 2: validation rows never enter
    shown = _table_rows(result.output, ws.comp.classes)
    assert sum(before for before, _ in shown.values()) == len(train) == 3200

    result = flow("balance", "--off")
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(
        "Label shuffling is off for later `flow train mnist` runs (runs/mnist/balance.json); `flow balance mnist` turns it on"
    )
    assert balance_setting(ws) is False


def test_balance_pads_every_class_to_the_largest(workdir: Path, tmp_path: Path) -> None:
    root = lemon_tree(tmp_path / "lemon", per_class=[8, 4, 6, 10])
    assert flow("split", "lemon", "--data", str(root), "--folds", "2").exit_code == 0
    result = flow("balance", "lemon", "--data", str(root), "--fold", "1")
    assert result.exit_code == 0, result.output
    assert "Label shuffling, fold 1 (training rows only)" in result.output
    assert _table_rows(result.output, ["excellent", "good", "off_grade", "processed"]) == {
        "excellent": [4, 5], "good": [2, 5], "processed": [3, 5], "off_grade": [5, 5],
    }


def test_balance_before_split_makes_the_default_folds(workdir: Path) -> None:
    result = flow("balance", "mnist")
    assert result.exit_code == 0, result.output
    assert "No folds yet: made a stratified 10% hold-out (seed 42) as fold 0 in runs/mnist/folds.csv" in result.output
    folds = pd.read_csv(workdir / "runs/mnist/folds.csv")
    assert (folds["fold"] == 0).sum() == 400


def test_balance_unknown_fold_changes_nothing(workdir: Path) -> None:
    assert flow("split", "mnist").exit_code == 0
    assert one_line_error(flow("balance", "mnist", "--fold", "1")) == "Error: fold 1 does not exist (folds: 0-0)"
    assert balance_setting(open_workspace("mnist", remember_it=False)) is None


def test_default_split_uses_the_downloads_validation_set(workdir: Path, tmp_path: Path) -> None:
    root = zodiac_tree(tmp_path / "zodiac")
    result = flow("split", "zodiac", "--data", str(root))
    assert result.exit_code == 0, result.output
    assert (
        "Saved the download's validation set (36 images) as fold 0 to runs/zodiac/folds.csv (72 labelled images)"
    ) in result.output
    assert _table_rows(result.output, ["pig"]) == {"pig": [3, 3]}  # train only, fold 0
    ws = open_workspace("zodiac", root, remember_it=False)
    table = ws.table()
    train, val = train_val(table, load_folds(ws, table), 0)
    assert set(val["id"]) == set(table.loc[table["split"] == "valid", "id"])
    assert not train["id"].str.startswith("valid/").any()

    result = flow("split", "zodiac", "--data", str(root), "--folds", "3")  # pools train and valid
    assert result.exit_code == 0, result.output
    assert "Saved 3 stratified folds (seed 42) to runs/zodiac/folds.csv (72 labelled images)" in result.output
    train, val = train_val(table, load_folds(ws, table), 0)
    assert len(val) == 24 and train["id"].str.startswith("valid/").any()


def test_default_split_without_a_validation_set(workdir: Path, tmp_path: Path) -> None:
    root = garbage_tree(tmp_path / "garbage", per_class=10)
    result = flow("split", "garbage", "--data", str(root))
    assert result.exit_code == 0, result.output
    assert "Saved a stratified 10% hold-out (seed 42) as fold 0 to runs/garbage/folds.csv (20 labelled images)" in result.output
    assert _table_rows(result.output, ["other", "recyclable"]) == {"other": [9, 1], "recyclable": [9, 1]}


def test_class_only_in_the_validation_set(workdir: Path, tmp_path: Path) -> None:
    root = zodiac_tree(tmp_path / "zodiac")
    shutil.rmtree(root / "train" / "pig")
    assert one_line_error(flow("split", "zodiac", "--data", str(root))) == (
        "Error: class 'pig' has no images outside the download's validation set; "
        "pool them: flow split --val-size F or --folds K"
    )
    assert flow("split", "zodiac", "--data", str(root), "--val-size", "0.5").exit_code == 0


def _edit_lines(file: Path, edit: Callable[[list[str]], list[str]]) -> None:
    file.write_text("\n".join(edit(file.read_text().splitlines())) + "\n")


@pytest.mark.parametrize(
    "edit",
    [
        lambda lines: [lines[0], lines[1].replace(",0", ",1"), *lines[2:]],  # a label changed
        lambda lines: lines[:-1],  # a row removed
    ],
    ids=["label-changed", "row-removed"],
)
def test_folds_made_from_other_data(workdir: Path, tmp_path: Path, edit: Callable[[list[str]], list[str]]) -> None:
    root = lemon_tree(tmp_path / "lemon", per_class=6)
    assert flow("split", "lemon", "--data", str(root), "--folds", "2").exit_code == 0
    assert flow("balance", "lemon", "--data", str(root)).exit_code == 0  # same data: the folds fit
    _edit_lines(root / "train_images.csv", edit)
    stale = "Error: runs/lemon/folds.csv was made from other data; run flow split lemon again"
    assert one_line_error(flow("balance", "lemon", "--data", str(root))) == stale
    assert flow("split", "lemon", "--data", str(root), "--folds", "2").exit_code == 0
    assert flow("balance", "lemon", "--data", str(root)).exit_code == 0


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


def test_import_counts_the_downloads_validation_set(workdir: Path, tmp_path: Path) -> None:
    result = flow("import", "zodiac", str(zodiac_tree(tmp_path / "signs")))
    assert result.exit_code == 0, result.output
    assert "Imported zodiac into data/zodiac: 36 training, 36 validation and 5 test images" in result.output


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


# --- downloads as they come --------------------------------------------------------------------


def test_import_palm_as_downloaded_says_there_are_no_test_images(workdir: Path, tmp_path: Path) -> None:
    from course_trees import make_palm

    archive = _zip(make_palm(tmp_path / "palm", scale=0.02), tmp_path / "palm.zip", prefix="")
    result = flow("import", "palm", archive)
    assert result.exit_code == 0, result.output
    no_test = (
        "palm: no test images (no PALM-Testing400 folder in data/palm); nothing to submit: "
        "flow train scores each run on the download's 8 validation images"
    )
    imported = "Imported palm into data/palm: 8 training, 8 validation and 0 test images"
    assert result.output.splitlines() == [no_test, imported]
    assert (workdir / "data/palm/PALM-Training400/PALM-Training400/P0001.jpg").is_file()

    result = flow("eda", "palm")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == no_test
    assert "palm: 8 training, 8 validation and 0 test images" in result.output
    result = flow("split", "palm")
    assert "Saved the download's validation set (8 images) as fold 0" in result.output


def test_bad_xlsx_label_through_cli(workdir: Path, tmp_path: Path) -> None:
    from course_trees import PALM_GT, make_palm

    root = make_palm(tmp_path / "palm", scale=0.02)
    frame = pd.read_excel(root / PALM_GT)
    frame.loc[1, "Label"] = 2
    frame.to_excel(root / PALM_GT, index=False)
    line = f"palm/{PALM_GT} row 3: unknown label '2' (a class index 0-1)"  # root, relative to the working directory
    assert one_line_error(flow("split", "palm", "--data", root)) == f"Error: {line}"
    # import names the file the user gave, not its copy in a staging folder
    assert one_line_error(flow("import", "palm", root)) == f"Error: the files do not match the 'palm' layout: {line}"
    assert not (workdir / "data/palm").exists()


def test_import_and_eda_warn_when_the_layout_reads_far_fewer_images(workdir: Path, tmp_path: Path) -> None:
    from trees import write_image

    root = lemon_tree(tmp_path / "lemon")
    for i in range(30):  # the second half of a download in a folder the layout does not name
        write_image(root / "more_images" / f"extra_{i:03d}.jpg", seed=i)
    warning = (
        "Warning: data/lemon: the layout reads 21 of the 51 images below it; images in folders the layout "
        f"does not read: more_images (30); see layout.train_dir in {_toml('lemon')}"
    )
    result = flow("import", "lemon", root)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [warning, "Imported lemon into data/lemon: 16 training and 5 test images"]
    result = flow("eda", "lemon")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == warning


def _toml(name: str) -> Path:
    from kaggle_flow.competition import get_competition

    path = get_competition(name).path
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
