"""The generated course downloads (bench/course_trees.py) read with their competitions' layouts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from clitools import flow
from course_trees import MAKERS, PALM_GT, make_lemon, make_palm, make_zodiac, split_counts
from PIL import Image

from kaggle_flow.competition import get_competition
from kaggle_flow.explore.eda import broken_list
from kaggle_flow.explore.scan import scan_images
from kaggle_flow.table.layouts import describe_counts, labelled, read_table
from kaggle_flow.table.layouts import split_counts as table_counts
from kaggle_flow.submit.submission import expected_ids

SCALE = 0.05


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("course")
    return {name: make(root / name, scale=SCALE) for name, make in MAKERS.items()}


@pytest.mark.parametrize("name", list(MAKERS))
def test_each_tree_reads_with_its_competitions_layout(trees: dict[str, Path], name: str) -> None:
    comp = get_competition(name)
    table = read_table(trees[name], comp)
    assert table_counts(table) == split_counts(name, SCALE)
    per_class = labelled(table).groupby("label").size()
    assert list(per_class.index) == list(range(comp.num_classes))  # every class has images


@pytest.mark.parametrize("name", list(MAKERS))
def test_each_tree_imports(workdir: Path, trees: dict[str, Path], name: str) -> None:
    result = flow("import", name, trees[name])
    assert result.exit_code == 0, result.output
    assert f"Imported {name} into data/{name}: {describe_counts(split_counts(name, SCALE))}" in result.output
    assert "Warning" not in result.output


def test_split_counts_at_scale_1() -> None:
    assert {name: split_counts(name) for name in MAKERS} == {
        "lemon": {"train": 1103, "valid": 0, "test": 200},
        "zodiac": {"train": 1200, "valid": 240, "test": 240},
        "garbage": {"train": 600, "valid": 0, "test": 100},
        "palm": {"train": 400, "valid": 400, "test": 0},
    }


def test_lemon_is_imbalanced_photos_with_three_broken_files(trees: dict[str, Path]) -> None:
    table = read_table(trees["lemon"], get_competition("lemon"))
    scan = scan_images(table["path"], show_progress=False)
    broken = broken_list(pd.concat([table, scan], axis=1))
    assert sorted(broken["problem"]) == ["not an image", "truncated", "zero-byte"]
    usable = table[(scan["problem"] == "").to_numpy()]
    shares = usable[usable["split"] == "train"].groupby("label").size() / (usable["split"] == "train").sum()
    assert shares.round(1).tolist() == [0.4, 0.3, 0.2, 0.1]
    with Image.open(usable["path"].iloc[0]) as image:
        assert (image.size, image.mode) == ((320, 240), "RGB")
    sample = pd.read_csv(trees["lemon"] / "sample_submit.csv")
    assert list(sample.columns) == ["id", "class_num"] and len(sample) == split_counts("lemon", SCALE)["test"]


@pytest.mark.parametrize("name", ["lemon", "zodiac", "garbage"])
def test_solution_lists_every_test_image_as_the_submission_names_it(trees: dict[str, Path], name: str) -> None:
    comp = get_competition(name)
    table = read_table(trees[name], comp)
    solution = pd.read_csv(trees[name] / comp.submission.solution, dtype=str)
    assert list(solution.columns) == [comp.submission.id_column, comp.submission.label_column]
    assert sorted(solution[comp.submission.id_column]) == sorted(expected_ids(comp, table[table["split"] == "test"]))


def test_zodiac_test_folders_are_the_solution(trees: dict[str, Path]) -> None:
    comp = get_competition("zodiac")
    table = read_table(trees["zodiac"], comp)
    test = table[table["split"] == "test"]
    truth = dict(zip(*pd.read_csv(trees["zodiac"] / "solution.csv").to_dict("list").values()))
    assert {i.split("/")[1]: i.split("/")[0] for i in test["id"]} == truth
    assert sorted({i.split("/")[0] for i in test["id"]}) == sorted(comp.classes)


def test_palm_is_the_nested_download_without_test_images(trees: dict[str, Path]) -> None:
    root = trees["palm"]
    assert sorted(p.name for p in root.iterdir()) == ["PALM-Training400", "PALM-Validation-GT", "PALM-Validation400"]
    assert [p.name for p in (root / "PALM-Training400").iterdir()] == ["PALM-Training400"]
    gt = pd.read_excel(root / PALM_GT)
    assert list(gt.columns) == ["ID", "imgName", "Label", "Fovea_X", "Fovea_Y"]
    assert set(gt["Label"]) == {0, 1}


def test_same_seed_same_tree(tmp_path: Path) -> None:
    a = make_zodiac(tmp_path / "a", scale=0.01, seed=3)
    b = make_zodiac(tmp_path / "b", scale=0.01, seed=3)
    files = sorted(p.relative_to(a) for p in a.rglob("*.jpg"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.jpg"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def test_trees_work_through_data(workdir: Path, tmp_path: Path) -> None:
    root = make_lemon(tmp_path / "lemon_lesson", scale=0.02)
    result = flow("eda", "lemon", "--data", root)
    assert result.exit_code == 0, result.output
    assert "3 broken images left out of later steps" in result.output
    palm = make_palm(tmp_path / "palm", scale=0.02)
    result = flow("split", "palm", "--data", palm)
    assert "Saved the download's validation set (8 images) as fold 0" in result.output
