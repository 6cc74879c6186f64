"""Near twins in `flow eda` and `flow split`: a small competition of real MNIST digits (the label is
the digit drawn) with planted twins, re-encoded as JPEG at another quality and resized by a few
pixels: one within train with the same label, one with another label, one between train and test."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
import pytest
from clitools import flow
from PIL import Image

from kaggle_flow.explore import twins

TOML = """title = "mnist digits with planted twins"
classes = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
image_size = 28
channels = 1
mean = [0.13]
std = [0.31]

[layout]
kind = "csv"
train_csv = "train.csv"
train_dir = "train"
test_dir = "test"
"""


def _phash(image: Image.Image) -> int:
    return int(str(imagehash.phash(image.convert("L"))), 16)


def _far_apart(rows: pd.DataFrame, root: Path, per_class: int, gap: int = 10) -> list[tuple[str, int]]:
    """The first `per_class` digits of each class in `rows` whose hashes are all more than `gap` bits
    apart (a twin within DEFAULT_NEAR bits of one stays far from the others), in class order."""
    picked: list[tuple[str, int, int]] = []
    for image_id, label in zip(rows["id"], rows["label"]):
        h = _phash(Image.open(root / image_id))
        if sum(lab == label for _, lab, _ in picked) < per_class and all(bin(h ^ o).count("1") > gap for _, _, o in picked):
            picked.append((image_id, int(label), h))
        if len(picked) == 10 * per_class:
            break
    return [(i, lab) for i, lab, _ in sorted(picked, key=lambda p: p[1])]


def _twin(source: Path, target: Path, *, apart: bool = False) -> int:
    """Write a JPEG copy of `source` at another quality, resized by a few pixels; return its distance to
    the source (with `apart`: the first such copy whose hash differs, within DEFAULT_NEAR bits; -1 and
    nothing written when there is none)."""
    original = Image.open(source).convert("L")
    for side, quality in ((31, 70), (26, 85), (30, 60), (25, 50), (32, 40), (24, 75), (27, 55), (33, 65)):
        buffer = io.BytesIO()
        original.resize((side, side), Image.BILINEAR).save(buffer, format="JPEG", quality=quality)
        distance = bin(_phash(original) ^ _phash(Image.open(buffer))).count("1")
        if distance <= twins.DEFAULT_NEAR and (distance > 0 or not apart):
            target.write_bytes(buffer.getvalue())
            return distance
    return -1


@pytest.fixture
def planted(workdir: Path) -> dict[str, tuple[str, str]]:
    """competitions/twins.toml and data/twins: 30 train digits and 6 test digits, all more than 12 bits
    apart, and the planted pairs (train id, twin id) by kind."""
    mnist = workdir / "data" / "mnist"
    rows = pd.read_csv(mnist / "train.csv")
    chosen = _far_apart(rows.sample(frac=1.0, random_state=0), mnist / "train", 4)
    train, test = chosen[0::4] + chosen[1::4] + chosen[2::4], chosen[3::4][:6]
    (workdir / "competitions").mkdir()
    (workdir / "competitions" / "twins.toml").write_text(TOML)
    data = workdir / "data" / "twins"
    (data / "train").mkdir(parents=True)
    (data / "test").mkdir()
    for image_id, _ in train:
        shutil.copy(mnist / "train" / image_id, data / "train" / image_id)
    for k, (image_id, _) in enumerate(test):
        shutil.copy(mnist / "train" / image_id, data / "test" / f"test_{k}.png")
    labels = dict(train)
    same = next(i for i, _ in train if _twin(data / "train" / i, data / "train" / "twin_same.jpg", apart=True) > 0)
    (other, other_label), (leaked, _) = [(i, lab) for i, lab in train if i != same][:2]
    assert _twin(data / "train" / other, data / "train" / "twin_other.jpg") >= 0
    assert _twin(data / "train" / leaked, data / "test" / "test_twin.jpg") >= 0
    labels["twin_same.jpg"] = labels[same]
    labels["twin_other.jpg"] = (other_label + 1) % 10  # a label that disagrees with the digit
    lines = [f"{i},{lab}" for i, lab in labels.items()]
    (data / "train.csv").write_text("id,label\n" + "\n".join(lines) + "\n")
    return {"same": (same, "twin_same.jpg"), "other": (other, "twin_other.jpg"), "test": (leaked, "test_twin.jpg")}


def _pairs(workdir: Path) -> pd.DataFrame:
    return pd.read_csv(workdir / "runs" / "twins" / "eda" / "near_duplicates.csv", dtype=str, keep_default_na=False)


def _table_rows(output: str, columns: int) -> dict[str, list[str]]:
    """The rows of the printed tables of `columns` columns, by first cell, each cell's wrapped lines joined."""
    rows: list[list[list[str]]] = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) != columns:
            continue
        if cells[1]:  # a new row (a wrapped line leaves the count cell blank)
            rows.append([[c] for c in cells])
        elif rows:
            for parts, c in zip(rows[-1], cells):
                parts.append(c)
    return {" ".join(filter(None, v[0])): [" ".join(filter(None, p)) for p in v[1:]] for v in rows}


def test_eda_lists_the_planted_twins_and_nothing_else(workdir: Path, planted: dict[str, tuple[str, str]]) -> None:
    result = flow("eda", "twins")
    assert result.exit_code == 0, result.output
    pairs = _pairs(workdir)
    assert list(pairs.columns) == ["a", "b", "distance", "split_a", "split_b", "label_a", "label_b"]
    assert {(a, b) for a, b in zip(pairs["a"], pairs["b"])} == set(planted.values())  # different digits: no pair
    rows = {b: row for b, row in zip(pairs["b"], pairs.itertuples(index=False))}
    assert (rows["twin_same.jpg"].label_a, rows["twin_same.jpg"].split_b) == (rows["twin_same.jpg"].label_b, "train")
    assert rows["twin_other.jpg"].label_a != rows["twin_other.jpg"].label_b
    assert (rows["test_twin.jpg"].split_a, rows["test_twin.jpg"].split_b, rows["test_twin.jpg"].label_b) == ("train", "test", "")
    report = json.loads((workdir / "runs" / "twins" / "eda" / "report.json").read_text())
    near = report["near_duplicates"]
    assert (near["within_train"], near["train_test"], near["conflicting"]) == (2, 1, 1)
    assert (near["groups"], near["grouped_images"], near["test_images_with_twin"]) == (2, 4, 1)
    other, twin = planted["other"]
    assert near["test_twins"] == [
        {"test": "test_twin.jpg", "train": planted["test"][0], "label": rows["test_twin.jpg"].label_a,
         "distance": int(rows["test_twin.jpg"].distance)}
    ]
    output = " ".join(result.output.split())
    assert ("Near duplicates (perceptual hashes within 4 bits of 64, --near N): every pair in "
            "runs/twins/eda/near_duplicates.csv, the closest drawn in near_duplicates.png") in output
    rows_shown = _table_rows(result.output, columns=3)
    assert rows_shown["pairs among the labelled images"] == ["2", "2 groups of 4 images; `flow split` keeps each in one fold"]
    assert rows_shown["of them with different labels"] == ["1", "a label is likely wrong: fix the CSV or `flow review --exclude FILE`"]
    assert rows_shown["test images with a labelled twin"] == ["1", "a leak: the twin's label is likely theirs"]
    distance = rows[twin].distance
    assert f"│ {other} │ {rows[twin].label_a} │ {twin} │ {rows[twin].label_b} │ {distance} │" in output
    leaked = rows["test_twin.jpg"]
    assert f"│ test_twin.jpg │ {planted['test'][0]} │ {leaked.label_a} │ {leaked.distance} │" in output
    assert (workdir / "runs" / "twins" / "eda" / "near_duplicates.png").stat().st_size > 0


def test_near_zero_keeps_only_equal_hashes(workdir: Path, planted: dict[str, tuple[str, str]]) -> None:
    (workdir / "data" / "twins" / "train" / "copy.png").write_bytes(
        (workdir / "data" / "twins" / "train" / planted["same"][0]).read_bytes()
    )
    with (workdir / "data" / "twins" / "train.csv").open("a") as csv:
        csv.write(f"copy.png,{pd.read_csv(workdir / 'data' / 'twins' / 'train.csv').set_index('id').loc[planted['same'][0], 'label']}\n")
    assert flow("eda", "twins").exit_code == 0
    everything = _pairs(workdir)
    assert flow("eda", "twins", "--near", "0").exit_code == 0
    pairs = _pairs(workdir)
    pd.testing.assert_frame_equal(pairs, everything[everything["distance"] == "0"].reset_index(drop=True))
    assert (planted["same"][0], "copy.png") in set(zip(pairs["a"], pairs["b"]))
    assert planted["same"][1] not in set(pairs["b"]) and planted["same"][1] in set(everything["b"])
    report = json.loads((workdir / "runs" / "twins" / "eda" / "report.json").read_text())
    assert report["near_duplicates"]["near"] == 0 and report["near_duplicates"]["within_train"] == len(pairs) - (pairs["split_b"] == "test").sum()


def test_no_near_twins_is_one_line(workdir: Path, planted: dict[str, tuple[str, str]]) -> None:
    data = workdir / "data" / "twins"
    for _, twin in planted.values():
        next(data.glob(f"*/{twin}")).unlink()
    rows = pd.read_csv(data / "train.csv")
    rows[~rows["id"].isin([twin for _, twin in planted.values()])].to_csv(data / "train.csv", index=False)
    result = flow("eda", "twins")
    assert result.exit_code == 0, result.output
    assert ("Near duplicates (perceptual hashes within 4 bits of 64, --near N): every pair in runs/twins/eda/near_duplicates.csv, "
            "the closest drawn in near_duplicates.png: none") in " ".join(result.output.split())
    assert "what to do" not in result.output


def test_a_second_eda_does_not_hash_again(
    workdir: Path, planted: dict[str, tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    real = imagehash.phash

    def counted(image: Image.Image, *args: object, **kwargs: object) -> imagehash.ImageHash:
        calls.append(image)
        return real(image, *args, **kwargs)

    monkeypatch.setattr(imagehash, "phash", counted)
    assert flow("eda", "twins").exit_code == 0
    assert len(calls) == 30 + 2 + 6 + 1  # every image once
    first = _pairs(workdir)
    calls.clear()
    assert flow("eda", "twins").exit_code == 0
    assert calls == []
    pd.testing.assert_frame_equal(_pairs(workdir), first)
    edited = workdir / "data" / "twins" / "test" / "test_0.png"
    Image.open(edited).transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(edited)  # a changed file is hashed again
    assert flow("eda", "twins").exit_code == 0
    assert len(calls) == 1


def _fold_of(workdir: Path) -> dict[str, int]:
    folds = pd.read_csv(workdir / "runs" / "twins" / "folds.csv")
    return dict(zip(folds["id"], folds["fold"]))


def test_split_keeps_each_group_in_one_fold(workdir: Path, planted: dict[str, tuple[str, str]]) -> None:
    groups = [planted["same"], planted["other"]]
    for seed in range(6):
        result = flow("split", "twins", "--folds", "3", "--seed", str(seed))  # no eda before: split hashes
        assert result.exit_code == 0, result.output
        assert ("2 groups of near twins (4 images) kept in one fold each; --ignore-near to split them freely"
                in " ".join(result.output.split()))
        fold = _fold_of(workdir)
        assert all(fold[a] == fold[b] for a, b in groups)
    assert (workdir / "runs" / "twins" / "eda" / "hashes.csv").is_file()
    apart = []
    for seed in range(6):
        result = flow("split", "twins", "--folds", "3", "--seed", str(seed), "--ignore-near")
        assert "near twins" not in result.output
        fold = _fold_of(workdir)
        apart += [fold[a] != fold[b] for a, b in groups]
    assert any(apart)


def test_a_holdout_keeps_twins_on_one_side(workdir: Path, planted: dict[str, tuple[str, str]]) -> None:
    for seed in range(6):
        result = flow("split", "twins", "--val-size", "0.4", "--seed", str(seed))
        assert result.exit_code == 0, result.output
        fold = _fold_of(workdir)
        assert all(fold[a] == fold[b] for a, b in (planted["same"], planted["other"]))
        assert 8 <= sum(f == 0 for f in fold.values()) <= 18  # 40% of 32 in whole folds of 4 (4 images a class at most)


def test_pairs_match_a_brute_force_count() -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**63, 600, dtype=np.int64).astype(np.uint64)
    flips = np.uint64(1) << rng.integers(0, 64, (600, 3)).astype(np.uint64)
    near = base ^ flips[:, 0] ^ np.where(rng.random(600) < 0.5, flips[:, 1], np.uint64(0))
    hashes = [f"{int(h):016x}" for h in np.concatenate([base, near])] + [""]
    i, j, d = twins.near_pairs(hashes, 5)
    values = [int(h, 16) for h in hashes[:-1]]
    expected = {(a, b) for a in range(len(values)) for b in range(a + 1, len(values)) if bin(values[a] ^ values[b]).count("1") <= 5}
    assert set(zip(i.tolist(), j.tolist())) == expected and len(i) == len(expected) >= 600
    assert all(bin(values[a] ^ values[b]).count("1") == k for a, b, k in zip(i, j, d))


def test_identical_images_by_the_thousand_stop_at_the_pair_cap(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """3,000 blank images pair up 4.5 million ways: flow keeps MAX_PAIRS of them and says so."""
    monkeypatch.setattr(twins, "MAX_PAIRS", 10_000)
    i, j, d = twins.near_pairs(["0" * 16] * 3000, 4)
    assert len(i) == 10_000 and set(d.tolist()) == {0} and bool((i < j).all())
    out = capsys.readouterr()
    assert "more than 10,000 pairs within 4 bits" in out.out + out.err


def test_a_group_larger_than_half_its_class_in_a_fold_is_split_freely() -> None:
    groups = np.array([0, 0, 1, 1, 1, 1, 1] + list(range(2, 42)))
    labels = np.array([0, 0, 1, 1, 1, 1, 1] + [0] * 20 + [1] * 20)  # 22 and 25 a class: 5 and 6 in a fifth
    kept, note = twins.keep_together(groups, labels, share=0.2)  # at most 2 and 3 of a group in a fold
    assert kept is not None and kept[0] == kept[1] and len(set(kept[2:7])) == 5
    assert note == ("1 group of near twins (2 images) kept in one fold each; 1 group of 5 near twins split freely (over "
                    "half of what their class puts in a fold: similar images more than copies; a smaller --near joins "
                    "fewer); --ignore-near to split them freely")


def test_twins_across_the_downloads_validation_set_are_named_a_leak() -> None:
    splits = pd.Series(["train", "valid", "train", "train", "valid"])
    assert twins.leak_note(splits, np.array([0, 0, 1, 1, 2])) == (
        "1 group of near twins (2 images) spans the download's training and validation images: a leak "
        "(validation scores read high); the download's split is kept as it is"
    )
    assert twins.leak_note(splits, np.array([0, 1, 2, 2, 3])) == ""
