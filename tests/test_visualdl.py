"""`flow train --visualdl`: VisualDL logs when visualdl is installed, one warning line when not."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from clitools import flow

HAS_VISUALDL = importlib.util.find_spec("visualdl") is not None


@pytest.mark.skipif(not HAS_VISUALDL, reason="visualdl is not installed (pip install -e '.[visualdl]')")
def test_visualdl_logs_are_written(workdir: Path) -> None:
    result = flow("train", "digits", "--epochs", "1", "--visualdl")
    assert result.exit_code == 0, result.output
    assert list((workdir / "runs/digits").glob("*/visualdl/vdlrecords.*.log"))


def test_visualdl_missing_is_one_warning(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_visualdl(name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "visualdl" or name.startswith("visualdl."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_visualdl)
    result = flow("train", "digits", "--epochs", "1", "--visualdl")
    assert result.exit_code == 0, result.output
    assert "Warning: --visualdl: visualdl is not installed (pip install visualdl); no VisualDL logs written" in result.output
    assert not list((workdir / "runs/digits").glob("*/visualdl"))
