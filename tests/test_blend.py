"""`flow blend`: weights chosen on out-of-fold predictions by hill climbing, rank averaging for AUC, the ensemble it writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clitools import fake_run, flow, one_line_error
from hypothesis import given, settings
from hypothesis import strategies as st

from kaggle_flow.metrics import METRICS
from kaggle_flow.oof import OutOfFold, write_oof
from kaggle_flow.submit.blend import combine, hill_climb, scaled_ranks


def two_class_probs(labels: np.ndarray, p_true: np.ndarray, k: int, wrong: int = 1) -> np.ndarray:
    """[n, k] probabilities with `p_true` on the true class and the rest on one wrong class."""
    probs = np.zeros((len(labels), k))
    other = (labels + wrong) % k
    probs[np.arange(len(labels)), labels] = p_true
    probs[np.arange(len(labels)), other] = 1 - p_true
    return probs


def test_two_complementary_runs_blend_to_what_neither_gets_alone() -> None:
    labels = np.array([0, 1] * 10)
    first = np.r_[np.full(10, 0.9), np.full(10, 0.4)]  # right on the first half only
    a, b = two_class_probs(labels, first, 2), two_class_probs(labels, first[::-1], 2)
    noise = np.full((20, 2), 0.5)  # class 0 everywhere: right on half the rows too
    accuracy = METRICS["accuracy"]
    assert accuracy(labels, a) == accuracy(labels, b) == 0.5
    counts = hill_climb([a, noise, b], labels, accuracy)
    assert counts.tolist() == [1, 0, 1]  # a (the first of three tied), then b; adding more of any only ties
    assert accuracy(labels, combine([a, noise, b], counts)) == 1.0


def test_a_member_chosen_twice_gives_the_weights_two_to_one() -> None:
    # rows both get right, rows where a is a little wrong and b right, rows where a is right and b badly wrong:
    # a + b fails the last, 2a + b gets every row
    p_a = np.r_[np.full(4, 0.9), np.full(2, 0.45), np.full(4, 0.75)]
    p_b = np.r_[np.full(4, 0.9), np.full(2, 0.7), np.full(4, 0.1)]
    labels = np.arange(10) % 3
    a, b = two_class_probs(labels, p_a, 3), two_class_probs(labels, p_b, 3)
    accuracy = METRICS["accuracy"]
    assert (accuracy(labels, a), accuracy(labels, b), accuracy(labels, (a + b) / 2)) == (0.8, 0.6, 0.6)
    counts = hill_climb([a, b], labels, accuracy)
    assert counts.tolist() == [2, 1]
    assert accuracy(labels, combine([a, b], counts / counts.sum())) == 1.0


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n_runs=st.integers(2, 4), metric=st.sampled_from(["accuracy", "logloss", "auc", "mean_auc", "macro_f1"]))
def test_the_blend_is_never_below_its_best_member(seed: int, n_runs: int, metric: str) -> None:
    rng = np.random.default_rng(seed)
    k = 2 if metric == "auc" else 3
    labels = np.r_[np.arange(k), rng.integers(0, k, 21)]  # every class present
    runs = [rng.dirichlet(np.ones(k) * rng.uniform(0.2, 3), size=len(labels)) for _ in range(n_runs)]
    scorer, rank = METRICS[metric], metric in ("auc", "mean_auc")
    members = [scaled_ranks(p) if rank else p for p in runs]
    counts = hill_climb(members, labels, scorer, steps=20, patience=3)
    blend = scorer(labels, combine(members, counts))
    best = max((scorer(labels, p) for p in runs), key=scorer.key)
    assert scorer.key(blend) >= scorer.key(best) - 1e-12


def test_rank_averaging_ignores_the_scale_of_the_probabilities() -> None:
    soft = np.array([0.1, 0.2, 0.3, 0.4])  # ranks 0, 1/3, 2/3, 1
    sharp = np.array([0.001, 0.9, 0.002, 0.999])  # ranks 0, 2/3, 1/3, 1
    runs = [np.c_[1 - soft, soft], np.c_[1 - sharp, sharp]]
    blended = combine(runs, [1, 1], rank=True)
    np.testing.assert_allclose(blended[:, 1], [0, 0.5, 0.5, 1])
    np.testing.assert_allclose(blended[:, 0], 1 - blended[:, 1])  # rows still sum to 1
    assert combine(runs, [1, 1])[:, 1].argsort().tolist() == [0, 2, 1, 3]  # the plain mean follows the sharp run
    # more classes: every column ranked on its own, ties at their mean rank
    three = np.array([[0.5, 0.3, 0.2], [0.1, 0.3, 0.6], [0.2, 0.7, 0.1]])
    np.testing.assert_allclose(scaled_ranks(three), [[1, 0.25, 0.5], [0, 0.25, 1], [0.5, 1, 0]])
    np.testing.assert_allclose(combine([three, three * 10], [3, 1], rank=True), scaled_ranks(three))


# --- flow blend on the digits competition ------------------------------------------------------


def with_oof(run, ids: list[str], labels: np.ndarray, probs: np.ndarray):  # noqa: ANN001, ANN201
    write_oof(run.oof, OutOfFold(np.array(ids), labels, probs.argmax(axis=1), probs))
    return run


ROWS = [f"v{i:03d}" for i in range(10)]
LABELS = np.arange(10) % 10
P_A = np.r_[np.full(4, 0.9), np.full(2, 0.45), np.full(4, 0.75)]
P_B = np.r_[np.full(4, 0.9), np.full(2, 0.7), np.full(4, 0.1)]


def three_runs(runs: Path, **options: object) -> list:
    """a (0.8), b (0.6) and a weak c (0.0) on the same ten out-of-fold rows: the best blend is 2a + b."""
    return [with_oof(fake_run(runs, name, seed=i, **options), ROWS, LABELS, two_class_probs(LABELS, p, 10))
            for i, (name, p) in enumerate([("a", P_A), ("b", P_B), ("c", np.full(10, 0.3))])]


def test_flow_blend_writes_an_ensemble_that_runs_lists_and_submit_predicts(workdir: Path) -> None:
    from kaggle_flow.run_table import list_runs
    from kaggle_flow.runs import load_run
    from kaggle_flow.submit.predict import predict_probs
    from kaggle_flow.workspace import open_workspace

    a, b, _ = three_runs(workdir / "runs/digits")
    result = flow("blend", "digits", "a", "b", "c")
    assert result.exit_code == 0, result.output
    (path,) = (workdir / "runs/digits").glob("ensemble-*")
    lines = [line.strip() for line in result.output.splitlines()]
    assert lines[0] == "Blending 3 runs on their 10 out-of-fold rows by accuracy (probabilities averaged)"
    cells = [[c.strip() for c in line.strip("│┃").split("│")] for line in lines if line.startswith("│")]
    assert cells == [["a", "0.8000", "0.667"], ["b", "0.6000", "0.333"], ["c", "0.0000", "0.000"],
                     ["equal weights", "0.4000", "-"], ["blend", "1.0000", "-"]]
    assert lines[-1] == f"Wrote runs/digits/{path.name} (CV accuracy 1.0000); submit it with `flow submit --run {path.name}`"
    config = json.loads((path / "config.json").read_text())
    assert config["members"] == ["a", "b"] and config["rank"] is False
    np.testing.assert_allclose(config["weights"], [2 / 3, 1 / 3])
    assert json.loads((path / "summary.json").read_text())["best_score"] == 1.0
    assert pd.read_csv(path / "oof.csv")["pred"].tolist() == LABELS.tolist()

    listed = list_runs(workdir / "runs/digits").set_index("run").loc[path.name]
    assert (listed["kind"], listed["recipe"], listed["best_score"], listed["metric"]) == ("ensemble", "blend of 2", 1.0, "accuracy")
    assert path.name in flow("runs", "digits").output

    result = flow("submit", "digits", "--run", path.name)
    assert result.exit_code == 0, result.output
    table = open_workspace("digits", remember_it=False).table(keep_test=True)
    test = table[table["split"] == "test"].reset_index(drop=True)
    expected = 2 / 3 * predict_probs(a, test) + 1 / 3 * predict_probs(b, test)  # each member on its own
    np.testing.assert_allclose(np.load(load_run(path).test_probs), expected, atol=1e-6)
    (sub,) = (workdir / "submissions/digits").glob(f"*_{path.name}.csv")
    assert pd.read_csv(sub)["label"].tolist() == expected.argmax(axis=1).tolist()
    ledger = pd.read_csv(workdir / "submissions/digits/ledger.csv", dtype=str, keep_default_na=False)
    assert ledger[["run", "kind", "cv_score"]].values.tolist() == [[path.name, "ensemble", "1.000000"]]


def test_a_rank_blend_predicts_the_weighted_mean_of_its_members_ranks(workdir: Path) -> None:
    from kaggle_flow.competition import get_competition
    from kaggle_flow.runs import create_ensemble
    from kaggle_flow.submit.predict import predict_probs
    from kaggle_flow.workspace import open_workspace

    a, b, _ = three_runs(workdir / "runs/digits")
    ens = create_ensemble(workdir / "runs/digits", [a, b], get_competition("digits"), weights=[0.25, 0.75], rank=True)
    table = open_workspace("digits", remember_it=False).table(keep_test=True)
    test = table[table["split"] == "test"].reset_index(drop=True).head(40)
    ranks = [scaled_ranks(predict_probs(m, test)) for m in (a, b)]
    np.testing.assert_allclose(predict_probs(ens, test), 0.25 * ranks[0] + 0.75 * ranks[1], atol=1e-6)


def test_without_runs_named_the_finished_runs_of_the_current_folds(workdir: Path) -> None:
    runs = workdir / "runs/digits"
    three_runs(runs)
    folds = pd.DataFrame({"id": ROWS + [f"w{i:03d}" for i in range(10)], "fold": [0] * 10 + [1] * 10})
    folds.to_csv(runs / "folds.csv", index=False)
    with_oof(fake_run(runs, "other-fold", fold=1), list(folds["id"][10:]), LABELS, two_class_probs(LABELS, P_A, 10))
    with_oof(fake_run(runs, "old-folds"), [f"x{i:03d}" for i in range(10)], LABELS, two_class_probs(LABELS, P_A, 10))
    failed = with_oof(fake_run(runs, "nan-run"), ROWS, LABELS, two_class_probs(LABELS, P_A, 10))
    failed.summary_file.write_text(json.dumps({"status": "failed", "metric": "accuracy"}))
    fake_run(runs, "no-oof")
    result = flow("blend", "digits")
    assert result.exit_code == 0, result.output
    assert "Blending 3 runs on their 10 out-of-fold rows by accuracy (probabilities averaged)" in result.output
    assert ("Left out: old-folds (validated on other folds than folds.csv), nan-run (failed), no-oof (no oof.csv), "
            "other-fold (validated on other rows)") in result.output
    (path,) = runs.glob("ensemble-*")
    assert json.loads((path / "config.json").read_text())["members"] == ["a", "b"]


def test_runs_that_cannot_blend_are_one_line_and_nothing_is_written(workdir: Path) -> None:
    runs = workdir / "runs/digits"
    three_runs(runs)
    with_oof(fake_run(runs, "fold1", fold=1), [f"w{i:03d}" for i in range(10)], LABELS, two_class_probs(LABELS, P_A, 10))
    relabelled = (LABELS + 1) % 10
    with_oof(fake_run(runs, "relabelled"), ROWS, relabelled, two_class_probs(relabelled, P_A, 10))
    fake_run(runs, "five", classes=5)
    fake_run(workdir / "runs/mnist", "m", comp="mnist")
    assert one_line_error(flow("blend", "digits", "a", "fold1")) == (
        "Error: fold1 and a were validated on different rows (10 of its 10 out-of-fold ids are not in a's 10: "
        "another fold or folds.csv); blend runs of the same folds"
    )
    assert one_line_error(flow("blend", "digits", "a", "relabelled")) == (
        "Error: relabelled and a disagree on the label of 'v000' (folds made from other data); blend runs of the same folds"
    )
    assert one_line_error(flow("blend", "digits", "a", "five")) == (
        "Error: runs/digits/five: trained with classes ['0', '1', '2', '3', '4'], 'digits' now has "
        "['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']"
    )
    assert one_line_error(flow("blend", "digits", "a", "runs/mnist/m")) == "Error: runs/mnist/m: a run of 'mnist', not of 'digits'"
    assert one_line_error(flow("blend", "digits", "a", "a")) == (
        "Error: a blend needs two runs validated on the same rows (found 1: a); train another with `flow train digits`"
    )
    nan = two_class_probs(LABELS, P_A, 10)
    nan[3, 0] = np.nan
    with_oof(fake_run(runs, "diverged"), ROWS, LABELS, nan)
    assert one_line_error(flow("blend", "digits", "a", "diverged")) == (
        "Error: runs/digits/diverged/oof.csv: NaN or infinite probabilities (a run that diverged); it cannot be blended"
    )
    assert not list(runs.glob("ensemble-*"))


@pytest.mark.parametrize("kept", [["a"], []])
def test_fewer_than_two_usable_runs_is_one_line(workdir: Path, kept: list[str]) -> None:
    runs = workdir / "runs/digits"
    for run in three_runs(runs):
        if run.name not in kept:
            run.summary_file.write_text(json.dumps({"status": "failed", "metric": "accuracy"}))
    found = "1: a" if kept else "0: none"
    left = "b (failed), c (failed)" if kept else "a (failed), b (failed), c (failed)"
    assert one_line_error(flow("blend", "digits")) == (
        f"Error: a blend needs two runs validated on the same rows (found {found}; left out: {left}); "
        "train another with `flow train digits`"
    )
    assert not list(runs.glob("ensemble-*"))


def test_flow_blend_averages_ranks_for_mean_auc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tiny_comp import make_tiny

    monkeypatch.chdir(tmp_path)
    make_tiny(tmp_path, per_class=2, n_test=1, metric="mean_auc")
    with (tmp_path / "competitions/tiny.toml").open("a") as toml:
        toml.write('\n[submission]\nkind = "probabilities"\n')
    rng = np.random.default_rng(1)
    labels = np.arange(12) % 3
    ids = [f"img_{i:03d}.png" for i in range(12)]
    soft = 0.2 + 0.1 * np.eye(3)[labels] + 0.2 * rng.random((12, 3))  # near 1/3 everywhere
    sharp = np.exp(6 * (0.5 * np.eye(3)[labels] + rng.random((12, 3))))  # confident
    members = {"soft": soft / soft.sum(axis=1, keepdims=True), "sharp": sharp / sharp.sum(axis=1, keepdims=True)}
    for name, probs in members.items():
        with_oof(fake_run(tmp_path / "runs/tiny", name, comp="tiny", classes=3), ids, labels, probs)
    result = flow("blend", "tiny", "soft", "sharp")
    assert result.exit_code == 0, result.output
    assert "Blending 2 runs on their 12 out-of-fold rows by mean_auc (ranks averaged)" in result.output
    (path,) = (tmp_path / "runs/tiny").glob("ensemble-*")
    config = json.loads((path / "config.json").read_text())
    assert config["rank"] is True and config["members"] == ["soft", "sharp"]
    np.testing.assert_allclose(config["weights"], [1 / 4, 3 / 4])  # mean AUC 0.9896 (1/3, 2/3: 0.9844)
    written = pd.read_csv(path / "oof.csv")[["prob_0", "prob_1", "prob_2"]].to_numpy()
    ranks = 1 / 4 * scaled_ranks(members["soft"]) + 3 / 4 * scaled_ranks(members["sharp"])
    np.testing.assert_allclose(written, ranks, atol=1e-5)
    mean_auc = METRICS["mean_auc"]
    blend = json.loads((path / "summary.json").read_text())["best_score"]
    assert blend == mean_auc(labels, ranks) > mean_auc(labels, 1 / 4 * members["soft"] + 3 / 4 * members["sharp"])
    assert blend > max(mean_auc(labels, p) for p in members.values())
