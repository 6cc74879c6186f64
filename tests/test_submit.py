"""Submission format and checks on generated lemon, zodiac and palm trees, with fake probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from trees import lemon_tree, palm_tree, zodiac_tree

from kaggle_flow.competition import get_competition
from kaggle_flow.errors import FlowError
from kaggle_flow.submit.submission import (
    check_submission,
    expected_ids,
    format_submission,
    read_sample,
    submission_id,
    submission_name,
    write_submission,
)
from kaggle_flow.submit.testset import load_probs
from kaggle_flow.table.layouts import read_table

TREES = {"lemon": lemon_tree, "zodiac": zodiac_tree, "palm": palm_tree}


def setup(name: str, root: Path):
    comp = get_competition(name)
    data = TREES[name](root / name)
    table = read_table(data, comp)
    test = table[table["split"] == "test"].reset_index(drop=True)
    probs = np.random.default_rng(0).random((len(test), comp.num_classes))
    return comp, data, test, probs / probs.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("name", ["lemon", "zodiac", "palm"])
def test_format_passes_the_check(name: str, tmp_path: Path) -> None:
    comp, data, test, probs = setup(name, tmp_path)
    sample = read_sample(comp, data)
    frame = format_submission(comp, test, probs, sample)
    check_submission(comp, frame, expected_ids(comp, test))
    assert list(frame.columns) == [comp.submission.id_column, comp.submission.label_column]
    assert len(frame) == len(test)
    if sample is not None:
        assert list(frame.columns) == list(sample.columns)
        assert frame.iloc[:, 0].tolist() == sample.iloc[:, 0].tolist()
    by_id = dict(zip(expected_ids(comp, test), probs.argmax(axis=1)))
    want = [by_id[i] for i in frame.iloc[:, 0]]
    if comp.submission.label_form == "name":
        want = [comp.classes[k] for k in want]
    assert frame.iloc[:, 1].tolist() == want


def test_lemon_follows_sample_order(tmp_path: Path) -> None:
    comp, data, test, probs = setup("lemon", tmp_path)
    frame = format_submission(comp, test, probs, read_sample(comp, data))
    assert list(frame.columns) == ["id", "class_num"]
    assert frame["id"].tolist() == [f"test_{i:04d}.jpg" for i in reversed(range(5))]
    assert frame["class_num"].tolist() == probs.argmax(axis=1)[::-1].tolist()


def test_zodiac_labels_are_class_names(tmp_path: Path) -> None:
    comp, data, test, probs = setup("zodiac", tmp_path)
    assert read_sample(comp, data) is None
    frame = format_submission(comp, test, probs, None)
    assert set(frame["label"]) <= set(comp.classes)


def test_palm_columns(tmp_path: Path) -> None:
    comp, data, test, probs = setup("palm", tmp_path)
    frame = format_submission(comp, test, probs, None)
    assert list(frame.columns) == ["FileName", "PM Risk"]
    assert frame["FileName"].tolist() == ["T0001.jpg", "T0002.jpg", "T0003.jpg", "T0004.jpg"]


def test_id_forms() -> None:
    assert submission_id("sub/test_0001.jpg", "name") == "test_0001.jpg"
    assert submission_id("sub/test_0001.jpg", "stem") == "test_0001"


def test_sample_with_unexpected_column(tmp_path: Path) -> None:
    comp, data, test, probs = setup("lemon", tmp_path)
    (data / "sample_submit.csv").write_text("id,class_num,score\ntest_0000.jpg,0,1\n")
    with pytest.raises(FlowError) as exc:
        read_sample(comp, data)
    assert str(exc.value) == (
        f"{data / 'sample_submit.csv'}: unexpected column 'score' (the submission has id, class_num)"
    )


def test_sample_with_an_id_that_has_no_image(tmp_path: Path) -> None:
    comp, data, test, probs = setup("lemon", tmp_path)
    (data / "test_images" / "test_0002.jpg").unlink()
    test = read_table(data, comp).query("split == 'test'").reset_index(drop=True)
    with pytest.raises(FlowError) as exc:
        format_submission(comp, test, probs[:4], read_sample(comp, data))
    assert str(exc.value) == f"{data / 'sample_submit.csv'} line 4: id 'test_0002.jpg' has no test image (missing, or broken)"


def test_probs_shape(tmp_path: Path) -> None:
    comp, data, test, probs = setup("lemon", tmp_path)
    with pytest.raises(FlowError, match=r"^probabilities for 4 images, but the test set has 5$"):
        format_submission(comp, test, probs[:4], None)
    with pytest.raises(FlowError, match=r"^probabilities for 3 classes, but 'lemon' has 4 classes$"):
        format_submission(comp, test, probs[:, :3], None)


def test_no_test_images(tmp_path: Path) -> None:
    comp, data, test, probs = setup("lemon", tmp_path)
    with pytest.raises(FlowError, match=r"^no test images for 'lemon'"):
        format_submission(comp, test.iloc[:0], probs[:0], None)


def test_saved_probs_that_do_not_match(tmp_path: Path) -> None:
    comp, data, test, probs = setup("lemon", tmp_path)
    np.save(tmp_path / "p.npy", probs[:3])
    with pytest.raises(FlowError) as exc:
        load_probs(tmp_path / "p.npy", len(test), comp)
    assert str(exc.value) == f"{tmp_path / 'p.npy'}: probabilities for 3 images, but the test set has 5"


@pytest.fixture
def lemon_frame(tmp_path: Path):
    comp, data, test, probs = setup("lemon", tmp_path)
    frame = format_submission(comp, test, probs, read_sample(comp, data))
    return comp, frame, expected_ids(comp, test)


def broken(frame: pd.DataFrame, how: str) -> pd.DataFrame:
    frame = frame.copy().astype(object)
    if how == "missing":
        return frame.drop(index=2).reset_index(drop=True)
    if how == "duplicate":
        frame.loc[3, "id"] = frame.loc[1, "id"]
        return frame
    if how == "extra":
        return pd.concat([frame, pd.DataFrame({"id": ["cat.jpg"], "class_num": [0]})], ignore_index=True)
    if how == "label":
        frame.loc[1, "class_num"] = 7
        return frame
    if how == "empty_label":
        frame.loc[2, "class_num"] = None
        return frame
    if how == "empty_id":
        frame.loc[0, "id"] = ""
        return frame
    if how == "columns":
        return frame.rename(columns={"class_num": "label"})
    raise AssertionError(how)


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("missing", "submission: test id 'test_0002.jpg' is missing (1 test ids have no row)"),
        ("duplicate", "submission line 5: duplicate id 'test_0003.jpg' (first on line 3)"),
        ("extra", "submission line 7: id 'cat.jpg' is not a test image"),
        ("label", "submission line 3: label '7' is not a class (a class index 0-3)"),
        ("empty_label", "submission line 4: empty value in column 'class_num'"),
        ("empty_id", "submission line 2: empty value in column 'id'"),
        ("columns", "submission: unexpected column 'label' (the submission has id, class_num)"),
    ],
)
def test_every_check_fails_on_a_broken_frame(lemon_frame, how: str, message: str) -> None:
    comp, frame, expected = lemon_frame
    check_submission(comp, frame, expected)
    with pytest.raises(FlowError) as exc:
        check_submission(comp, broken(frame, how), expected)
    assert str(exc.value) == message


def test_label_name_out_of_the_class_set(tmp_path: Path) -> None:
    comp, data, test, probs = setup("zodiac", tmp_path)
    frame = format_submission(comp, test, probs, None)
    frame.loc[0, "label"] = "cat"
    with pytest.raises(FlowError) as exc:
        check_submission(comp, frame, expected_ids(comp, test))
    assert str(exc.value) == f"submission line 2: label 'cat' is not a class (classes: {', '.join(comp.classes)})"


def test_write_submission_checks_first(tmp_path: Path) -> None:
    comp, data, test, probs = setup("lemon", tmp_path)
    subs = tmp_path / "submissions" / "lemon"
    with pytest.raises(FlowError):
        write_submission(comp, test, probs[:4], None, submissions_dir=subs, name="r1")
    assert not subs.exists() or not list(subs.iterdir())

    path, frame = write_submission(comp, test, probs, read_sample(comp, data), submissions_dir=subs, name="r1", when=0)
    assert path.parent == subs and path.name.endswith("_r1.csv")
    assert [p.name for p in subs.iterdir()] == [path.name]  # no temp file left
    written = pd.read_csv(path, dtype=str)
    assert list(written.columns) == ["id", "class_num"] and len(written) == 5
    assert written["class_num"].tolist() == [str(v) for v in frame["class_num"]]


def test_a_fold_submission_is_one_file_named_after_its_run() -> None:
    assert submission_name("20250101-120000-smallcnn-cv2/fold1", when=0).endswith("_20250101-120000-smallcnn-cv2-fold1.csv")


def test_interrupted_write_leaves_no_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    comp, data, test, probs = setup("lemon", tmp_path)
    subs = tmp_path / "submissions"
    subs.mkdir()

    def half_then_interrupt(self, path, **kwargs):  # type: ignore[no-untyped-def]
        Path(path).write_text("id,class_num\ntest_0004.jpg,")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_submission(comp, test, probs, None, submissions_dir=subs, name="run")
    assert list(subs.iterdir()) == []


def test_submitting_saved_probabilities_never_loads_paddle() -> None:
    """`flow submit --probs`, `flow score` and `flow submissions` need no model: paddle stays out."""
    import subprocess
    import sys

    code = "import sys, kaggle_flow.submit.submission, kaggle_flow.submit.score; print(sorted({'paddle', 'sklearn'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
