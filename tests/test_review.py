"""`flow review`: label issues, galleries and the exclusion list that later training follows."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from clitools import fake_cv_run, fake_run, flow, one_line_error
from kaggle_flow.fileio import read_csv
from kaggle_flow.oof import OutOfFold, write_oof
from kaggle_flow.runs import load_run

RUNS = Path("runs/digits")


def _table(data: Path = Path("data/digits")) -> pd.DataFrame:
    from kaggle_flow.workspace import open_workspace

    return open_workspace("digits", data, remember_it=False).table(quiet=True)


def _write_oof(run_path: Path, ids: list[str], labels: np.ndarray, flipped: dict[str, int], seed: int = 0) -> None:
    """oof.csv confident in each row's true class; the ids of `flipped` carry that wrong label instead."""
    rng = np.random.default_rng(seed)
    n, k = len(ids), 10
    probs = rng.uniform(0.0, 0.02, size=(n, k))
    probs[np.arange(n), labels] = rng.uniform(0.75, 0.98, size=n)
    probs /= probs.sum(axis=1, keepdims=True)  # other rows: sure of their class, though less so
    given = labels.copy()
    for i, image_id in enumerate(ids):
        if image_id in flipped:  # the model is sure of the true class
            given[i] = flipped[image_id]
            probs[i] = 0.001
            probs[i, labels[i]] = 1.0 - 0.001 * (k - 1)
    write_oof(run_path / "oof.csv", OutOfFold(np.array(ids), given, probs.argmax(axis=1), probs))


def _planted(table: pd.DataFrame, picks: list[int]) -> tuple[dict[str, int], dict[str, int]]:
    """Wrong labels for the rows at `picks`: id -> wrong label, and id -> true label."""
    rows = table.iloc[picks]
    true = dict(zip(rows["id"], rows["label"].astype(int)))
    return {i: (t + 3) % 10 for i, t in true.items()}, true


def _cv_run_with_planted_errors(workdir: Path, picks: list[int]) -> tuple[dict[str, int], dict[str, int]]:
    table = _table()
    labelled = table[table["split"] != "test"].reset_index(drop=True)
    flipped, true = _planted(labelled, picks)
    parent = fake_cv_run(workdir / RUNS, "20250101-000000-smallcnn-cv2")
    _write_oof(parent.path, labelled["id"].tolist(), labelled["label"].to_numpy(dtype=int), flipped)
    return flipped, true


def test_planted_label_errors_rank_first_with_their_true_class_suggested(workdir: Path) -> None:
    flipped, true = _cv_run_with_planted_errors(workdir, [3, 50, 400, 777, 1200])
    result = flow("review", "digits")
    assert result.exit_code == 0, result.output
    assert "a cross-validation run, whose out-of-fold predictions cover every training row" in result.output
    issues = read_csv(RUNS / "20250101-000000-smallcnn-cv2" / "review" / "label_issues.csv", ["id", "label", "suggested", "score"])
    top = issues.head(len(flipped))
    assert set(top["id"]) == set(flipped)
    assert all(r.suggested == str(true[r.id]) and r.label == str(flipped[r.id]) for r in top.itertuples())
    assert list(issues.columns) == ["id", "label", "suggested", "score"]
    assert issues["score"].astype(float).is_monotonic_increasing or len(issues) == len(flipped)
    folder = RUNS / "20250101-000000-smallcnn-cv2" / "review"
    assert sorted(p.name for p in folder.glob("*.png")) == ["confused.png", "label_issues.png", "top_losses.png"]
    assert f"Wrote {folder}: label_issues.csv, top_losses.png, confused.png, label_issues.png" in result.output


def test_a_single_fold_reviews_only_its_validation_rows(workdir: Path) -> None:
    table = _table()
    val = table[table["split"] == "train"].iloc[:200]
    run = fake_run(workdir / RUNS, "20250101-000000-smallcnn-f0")
    _write_oof(run.path, val["id"].tolist(), val["label"].to_numpy(dtype=int), {})
    result = flow("review", "digits", "--run", run.name)
    assert result.exit_code == 0, result.output
    assert (f"Reviewing {run.name}: a single fold, so only its validation rows (fold 0); "
            "`flow train digits --folds all` reviews every training row") in result.output


def _trained_counts(output: str) -> tuple[int, int]:
    found = re.search(r"on ([\d,]+) images, validating on (\d+) \(fold 0\)", output)
    assert found, output
    return int(found.group(1).replace(",", "")), int(found.group(2))


def test_excluded_rows_leave_training_only_until_no_exclude(workdir: Path) -> None:
    from kaggle_flow.explore.split import ensure_folds, train_val
    from kaggle_flow.table.layouts import labelled
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace("digits", remember_it=False)
    rows = labelled(ws.table(quiet=True))
    train, val = train_val(rows, ensure_folds(ws, ws.table(quiet=True)), 0)
    val_picks = [int(rows.index[rows["id"] == val["id"].iloc[0]][0])]
    train_picks = [int(rows.index[rows["id"] == i][0]) for i in train["id"].iloc[[5, 60, 300, 900]]]
    flipped, _ = _cv_run_with_planted_errors(workdir, train_picks + val_picks)
    result = flow("review", "digits", "--exclude")
    assert result.exit_code == 0, result.output
    listed = json.loads((RUNS / "exclude.json").read_text())["ids"]
    assert set(flipped) <= set(listed)
    in_train = len(set(listed) & set(train["id"]))

    result = flow("train", "digits", "--model", "smallcnn", "--size", "8", "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert _trained_counts(result.output) == (len(train) - in_train, len(val))
    assert f"Leaving out {in_train} training rows of {len(train)} listed in {RUNS / 'exclude.json'}" in result.output
    assert "validation keeps every row, so its score stays comparable" in result.output
    newest = sorted(p for p in RUNS.glob("*-f0") if p.is_dir())[-1]
    config = load_run(newest).config
    assert config.excluded == len(listed) and config.exclude_fingerprint

    result = flow("review", "digits", "--no-exclude")
    assert result.exit_code == 0, result.output
    assert f"Later training uses every row again (removed {RUNS / 'exclude.json'}, {len(listed)} ids)" in result.output
    result = flow("train", "digits", "--model", "smallcnn", "--size", "8", "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert _trained_counts(result.output) == (len(train), len(val))
    assert "Leaving out" not in result.output


def test_a_run_without_out_of_fold_predictions_is_one_line(workdir: Path) -> None:
    run = fake_run(workdir / RUNS, "20250101-000000-smallcnn-f0")
    line = one_line_error(flow("review", "digits", "--run", run.name))
    assert line == (f"Error: {run.path.relative_to(workdir)}: no out-of-fold predictions (oof.csv; the run never finished validating); "
                    "train a validated run first: flow train digits --folds all (or flow train digits)")
    refit = fake_run(workdir / RUNS, "20250101-000001-smallcnn-full", full=True, full_from=run.name)
    line = one_line_error(flow("review", "digits", "--run", refit.name))
    assert "a full refit holds nothing out, so it has no out-of-fold predictions" in line
    assert f"--run {run.name}" in line


def test_an_unknown_id_in_an_exclude_csv_is_one_line_naming_file_row_and_value(workdir: Path) -> None:
    known = _table()["id"].iloc[0]
    (workdir / "mine.csv").write_text(f"id,label\n{known},3\nno-such-image,4\n")
    line = one_line_error(flow("review", "digits", "--exclude", "mine.csv"))
    assert line == "Error: mine.csv line 3: id 'no-such-image' is no labelled image of 'digits'"
    assert not (RUNS / "exclude.json").exists()
    (workdir / "mine.csv").write_text(f"id\n{known}\n")
    result = flow("review", "digits", "--exclude", "mine.csv")
    assert result.exit_code == 0, result.output
    assert json.loads((RUNS / "exclude.json").read_text())["ids"] == [known]


def test_an_unreadable_image_is_left_out_of_the_gallery_with_a_warning(workdir: Path) -> None:
    shutil.copytree(workdir / "data" / "digits", workdir / "copy")
    table = _table(Path("copy"))
    rows = table[table["split"] == "train"].iloc[:100]
    bad = rows["id"].iloc[0]
    Path(rows["path"].iloc[0]).write_bytes(b"not an image")
    run = fake_run(workdir / RUNS, "20250101-000000-smallcnn-f0")
    flipped = {bad: (int(rows["label"].iloc[0]) + 1) % 10}  # its loss tops the gallery
    _write_oof(run.path, rows["id"].tolist(), rows["label"].to_numpy(dtype=int), flipped)
    result = flow("review", "digits", "--data", "copy")
    assert result.exit_code == 0, result.output
    assert f"left out of the galleries, unreadable: {bad} (" in result.output
    assert (run.path / "review" / "top_losses.png").is_file()


def test_the_ledger_shows_the_exclusion_and_reads_old_files_blank(tmp_path: Path) -> None:
    from kaggle_flow.competition import get_competition
    from kaggle_flow.engine.configure import build_config
    from kaggle_flow.submit.ledger import read_ledger, recipe_summary

    config = build_config(get_competition("digits"), {"model": "smallcnn", "epochs": 1})
    assert recipe_summary(config)["excluded"] == ""
    assert recipe_summary(config.model_copy(update={"excluded": 7}))["excluded"] == "7"
    (tmp_path / "ledger.csv").write_text("time,file,run,kind,model\n2025-01-01 00:00:00,a.csv,r,single,smallcnn\n")
    assert read_ledger(tmp_path)["excluded"].tolist() == [""]


def test_each_gallery_tile_names_its_image_and_what_the_model_said(workdir: Path, monkeypatch) -> None:
    import kaggle_flow.submit.review as review

    drawn: dict[str, list] = {}

    def record(grid, path, *, channels, title):  # the galleries as review_run hands them over
        drawn[Path(path).name] = [title, [t for row in grid for t in row]]
        return Path(path), {}

    monkeypatch.setattr(review, "gallery", record)
    flipped, true = _cv_run_with_planted_errors(workdir, [3, 50, 400, 777, 1200])
    assert flow("review", "digits").exit_code == 0
    title, tiles = drawn["top_losses.png"]
    assert title.endswith("id; label -> predicted (its probability), loss = -ln p(label)")
    first = tiles[0]  # a planted error: given label flipped[id], its true class predicted at 0.991, 0.001 for the label
    assert first.id in flipped
    assert first.title == f"{first.id}\n{flipped[first.id]} -> {true[first.id]} (0.99), loss {-np.log(0.001):.2f}"
    title, tiles = drawn["confused.png"]
    assert re.fullmatch(rf"{re.escape(tiles[0].id)}\n\d -> \d \(0\.\d\d\), \d+ times?", tiles[0].title), tiles[0].title
    title, tiles = drawn["label_issues.png"]
    assert re.fullmatch(rf"{re.escape(tiles[0].id)}\n{flipped[tiles[0].id]}, maybe {true[tiles[0].id]} \(score 0\.\d{{3}}\)", tiles[0].title)


def test_a_long_caption_line_wraps_instead_of_running_over_the_next_tile() -> None:
    from kaggle_flow.submit.review_plots import CAPTION, caption

    long_id = "3f2b8c1e-9a7d-4e21-b0c4-5d6e7f8a9b0c.jpg"
    wrapped = caption(f"{long_id}\nCassava Bacterial Blight (CBB) -> Healthy (0.91)")
    assert all(len(line) <= CAPTION for line in wrapped.splitlines())
    assert wrapped.splitlines()[:2] == [long_id[:CAPTION], long_id[CAPTION:]]  # an id without spaces: cut, nothing lost
    assert " ".join(wrapped.splitlines()[2:]) == "Cassava Bacterial Blight (CBB) -> Healthy (0.91)"
