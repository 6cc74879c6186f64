"""What is in the data and what is broken: the eda report on the canonical table and its image scan.

    run_eda(ws)  ->  runs/COMP/eda/report.json, broken.csv, images.csv, class_histogram.png,
                     sizes.png, modes.png, near_duplicates.csv and .png, hashes.csv (the cache);
                     multi-label: labels_per_image.png and co_occurrence.png too

Images are decoded only for their perceptual hashes (explore.twins, cached); the rest of the report
comes from their headers (explore.scan). broken.csv lists the images that
cannot be used (unreadable, zero-byte, not an image, truncated); workspace.table() leaves them out
of every later step. Class counts and duplicates are over the labelled images: the training images
and the download's own validation set, if it has one. The competition's target (kaggle_flow.target)
counts the classes: a multi-label image counts once for each of its classes, report.json adds its
labels per image and the class x class co-occurrence counts, and duplicates conflict when their
label sets differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kaggle_flow import console
from kaggle_flow.data.images import GREY_MODES, equal_channels
from kaggle_flow.errors import DataError
from kaggle_flow.explore import plots, twins
from kaggle_flow.fileio import write_csv, write_json
from kaggle_flow.table.layouts import LABELLED, read_table, reading_notes, split_counts
from kaggle_flow.target import TARGETS, Target

if TYPE_CHECKING:
    from kaggle_flow.workspace import Workspace

ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
COMPOSITED_MODES = frozenset({"RGBA", "LA", "PA"})  # data.images.load_image lays these over white
EXAMPLES = 200  # examples per warning kind kept in report.json (images.csv has every image)


# --- statistics on the table ----------------------------------------------------------------


def _labels(table: pd.DataFrame, num_classes: int, target: Target) -> np.ndarray:
    """The labelled rows' labels as the target encodes them (indices, or multi-hot rows)."""
    return target.encode(table[table["split"].isin(LABELLED)], num_classes)


def class_counts(table: pd.DataFrame, class_names: Sequence[str], target: Target = TARGETS["single"]) -> pd.DataFrame:
    """Labelled images per class: class, count, share of the labelled images (every class listed,
    empty ones too; a multi-label image counts for each of its classes)."""
    y = _labels(table, len(class_names), target)
    counts = target.counts(y, len(class_names))
    return pd.DataFrame(
        {
            "class": list(class_names),
            "count": counts,
            "share": counts / len(y) if len(y) else 0.0,
        }
    )


def label_sets(table: pd.DataFrame, class_names: Sequence[str], target: Target) -> dict[str, Any]:
    """A multi-label table's labels per image ({"0": images with none, "1": ...}) and its class x class
    co-occurrence counts (the diagonal: images per class)."""
    hot = target.one_hot(_labels(table, len(class_names), target), len(class_names)).astype(np.int64)
    per_image = np.bincount(hot.sum(axis=1), minlength=1)
    return {
        "labels_per_image": {str(n): int(c) for n, c in enumerate(per_image)},
        "co_occurrence": {"classes": list(class_names), "counts": (hot.T @ hot).tolist()},
    }


def imbalance_ratio(counts: pd.DataFrame) -> float | None:
    """Largest class over smallest; None when a class is empty (no finite ratio)."""
    smallest = int(counts["count"].min())
    return float(counts["count"].max() / smallest) if smallest > 0 else None


def mode_note(
    mode: str, channels: int, *, bits: int = 8, grey_palette: bool = False, transparency: bool = False,
    equal_rgb: bool = False,
) -> str:
    """Why an image mode deserves a look in a competition with `channels` channels ("" if it is normal)."""
    notes = []
    as_bands = channels not in (1, 3)  # read as the image's own bands, alpha and CMYK's too (data.images.load_image)
    if mode == "CMYK" and not as_bands:
        notes.append("CMYK: colours shift when converted to RGB")
    elif mode in ("YCbCr", "LAB", "HSV"):
        notes.append(f"{mode} colour space")
    if bits > 8:
        notes.append(f"{bits}-bit: scaled to 8 bits when read")
    if as_bands:
        pass
    elif mode in COMPOSITED_MODES or (transparency and mode == "P"):
        notes.append("alpha channel: composited on white when read")
    elif mode in ALPHA_MODES:
        notes.append("premultiplied alpha: read as if on black")
    elif transparency and mode in ("L", "RGB"):
        notes.append("transparent colour: ignored when read (its pixels keep their colour)")
    grey = mode in GREY_MODES or (mode in ("P", "PA") and grey_palette) or (mode == "RGB" and equal_rgb)
    if channels == 3 and grey:
        notes.append("greyscale in a 3-channel competition")
    elif channels == 1 and not grey:
        notes.append("colour in a 1-channel competition")
    return "; ".join(notes)


def distribution(values: pd.Series) -> dict[str, float]:
    """min / median / mean / max of a numeric column (empty dict when there are no values)."""
    if values.empty:
        return {}
    return {
        "min": float(values.min()),
        "median": float(values.median()),
        "mean": round(float(values.mean()), 4),
        "max": float(values.max()),
    }


def size_summary(images: pd.DataFrame, top: int = 5) -> dict[str, Any]:
    """Width, height and aspect ratio of the readable images, with the most common sizes."""
    ok = images[images["problem"] == ""]
    aspect = (ok["width"] / ok["height"].where(ok["height"] > 0)).dropna()
    sizes = (ok["width"].astype(str) + "x" + ok["height"].astype(str)).value_counts()
    return {
        "width": distribution(ok["width"]),
        "height": distribution(ok["height"]),
        "aspect": distribution(aspect.round(4)),
        "distinct_sizes": int(len(sizes)),
        "common": [{"size": s, "count": int(n)} for s, n in sizes.head(top).items()],
        "bytes": distribution(ok["bytes"]),
    }


def counts_of(values: pd.Series) -> dict[str, int]:
    """Value -> count, most common first."""
    return {str(k): int(v) for k, v in values.value_counts().items()}


def find_duplicates(
    images: pd.DataFrame, class_names: Sequence[str] | None = None, limit: int = 1000, target: Target = TARGETS["single"]
) -> dict[str, Any]:
    """Exact duplicates (same bytes) within the labelled images ("train": train and valid rows
    together, so a copy across the download's own validation split counts), within test, between
    the two, and the labelled duplicates whose labels disagree. Broken images take no part.

    `images` needs the columns id, split, hash, problem and the target's label column. Lists hold at
    most `limit` groups; the counts are exact.
    """
    column = target.column

    def name(cell: object) -> str:  # a label cell as class names
        return target.describe(cell, class_names)

    ok = images[(images["problem"] == "") & (images["hash"] != "")]
    train, test = ok[ok["split"].isin(LABELLED)], ok[ok["split"] == "test"]

    def groups(rows: pd.DataFrame) -> list[pd.DataFrame]:
        dup = rows[rows["hash"].duplicated(keep=False)]
        return [g for _, g in dup.groupby("hash", sort=False)]

    train_groups, test_groups = groups(train), groups(test)
    conflicting = [g for g in train_groups if g[column].nunique() > 1]
    train_by_hash = train.groupby("hash")
    shared = test[test["hash"].isin(set(train["hash"]))]
    cross = []
    for test_id, digest in zip(shared["id"], shared["hash"]):
        same = train_by_hash.get_group(digest)
        cross.append({"test": test_id, "train": list(same["id"]), "labels": sorted({name(x) for x in same[column]})})
    return {
        "train_groups": len(train_groups),
        "train_images": int(sum(len(g) for g in train_groups)),
        "train_extra": int(sum(len(g) - 1 for g in train_groups)),
        "conflicting_groups": len(conflicting),
        "test_groups": len(test_groups),
        "test_images": int(sum(len(g) for g in test_groups)),
        "train_test": len(cross),
        "train": [list(g["id"]) for g in train_groups[:limit]],
        "conflicting": [
            [{"id": i, "label": name(lab)} for i, lab in zip(g["id"], g[column])] for g in conflicting[:limit]
        ],
        "test": [list(g["id"]) for g in test_groups[:limit]],
        "train_test_pairs": cross[:limit],
    }


RGB_SAMPLE = 32  # RGB images decoded in a 1-channel competition to tell grey saved as colour from colour


def flag_images(images: pd.DataFrame, channels: int) -> pd.DataFrame:
    """Add `mode_note` and `exif_rotated` to the scan of the usable images. In a 1-channel competition
    up to RGB_SAMPLE of its RGB images are decoded (small): when each has three equal channels, its RGB
    images are taken for grey content saved as colour (as `flow init` took them), not colour."""
    out = images.copy()
    usable = out["problem"] == ""
    rgb = out.loc[usable & (out["mode"] == "RGB"), "path"] if channels == 1 else out["path"].iloc[:0]
    sample = rgb.iloc[:: max(1, len(rgb) // RGB_SAMPLE)][:RGB_SAMPLE]
    equal = len(sample) > 0 and all(_equal_rgb(p) for p in sample)
    out["mode_note"] = [
        mode_note(m, channels, bits=b, grey_palette=g, transparency=t, equal_rgb=equal) if u else ""
        for m, b, g, t, u in zip(out["mode"], out["bits"], out["grey_palette"], out["transparency"], usable)
    ]
    out["exif_rotated"] = usable & ~out["orientation"].isin([0, 1])
    return out


def _equal_rgb(path: str) -> bool:
    try:
        return equal_channels(path)
    except Exception:  # a header that parses over pixels that do not: the scan has said what it could
        return False


def broken_list(images: pd.DataFrame) -> pd.DataFrame:
    """id, path, problem of the unusable images (the rows of broken.csv)."""
    return images.loc[images["problem"] != "", ["id", "path", "problem"]].reset_index(drop=True)


def describe_broken(broken: pd.DataFrame, limit: int = 10) -> str:
    """'a.jpg (zero-byte), b.jpg (truncated) and 3 more'."""
    return console.shortlist((f"{i} ({p})" for i, p in zip(broken["id"], broken["problem"])), limit)


def _warnings(flagged: pd.DataFrame) -> dict[str, Any]:
    unusual = flagged[flagged["mode_note"] != ""]
    rotated = flagged[flagged["exif_rotated"]]
    return {
        "unusual_mode": {
            "count": len(unusual),
            "by_mode": counts_of(unusual["mode"] + (unusual["bits"] > 8).map({True: " 16-bit", False: ""})),
            "examples": [
                {"id": i, "mode": m, "note": n} for i, m, n in zip(unusual["id"], unusual["mode"], unusual["mode_note"])
            ][:EXAMPLES],
        },
        "exif_rotated": {
            "count": len(rotated),
            "by_orientation": counts_of(rotated["orientation"]),
            "examples": [
                {"id": i, "orientation": int(o)} for i, o in zip(rotated["id"], rotated["orientation"])
            ][:EXAMPLES],
        },
    }


def build_report(
    table: pd.DataFrame, images: pd.DataFrame, class_names: Sequence[str], channels: int, target: Target = TARGETS["single"]
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The report dict and the per-image table, from the canonical table and its scan (same order)."""
    merged = pd.concat([table.reset_index(drop=True), images.reset_index(drop=True)], axis=1)
    flagged = flag_images(merged, channels)
    usable = flagged[flagged["problem"] == ""]
    counts = class_counts(usable, class_names, target)  # what later steps train on: broken images left out
    broken = broken_list(flagged)
    report: dict[str, Any] = {
        "images": {**split_counts(table), "broken": len(broken)},
        "classes": [
            {"class": c, "count": int(n), "share": round(float(s), 6)}
            for c, n, s in zip(counts["class"], counts["count"], counts["share"])
        ],
        "labelled": int(usable["split"].isin(LABELLED).sum()),  # the labelled images the counts are of
        "imbalance_ratio": imbalance_ratio(counts),
        "sizes": size_summary(flagged),
        "modes": counts_of(usable["mode"]),
        "formats": counts_of(usable["format"]),
        "broken": broken.to_dict("records"),
        "warnings": _warnings(flagged),
        "duplicates": find_duplicates(flagged, class_names, target=target),
        **(label_sets(usable, class_names, target) if target.several else {}),
    }
    return report, flagged


# --- the whole step -------------------------------------------------------------------------


def _write_files(ws: Workspace, flagged: pd.DataFrame, report: dict[str, Any], pairs: pd.DataFrame) -> dict[str, Path]:
    """Everything but report.json: the CSVs and the PNGs."""
    out = ws.eda_dir()
    files = {
        name: out / file
        for name, file in (
            ("report", "report.json"), ("broken", "broken.csv"), ("images", "images.csv"),
            ("near_duplicates", "near_duplicates.csv"), ("class_histogram", "class_histogram.png"),
            ("sizes", "sizes.png"), ("modes", "modes.png"), ("near_gallery", "near_duplicates.png"),
        )
    }
    write_csv(files["broken"], broken_list(flagged))
    columns = ["id", "split", TARGETS[ws.comp.target].column, "bytes", "format", "mode", "width", "height", "bits", "orientation"]
    columns += ["problem", "mode_note", "hash", "phash"]
    write_csv(files["images"], flagged[columns])
    write_csv(files["near_duplicates"], pairs[twins.PAIR_COLUMNS])
    usable = flagged[flagged["problem"] == ""]
    plots.class_histogram(pd.DataFrame(report["classes"]), files["class_histogram"], title=ws.comp.name)
    plots.sizes(usable, files["sizes"])
    plots.modes(report["modes"], report["formats"], files["modes"])
    plots.near_twins(pairs, dict(zip(usable["id"], usable["path"])), files["near_gallery"], report["near_duplicates"]["near"])
    if "co_occurrence" in report:  # a multi-label target's label sets
        files["labels_per_image"], files["co_occurrence"] = out / "labels_per_image.png", out / "co_occurrence.png"
        plots.labels_per_image(report["labels_per_image"], files["labels_per_image"], title=ws.comp.name)
        plots.co_occurrence(report["co_occurrence"], files["co_occurrence"], title=ws.comp.name)
    return files


def run_eda(
    ws: Workspace, strict: bool = False, *, near: int | None = None, workers: int | None = None
) -> dict[str, Any]:
    """Scan every image of the competition, save the report and plots, list the broken images.

    The table is read fresh (not ws.table()), so images fixed since the last run leave broken.csv.
    What the user should know about it first (no test images, far fewer images read than lie below
    the data folder: layouts.reading_notes) is printed before the scan and kept in report["notes"].
    Near twins are pairs within `near` bits of 64 (twins.DEFAULT_NEAR when None). With `strict`,
    broken images raise DataError after the report is saved.
    """
    near = twins.check_near(near)
    data_dir = ws.ensure_data()
    table = read_table(data_dir, ws.comp)
    notes = reading_notes(data_dir, ws.comp, table)
    for note in notes:  # before the scan: a layout reading the wrong folder is the first thing to fix
        (console.warn if note.warning else console.info)(note.text)
    ws.eda_dir().mkdir(parents=True, exist_ok=True)
    images = twins.scan_with_hashes(table["path"], ws.hashes_file(), workers=workers)
    target = TARGETS[ws.comp.target]
    report, flagged = build_report(table, images, ws.class_names(), ws.comp.channels, target)
    pairs = twins.pair_table(flagged, near, ws.class_names(), target)
    report["near_duplicates"] = twins.summarize(pairs, near)
    files = _write_files(ws, flagged, report, pairs)
    report = {"competition": ws.comp.name, "data_dir": str(data_dir), "channels": ws.comp.channels, **report}
    report["notes"] = [note.text for note in notes]
    report["files"] = {k: str(v) for k, v in files.items()}
    write_json(files["report"], report)
    broken = broken_list(flagged)
    if strict and len(broken):
        raise DataError(f"{data_dir}: {len(broken)} broken images: {describe_broken(broken)}")
    return report
