"""Names that become paths, links and archive entries: nothing is read or written outside its folder."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import pytest
from clitools import fake_run, flow, one_line_error
from trees import garbage_tree, lemon_tree

from kaggle_flow.errors import FlowError
from kaggle_flow.names import check_name, check_run_name

ALLOWED = "use only letters, digits, '.', '_' and '-', starting with a letter or digit (at most 100 characters)"


@pytest.mark.parametrize("name", ["lemon", "my-flowers_2", "v1.2", "A"])
def test_plain_names_pass(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["../evil", "/abs/x", "a b/c", "a/b", "..", ".hidden", "", "-x", "a\\b", "x" * 101])
def test_names_that_would_become_other_paths_are_refused(name: str) -> None:
    with pytest.raises(FlowError) as info:
        check_name(name)
    assert str(info.value) == f"competition name '{name}': {ALLOWED}"


def test_run_names() -> None:
    assert check_run_name("20261122-153012-smallcnn-f0") == "20261122-153012-smallcnn-f0"
    assert check_run_name("20261122-153012-smallcnn-cv2/fold1") == "20261122-153012-smallcnn-cv2/fold1"
    for bad in ("../other/run", "/tmp/run", "a/b/c", "run/..", "a b"):
        with pytest.raises(FlowError, match=rf"^run name '{bad}': a run folder's name \(RUN or RUN/foldK\)"):
            check_run_name(bad)


RUN_NAME = "a run folder's name (RUN or RUN/foldK) of letters, digits, '.', '_' and '-', starting with a letter or digit"


@pytest.mark.parametrize(
    ("command", "name"),
    [(("submit", "digits", "--run"), "../../etc"), (("predict", "digits", "--run"), "/abs/x"),
     (("export", "--comp", "digits"), "a/b/c"), (("train", "digits", "--resume"), "/abs/x"),
     (("train", "digits", "--init-from"), "../../etc")],
)
def test_a_run_name_that_is_no_run_folder_is_refused_as_a_name(workdir: Path, command: tuple[str, ...], name: str) -> None:
    assert one_line_error(flow(*command, name)) == f"Error: run name '{name}': {RUN_NAME}"


def test_a_run_name_never_climbs_into_another_competitions_runs(workdir: Path) -> None:
    other = fake_run(workdir / "runs/mnist", "other", comp="mnist")
    assert one_line_error(flow("submit", "digits", "--run", "../mnist/other")) == f"Error: run name '../mnist/other': {RUN_NAME}"
    assert one_line_error(flow("train", "digits", "--resume", "../mnist/other")) == f"Error: run name '../mnist/other': {RUN_NAME}"
    # named by the path to its folder, it is found, and refused for what it is
    assert one_line_error(flow("submit", "digits", "--run", other.path)) == "Error: runs/mnist/other: a run of 'mnist', not of 'digits'"


@pytest.mark.parametrize("name", ["../evil", "/abs/x", "a b/c"])
def test_init_writes_nothing_for_a_name_that_is_a_path(workdir: Path, tmp_path: Path, name: str) -> None:
    source = garbage_tree(tmp_path / "shapes")
    assert one_line_error(flow("init", name, "--from", source)) == f"Error: competition name '{name}': {ALLOWED}"
    assert not list(workdir.rglob("*.toml")) and not Path("/abs").exists()


def test_a_command_refuses_a_competition_name_that_is_a_path(workdir: Path) -> None:
    assert one_line_error(flow("eda", "../digits")) == f"Error: competition name '../digits': {ALLOWED}"


def test_an_image_id_may_not_reach_outside_through_a_link(workdir: Path, tmp_path: Path) -> None:
    root = lemon_tree(tmp_path / "lemon")
    (root / "train_images" / "link.jpg").symlink_to("/etc/passwd")
    csv = root / "train_images.csv"
    csv.write_text(csv.read_text() + "link.jpg,0\n")
    assert one_line_error(flow("eda", "lemon", "--data", root)) == (
        "Error: lemon/train_images.csv line 18: id 'link.jpg' points outside the data folder lemon/train_images"
    )


def test_a_folder_import_leaves_links_out(workdir: Path, tmp_path: Path) -> None:
    root = lemon_tree(tmp_path / "lemon")
    (root / "train_images" / "link.jpg").symlink_to("/etc/passwd")
    (root / "etc").symlink_to("/etc", target_is_directory=True)
    (root / "test_images" / "same.jpg").symlink_to(root / "test_images" / "test_0000.jpg")
    result = flow("import", "lemon", root)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("Warning")]
    assert warnings == [
        "Warning: lemon: 3 symbolic links left out (a folder import copies no link): "
        "etc, test_images/same.jpg, train_images/link.jpg"
    ]
    data = workdir / "data/lemon"
    assert not (data / "etc").exists() and not (data / "train_images/link.jpg").exists()
    assert not [p for p in data.rglob("*") if p.is_symlink()]
    assert "Imported lemon into data/lemon: 16 training and 5 test images" in result.output


def _zip_with(archive: Path, entries: list[tuple[str, str, int | None]]) -> Path:
    """A zip of (name, content, mode) entries; a mode with S_IFLNK makes a symlink entry."""
    with zipfile.ZipFile(archive, "w") as zf:
        for name, content, mode in entries:
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.external_attr = mode << 16
            zf.writestr(info, content)
    return archive


@pytest.mark.parametrize(
    ("entries", "entry", "parent"),
    [
        ([("a", "x", None), ("a/b.txt", "y", None)], "a/b.txt", "a"),
        ([("data/link", "/etc", stat.S_IFLNK | 0o777), ("data/link/passwd", "y", None)], "data/link/passwd", "data/link"),
        ([("a", "x", None), ("a/", "", None)], "a/", "a"),
    ],
    ids=["file-then-below", "symlink-then-below", "file-and-folder"],
)
def test_a_zip_with_an_entry_below_a_file_is_refused_before_anything_is_written(
    workdir: Path, tmp_path: Path, entries: list[tuple[str, str, int | None]], entry: str, parent: str
) -> None:
    archive = _zip_with(tmp_path / "odd.zip", entries)
    before = sorted(os.listdir(workdir / "data"))
    assert one_line_error(flow("import", "lemon", archive)) == (
        f"Error: {archive.relative_to(workdir)}: entry '{entry}' needs a folder '{parent}' where the archive has a file; refused"
    )
    assert sorted(os.listdir(workdir / "data")) == before
