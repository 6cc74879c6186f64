"""Export a run's best model for inference without flow: paddle.jit (and ONNX) plus preprocess.json.

    runs/COMP/RUN/export/model.json | model.pdmodel   the static graph (paddle 3.x | 2.x)
    runs/COMP/RUN/export/model.pdiparams              the weights
    runs/COMP/RUN/export/model.onnx                   with --onnx (needs paddle2onnx)
    runs/COMP/RUN/export/preprocess.json              what to do to an image before the model

preprocess.json is all a consumer needs besides paddle (or onnxruntime), numpy and PIL: open the
image, convert to "L" (1 channel) or "RGB" (3), resize to size x size (bilinear), scale to 0..1,
subtract mean and divide by std per channel, lay out as N x C x H x W float32; the model returns
logits, softmax gives the class probabilities in the order of `classes` (the same steps as
kaggle_flow.data.load_image and normalizer, so the exported model reproduces `flow predict`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from kaggle_flow.errors import FlowError
from kaggle_flow.fileio import write_json

EXPORT_DIR = "export"
MODEL_PREFIX = "model"


def preprocess_spec(config: dict[str, Any]) -> dict[str, Any]:
    """The preprocessing a run's model expects, from its resolved config."""
    channels = int(config["channels"])
    return {
        "size": int(config["image_size"]),
        "channels": channels,
        "mode": "L" if channels == 1 else "RGB",
        "decode": "PIL: Image.open; for JPEG Image.draft(mode, (size, size)); ImageOps.exif_transpose; "
        "alpha composited on white; convert(mode)",
        "resize": "bilinear",
        "scale": 1 / 255,
        "mean": [float(v) for v in config["mean"]],
        "std": [float(v) for v in config["std"]],
        "layout": "NCHW",
        "output": "logits",
        "classes": list(config["classes"]),
    }


def export_run(run_dir: Path, out_dir: Path | None = None, *, onnx: bool = False) -> list[Path]:
    """paddle.jit.save the run's best model with input [None, C, S, S] float32 into out_dir.

    Args:
        run_dir: a training run folder (config.json, best.pdparams).
        out_dir: where to write; default run_dir/export.
        onnx: also write model.onnx through paddle2onnx (a FlowError when it is not installed).

    Returns:
        The files written, the model files first.

    Example:
        >>> export_run(Path("runs/mnist/20250101-120000-smallcnn"))
    """
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / EXPORT_DIR
    if onnx and importlib.util.find_spec("paddle2onnx") is None:
        raise FlowError("paddle2onnx is not installed: pip install paddle2onnx")
    weights = run_dir / "best.pdparams"
    if not weights.is_file():
        folds = sorted(p.name for p in run_dir.glob("fold*") if (p / "best.pdparams").is_file())
        if folds:
            raise FlowError(
                f"{run_dir}: a cross-validation run has one model per fold ({', '.join(folds)}): "
                f"export one, e.g. flow export {run_dir / folds[0]}"
            )
        raise FlowError(f"{weights}: no best model in this run folder")

    import paddle

    from kaggle_flow.predict import load_model
    from kaggle_flow.runs import load_config

    config = load_config(run_dir)
    spec = preprocess_spec(config)
    model = load_model(run_dir, config)  # the very model `flow predict` uses
    size = spec["size"]
    input_spec = [paddle.static.InputSpec([None, spec["channels"], size, size], "float32", name="image")]
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = out_dir / MODEL_PREFIX
    paddle.jit.save(model, str(prefix), input_spec=input_spec)
    written = sorted(p for p in out_dir.iterdir() if p.name.startswith(MODEL_PREFIX + ".") and p.suffix != ".onnx")
    if onnx:
        paddle.onnx.export(model, str(prefix), input_spec=input_spec, opset_version=11)
        written.append(prefix.with_suffix(".onnx"))
    written.append(write_json(out_dir / "preprocess.json", spec))
    return written
