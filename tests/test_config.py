"""The one path from flags to a RunConfig: Flags typed, every value range-checked before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaggle_flow.competition import get_competition
from kaggle_flow.engine.configure import build_config
from kaggle_flow.errors import FlowError


def test_every_recipe_key_has_a_flag_and_the_flags_are_typed() -> None:
    """A key added to the competition's recipe can be set by a flag; a flag of the wrong type is one line."""
    from kaggle_flow.competition import Recipe
    from kaggle_flow.config import Flags, RunConfig

    assert set(Recipe.model_fields) <= set(Flags.model_fields) <= set(RunConfig.model_fields)
    assert Flags.of({"epochs": "auto", "lr": None}).given() == {"epochs": "auto"}
    with pytest.raises(FlowError, match=r"^--batch-size input should be a valid integer"):
        Flags.of({"batch_size": "many"})
    assert Flags.of({"sizes": [32, 64], "image_size": 16}).final_size == 64


def test_a_config_json_with_a_retired_key_still_loads(tmp_path: Path) -> None:
    """Runs made while `--normalize-on` existed keep loading (the key is dropped)."""
    from clitools import fake_run

    run = fake_run(tmp_path, "old")
    data = json.loads(run.config_file.read_text())
    run.config_file.write_text(json.dumps({**data, "normalize_on": "host"}))
    from kaggle_flow.runs import load_run

    assert load_run(run.path).config.model_dump() == run.config.model_dump()



@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"seed": -1}, r"^--seed must be 0 or more \(got -1\)$"),
        ({"seed": 99999999999999999999}, r"^--seed must be at most 4294967295 \(got 99999999999999999999\)$"),
        ({"warmup_epochs": 50, "epochs": 1}, r"^--warmup-epochs 50 is longer than the run \(1 epoch\): give at most --epochs"),
        ({"metric": "auc"}, r"^unknown training option 'metric'$"),
    ],
)
def test_values_a_run_cannot_use_are_one_line(flags: dict, message: str) -> None:
    with pytest.raises(FlowError, match=message):
        build_config(get_competition("digits"), flags)


def test_a_warmup_as_long_as_the_run_is_allowed() -> None:
    assert build_config(get_competition("digits"), {"warmup_epochs": 3, "epochs": 3}).warmup_epochs == 3


def test_a_toml_names_its_metric_from_the_registry(tmp_path: Path) -> None:
    from kaggle_flow.competition import load_file

    file = tmp_path / "digits2.toml"
    file.write_text(get_competition("digits").path.read_text().replace('metric = "accuracy"', 'metric = "auroc"'))
    with pytest.raises(FlowError, match=r"unknown metric 'auroc' \(valid: accuracy, micro_f1, macro_f1, balanced_accuracy, kappa, logloss, auc, mean_auc, mean_f2, mean_f1, map@K\)"):
        load_file(file)
