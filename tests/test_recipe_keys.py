"""Every recipe key is declared once (recipe_keys.py): a TOML key, a `flow train` flag and a RunConfig
field at once, with one range and one help. A key added without a flag fails here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from clitools import flow, one_line_error

from kaggle_flow.competition import Recipe, get_competition
from kaggle_flow.config import Flags
from kaggle_flow.engine.configure import build_config
from kaggle_flow.recipe_keys import RECIPE_KEYS, RecipeKey



def params(keys: Any) -> list[Any]:
    return [pytest.param(key, id=key.name) for key in keys]


KEYS = params(RECIPE_KEYS)
SAMPLES = {  # what to pass where the declaration alone does not say what fits digits (16 px grey images)
    "model": ("resnet-t", "resnet-t"),
    "preset": ("flip", "flip"),
    "sizes": ("8,16", [8, 16]),
}


def sample(key: RecipeKey) -> tuple[list[str], Any]:
    """The arguments that set `key` to a value other than its default, and that value."""
    if key.name in SAMPLES:
        text, value = SAMPLES[key.name]
        return [key.flag_name, text], value
    if key.type is bool:
        return [key.option.split("/")[1] if key.default else key.flag_name], not key.default
    if key.choices:
        value = next(c for c in key.choices if c != key.default)
        return [key.flag_name, value], value
    assert key.type in (int, float), f"{key.name}: add a sample value to SAMPLES"
    low = next((v for v in (key.ge, key.gt) if v is not None), 0)
    value = key.type(low + (2 if key.type is int else 0.25))
    return [key.flag_name, str(value)], value


@pytest.fixture(scope="module")
def train_help() -> str:
    result = flow("train", "--help")
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def given_flags(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> list[Flags]:
    """The Flags `flow train` hands the library, caught instead of training."""
    caught: list[Flags] = []
    monkeypatch.setattr("kaggle_flow.engine.train.train", lambda ws, flags, **_: caught.append(flags))
    return caught


@pytest.mark.parametrize("key", KEYS)
def test_every_recipe_key_is_a_flag_a_flags_field_and_a_described_toml_key(key: RecipeKey, train_help: str) -> None:
    assert key.flag_name in train_help.split()
    assert key.name in Flags.model_fields
    assert Recipe.model_fields[key.name].description == key.help
    assert key.help_text().startswith(key.help)


def test_the_recipe_has_the_declared_keys_only() -> None:
    assert list(Recipe.model_fields) == [key.name for key in RECIPE_KEYS]


@pytest.mark.parametrize("key", params(k for k in RECIPE_KEYS if k.choices))
def test_the_choices_a_help_lists_are_the_registry_s_names(key: RecipeKey) -> None:
    from kaggle_flow.engine.optim import LOSSES, OPTIMIZERS, SCHEDULES

    registry = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "loss": LOSSES}[key.name]
    assert key.choices == tuple(registry)


@pytest.mark.parametrize("key", KEYS)
def test_the_flag_sets_the_run_config(key: RecipeKey, given_flags: list[Flags]) -> None:
    args, value = sample(key)
    digits = get_competition("digits")
    assert getattr(build_config(digits, placeholders=True), key.name) != value  # the flag changes something
    result = flow("train", "digits", *args)
    assert result.exit_code == 0, result.output
    (flags,) = given_flags
    assert flags.given() == {key.name: value}
    assert getattr(build_config(digits, flags, placeholders=True), key.name) == value


@pytest.mark.parametrize("key", params(k for k in RECIPE_KEYS if k.ge is not None or k.gt is not None))
def test_a_flag_below_its_range_is_one_line_before_anything_runs(key: RecipeKey, workdir: Path) -> None:
    got = key.type(key.ge - 1) if key.ge is not None else key.type(key.gt)
    bound = f"{key.ge} or more" if key.ge is not None else f"above {key.gt}"
    line = one_line_error(flow("train", "digits", key.flag_name, f"{got},16" if key.many else str(got)))
    assert line == f"Error: {key.flag_name} must be {bound} (got {got!r})"
    assert not (workdir / "runs/digits").exists()


@pytest.mark.parametrize("key", params(k for k in RECIPE_KEYS if k.type is float))
def test_an_infinite_number_is_one_line_before_anything_runs(key: RecipeKey, workdir: Path) -> None:
    line = one_line_error(flow("train", "digits", key.flag_name, "inf"))
    assert line.startswith(f"Error: {key.flag_name} must be ") and line.endswith("(got inf)")
