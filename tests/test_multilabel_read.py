"""Multi-label downloads as Kaggle ships them (Planet, Human Protein Atlas, iMet, Plant Pathology 2021):
`flow init --from` says target multi with the training labels' classes, the tags kind and mean F2;
`flow import` reads each image's set; `flow submit` and `flow score` write and score tags; `flow eda`
counts labels per image and co-occurrences; a bad cell is one line naming its file, line and value."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clitools import flow, one_line_error
from multilabel_trees import IMET, PLANET, PLANT, SPECS, make

from kaggle_flow.competition import load_file
from kaggle_flow.metrics import METRICS
from kaggle_flow.table.infer import _tag_cells
from kaggle_flow.target import TARGETS
from kaggle_flow.workspace import open_workspace

CLASSES = {"planet": PLANET, "hpa": ["0", "1", "2", "3", "4"], "imet": ["0", "1", "2", "3", "4"], "plant2021": PLANT}
NAMES = {"planet": PLANET, "hpa": CLASSES["hpa"], "imet": IMET, "plant2021": PLANT}  # as tables and plots show them
FORM = {"planet": "name", "hpa": "index", "imet": "index", "plant2021": "name"}


def _expected_labels(name: str, tree: Path) -> list[str]:
    """The training CSV's cells as the canonical table keeps them: class indices, ascending."""
    spec = SPECS[name]
    frame = pd.read_csv(tree / spec["train_csv"], dtype=str)
    classes = CLASSES[name]
    return [" ".join(str(i) for i in sorted(classes.index(t) for t in cell.split())) for cell in frame[spec["columns"][1]]]


@pytest.mark.parametrize("name", list(SPECS))
def test_init_reads_a_multi_label_download_and_import_reads_its_sets(workdir: Path, tmp_path: Path, name: str) -> None:
    tree = make(name, tmp_path / "downloads")
    result = flow("init", name, "--from", tree)
    assert result.exit_code == 0, result.output
    assert "metric: mean_f2 assumed (the sample holds space-separated tags)" in result.output
    assert "multi-label (target multi)" in result.output
    comp = load_file(workdir / "competitions" / f"{name}.toml")
    assert (comp.target, comp.metric, comp.submission.kind) == ("multi", "mean_f2", "tags")
    assert comp.classes == CLASSES[name]  # the training labels' tokens: never the sample's default row ("road")
    assert (comp.layout.label_form, comp.submission.label_form) == (FORM[name], FORM[name])
    assert comp.submission.label_column == SPECS[name].get("sample_column", SPECS[name]["columns"][1])

    result = flow("import", name, tree)
    assert result.exit_code == 0, result.output
    assert "30 training and 6 test images" in result.output
    ws = open_workspace(name)
    table = ws.table()
    train = table[table["split"] == "train"]
    assert train["labels"].tolist() == _expected_labels(name, tree)
    assert table.loc[table["split"] == "test", "labels"].isna().all()
    assert "label" not in table.columns
    assert ws.class_names() == NAMES[name]  # iMet: the names of labels.csv


def test_init_reads_zero_one_columns_with_several_ones_as_multi_label(workdir: Path, tmp_path: Path) -> None:
    tree = make("hpa", tmp_path / "d")
    expected = _expected_labels("hpa", tree)
    train = pd.read_csv(tree / "train.csv", dtype=str)
    hot = pd.DataFrame([[int(str(c) in cell.split()) for c in range(5)] for cell in train["Target"]], columns=list("abcde"))
    pd.concat([train[["Id"]], hot], axis=1).to_csv(tree / "train.csv", index=False)
    (tree / "sample_submission.csv").unlink()
    result = flow("init", "hot", "--from", tree, "--metric", "macro_f1")
    assert result.exit_code == 0, result.output
    assert "labels: 0/1 columns a, b, c, d, e, several 1s a row: multi-label (target multi) (train.csv)" in result.output
    assert "no sample_submission.csv; assumed space-separated tags a row: Id,label" in result.output
    comp = load_file(workdir / "competitions/hot.toml")
    assert (comp.target, comp.classes, comp.layout.label_columns, comp.submission.kind) == ("multi", list("abcde"), list("abcde"), "tags")
    assert flow("import", "hot", tree).exit_code == 0
    assert open_workspace("hot").table()["labels"].dropna().tolist() == expected


def test_class_names_with_a_space_are_one_class_each_not_tags() -> None:
    seedlings = ["Common Chickweed", "Sugar beet", "Common wheat", "Black-grass", "Loose Silky-bent"] * 4
    assert not _tag_cells(seedlings)
    assert _tag_cells(["clear primary", "clear", "haze primary water", "primary"] * 5)


# --- submissions of tags ----------------------------------------------------------------------------


@pytest.fixture
def planet(workdir: Path, tmp_path: Path) -> Path:
    tree = make("planet", tmp_path / "downloads")
    assert flow("init", "planet", "--from", tree).exit_code == 0
    assert flow("import", "planet", tree).exit_code == 0
    return workdir / "data" / "planet"


def test_submit_writes_tags_and_score_reads_them(planet: Path) -> None:
    probs = np.random.default_rng(0).random((6, 5)).astype(np.float32)
    np.save("probs.npy", probs)
    result = flow("submit", "planet", "--probs", "probs.npy")
    assert result.exit_code == 0, result.output
    assert "checked: every test id once, tags in the class set and distinct" in result.output
    (file,) = Path("submissions/planet").glob("2*.csv")
    frame = pd.read_csv(file, dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["image_name", "tags"]
    assert frame["image_name"].tolist() == [f"test_{i}" for i in reversed(range(6))]  # the sample's order
    want = [" ".join(PLANET[j] for j in np.flatnonzero(row >= 0.5)) for row in probs[::-1]]
    assert frame["tags"].tolist() == want
    solution = pd.read_csv(planet / "solution.csv", dtype=str)
    y_true = np.array([[int(t in cell.split()) for t in PLANET] for cell in solution["tags"]])
    result = flow("score", "planet")
    assert result.exit_code == 0, result.output
    assert f"Local mean_f2 of submissions/planet/{file.name}: {METRICS['mean_f2'](y_true, probs.astype(np.float64)):.4f}" in result.output


def test_submit_decides_at_the_runs_thresholds(planet: Path) -> None:
    from clitools import fake_run

    from kaggle_flow.thresholds import Thresholds, write_thresholds

    run = fake_run(Path("runs/planet"), "r1", comp="planet", classes=5, image_size=16, batch_size=8)
    cut = np.array([0.9, 0.9, 0.9, 0.9, 0.05])  # water for nearly every image, the others hardly ever
    write_thresholds(run.path, Thresholds(cut, score_at_half=0.5, score=0.6))
    probs = np.random.default_rng(1).random((6, 5)).astype(np.float32)
    np.save(run.path / "probs.npy", probs)
    result = flow("submit", "planet", "--probs", run.path / "probs.npy")
    assert result.exit_code == 0, result.output
    (file,) = Path("submissions/planet").glob("2*.csv")
    frame = pd.read_csv(file, dtype=str, keep_default_na=False)
    assert frame["tags"].tolist() == [" ".join(PLANET[j] for j in np.flatnonzero(row >= cut)) for row in probs[::-1]]


def test_a_tag_not_in_the_vocabulary_is_one_line(planet: Path) -> None:
    lines = (planet / "solution.csv").read_text().splitlines()
    lines[4] = lines[4].split(",")[0] + ",clear cloudy2"
    Path("bad.csv").write_text("\n".join(lines) + "\n")
    assert one_line_error(flow("score", "planet", "bad.csv")) == (
        "Error: bad.csv line 5: tag 'cloudy2' is not a class name of 'planet': agriculture, clear, haze, primary, water")


# --- bad cells in the training labels ---------------------------------------------------------------


def _edit_line(file: Path, line: int, cell: str) -> None:
    lines = file.read_text().splitlines()
    lines[line - 1] = lines[line - 1].split(",")[0] + "," + cell
    file.write_text("\n".join(lines) + "\n")


def test_an_empty_target_cell_is_one_line(workdir: Path, tmp_path: Path) -> None:
    tree = make("hpa", tmp_path / "d")
    assert flow("init", "hpa", "--from", tree).exit_code == 0
    _edit_line(tree / "train.csv", 5, "")
    where = (tree / "train.csv").relative_to(workdir)
    assert one_line_error(flow("import", "hpa", tree)).endswith(f"{tree.name}/train.csv line 5: empty label")
    (workdir / "competitions/hpa.toml").unlink()
    assert one_line_error(flow("init", "hpa", "--from", tree)) == f"Error: {where} line 5: empty label"


def test_an_unknown_label_in_the_training_csv_is_one_line(workdir: Path, tmp_path: Path) -> None:
    tree = make("planet", tmp_path / "d")
    assert flow("init", "planet", "--from", tree).exit_code == 0
    _edit_line(tree / "train_v2.csv", 4, "clear cloudy")
    assert one_line_error(flow("import", "planet", tree)).endswith(
        "train_v2.csv line 4: unknown label 'cloudy' in 'clear cloudy' (classes: agriculture, clear, haze, primary, water)")


def test_a_single_label_competition_never_reads_tags_as_one_class(workdir: Path, tmp_path: Path) -> None:
    tree = make("plant2021", tmp_path / "d")
    assert flow("init", "plant", "--from", tree).exit_code == 0
    toml = workdir / "competitions/plant.toml"
    text = toml.read_text().replace('target = "multi"\n', "").replace('metric = "mean_f2"', 'metric = "accuracy"')
    toml.write_text(text.replace('kind = "tags"', 'kind = "label"'))
    first = next(i for i, cell in enumerate(_expected_labels("plant2021", tree)) if " " in cell) + 2
    cell = (tree / "train.csv").read_text().splitlines()[first - 1].split(",")[1]
    assert one_line_error(flow("import", "plant", tree)).endswith(
        f"train.csv line {first}: label '{cell}' holds 2 space-separated labels, not one class; "
        "a competition of several labels an image says target = \"multi\" in its TOML")


# --- flow eda ----------------------------------------------------------------------------------------


def test_eda_counts_labels_per_image_and_co_occurrences(planet: Path) -> None:
    train = planet / "train_v2.csv"
    lines = train.read_text().splitlines()
    (planet / "train-jpg/train_1.jpg").write_bytes((planet / "train-jpg/train_0.jpg").read_bytes())  # a copy...
    lines[2] = "train_1,water" if lines[1].split(",")[1] != "water" else "train_1,clear"  # ...with another set
    train.write_text("\n".join(lines) + "\n")
    result = flow("eda", "planet")
    assert result.exit_code == 0, result.output
    assert "Labels per image (classes an image holds: images): " in result.output
    assert "co_occurrence.png" in result.output
    report = json.loads(Path("runs/planet/eda/report.json").read_text())
    sets = [cell.split(",")[1].split() for cell in lines[1:]]
    assert report["labels_per_image"] == {str(n): sum(len(s) == n for s in sets) for n in range(max(map(len, sets)) + 1)}
    counts = np.array(report["co_occurrence"]["counts"])
    hot = np.array([[int(t in s) for t in PLANET] for s in sets])
    assert (counts == hot.T @ hot).all()
    assert [c["count"] for c in report["classes"]] == hot.sum(axis=0).tolist()
    assert report["duplicates"]["conflicting_groups"] == 1  # the same bytes, two label sets
    assert Path("runs/planet/eda/co_occurrence.png").stat().st_size > 0


def test_duplicates_conflict_when_label_sets_differ() -> None:
    from kaggle_flow.explore.eda import find_duplicates

    images = pd.DataFrame({
        "id": ["a", "b", "c", "d", "t"], "split": ["train"] * 4 + ["test"],
        "labels": pd.array(["0 2", "0 2", "1", "1 2", None], dtype="string"),
        "hash": ["h1", "h1", "h2", "h2", "h2"], "problem": [""] * 5,
    })
    dup = find_duplicates(images, ["p", "q", "r"], target=TARGETS["multi"])
    assert dup["train_groups"] == 2 and dup["conflicting_groups"] == 1
    assert dup["conflicting"] == [[{"id": "c", "label": "q"}, {"id": "d", "label": "q r"}]]
    assert dup["train_test_pairs"] == [{"test": "t", "train": ["c", "d"], "labels": ["q", "q r"]}]
