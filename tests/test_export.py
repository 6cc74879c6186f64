"""`flow export`: the exported model, loaded in a fresh process without flow, predicts like flow."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from clitools import fake_cv_run, fake_run, flow

# Imports only paddle, numpy and PIL: what a consumer of the export has.
CONSUMER = r"""
import json, sys
import numpy as np
import paddle
from PIL import Image

export, images, out = sys.argv[1], sys.argv[2:-1], sys.argv[-1]
spec = json.load(open(f"{export}/preprocess.json"))
size, mode = spec["size"], spec["mode"]
mean = np.asarray(spec["mean"], np.float32).reshape(-1, 1, 1)
std = np.asarray(spec["std"], np.float32).reshape(-1, 1, 1)
batch = []
for path in images:
    image = Image.open(path).convert(mode)
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    array = np.asarray(image, np.float32) * spec["scale"]
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    batch.append((array - mean) / std)
model = paddle.jit.load(f"{export}/model")
model.eval()
logits = model(paddle.to_tensor(np.stack(batch).astype(np.float32))).numpy()
probs = np.exp(logits - logits.max(1, keepdims=True))
np.save(out, probs / probs.sum(1, keepdims=True))
"""



@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, embedded_data: Path) -> Path:
    """A working directory with one 1-epoch digits run."""
    import os

    root = tmp_path_factory.mktemp("export")
    (root / "data").mkdir()
    (root / "data" / "digits").symlink_to(embedded_data / "digits", target_is_directory=True)
    old = Path.cwd()
    os.chdir(root)
    try:
        assert flow("split", "digits", "--val-size", "0.2").exit_code == 0
        result = flow("train", "digits", "--epochs", "1")
        assert result.exit_code == 0, result.output
    finally:
        os.chdir(old)
    return root


def test_export_round_trip_in_a_fresh_process(trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kaggle_flow.runs import resolve_run
    from kaggle_flow.submit.predict import predict_probs
    from kaggle_flow.workspace import open_workspace

    monkeypatch.chdir(trained)
    result = flow("export", "--comp", "digits")
    assert result.exit_code == 0, result.output
    ws = open_workspace("digits")
    run = resolve_run(ws, None, best=True)
    export = run.path / "export"
    assert f"Exported {run.id} to {export}" in result.output
    spec = json.loads((export / "preprocess.json").read_text())
    assert spec["size"] == 16 and spec["channels"] == 1 and spec["classes"] == [str(i) for i in range(10)]
    assert (export / "model.pdiparams").is_file()

    table = ws.table()
    rows = table[table["split"] == "test"].head(24).reset_index(drop=True)
    want = predict_probs(run, rows)
    out = trained / "exported_probs.npy"
    python = Path(sys.executable)
    done = subprocess.run(
        [str(python), "-c", CONSUMER, str(export), *rows["path"], str(out)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(out), want, atol=1e-4)


def test_export_onnx_without_paddle2onnx(trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "paddle2onnx" else real_find_spec(name, *a))
    monkeypatch.chdir(trained)
    result = flow("export", "--comp", "digits", "--onnx")
    assert result.exit_code == 1
    assert result.output.strip() == "Error: paddle2onnx is not installed: pip install paddle2onnx"


@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("paddle2onnx", "onnxruntime")),
    reason="paddle2onnx and onnxruntime are not installed (pip install -e '.[onnx]')",
)
def test_export_onnx_predicts_like_flow(trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    from kaggle_flow.data.loader import eval_loader
    from kaggle_flow.runs import resolve_run
    from kaggle_flow.submit.predict import predict_probs
    from kaggle_flow.workspace import open_workspace

    monkeypatch.chdir(trained)
    result = flow("export", "--comp", "digits", "--onnx")
    assert result.exit_code == 0, result.output
    ws = open_workspace("digits")
    run = resolve_run(ws, None, best=True)
    table = ws.table()
    rows = table[table["split"] == "test"].head(16).reset_index(drop=True)
    images = np.concatenate([x.numpy() for x, _ in eval_loader(rows, run.config, batch_size=16)])
    session = onnxruntime.InferenceSession(str(run.path / "export" / "model.onnx"))
    (logits,) = session.run(None, {session.get_inputs()[0].name: images})
    probs = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs / probs.sum(1, keepdims=True), predict_probs(run, rows), atol=1e-4)


def test_export_a_cross_validation_run_names_its_folds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cv = fake_cv_run(tmp_path / "runs/digits", "cv")
    result = flow("export", "cv", "--comp", "digits")
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: runs/digits/cv: a cross-validation run has one model per fold (fold0, fold1): export one, e.g. flow export cv/fold0"
    )
    result = flow("export", "cv/fold1")  # the competition is remembered
    assert result.exit_code == 0, result.output
    spec = json.loads((cv.path / "fold1/export/preprocess.json").read_text())
    assert spec["classes"] == cv.config.classes and spec["mean"] == [0.3] and spec["mode"] == "L"


def test_export_of_a_run_folder_takes_the_runs_competition(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`flow export runs/digits/RUN` exports that run of digits, whatever competition was used last."""
    monkeypatch.chdir(tmp_path)
    run = fake_run(tmp_path / "runs/digits", "r1")
    (tmp_path / ".flow").mkdir(exist_ok=True)
    (tmp_path / ".flow/current").write_text("lemon\n")  # another competition was the last one used here
    result = flow("export", "runs/digits/r1")
    assert result.exit_code == 0, result.output
    assert "lemon" not in result.output
    assert (run.path / "export/preprocess.json").is_file()
