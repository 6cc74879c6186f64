"""Submission kinds (label, probability, probabilities, top_k, tags): formatted from probabilities, checked,
written through `flow submit` and scored by `flow score`, on small binary, plant and whale contests;
every entry of the kinds registry, a new one included, on a two-class contest."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clitools import flow, one_line_error
from trees import write_image

from kaggle_flow.competition import Competition, load_file
from kaggle_flow.errors import ConfigError, FlowError
from kaggle_flow.kinds import Kind, SampleValues, list_kinds, recognize
from kaggle_flow.metrics import LOGLOSS_EPS, METRICS
from kaggle_flow.submit.score import score_submission
from kaggle_flow.submit.submission import (
    check_submission,
    expected_ids,
    format_submission,
    read_sample,
)

LAYOUT = '\n[layout]\nkind = "csv"\ntrain_csv = "train.csv"\n'

TOMLS = {  # name -> (classes, metric, [submission] lines): the contests each kind is written for
    "dogs": (["cat", "dog"], "logloss", 'kind = "probability"\nid_form = "stem"'),  # Dogs vs Cats: id,label
    "cactus": (["no", "yes"], "auc", 'kind = "probability"\nlabel_column = "has_cactus"'),  # Aerial Cactus
    "plant": (  # Plant Pathology 2020: image_id,healthy,multiple_diseases,rust,scab
        ["healthy", "multiple_diseases", "rust", "scab"], "mean_auc", 'kind = "probabilities"\nid_column = "image_id"\nid_form = "stem"'
    ),
    "whale": (  # MAP@3 over named classes: Image,Id with three labels per row
        ["a", "b", "c", "d", "e"], "map@3", 'kind = "top_k"\nk = 3\nid_column = "Image"\nlabel_column = "Id"\nlabel_form = "name"'
    ),
    "grades": (["0", "1", "2"], "kappa", ""),  # the label kind, as every existing TOML
}


def competition(root: Path, name: str, extra: str = "") -> Competition:
    classes, metric, submission = TOMLS[name]
    file = root / "competitions" / f"{name}.toml"
    file.parent.mkdir(parents=True, exist_ok=True)
    quoted = ", ".join(f'"{c}"' for c in classes)
    file.write_text(f'title = "{name}"\nclasses = [{quoted}]\nmetric = "{metric}"\n{LAYOUT}\n[submission]\n{submission}\n{extra}\n')
    return load_file(file)


PROBS = np.array([[0.7, 0.1, 0.1, 0.05, 0.05], [0.05, 0.05, 0.1, 0.2, 0.6], [0.2, 0.5, 0.1, 0.1, 0.1], [0.1, 0.1, 0.5, 0.1, 0.2]])


def probs_for(comp: Competition) -> np.ndarray:
    """Four test images' probabilities over the competition's classes (rows sum to 1)."""
    p = PROBS[:, : comp.num_classes].copy()
    return p / p.sum(axis=1, keepdims=True)


def test_rows() -> pd.DataFrame:
    return pd.DataFrame({"id": [f"t{i}.jpg" for i in range(4)], "split": "test"})


test_rows.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def sample_of(comp: Competition, root: Path, values: str) -> pd.DataFrame:
    """A sample submission listing the test ids in reverse order, with placeholder values."""
    sub = comp.submission
    ids = list(reversed(expected_ids(comp, test_rows())))
    header = ",".join([sub.id_column, *sub.value_columns(comp.classes)])
    (root / "sample_submission.csv").write_text(header + "\n" + "".join(f"{i},{values}\n" for i in ids))
    sample = read_sample(comp, root)
    assert sample is not None
    return sample


def test_every_existing_toml_keeps_the_label_kind() -> None:
    from kaggle_flow.competition import load_all

    for name, comp in load_all().items():
        assert not isinstance(comp, ConfigError), comp
        assert comp.submission.kind == "label" and comp.submission.value_columns(comp.classes) == [comp.submission.label_column], name


def test_probability_kind_writes_the_positive_class(tmp_path: Path) -> None:
    comp = competition(tmp_path, "cactus")
    probs = probs_for(comp)
    frame = format_submission(comp, test_rows(), probs, sample_of(comp, tmp_path, "0.5"))
    assert list(frame.columns) == ["id", "has_cactus"]
    assert frame["id"].tolist() == ["t3.jpg", "t2.jpg", "t1.jpg", "t0.jpg"]  # the sample's order
    assert frame["has_cactus"].tolist() == pytest.approx(probs[::-1, 1].tolist())
    check_submission(comp, frame, expected_ids(comp, test_rows()))


def test_log_loss_submissions_are_clipped(tmp_path: Path) -> None:
    comp = competition(tmp_path, "dogs")
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.25, 0.75]])
    frame = format_submission(comp, test_rows(), probs, None)
    assert frame["id"].tolist() == ["t0", "t1", "t2", "t3"]  # id_form stem
    assert frame["label"].tolist() == pytest.approx([LOGLOSS_EPS, 1 - LOGLOSS_EPS, 0.5, 0.75], abs=0)
    assert 0 < frame["label"].min() and frame["label"].max() < 1


def test_probabilities_kind_has_a_column_per_class(tmp_path: Path) -> None:
    comp = competition(tmp_path, "plant")
    probs = probs_for(comp) * 3  # unnormalized scores are written as probabilities
    frame = format_submission(comp, test_rows(), probs, sample_of(comp, tmp_path, "0.25,0.25,0.25,0.25"))
    assert list(frame.columns) == ["image_id", "healthy", "multiple_diseases", "rust", "scab"]
    assert frame["image_id"].tolist() == ["t3", "t2", "t1", "t0"]
    values = frame[comp.classes].to_numpy()
    assert np.abs(values.sum(axis=1) - 1).max() < 1e-12
    assert values == pytest.approx(probs_for(comp)[::-1])
    check_submission(comp, frame, expected_ids(comp, test_rows()))


def test_probabilities_columns_can_be_named(tmp_path: Path) -> None:
    comp = competition(tmp_path, "plant", 'columns = ["H", "M", "R", "S"]')
    frame = format_submission(comp, test_rows(), probs_for(comp), None)
    assert list(frame.columns) == ["image_id", "H", "M", "R", "S"]


def test_top_k_kind_writes_the_k_best_labels(tmp_path: Path) -> None:
    comp = competition(tmp_path, "whale")
    frame = format_submission(comp, test_rows(), probs_for(comp), None)
    assert list(frame.columns) == ["Image", "Id"]
    assert frame["Id"].tolist() == ["a b c", "e d c", "b a c", "c e a"]  # ties: the lower class first
    check_submission(comp, frame, expected_ids(comp, test_rows()))


def test_label_kind_is_as_before(tmp_path: Path) -> None:
    comp = competition(tmp_path, "grades")
    frame = format_submission(comp, test_rows(), probs_for(comp), None)
    assert frame["label"].tolist() == [0, 2, 1, 2]


@pytest.mark.parametrize(
    ("name", "column", "value", "error"),
    [
        ("cactus", "has_cactus", 1.5, "submission line 3: column 'has_cactus' value '1.5' is not a probability in [0, 1]"),
        ("cactus", "has_cactus", float("nan"), "submission line 3: column 'has_cactus' value 'nan' is not a probability in [0, 1]"),
        ("plant", "rust", -0.1, "submission line 3: column 'rust' value '-0.1' is not a probability in [0, 1]"),
        ("plant", "rust", 0.9, "submission line 3: the probabilities (healthy, multiple_diseases, rust, scab) sum to 1.65, not 1 (within 1e-06)"),
        ("whale", "Id", "b z", "submission line 3: label 'z' is not a class (classes: a, b, c, d, e)"),
        ("whale", "Id", "b a b", "submission line 3: label 'b' is given twice in 'b a b'"),
        ("whale", "Id", "a b c d", "submission line 3: 4 labels in 'a b c d', more than k = 3"),
        ("whale", "Id", " ", "submission line 3: empty value in column 'Id'"),
    ],
)
def test_the_check_refuses_a_bad_value(tmp_path: Path, name: str, column: str, value: object, error: str) -> None:
    comp = competition(tmp_path, name)
    frame = format_submission(comp, test_rows(), probs_for(comp), None)
    frame[column] = frame[column].astype(object)
    frame.loc[1, column] = value
    with pytest.raises(FlowError) as exc:
        check_submission(comp, frame, expected_ids(comp, test_rows()))
    assert str(exc.value) == error


def test_the_check_wants_the_format_columns(tmp_path: Path) -> None:
    comp = competition(tmp_path, "plant")
    frame = format_submission(comp, test_rows(), probs_for(comp), None).drop(columns="scab")
    with pytest.raises(FlowError) as exc:
        check_submission(comp, frame, expected_ids(comp, test_rows()))
    assert str(exc.value) == "submission: missing column 'scab' (the submission has image_id, healthy, multiple_diseases, rust, scab)"
    (tmp_path / "sample_submission.csv").write_text("image_id,healthy\nt0,1\n")
    with pytest.raises(FlowError, match="missing column 'multiple_diseases'"):
        read_sample(comp, tmp_path)


@pytest.mark.parametrize(
    ("name", "extra", "error"),
    [
        ("whale", 'positive = "cow"', "submission.positive: 'cow' is not a class (a, b, c, d, e)"),
        ("plant", 'columns = ["x", "y"]', "submission.columns: 2 columns for 4 classes (one per class)"),
        ("plant", 'columns = ["image_id", "y", "z", "w"]', "submission: a column name is used twice (image_id, image_id, y, z, w)"),
        ("grades", "k = 0", "key 'submission.k': Input should be greater than or equal to 1 (got 0)"),
        ("grades", 'kind = "ranks"', "key 'submission.kind': Input should be 'label', 'probability', 'probabilities', 'top_k' or 'tags' (got 'ranks')"),
    ],
)
def test_a_format_that_cannot_be_written_is_refused_on_load(tmp_path: Path, name: str, extra: str, error: str) -> None:
    with pytest.raises(ConfigError) as exc:
        competition(tmp_path, name, extra)
    assert str(exc.value) == f"{tmp_path / 'competitions' / f'{name}.toml'}: {error}"


def test_probability_of_many_classes_names_its_class(tmp_path: Path) -> None:
    file = tmp_path / "competitions" / "three.toml"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(f'title = "t"\nclasses = ["a", "b", "c"]\n{LAYOUT}\n[submission]\nkind = "probability"\n')
    with pytest.raises(ConfigError, match="submission.positive: name the class whose probability is written"):
        load_file(file)
    file.write_text(f'title = "t"\nclasses = ["a", "b", "c"]\n{LAYOUT}\n[submission]\nkind = "probability"\npositive = "a"\n')
    comp = load_file(file)
    assert format_submission(comp, test_rows(), PROBS[:, :3], None)["label"].tolist() == pytest.approx(
        (PROBS[:, 0] / PROBS[:, :3].sum(axis=1)).tolist()
    )


# --- flow score on each kind -----------------------------------------------------------------------

Y_TRUE = np.array([0, 1, 1, 2])  # the true classes of t0..t3


def solution(comp: Competition, root: Path) -> Path:
    sub = comp.submission
    ids = expected_ids(comp, test_rows())
    labels = [comp.classes[y] if sub.label_form == "name" else str(y) for y in Y_TRUE % comp.num_classes]
    file = root / "solution.csv"
    file.write_text(f"{sub.id_column},{sub.label_column}\n" + "".join(f"{i},{y}\n" for i, y in zip(ids, labels)))
    return file


def written(comp: Competition, root: Path, probs: np.ndarray) -> Path:
    file = root / "sub.csv"
    format_submission(comp, test_rows(), probs, None).iloc[::-1].to_csv(file, index=False)  # scored by id, not order
    return file


@pytest.mark.parametrize("name", ["dogs", "cactus", "plant", "whale", "grades"])
def test_score_each_kind_with_its_metric(tmp_path: Path, name: str) -> None:
    comp = competition(tmp_path, name)
    probs = probs_for(comp)
    y_true = Y_TRUE % comp.num_classes
    value = score_submission(comp, written(comp, tmp_path, probs), solution(comp, tmp_path))
    assert value == pytest.approx(METRICS[comp.metric](y_true, probs))


def test_score_of_a_plant_solution_in_one_hot_columns(tmp_path: Path) -> None:
    comp = competition(tmp_path, "plant")
    sol = tmp_path / "solution.csv"
    one_hot = np.eye(4, dtype=int)[Y_TRUE]
    sol.write_text("image_id,healthy,multiple_diseases,rust,scab\n" + "".join(f"t{i},{','.join(map(str, r))}\n" for i, r in enumerate(one_hot)))
    value = score_submission(comp, written(comp, tmp_path, probs_for(comp)), sol)
    assert value == pytest.approx(METRICS["mean_auc"](Y_TRUE, probs_for(comp)))


def test_score_with_another_metric_of_each_kind(tmp_path: Path) -> None:
    plant = competition(tmp_path, "plant")
    sub, sol = written(plant, tmp_path, probs_for(plant)), solution(plant, tmp_path)
    assert score_submission(plant, sub, sol, metric="accuracy") == pytest.approx(3 / 4)  # arg-max 0 3 1 2
    assert score_submission(plant, sub, sol, metric="logloss") == pytest.approx(METRICS["logloss"](Y_TRUE, probs_for(plant)))
    whale = competition(tmp_path, "whale")
    sub, sol = written(whale, tmp_path, probs_for(whale)), solution(whale, tmp_path)
    assert score_submission(whale, sub, sol, metric="map@1") == pytest.approx(3 / 4)
    assert score_submission(whale, sub, sol, metric="accuracy") == pytest.approx(3 / 4)  # the first label
    assert score_submission(whale, sub, sol) == pytest.approx((1 + 0 + 1 + 1) / 4)  # a b c ; e d c ; b a c ; c e a


def test_a_label_file_scored_by_a_probability_metric_is_one_line(tmp_path: Path) -> None:
    grades = competition(tmp_path, "grades")
    sub, sol = written(grades, tmp_path, probs_for(grades)), solution(grades, tmp_path)
    with pytest.raises(FlowError) as exc:
        score_submission(grades, sub, sol, metric="logloss")
    assert str(exc.value) == f"{sub}: metric 'logloss' scores class probabilities, not labels; this submission holds labels (kind label)"
    assert score_submission(grades, sub, sol, metric="map@3") == pytest.approx(3 / 4)  # one guess per row: 0 2 1 2


def test_score_refuses_a_bad_probability_in_the_file(tmp_path: Path) -> None:
    comp = competition(tmp_path, "cactus")
    sol = solution(comp, tmp_path)
    sub = tmp_path / "sub.csv"
    sub.write_text("id,has_cactus\nt0.jpg,0.1\nt1.jpg,nope\nt2.jpg,0.3\nt3.jpg,0.4\n")
    with pytest.raises(FlowError) as exc:
        score_submission(comp, sub, sol)
    assert str(exc.value) == f"{sub} line 3: column 'has_cactus' value 'nope' is not a probability in [0, 1]"


# --- flow submit and flow score through the CLI ---------------------------------------------------


@pytest.fixture
def plant_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """competitions/plant.toml and data/plant: 8 training images, t0..t3 to test, sample and solution."""
    monkeypatch.chdir(tmp_path)
    comp = competition(tmp_path, "plant")
    data = tmp_path / "data" / "plant"
    rows = []
    for i in range(8):
        write_image(data / "train" / f"tr{i}.jpg", seed=i)
        rows.append(f"tr{i}.jpg,{i % 4}")
    (data / "train.csv").write_text("id,label\n" + "\n".join(rows) + "\n")
    for i in range(4):
        write_image(data / "test" / f"t{i}.jpg", seed=100 + i)
    sample_of(comp, data, "0.25,0.25,0.25,0.25")
    solution(comp, data)
    np.save(tmp_path / "probs.npy", probs_for(comp).astype(np.float32))
    return data


def test_flow_submit_and_score_a_probabilities_contest(plant_data: Path) -> None:
    result = flow("submit", "plant", "--probs", "probs.npy")
    assert result.exit_code == 0, result.output
    assert "checked: every test id once, probabilities in [0, 1] summing to 1 per row" in result.output
    (file,) = Path("submissions/plant").glob("2*.csv")
    frame = pd.read_csv(file)
    assert list(frame.columns) == ["image_id", "healthy", "multiple_diseases", "rust", "scab"]
    assert frame["image_id"].tolist() == ["t3", "t2", "t1", "t0"]
    result = flow("score", "plant")
    assert result.exit_code == 0, result.output
    want = METRICS["mean_auc"](Y_TRUE, np.load("probs.npy").astype(np.float64))
    assert f"Local mean_auc of submissions/plant/{file.name}: {want:.4f}" in result.output


def test_flow_score_says_lower_is_better(plant_data: Path) -> None:
    toml = Path("competitions/plant.toml")
    toml.write_text(toml.read_text().replace('metric = "mean_auc"', 'metric = "logloss"'))
    assert flow("submit", "plant", "--probs", "probs.npy").exit_code == 0
    result = flow("score", "plant")
    assert result.exit_code == 0, result.output
    assert "(lower is better)" in result.output
    bad = Path("bad.csv")
    bad.write_text("image_id,healthy,multiple_diseases,rust,scab\nt0,2,0,0,0\n" + "".join(f"t{i},1,0,0,0\n" for i in (1, 2, 3)))
    assert one_line_error(flow("score", "plant", "bad.csv")) == "Error: bad.csv line 2: column 'healthy' value '2' is not a probability in [0, 1]"


@pytest.mark.parametrize(
    ("name", "extra", "error"),
    [
        ("grades", 'metric = "logloss"', 'metric \'logloss\' scores class probabilities: set submission.kind to "probability" or "probabilities" (not "label")'),
        ("whale", 'metric = "mean_auc"', 'metric \'mean_auc\' scores class probabilities: set submission.kind to "probability" or "probabilities" (not "top_k")'),
        ("plant", 'metric = "auc"', "metric 'auc' scores two classes (4 here): mean_auc scores each class against the rest"),
    ],
)
def test_a_metric_of_probabilities_needs_a_submission_of_probabilities(tmp_path: Path, name: str, extra: str, error: str) -> None:
    classes, metric, submission = TOMLS[name]
    file = tmp_path / f"{name}.toml"
    quoted = ", ".join(f'"{c}"' for c in classes)
    file.write_text(f'title = "{name}"\nclasses = [{quoted}]\n{extra}\n{LAYOUT}\n[submission]\n{submission}\n')
    with pytest.raises(ConfigError) as exc:
        load_file(file)
    assert str(exc.value) == f"{file}: {error}"
    file.write_text(file.read_text().replace(extra, 'metric = "map@2"'))  # map@K ranks labels of any kind
    assert load_file(file).metric == "map@2"


# --- every entry of the registry ------------------------------------------------------------------


@pytest.mark.parametrize("kind", list_kinds(), ids=lambda k: k.name)
def test_every_kind_writes_checks_scores_and_recognizes_its_submission(tmp_path: Path, kind: Kind) -> None:
    """A two-class contest of each kind, scored by the metric `flow init` assumes for it: the written
    submission passes its check, scores as the probabilities do, and reads back as its kind; a value
    the site would reject is one line naming its line, in the check and in `flow score`."""
    target = kind.targets[0]  # tags: a set of classes an image (target multi); the others one class
    metric, _ = kind.assumed_metric({}, target)
    file = tmp_path / "two.toml"
    file.write_text(f'title = "two"\nclasses = ["a", "b"]\nmetric = "{metric}"\ntarget = "{target}"\n{LAYOUT}\n'
                    f'[submission]\nkind = "{kind.name}"\n')
    comp = load_file(file)
    probs, y_true = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8]]), np.array([0, 1, 1, 1])
    if target == "multi":  # each class on its own; an image with both, one with none
        probs, y_true = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.8], [0.2, 0.4]]), np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    frame = format_submission(comp, test_rows(), probs, None)
    values = kind.value_columns(comp.submission, comp.classes)
    assert list(frame.columns) == ["id", *values] == ["id", *comp.submission.value_columns(comp.classes)]
    check_submission(comp, frame, expected_ids(comp, test_rows()))
    sub, sol = tmp_path / "sub.csv", tmp_path / "solution.csv"
    frame.iloc[::-1].to_csv(sub, index=False)
    answers = [" ".join(map(str, np.flatnonzero(y))) if target == "multi" else y for y in y_true]
    sol.write_text("id,label\n" + "".join(f"t{i}.jpg,{y}\n" for i, y in enumerate(answers)))
    assert score_submission(comp, sub, sol) == pytest.approx(METRICS[metric](y_true, probs))
    cells = [str(v) for v in frame[values[0]]]
    found, keys = recognize(SampleValues(sub, values, cells, comp.classes, None, target))
    assert found is kind and keys["kind"] == kind.name
    bad = frame.astype(object)
    bad.loc[1, values[0]] = "zzz"
    with pytest.raises(FlowError, match=r"^submission line 3: .*'zzz'"):
        check_submission(comp, bad, expected_ids(comp, test_rows()))
    bad.to_csv(sub, index=False)
    with pytest.raises(FlowError, match=rf"^{re.escape(str(sub))} line 3: .*'zzz'"):
        score_submission(comp, sub, sol)


def test_every_kind_is_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert [k.name for k in list_kinds() if f"| `{k.name}`" not in readme] == []


# --- tags: a set of classes an image --------------------------------------------------------------


def planet(root: Path) -> Competition:
    file = root / "planet.toml"
    file.write_text('title = "planet"\nclasses = ["clear", "haze", "water"]\nmetric = "mean_f2"\ntarget = "multi"\n'
                    f'{LAYOUT}\n[submission]\nkind = "tags"\nid_column = "image_name"\nlabel_column = "tags"\n'
                    'id_form = "stem"\nlabel_form = "name"\n')
    return load_file(file)


def test_tags_kind_writes_the_classes_at_the_runs_thresholds(tmp_path: Path) -> None:
    from kaggle_flow.thresholds import Thresholds

    comp = planet(tmp_path)
    probs = np.array([[0.9, 0.3, 0.1], [0.2, 0.6, 0.45], [0.1, 0.2, 0.3], [0.5, 0.5, 0.5]])
    frame = format_submission(comp, test_rows(), probs, None)
    assert frame["tags"].tolist() == ["clear", "haze", "", "clear haze water"]  # 0.5 a class; none: ""
    fitted = Thresholds(np.array([0.5, 0.7, 0.4]), at_least_one=True)
    frame = format_submission(comp, test_rows(), probs, None, fitted)
    assert frame["tags"].tolist() == ["clear", "water", "water", "clear water"]  # row 3: its most probable class
    check_submission(comp, frame, expected_ids(comp, test_rows()))
    frame.loc[3, "tags"] = "clear clear"
    with pytest.raises(FlowError, match="^submission line 5: tag 'clear' is given twice in 'clear clear'$"):
        check_submission(comp, frame, expected_ids(comp, test_rows()))
    frame.loc[3, "tags"] = "clear cloudy2"
    with pytest.raises(FlowError) as exc:
        check_submission(comp, frame, expected_ids(comp, test_rows()))
    assert str(exc.value) == "submission line 5: tag 'cloudy2' is not a class (classes: clear, haze, water)"


def test_a_tags_kind_needs_a_multi_label_target_and_top_k_a_single_one(tmp_path: Path) -> None:
    file = tmp_path / "planet.toml"
    planet(tmp_path)
    file.write_text(file.read_text().replace('target = "multi"\n', "").replace('metric = "mean_f2"', 'metric = "accuracy"'))
    with pytest.raises(ConfigError) as exc:
        load_file(file)
    assert str(exc.value) == f'{file}: submission.kind "tags" does not write the answers of target = "single" (kinds that do: label, probability, probabilities, top_k)'
    file.write_text(file.read_text().replace('metric = "accuracy"', 'metric = "mean_f2"\ntarget = "multi"').replace('kind = "tags"', 'kind = "top_k"'))
    with pytest.raises(ConfigError) as exc:
        load_file(file)
    assert str(exc.value) == f'{file}: submission.kind "top_k" does not write the answers of target = "multi" (kinds that do: probabilities, tags)'


def test_probabilities_of_a_multi_label_contest_need_not_sum_to_one(tmp_path: Path) -> None:
    file = tmp_path / "hot.toml"
    file.write_text(f'title = "hot"\nclasses = ["a", "b", "c"]\nmetric = "mean_auc"\ntarget = "multi"\n{LAYOUT}\n'
                    '[submission]\nkind = "probabilities"\n')
    comp = load_file(file)
    probs = np.array([[0.9, 0.8, 0.1], [0.2, 0.6, 0.7], [0.1, 0.1, 0.2], [0.7, 0.3, 0.9]])
    frame = format_submission(comp, test_rows(), probs, None)
    assert frame[["a", "b", "c"]].to_numpy() == pytest.approx(probs)  # each class on its own, as predicted
    check_submission(comp, frame, expected_ids(comp, test_rows()))
    sub, sol = tmp_path / "sub.csv", tmp_path / "solution.csv"
    frame.to_csv(sub, index=False)
    y_true = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 0], [1, 0, 0]])
    sol.write_text("id,a,b,c\n" + "".join(f"t{i}.jpg,{','.join(map(str, r))}\n" for i, r in enumerate(y_true)))
    assert score_submission(comp, sub, sol) == pytest.approx(METRICS["mean_auc"](y_true, probs))
