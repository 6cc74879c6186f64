"""The target owns the label's form: one class an image, or a set of them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kaggle_flow.competition import load_file
from kaggle_flow.errors import ConfigError, DataError
from kaggle_flow.target import TARGETS


def test_multi_encodes_sets_and_decides_each_class_at_its_threshold() -> None:
    multi = TARGETS["multi"]
    y = multi.encode(pd.DataFrame({"labels": ["0 2", "", "1"]}), 3)
    assert y.tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 0]]
    assert [multi.format(row) for row in y] == ["0 2", "", "1"]
    probs = np.array([[0.6, 0.4, 0.5], [0.1, 0.2, 0.3]])
    assert multi.decide(probs).tolist() == [[1, 0, 1], [0, 0, 0]]
    assert multi.decide(probs, np.array([0.7, 0.1, 0.6])).tolist() == [[0, 1, 0], [0, 1, 0]]
    assert multi.counts(y, 3).tolist() == [1, 1, 1]
    assert multi.val_loss(y, np.full((3, 3), 0.5)) == pytest.approx(np.log(2))


def test_single_keeps_one_class_an_image() -> None:
    single = TARGETS["single"]
    y = single.encode(pd.DataFrame({"label": [1, 0, 1]}), 2)
    assert single.counts(y, 2).tolist() == [1, 2]
    assert single.decide(np.array([[0.2, 0.8], [0.9, 0.1]])).tolist() == [1, 0]
    assert single.image_losses(np.array([1, 0]), np.array([[0.25, 0.75], [0.5, 0.5]])) == pytest.approx([-np.log(0.75), np.log(2)])
    assert single.val_loss(np.array([1]), np.array([[0.25, 0.75]])) == pytest.approx(-np.log(0.75))


def test_a_cell_naming_no_class_is_one_line() -> None:
    with pytest.raises(DataError, match=r"table row 2: '7' is not a class index 0-2"):
        TARGETS["multi"].encode(pd.DataFrame({"labels": ["0", "1 7"]}), 3)


def test_a_metric_must_score_the_competitions_target(tmp_path) -> None:
    toml = tmp_path / "tags.toml"
    toml.write_text('title = "t"\nclasses = ["a", "b", "c"]\ntarget = "multi"\nmetric = "kappa"\n'
                    '[layout]\nkind = "csv"\ntrain_csv = "train.csv"\n')
    with pytest.raises(ConfigError, match="metric 'kappa' scores single-label competitions"):
        load_file(toml)


def test_a_multi_label_competition_writes_tags_unless_its_toml_names_a_kind(tmp_path) -> None:
    toml = tmp_path / "tags.toml"
    toml.write_text('title = "t"\nclasses = ["a", "b", "c"]\ntarget = "multi"\nmetric = "mean_f2"\n'
                    '[layout]\nkind = "csv"\ntrain_csv = "train.csv"\n')
    assert load_file(toml).submission.kind == "tags"
    toml.write_text(toml.read_text() + '[submission]\nkind = "probabilities"\n')
    assert load_file(toml).submission.kind == "probabilities"
