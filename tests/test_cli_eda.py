"""`flow eda` through the CLI: the embedded digits, a lemon tree with broken images, a zodiac tree with its
validation set, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from trees import zodiac_tree
from typer.testing import CliRunner

from kaggle_flow.cli import app
from kaggle_flow.competition import get_competition
from kaggle_flow.explore.split import load_folds, train_val
from kaggle_flow.workspace import open_workspace

runner = CliRunner()


def write_jpeg(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path, format="JPEG")


@pytest.fixture
def lemon_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A lemon tree (4 classes x 4 JPEGs, 3 test images) with three broken images."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "lemon_data"
    rows = []
    for label in range(4):
        for i in range(4):
            name = f"train_{label}_{i}.jpg"
            write_jpeg(root / "train_images" / name, seed=10 * label + i)
            rows.append(f"{name},{label}\n")
    (root / "train_images.csv").write_text("id,class_num\n" + "".join(rows))
    for i in range(3):
        write_jpeg(root / "test_images" / f"test_{i}.jpg", seed=100 + i)
    (root / "train_images" / "train_0_1.jpg").write_bytes(b"")
    full = (root / "train_images" / "train_2_3.jpg").read_bytes()
    (root / "train_images" / "train_2_3.jpg").write_bytes(full[: len(full) // 2])
    (root / "test_images" / "test_1.jpg").write_text("not a picture\n")
    return root


def test_eda_digits(workdir: Path) -> None:
    result = runner.invoke(app, ["eda", "digits"])
    assert result.exit_code == 0, result.output
    out = workdir / "runs" / "digits" / "eda"
    for name in ("report.json", "broken.csv", "class_histogram.png", "sizes.png", "modes.png"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["images"] == {"train": 1500, "valid": 0, "test": 297, "broken": 0}
    assert report["modes"] == {"L": 1797} and report["warnings"]["unusual_mode"]["count"] == 0  # grey is normal here
    assert "Imbalance ratio (largest / smallest class): 1.06" in result.output
    assert "Sizes: 1 distinct; most common: 8x8 (1797)" in result.output
    assert f"Saved {Path('runs/digits/eda/report.json')}" in result.output
    assert (out / "broken.csv").read_text() == "id,path,problem\n"


def test_eda_lemon_lists_broken_and_split_leaves_them_out(lemon_dir: Path) -> None:
    result = runner.invoke(app, ["eda", "lemon", "--data", str(lemon_dir)])
    assert result.exit_code == 0, result.output
    assert (
        "Warning: 3 broken images left out of later steps: "
        "train_0_1.jpg (zero-byte), train_2_3.jpg (truncated), test_1.jpg (not an image)\n"
    ) in result.stderr
    assert (
        "lemon: 16 training and 3 test images; 2 broken training images left out: 14 in the table; "
        "1 broken test image\n"
    ) in result.output
    assert "│ excellent │     3 │ 21.4% │" in result.output
    assert "Formats: JPEG 16" in result.output
    broken = pd.read_csv(Path("runs/lemon/eda/broken.csv"))
    assert list(broken["id"]) == ["train_0_1.jpg", "train_2_3.jpg", "test_1.jpg"]

    result = runner.invoke(app, ["split", "lemon", "--data", str(lemon_dir), "--folds", "2"])
    assert result.exit_code == 0, result.output
    folds = pd.read_csv(Path("runs/lemon/folds.csv"), dtype={"id": str})
    assert len(folds) == 14
    assert not folds["id"].isin(["train_0_1.jpg", "train_2_3.jpg"]).any()
    # later steps read the table the same way (broken images left out), so the folds fit it
    result = runner.invoke(app, ["balance", "lemon", "--data", str(lemon_dir)])
    assert result.exit_code == 0, result.output


def test_folds_made_before_eda_found_broken_images_still_fit(lemon_dir: Path) -> None:
    result = runner.invoke(app, ["split", "lemon", "--data", str(lemon_dir), "--folds", "2"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["eda", "lemon", "--data", str(lemon_dir)]).exit_code == 0
    result = runner.invoke(app, ["balance", "lemon", "--data", str(lemon_dir)])  # the user changed nothing
    assert result.exit_code == 0, result.output
    ws = open_workspace("lemon", lemon_dir, remember_it=False)
    table = ws.table(quiet=True)
    train, val = train_val(table, load_folds(ws, table), 0)
    assert not {"train_0_1.jpg", "train_2_3.jpg"} & (set(train["id"]) | set(val["id"]))  # eda's finds left out
    assert len(train) + len(val) == 14
    csv = lemon_dir / "train_images.csv"  # a real change still asks for a new split
    csv.write_text(csv.read_text().replace("train_1_0.jpg,1", "train_1_0.jpg,2"))
    result = runner.invoke(app, ["balance", "lemon", "--data", str(lemon_dir)])
    assert result.exit_code == 1
    assert result.stderr.endswith(
        f"Error: {Path('runs/lemon/folds.csv')} was made from other data; run flow split lemon again\n"
    )


def test_eda_counts_the_downloads_validation_set(workdir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["eda", "zodiac", "--data", str(zodiac_tree(tmp_path / "zodiac"))])
    assert result.exit_code == 0, result.output
    assert "zodiac: 36 training, 36 validation and 5 test images" in result.output
    assert "│ pig     │     6 │  8.3% │" in result.output  # 3 training + 3 validation images
    report = json.loads((workdir / "runs/zodiac/eda/report.json").read_text())
    assert report["images"] == {"train": 36, "valid": 36, "test": 5, "broken": 0}


def test_eda_strict_fails_on_broken_images(lemon_dir: Path) -> None:
    result = runner.invoke(app, ["eda", "lemon", "--data", str(lemon_dir), "--strict"])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {lemon_dir}: 3 broken images: "
        "train_0_1.jpg (zero-byte), train_2_3.jpg (truncated), test_1.jpg (not an image)\n"
    )
    assert Path("runs/lemon/eda/broken.csv").is_file()  # the report is saved before the error


def test_eda_missing_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    how = get_competition("lemon").data.how
    result = runner.invoke(app, ["eda", "lemon", "--data", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {tmp_path / 'nowhere'}: no data for 'lemon' here; {how}\n"
    result = runner.invoke(app, ["eda", "lemon"])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {Path('data/lemon')}: no data for 'lemon' here; {how}\n"
