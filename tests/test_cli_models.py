"""`flow models` and `flow augment`."""

from __future__ import annotations

import re
from pathlib import Path

from clitools import flow, one_line_error, runner

from kaggle_flow.cli import app
from kaggle_flow.console import plural
from kaggle_flow.models import MODELS, param_count


def test_models_lists_every_model(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in MODELS:
        assert name in result.output
    assert "108,794" in result.output  # smallcnn for 10 classes
    for name in ("resnet-t", "resnet-s", "resnet-m", "resnet-l"):
        assert re.search(rf"{name} +│ +{param_count(name):,} +│ +8 px", result.output), name
    assert "train img/s" not in result.output


def test_models_for_a_competition_count_its_classes_and_channels(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["models", "mnist", "--filter", "resnet18"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "10 classes, 1 channel (mnist)" in result.output
    assert f"{param_count('resnet18', 10, 1):,}" in result.output
    assert f"{param_count('resnet18', 10, 3):,}" not in result.output


def test_models_speed_times_one_model(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["models", "--speed", "--model", "resnet-t", "--size", "32", "--batch-size", "16", "--seconds", "0.5"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    row = re.search(r"resnet-t +│ +([\d,]+) +│ +8 px +│ +no +│ +([\d,.]+) +│", result.output)
    assert row, result.output
    assert row[1] == f"{param_count('resnet-t'):,}" and float(row[2].replace(",", "")) > 0
    assert "Training images/s at 32 px, batch 16, on the " in result.output
    assert "smallcnn" not in result.output


def test_models_speed_notes_a_size_below_the_minimum(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["models", "--speed", "--filter", "googlenet", "--size", "32"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert re.search(r"googlenet .*│ +needs 61 px +│", result.output), result.output


def test_models_speed_unknown_model(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    line = one_line_error(flow("models", "--speed", "--model", "resnet9000"))
    assert line.startswith("Error: unknown model 'resnet9000' (valid: smallcnn, smallcnn3, resnet-t, ")


def test_models_filter(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["models", "--filter", "resnet"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "resnet50" in result.output and "smallcnn" not in result.output
    result = flow("models", "--filter", "transformer")
    assert result.exit_code == 0 and "No model matches 'transformer'." in result.output


def test_augment_list_describes_every_preset(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["augment", "--list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("none", "flip", "affine", "light", "medium", "heavy"):
        assert f"{name}: " in result.output
    assert "HorizontalFlip(p=0.5)" in result.output
    assert not (tmp_path / "runs").exists()


def test_augment_writes_a_png_grid(workdir: Path) -> None:
    result = flow("augment", "digits", "--preset", "affine", "--n", "6", "--seed", "3")
    assert result.exit_code == 0, result.output
    png = workdir / "runs/digits/augment_affine.png"
    assert "Saved runs/digits/augment_affine.png" in result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(png.parent.glob(".*.tmp"))


def test_augment_with_dropouts_on_mnist(workdir: Path) -> None:
    result = flow("augment", "mnist", "--preset", "heavy", "--n", "4", "--cutout", "1", "--gridmask", "0.5", "--erasing", "0.5")
    assert result.exit_code == 0, result.output
    assert (workdir / "runs/mnist/augment_heavy.png").is_file()


def test_augment_unknown_preset(workdir: Path) -> None:
    line = one_line_error(flow("augment", "digits", "--preset", "wild"))
    assert line == "Error: unknown augmentation preset 'wild' (valid: none, flip, affine, light, medium, heavy)"
    assert not (workdir / "runs/digits").exists()


def test_augment_bad_probability(workdir: Path) -> None:
    line = one_line_error(flow("augment", "digits", "--preset", "none", "--cutout", "2"))
    assert line == "Error: --cutout is a probability between 0 and 1 (got 2.0)"


def test_models_readable_at_80_columns(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["models"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(map(len, lines)) <= 80 and "…" not in result.output
    starts = [i for i, line in enumerate(lines) if line.split()[:1] and line.split()[0] in MODELS]
    assert len(starts) == len(MODELS)  # each name whole, on its row's first line
    heights = [b - a for a, b in zip(starts, starts[1:])]
    assert max(heights) <= 3, result.output  # a description takes at most 3 lines


def test_models_counts_for_the_remembered_competition(workdir: Path) -> None:
    assert flow("eda", "mnist").exit_code == 0
    result = runner.invoke(app, ["models", "--filter", "resnet18"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Using competition 'mnist' (the last one used here)" in result.output
    assert "10 classes, 1 channel (mnist)" in result.output
    assert f"{param_count('resnet18', 10, 1):,}" in result.output


def test_models_speed_of_a_competition_whose_size_is_auto(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["models", "lemon", "--speed", "--model", "smallcnn", "--batch-size", "4", "--seconds", "0.1"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Training images/s at 64 px, batch 4" in result.output


def test_plural() -> None:
    assert [plural(n, "image") for n in (0, 1, 2)] == ["0 images", "1 image", "2 images"]
    assert plural(1, "extra copy", "extra copies") == "1 extra copy" and plural(3, "class", "classes") == "3 classes"
