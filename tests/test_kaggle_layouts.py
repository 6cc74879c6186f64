"""Kaggle's downloads (bench/kaggle_trees.py) read with the TOML `flow init` writes for them: the
table, `flow import`, `flow run` to a checked, scored submission, and bad input as one line."""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from clitools import flow, one_line_error
from kaggle_trees import LAYOUTS, TEST_PER_CLASS, ZIPS, expected_counts, make, per_class, toml_differences

from kaggle_flow.competition import Competition, load_file
from kaggle_flow.data.images import load_image
from kaggle_flow.errors import DataError
from kaggle_flow.explore.scan import scan_images
from kaggle_flow.submit.score import score_submission
from kaggle_flow.submit.submission import expected_ids
from kaggle_flow.table.layouts import class_names, describe_counts, labelled, read_table, split_counts
from kaggle_flow.table.pixels import FINGERPRINT

FOLDERS = [name for name in LAYOUTS if name not in ZIPS]
# better than chance after 8 short epochs (measured on a 2-core CPU: every tree scores 0.8-1.0, log loss < 0.3)
GOOD = {"accuracy": 0.5, "micro_f1": 0.5, "kappa": 0.5, "auc": 0.8, "mean_auc": 0.8}
GOOD_LOGLOSS = 0.6


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every tree under one folder (root/NAME, root/NAME.toml), written once."""
    root = tmp_path_factory.mktemp("kaggle")
    for name in LAYOUTS:
        make(name, root)
    return root


def _comp(trees: Path, name: str) -> Competition:
    return load_file(trees / f"{name}.toml")


def _fresh(trees: Path, name: str, tmp_path: Path) -> tuple[Path, Competition]:
    """A copy of the tree of `name` to spoil, and its competition."""
    tree = tmp_path / name
    shutil.copytree(trees / name, tree)
    return tree, _comp(trees, name)


def _in_workdir(workdir: Path, trees: Path, name: str) -> None:
    (workdir / "competitions").mkdir(exist_ok=True)
    shutil.copy(trees / f"{name}.toml", workdir / "competitions" / f"{name}.toml")


# --- the table ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FOLDERS)
def test_each_tree_reads_into_the_table(trees: Path, name: str) -> None:
    comp = _comp(trees, name)
    table = read_table(trees / name, comp)
    assert split_counts(table) == expected_counts(name)
    counts = labelled(table).groupby("label").size()
    assert counts.to_dict() == {k: per_class(name)[0] for k in range(comp.num_classes)}
    sample = pd.read_csv(trees / name / "sample_submission.csv", dtype=str)
    test = table[table["split"] == "test"]
    assert sorted(expected_ids(comp, test)) == sorted(sample[comp.submission.id_column])
    assert all(Path(p).is_file() for p in table["path"])


def test_ids_without_extension_get_it_and_test_ids_come_from_the_csv_in_a_shared_folder(trees: Path) -> None:
    table = read_table(trees / "histopathologic", _comp(trees, "histopathologic"))
    assert table["id"].str.endswith(".tif").all()
    plant = read_table(trees / "plant_pathology", _comp(trees, "plant_pathology"))
    test = plant[plant["split"] == "test"]
    assert test["id"].tolist() == [f"Test_{i}.jpg" for i in range(4 * TEST_PER_CLASS)]  # test.csv's order
    assert not set(test["path"]) & set(plant[plant["split"] == "train"]["path"])


def test_tiff_images_scan_and_decode(trees: Path) -> None:
    paths = sorted(str(p) for p in (trees / "histopathologic" / "train").glob("*.tif"))[:4]
    scan = scan_images(paths, show_progress=False)
    assert scan["problem"].tolist() == [""] * 4 and set(scan["format"]) == {"TIFF"}
    image = load_image(paths[0], 32, 3)
    assert image.shape == (32, 32, 3) and image.dtype == "uint8" and image.max() > 0


def test_a_shared_folder_without_test_csv_takes_the_sample_ids(trees: Path, tmp_path: Path) -> None:
    tree, comp = _fresh(trees, "plant_pathology", tmp_path)
    comp = comp.model_copy(update={"layout": comp.layout.model_copy(update={"test_csv": None})})
    table = read_table(tree, comp)
    assert split_counts(table)["test"] == 4 * TEST_PER_CLASS
    (tree / "sample_submission.csv").unlink()
    assert split_counts(read_table(tree, comp)) == expected_counts("plant_pathology")  # the images no row reads


def test_toml_differences_name_the_keys_a_written_toml_gets_wrong(trees: Path, tmp_path: Path) -> None:
    written = tmp_path / "aptos.toml"
    text = (trees / "aptos.toml").read_text().replace('title = "APTOS 2019 Blindness Detection"', 'title = "aptos"')
    written.write_text(text)
    assert toml_differences(trees / "aptos.toml", written) == []
    written.write_text(text.replace('id_extension = ".png"\n', "").replace('id_form = "stem"', 'id_form = "name"'))
    assert toml_differences(trees / "aptos.toml", written) == [
        "layout.id_extension: expected '.png', written ''",
        "submission.id_form: expected 'stem', written 'name'",
    ]


def test_label_map_names_the_classes_and_the_codes_stay_the_classes(trees: Path) -> None:
    comp = _comp(trees, "cassava")
    assert comp.classes == ["0", "1", "2", "3", "4"]
    assert class_names(trees / "cassava", comp)[4] == "Healthy"
    assert class_names(trees / "aptos", _comp(trees, "aptos")) == ["0", "1", "2", "3", "4"]


def test_pixels_are_written_once_per_csv(trees: Path, tmp_path: Path) -> None:
    tree, comp = _fresh(trees, "digit_recognizer", tmp_path)
    shutil.rmtree(tree / "train", ignore_errors=True)
    shutil.rmtree(tree / "test", ignore_errors=True)
    table = read_table(tree, comp)
    test = table[table["split"] == "test"]
    assert test["id"].tolist()[:3] == ["1.png", "2.png", "3.png"] and (tree / "train" / FINGERPRINT).is_file()
    first = (tree / "train" / "1.png").stat().st_ino, (tree / "train" / "1.png").stat().st_mtime_ns
    assert read_table(tree, comp).equals(table)
    assert ((tree / "train" / "1.png").stat().st_ino, (tree / "train" / "1.png").stat().st_mtime_ns) == first
    frame = pd.read_csv(tree / "train.csv")
    frame.iloc[:, 0] = frame.iloc[:, 0].to_numpy()[::-1]  # other labels: the images are written again
    frame.to_csv(tree / "train.csv", index=False)
    again = read_table(tree, comp)
    assert again["label"].tolist()[:1] == [int(frame.iloc[0, 0])]
    assert not [p for p in tree.iterdir() if p.name.startswith(".")]  # no staging folder left


# --- flow import and flow run --------------------------------------------------------------------


@pytest.mark.parametrize("name", FOLDERS)
def test_each_tree_imports_and_runs_to_a_scored_submission(workdir: Path, trees: Path, name: str) -> None:
    _in_workdir(workdir, trees, name)
    result = flow("import", name, trees / name)
    assert result.exit_code == 0, result.output
    assert f"Imported {name} into data/{name}: {describe_counts(expected_counts(name))}" in result.output
    assert "Warning" not in result.output
    result = flow("run", name, "--epochs", "8", "--lr", "3e-3", "--model", "smallcnn", "--size", "28",
                  "--batch-size", "16")
    assert result.exit_code == 0, result.output
    comp = load_file(workdir / "competitions" / f"{name}.toml")
    (file,) = [p for p in (workdir / "submissions" / name).glob("*.csv") if p.name != "ledger.csv"]
    submitted = pd.read_csv(file, dtype=str)
    sample = pd.read_csv(workdir / "data" / name / "sample_submission.csv", dtype=str)
    assert list(submitted.columns) == list(sample.columns)
    assert submitted[comp.submission.id_column].tolist() == sample[comp.submission.id_column].tolist()
    score = score_submission(comp, file, workdir / "data" / name / "solution.csv")
    assert f"local {comp.metric} {score:.4f}" in result.output
    if comp.metric == "logloss":
        assert score < GOOD_LOGLOSS, result.output
    else:
        assert score > GOOD[comp.metric], result.output


def test_a_zipped_tree_of_tiff_images_imports(workdir: Path, trees: Path) -> None:
    _in_workdir(workdir, trees, "histopathologic")
    archive = workdir / "histopathologic-cancer-detection.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((trees / "histopathologic").rglob("*")):
            zf.write(path, path.relative_to(trees / "histopathologic").as_posix())
    result = flow("import", "histopathologic", archive)
    assert result.exit_code == 0, result.output
    assert describe_counts(expected_counts("histopathologic")) in result.output


def test_the_older_aerial_cactus_zip_with_zips_inside_imports(workdir: Path, trees: Path) -> None:
    _in_workdir(workdir, trees, "aerial_cactus_zip")
    result = flow("import", "aerial_cactus_zip", trees / ZIPS["aerial_cactus_zip"])
    assert result.exit_code == 0, result.output
    assert describe_counts(expected_counts("aerial_cactus_zip")) in result.output


# --- bad input: one line naming the file, the line and the column ------------------------------


def _error(tree: Path, comp: Competition) -> str:
    with pytest.raises(DataError) as caught:
        read_table(tree, comp)
    message = str(caught.value)
    assert "\n" not in message
    return message


def _edit_line(file: Path, line: int, edit: object) -> None:
    lines = file.read_text().splitlines()
    lines[line - 1] = edit(lines[line - 1])  # type: ignore[operator]
    file.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("csv", "line", "edit", "expected"),
    [
        ("train.csv", 5, lambda s: s + ",0", "train.csv line 5: 786 values, expected 785 (one per column of the header)"),
        ("train.csv", 6, lambda s: s.rsplit(",", 1)[0], "train.csv line 6: 784 values, expected 785 (one per column of the header)"),
        ("train.csv", 7, lambda s: s.rsplit(",", 1)[0] + ",256",
         "train.csv line 7, column 'pixel783': '256' is not a pixel value (a whole number 0-255)"),
        ("test.csv", 3, lambda s: "-1," + s.split(",", 1)[1],
         "test.csv line 3, column 'pixel0': '-1' is not a pixel value (a whole number 0-255)"),
        ("test.csv", 4, lambda s: "x," + s.split(",", 1)[1],
         "test.csv line 4, column 'pixel0': 'x' is not a pixel value (a whole number 0-255)"),
        ("train.csv", 8, lambda s: "10," + s.split(",", 1)[1], "train.csv line 8: unknown label '10' (a class index 0-9)"),
        ("train.csv", 1, lambda s: s.rsplit(",", 1)[0],
         "train.csv line 1: 783 pixel columns, expected 784 (28x28 images: layout.image_side = 28)"),
    ],
)
def test_bad_pixel_rows_are_one_line(trees: Path, tmp_path: Path, csv: str, line: int, edit: object, expected: str) -> None:
    tree, comp = _fresh(trees, "digit_recognizer", tmp_path)
    _edit_line(tree / csv, line, edit)
    assert _error(tree, comp) == f"{tree / expected.split(' ', 1)[0]} {expected.split(' ', 1)[1]}"


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("Train_3,0,0,0,0", "line 5: no class marked 1 in healthy, multiple_diseases, rust, scab; one-hot rows mark exactly one"),
        ("Train_3,1,0,1,0", "line 5: 2 classes marked 1 (healthy, rust) in healthy, multiple_diseases, rust, scab; "
                            "one-hot rows mark exactly one"),
        ("Train_3,0,2,0,0", "line 5: column 'multiple_diseases' holds '2' (one-hot columns hold 0 or 1)"),
    ],
)
def test_bad_one_hot_rows_are_one_line(trees: Path, tmp_path: Path, row: str, expected: str) -> None:
    tree, comp = _fresh(trees, "plant_pathology", tmp_path)
    _edit_line(tree / "train.csv", 5, lambda _: row)
    assert _error(tree, comp) == f"{tree / 'train.csv'} {expected}"


def test_labels_outside_the_classes_are_one_line(trees: Path, tmp_path: Path) -> None:
    tree, comp = _fresh(trees, "aptos", tmp_path)
    _edit_line(tree / "train.csv", 4, lambda s: s.split(",")[0] + ",5")
    assert _error(tree, comp) == f"{tree / 'train.csv'} line 4: unknown label '5' (a class index 0-4)"
    tree, comp = _fresh(trees, "cassava", tmp_path)
    (tree / "label_num_to_disease_map.json").write_text('{"0": "CBB", "7": "Unknown"}')
    assert _error(tree, comp) == f"{tree / 'label_num_to_disease_map.json'}: label code '7' is not a class (0, 1, 2, 3, 4)"


def test_a_missing_image_names_the_csv_line_with_the_extension_appended(trees: Path, tmp_path: Path) -> None:
    tree, comp = _fresh(trees, "histopathologic", tmp_path)
    image_id = pd.read_csv(tree / "train_labels.csv", dtype=str)["id"].iloc[2]
    os.remove(tree / "train" / f"{image_id}.tif")
    assert _error(tree, comp) == f"{tree / 'train_labels.csv'} line 4: image '{image_id}.tif' not found in {tree / 'train'}"
    tree, comp = _fresh(trees, "plant_pathology", tmp_path)
    os.remove(tree / "images" / "Test_2.jpg")
    assert _error(tree, comp) == f"{tree / 'test.csv'} line 4: image 'Test_2.jpg' not found in {tree / 'images'}"


def test_flow_import_says_a_bad_pixel_row_in_one_line(workdir: Path, trees: Path, tmp_path: Path) -> None:
    tree, _ = _fresh(trees, "digit_recognizer", tmp_path)
    shutil.rmtree(tree / "train", ignore_errors=True)
    _edit_line(tree / "train.csv", 9, lambda s: s + ",1")
    _in_workdir(workdir, trees, "digit_recognizer")
    line = one_line_error(flow("import", "digit_recognizer", tree))
    assert line.endswith("train.csv line 9: 786 values, expected 785 (one per column of the header)"), line


def test_eda_split_and_balance_show_the_label_maps_names(workdir: Path, trees: Path) -> None:
    _in_workdir(workdir, trees, "cassava")
    assert flow("import", "cassava", trees / "cassava").exit_code == 0
    result = flow("eda", "cassava")
    assert result.exit_code == 0, result.output
    report = json.loads((workdir / "runs" / "cassava" / "eda" / "report.json").read_text())
    assert [c["class"] for c in report["classes"]] == [
        "Cassava Bacterial Blight (CBB)", "Cassava Brown Streak Disease (CBSD)", "Cassava Green Mottle (CGM)",
        "Cassava Mosaic Disease (CMD)", "Healthy",
    ]
    assert "Healthy" in result.output
    for args in (("split", "cassava"), ("balance", "cassava")):
        result = flow(*args)
        assert result.exit_code == 0, result.output
        assert "Healthy" in result.output and "Mosaic" in result.output
    result = flow("train", "cassava", "--epochs", "1", "--model", "smallcnn", "--size", "28")
    assert result.exit_code == 0, result.output
    worst = re.search(r"worst class recall\W+(\w+)", result.output)
    assert worst and worst.group(1) in ("Cassava", "Healthy"), result.output  # a name, not the code
    shown, submission = flow("submit", "cassava").output.split("Wrote ")
    assert "Healthy" in shown and "Mosaic" in shown  # the training vs. predicted table names the classes
    assert set(pd.read_csv(workdir / submission.split()[0])["label"]) <= set(range(5))  # the submission keeps the codes
