"""A download with two test folders (Planet's test-jpg/ and test-jpg-additional/, whose ids the one sample
lists): `flow init --from` names both as `test_dir`, import reads both, the submission holds every sample id
in the sample's order; the list's paths stay inside the data folder and its ids are unique across folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clitools import flow, one_line_error
from multilabel_trees import make

from kaggle_flow.competition import load_file
from kaggle_flow.errors import ConfigError

N_TEST, N_MORE = 6, 4  # images of test-jpg/ and of test-jpg-additional/
INSIDE = ": a TOML's paths are relative to the data folder and stay inside it (no absolute path, no '..')"


@pytest.fixture
def planet(workdir: Path, tmp_path: Path) -> Path:
    """The download, `flow init` on it, and the TOML written."""
    tree = make("planet", tmp_path / "downloads", n_test=N_TEST, n_additional=N_MORE)
    result = flow("init", "planet", "--from", tree)
    assert result.exit_code == 0, result.output
    assert "test images in test-jpg/ (test-jpg)" in result.output
    assert "test images in test-jpg-additional/ too: the sample names them (test-jpg-additional)" in result.output
    return tree


def _sample_ids(tree: Path) -> list[str]:
    return pd.read_csv(tree / "sample_submission_v2.csv", dtype=str)["image_name"].tolist()


def test_init_names_both_test_folders_and_submit_writes_every_sample_id_in_order(workdir: Path, planet: Path) -> None:
    comp = load_file(workdir / "competitions/planet.toml")
    assert comp.layout.test_dir == ["test-jpg", "test-jpg-additional"]
    result = flow("import", "planet", planet)
    assert result.exit_code == 0, result.output
    assert f"30 training and {N_TEST + N_MORE} test images" in result.output
    assert flow("eda", "planet").exit_code == 0
    probs = np.random.default_rng(0).random((N_TEST + N_MORE, 5)).astype(np.float32)
    np.save("probs.npy", probs)
    result = flow("submit", "planet", "--probs", "probs.npy")
    assert result.exit_code == 0, result.output
    (file,) = Path("submissions/planet").glob("2*.csv")
    ids = pd.read_csv(file, dtype=str, keep_default_na=False)["image_name"].tolist()
    assert ids == _sample_ids(planet) == [f"test_{i}" for i in reversed(range(N_TEST))] + [f"file_{i}" for i in range(N_MORE)]


def test_a_run_trained_on_the_download_submits_for_both_test_folders(planet: Path) -> None:
    assert flow("import", "planet", planet).exit_code == 0
    result = flow("train", "planet", "--model", "smallcnn", "--epochs", "1", "--size", "16", "--batch-size", "8")
    assert result.exit_code == 0, result.output
    result = flow("submit", "planet")
    assert result.exit_code == 0, result.output
    assert f"({N_TEST + N_MORE} rows, checked: every test id once" in result.output
    (file,) = Path("submissions/planet").glob("2*.csv")
    assert pd.read_csv(file, dtype=str)["image_name"].tolist() == _sample_ids(planet)


def test_one_file_name_in_both_test_folders_is_one_line(planet: Path) -> None:
    shutil.copy(planet / "test-jpg/test_0.jpg", planet / "test-jpg-additional/test_0.jpg")
    line = one_line_error(flow("import", "planet", planet))
    assert line.endswith("test-jpg-additional/test_0.jpg: two test images with the one id 'test_0.jpg' in two test "
                         "folders; rename one, or move it out of the test folders")
    assert "test-jpg/test_0.jpg and " in line


def test_a_test_folder_of_the_list_missing_is_one_line(workdir: Path, planet: Path) -> None:
    assert flow("import", "planet", planet).exit_code == 0
    shutil.rmtree(workdir / "data/planet/test-jpg-additional")
    assert one_line_error(flow("eda", "planet")) == (
        f"Error: {Path('data/planet/test-jpg-additional')}: test image folder not found")


def _with_test_dir(workdir: Path, value: str, more: str = "") -> Path:
    toml = workdir / "competitions/planet.toml"
    text = toml.read_text().replace('test_dir = ["test-jpg", "test-jpg-additional"]', f"test_dir = {value}{more}")
    toml.write_text(text)
    return toml


@pytest.mark.parametrize("bad", ["/some/folder", "../x", "test-jpg/../../x"])
def test_a_test_folder_of_the_list_outside_the_data_folder_is_refused_on_load(workdir: Path, planet: Path, bad: str) -> None:
    toml = _with_test_dir(workdir, f'["test-jpg", "{bad}"]')
    with pytest.raises(ConfigError) as err:
        load_file(toml)
    assert str(err.value) == f'{toml}: layout.test_dir = "{bad}"{INSIDE}'


def test_a_test_folder_of_the_list_linked_outside_is_one_line(workdir: Path, planet: Path, tmp_path: Path) -> None:
    assert flow("import", "planet", planet).exit_code == 0
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    data = workdir / "data/planet"
    shutil.rmtree(data / "test-jpg-additional")
    (data / "test-jpg-additional").symlink_to(outside, target_is_directory=True)
    toml = workdir / "competitions/planet.toml"
    assert one_line_error(flow("eda", "planet")) == (
        f'Error: {toml}: layout.test_dir = "test-jpg-additional" leads to {outside.resolve()}, '
        f"outside the data folder {Path('data/planet')} (a link)")


@pytest.mark.parametrize(("value", "more", "message"), [
    ('["test-jpg", "test-jpg"]', "", 'layout.test_dir: "test-jpg" is named twice'),
    ('["test-jpg", "train-jpg"]', "", 'layout.test_dir: a list of test folders holds no training folder ("train-jpg"); '
                                      "a test set shared with train_dir is test_dir = train_dir"),
    ('["test-jpg", "more"]', '\ntest_csv = "test.csv"', "layout.test_dir: layout.test_csv gives the test images of one "
                                                         "folder, not of a list"),
])
def test_a_list_of_test_folders_that_cannot_be_read_is_refused_on_load(
    workdir: Path, planet: Path, value: str, more: str, message: str
) -> None:
    toml = _with_test_dir(workdir, value, more)
    with pytest.raises(ConfigError) as err:
        load_file(toml)
    assert str(err.value) == f"{toml}: {message}"


def test_a_single_test_folder_as_a_string_or_a_list_of_one_reads_the_same(workdir: Path, planet: Path) -> None:
    toml = _with_test_dir(workdir, '"test-jpg"')
    assert load_file(toml).layout.test_folders == ["test-jpg"]
    toml.write_text(toml.read_text().replace('test_dir = "test-jpg"', 'test_dir = ["test-jpg"]'))
    assert load_file(toml).layout.test_folders == ["test-jpg"]
    result = flow("import", "planet", planet)
    assert result.exit_code == 0, result.output
    assert f"30 training and {N_TEST} test images" in result.output
