"""Export a run's best model for inference without flow: paddle.jit (and ONNX) plus preprocess.json.

    runs/COMP/RUN/export/model.json | model.pdmodel   the static graph (paddle 3.x | 2.x)
    runs/COMP/RUN/export/model.pdiparams              the weights
    runs/COMP/RUN/export/model.onnx                   with --onnx (needs paddle2onnx)
    runs/COMP/RUN/export/preprocess.json              what to do to an image before the model

preprocess.json is all a consumer needs besides paddle (or onnxruntime), numpy and PIL: open the
image, convert to "L" (1 channel) or "RGB" (3), resize to size x size (bilinear), scale to 0..1,
subtract mean and divide by std per channel, lay out as N x C x H x W float32; the model returns
logits, and its `activation` (softmax; sigmoid for a multi-label competition, each class on its own)
gives the class probabilities in the order of `classes` (the same steps as
kaggle_flow.data.images.load_image and data.loader.DeviceNormalize, so the exported model reproduces
`flow predict`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paddle

from kaggle_flow.config import RunConfig
from kaggle_flow.errors import FlowError
from kaggle_flow.fileio import disk_full_as_error, write_json
from kaggle_flow.runs import Ensemble, RunFolder, resolve_run
from kaggle_flow.submit.predict import load_model
from kaggle_flow.target import TARGETS

if TYPE_CHECKING:
    from kaggle_flow.workspace import Workspace

EXPORT_DIR = "export"
MODEL_PREFIX = "model"


def preprocess_spec(config: RunConfig) -> dict[str, Any]:
    """The preprocessing a run's model expects, from its config."""
    return {
        "size": config.image_size,
        "channels": config.channels,
        "mode": {1: "L", 3: "RGB"}.get(config.channels, f"{config.channels} channels: the competition's channel files, "
                                                        "each read as L and stacked in order (or the image's own bands)"),
        "decode": "PIL: Image.open; for JPEG Image.draft(mode, (size, size)); ImageOps.exif_transpose; "
        "alpha composited on white; convert(mode)",
        "resize": "bilinear",
        "scale": 1 / 255,
        "mean": list(config.mean),
        "std": list(config.std),
        "layout": "NCHW",
        "output": "logits",
        "activation": TARGETS[config.target].activation,  # softmax, or sigmoid (multi-label)
        "classes": list(config.classes),
    }


@dataclass(frozen=True)
class Export:
    run: RunFolder  # a training run: export_run refuses an ensemble
    folder: Path  # runs/COMP/RUN/export
    files: list[Path]  # the model files first, preprocess.json last


def export(ws: Workspace, run: str | None = None, *, onnx: bool = False) -> Export:
    """`flow export`: the named run (default: the best one) saved for inference into RUN/export/."""
    chosen = resolve_run(ws, run, best=run is None)
    folder = chosen.path / EXPORT_DIR
    return Export(chosen, folder, export_run(chosen, folder, onnx=onnx))


def export_run(run: RunFolder, out_dir: Path | None = None, *, onnx: bool = False) -> list[Path]:
    """paddle.jit.save the run's best model with input [None, C, S, S] float32 into out_dir.

    Args:
        run: a training run with best weights (a fold of a CV run, not the CV run itself).
        out_dir: where to write; default RUN/export.
        onnx: also write model.onnx through paddle2onnx (a FlowError when it is not installed).

    Returns:
        The files written, the model files first.

    Example:
        >>> export_run(load_run("runs/mnist/20250101-120000-smallcnn-f0"))
    """
    out_dir = Path(out_dir) if out_dir is not None else run.path / EXPORT_DIR
    if onnx and importlib.util.find_spec("paddle2onnx") is None:
        raise FlowError("paddle2onnx is not installed: pip install paddle2onnx")
    if run.kind == "cv":
        folds = [f for f in run.folds() if f.best.is_file()]
        if folds:
            names = ", ".join(f.name for f in folds)
            raise FlowError(
                f"{run.path}: a cross-validation run has one model per fold ({names}): export one, e.g. flow export {folds[0].id}"
            )
    if isinstance(run, Ensemble):
        raise FlowError(f"{run.path}: an ensemble averages its members; export one of them ({', '.join(run.config.members)})")
    spec = preprocess_spec(run.config)
    model = load_model(run)  # the very model `flow predict` uses
    size = spec["size"]
    input_spec = [paddle.static.InputSpec([None, spec["channels"], size, size], "float32", name="image")]
    prefix = out_dir / MODEL_PREFIX
    with disk_full_as_error(out_dir, "the exported model"):
        out_dir.mkdir(parents=True, exist_ok=True)
        paddle.jit.save(model, str(prefix), input_spec=input_spec)
    written = sorted(p for p in out_dir.iterdir() if p.name.startswith(MODEL_PREFIX + ".") and p.suffix != ".onnx")
    if onnx:
        paddle.onnx.export(model, str(prefix), input_spec=input_spec, opset_version=11)
        written.append(prefix.with_suffix(".onnx"))
    written.append(write_json(out_dir / "preprocess.json", spec))
    return written
