from __future__ import annotations

from pathlib import Path

import pytest

from kaggle_flow.competition import get_competition, list_competitions, load_file
from kaggle_flow.errors import ConfigError, NotFoundError
from kaggle_flow.kaggle_api import slug_of

BUILTIN = ["digits", "garbage", "lemon", "mnist", "palm", "zodiac"]


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_competitions_load(name: str) -> None:
    comp = get_competition(name)
    assert comp.name == name
    assert comp.num_classes == len(comp.classes) >= 2
    assert len(comp.mean) == comp.channels


def test_builtin_facts() -> None:
    assert get_competition("lemon").layout.label_column == "class_num"
    assert get_competition("lemon").num_classes == 4
    assert get_competition("zodiac").num_classes == 12
    assert get_competition("palm").layout.prefix_labels == {"P": 1, "H": 0, "N": 0}
    assert get_competition("garbage").num_classes == 2
    assert get_competition("mnist").data.embedded == "mnist"


def test_unknown_competition() -> None:
    with pytest.raises(NotFoundError, match="unknown competition 'nope' \\(known: digits, garbage, lemon"):
        get_competition("nope")


def _write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "mine.toml"
    file.write_text(text)
    return file


GOOD = 'title = "t"\nclasses = ["a", "b"]\n[layout]\nkind = "folders"\n'


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    file = _write(tmp_path, GOOD + "colour = 3\n")
    with pytest.raises(ConfigError) as info:
        load_file(file)
    assert str(info.value) == f"{file}: unknown key 'layout.colour'"


def test_wrong_type_names_file_and_key(tmp_path: Path) -> None:
    file = _write(tmp_path, 'image_size = "big"\n' + GOOD)
    with pytest.raises(ConfigError) as info:
        load_file(file)
    assert str(info.value).startswith(f"{file}: key 'image_size': ")
    assert "'big'" in str(info.value)


def test_bad_toml(tmp_path: Path) -> None:
    file = _write(tmp_path, "title = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_file(file)


def test_missing_key(tmp_path: Path) -> None:
    file = _write(tmp_path, 'title = "t"\n[layout]\nkind = "folders"\n')
    with pytest.raises(ConfigError) as info:
        load_file(file)
    assert str(info.value) == f"{file}: missing key 'classes'"


def test_local_competitions_are_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "competitions").mkdir()
    (tmp_path / "competitions" / "flowers.toml").write_text(GOOD)
    assert "flowers" in list_competitions()
    assert get_competition("flowers").layout.kind == "folders"


def test_kaggle_slug_of_the_toml_else_the_name(tmp_path: Path) -> None:
    assert slug_of(load_file(_write(tmp_path, 'kaggle = "plant-pathology-2020-fgvc7"\n' + GOOD))) == "plant-pathology-2020-fgvc7"
    assert slug_of(load_file(_write(tmp_path, GOOD))) == "mine"
    assert slug_of(get_competition("digits")) == "digits"


@pytest.mark.parametrize("slug", ["Digit-Recognizer", "digit_recognizer", "../digit-recognizer", "-digits", "digits-", ""])
def test_bad_kaggle_slug_is_one_line_naming_the_toml(tmp_path: Path, slug: str) -> None:
    file = _write(tmp_path, f'kaggle = "{slug}"\n' + GOOD)
    with pytest.raises(ConfigError) as info:
        load_file(file)
    assert str(info.value) == (
        f"{file}: kaggle: {slug!r} is not a Kaggle competition's slug "
        "(lowercase letters, digits and dashes, as in kaggle.com/competitions/digit-recognizer)"
    )
