"""The TOML `flow init NAME --from DOWNLOAD` writes: the layout (infer.py), the submission from the
sample (sample.py), the metric, and the lines that say where each came from."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kaggle_flow.kinds import KINDS
from kaggle_flow.table.infer import Found, data_root, read_download, sample_file
from kaggle_flow.table.sample import (
    assumed_submission,
    check_metric,
    default_metric,
    read_sample,
    target_of,
)

@dataclass(frozen=True)
class Inferred:
    """The TOML text and what `flow init` prints about it."""

    text: str
    found: list[tuple[str, str]]  # (what, the file it came from)
    notes: list[str]  # the metric assumed
    warnings: list[str]  # no sample: the submission assumed


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string is a JSON string


def _table(name: str, keys: dict[str, object]) -> list[str]:
    return ["", f"[{name}]"] + [f"{k} = {_value(v)}" for k, v in keys.items() if v is not None]


def infer_competition(
    name: str, source: Path, metric: str | None = None, shown: Path | None = None, kaggle: str | None = None
) -> Inferred:
    """What a download (an unpacked folder, or a training CSV inside one) says about competition NAME.

    `shown`: the path the user gave (a zip unpacked elsewhere), for the TOML's import hint.
    `kaggle`: the slug of the Kaggle competition it came from, written as the TOML's `kaggle`.
    """
    if metric is not None:
        metric = check_metric(metric)
    train_csv = source if source.is_file() else None
    root = source.parent if train_csv else data_root(source)
    found = read_download(root, train_csv)
    sample = sample_file(root)
    warnings = []
    if sample is not None:
        sub = read_sample(found, sample, metric)
    else:
        sub = assumed_submission(found)
        row = "one class" if sub["kind"] == "label" else "space-separated tags"
        warnings.append(
            f"{root}: no sample_submission.csv; assumed {row} a row: "
            f"{sub['id_column']},{sub['label_column']} (see [submission] in the TOML)"
        )
    notes = []
    if metric is None:
        metric, why = default_metric(sub, target_of(found))
        notes.append(f"metric: {metric} assumed ({why}); change it with --metric or the TOML's metric")
    text = _render(name, found, sub, metric, shown or source, kaggle)
    return Inferred(text, found.sources, notes, warnings)


SCRATCH_NOTE = "# From scratch: Adam at 3e-3 (the automatic recipe takes 3e-4 when it starts from ImageNet weights); "
PRESET_NOTES = {  # the preset a download's TOML sets, by its channels, and why
    1: ("affine", "grey images (digits, letters, scans) get shifts and small rotations, never a mirror image"),
    3: ("light", "colour photos get mirror images, a small affine and a little brightness/contrast"),
    0: ("light", "images of several channels (microscopy, satellite bands) get mirror images, a small affine and a "
               "little brightness/contrast"),
}


def _scratch(found: Found) -> tuple[str, dict[str, object]]:
    """The comment and the recipe keys a download's TOML sets: the from-scratch learning rate, and the
    augmentation preset by the kind of image (grey: `affine`, which never flips; colour: `light`)."""
    channels = found.top.get("channels", 3)
    preset, why = PRESET_NOTES[channels if channels in (1, 3) else 0]
    return SCRATCH_NOTE + why, {"lr": 3e-3, "preset": preset}


def _render(name: str, found: Found, sub: dict[str, object], metric: str, source: Path, kaggle: str | None) -> str:
    sub = {"kind": "label", "label_form": "index", **sub}
    sub = {key: sub.get(key) for key in (*KINDS[str(sub["kind"])].toml_keys, "copied", "sample")}
    top = {"title": name, "kaggle": kaggle, "classes": found.classes, "metric": metric, **found.top}
    lines = [f"{k} = {_value(v)}" for k, v in top.items() if v is not None]
    lines += _table("layout", found.layout)
    lines += _table("submission", sub)
    note, recipe = _scratch(found)
    lines += ["", "[train]", note] + [f"{k} = {_value(v)}" for k, v in recipe.items()]
    lines += _table("data", {"how": f"flow import {name} --kaggle" if kaggle else f"flow import {name} {source}"})
    return "\n".join(lines) + "\n"
