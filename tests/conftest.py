"""Shared fixtures: embedded data materialized once per session, a fresh working directory per test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("FLOW_NO_PROGRESS", "1")
# A width in the environment fixes rich's console width when kaggle_flow.console is imported, and the
# tests that set COLUMNS for their tables would get it instead: a shell's COLUMNS, or the COLUMNS=80
# and LINES=24 that readline puts in pytest's own environment for the processes it starts (the
# pytest-xdist workers among them).
for name in ("COLUMNS", "LINES"):
    os.environ.pop(name, None)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))  # course_trees: generated course downloads

import kaggle_flow  # noqa: E402,F401  (reads OMP_NUM_THREADS before any test module imports paddle)


@pytest.fixture(scope="session")
def embedded_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/mnist and data/digits, written once for the whole session."""
    from kaggle_flow.competition import get_competition
    from kaggle_flow.table.sources import materialize

    root = tmp_path_factory.mktemp("embedded") / "data"
    for name in ("digits", "mnist"):
        materialize(get_competition(name), root / name)
    return root


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedded_data: Path) -> Path:
    """An empty working directory whose data/ already holds the embedded competitions."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    for name in ("digits", "mnist"):
        (tmp_path / "data" / name).symlink_to(embedded_data / name, target_is_directory=True)
    return tmp_path


@pytest.fixture(autouse=True)
def no_imagenet_weights(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test offline with an empty weights cache: the automatic recipe never downloads, and never
    finds weights a developer happens to have in ~/.cache/paddle (a test that wants them makes its own)."""
    from paddle.utils import download

    from kaggle_flow.models import weights

    monkeypatch.setattr(download, "WEIGHTS_HOME", str(tmp_path_factory.mktemp("weights")))
    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("tests run offline")

    monkeypatch.setattr(weights.socket, "create_connection", no_network)
