"""EDA statistics and the header scan, on small images generated in tmp_path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from kaggle_flow.explore import eda, scan
from kaggle_flow.competition import get_competition
from kaggle_flow.errors import DataError
from kaggle_flow.workspace import Workspace


def rgb(seed: int, size: int = 32) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def jpeg(path: Path, seed: int = 0, size: int = 32, **kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb(seed, size).save(path, format="JPEG", **kwargs)
    return path


@pytest.fixture
def samples(tmp_path: Path) -> dict[str, Path]:
    """One file per case the scan must tell apart."""
    d = tmp_path / "img"
    files: dict[str, Path] = {"ok": jpeg(d / "ok.jpg", 1)}
    files["zero"] = d / "zero.jpg"
    files["zero"].write_bytes(b"")
    files["text"] = d / "text.jpg"
    files["text"].write_text("this is not an image\n")
    full = jpeg(d / "full.jpg", 2, size=64).read_bytes()  # cut in half: the header is intact
    files["truncated"] = d / "truncated.jpg"
    files["truncated"].write_bytes(full[: len(full) // 2])
    files["padded"] = d / "padded.jpg"
    files["padded"].write_bytes(full + b"\x00" * 64)
    png = d / "full.png"
    rgb(3).save(png)
    files["truncated_png"] = d / "truncated.png"
    files["truncated_png"].write_bytes(png.read_bytes()[:-40])
    for compression in ("raw", "tiff_lzw"):  # Histopathologic's download is TIFF
        tif = d / f"full_{compression}.tif"
        rgb(5, size=48).save(tif, compression=compression)
        files[f"tif_{compression}"] = tif
        files[f"truncated_tif_{compression}"] = d / f"truncated_{compression}.tif"
        files[f"truncated_tif_{compression}"].write_bytes(tif.read_bytes()[:-200])
    files["cmyk"] = d / "cmyk.jpg"
    Image.new("CMYK", (20, 10), (0, 50, 100, 0)).save(files["cmyk"])
    files["rgba"] = d / "rgba.png"
    Image.new("RGBA", (12, 8), (255, 0, 0, 128)).save(files["rgba"])
    files["grey16"] = d / "grey16.png"
    Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).save(files["grey16"])
    files["grey"] = d / "grey.png"
    Image.new("L", (8, 8), 7).save(files["grey"])
    files["grey_p"] = d / "grey_p.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).convert("P").save(files["grey_p"])
    files["colour_p"] = d / "colour_p.png"
    Image.new("RGB", (8, 8), (200, 10, 10)).convert("P", palette=Image.Palette.ADAPTIVE).save(files["colour_p"])
    exif = Image.Exif()
    exif[0x0112] = 6
    files["rotated"] = jpeg(d / "rotated.jpg", 4, exif=exif)
    return files


def test_scan_image_tells_each_case_apart(samples: dict[str, Path]) -> None:
    infos = {name: scan.scan_image(path) for name, path in samples.items()}
    assert infos["ok"].problem == "" and (infos["ok"].format, infos["ok"].mode) == ("JPEG", "RGB")
    assert (infos["ok"].width, infos["ok"].height, infos["ok"].orientation) == (32, 32, 0)
    assert infos["zero"].problem == "zero-byte"
    assert infos["text"].problem == "not an image"
    assert infos["truncated"].problem == "truncated"
    assert infos["truncated_png"].problem == "truncated"
    assert infos["padded"].problem == ""  # bytes after the end marker are allowed
    for compression in ("raw", "tiff_lzw"):
        assert (infos[f"tif_{compression}"].format, infos[f"tif_{compression}"].problem) == ("TIFF", "")
        assert infos[f"truncated_tif_{compression}"].problem == "truncated"
    assert (infos["cmyk"].mode, infos["cmyk"].width, infos["cmyk"].height) == ("CMYK", 20, 10)
    assert infos["rgba"].mode == "RGBA"
    assert (infos["grey16"].mode, infos["grey16"].bits) == ("I;16", 16)
    assert infos["rotated"].orientation == 6 and infos["rotated"].problem == ""
    assert (infos["grey_p"].mode, infos["grey_p"].grey_palette) == ("P", True)
    assert (infos["colour_p"].mode, infos["colour_p"].grey_palette) == ("P", False)
    assert infos["ok"].hash and infos["ok"].hash != infos["rotated"].hash
    assert scan.scan_image(samples["ok"].parent / "missing.jpg").problem == "unreadable"
    head = samples["ok"].read_bytes()[:100]  # cut inside the header: PIL cannot open it
    (samples["ok"].parent / "head.jpg").write_bytes(head)
    assert scan.scan_image(samples["ok"].parent / "head.jpg").problem == "truncated"


def test_scan_never_decodes_pixels(samples: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import ImageFile

    expected = {name: scan.scan_image(path) for name, path in samples.items()}

    def no_decode(self: object) -> None:
        raise AssertionError("decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    assert {name: scan.scan_image(path) for name, path in samples.items()} == expected


def test_scan_images_pool_matches_serial(samples: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    paths = list(samples.values()) * 3
    serial = scan.scan_images(paths, workers=1, show_progress=False)
    monkeypatch.setattr(scan, "SERIAL_BELOW", 0)
    monkeypatch.setattr(scan, "CHUNK", 4)
    pooled = scan.scan_images(paths, workers=2, show_progress=False)
    pd.testing.assert_frame_equal(serial, pooled)
    assert len(pooled) == len(paths)


@pytest.mark.parametrize(
    ("mode", "channels", "kwargs", "expected"),
    [
        ("RGB", 3, {}, ""),
        ("L", 1, {}, ""),
        ("L", 3, {}, "greyscale in a 3-channel competition"),
        ("RGB", 1, {}, "colour in a 1-channel competition"),
        ("CMYK", 3, {}, "CMYK: colours shift when converted to RGB"),
        ("RGBA", 3, {}, "alpha channel: composited on white when read"),
        ("LA", 1, {}, "alpha channel: composited on white when read"),
        ("RGB", 3, {"transparency": True}, "transparent colour: ignored when read (its pixels keep their colour)"),
        ("I;16", 1, {"bits": 16}, "16-bit: scaled to 8 bits when read"),
        ("RGB", 3, {"bits": 16}, "16-bit: scaled to 8 bits when read"),
        ("P", 3, {}, ""),
        ("P", 3, {"grey_palette": True}, "greyscale in a 3-channel competition"),
        ("P", 1, {"grey_palette": True}, ""),
        ("P", 3, {"transparency": True}, "alpha channel: composited on white when read"),
    ],
)
def test_mode_note_is_relative_to_channels(mode: str, channels: int, kwargs: dict, expected: str) -> None:
    assert eda.mode_note(mode, channels, **kwargs) == expected


def test_class_counts_and_imbalance() -> None:
    table = pd.DataFrame(
        {
            "id": list("abcdefg"),
            "label": pd.array([0, 0, 0, 0, 1, 1, None], dtype="Int64"),
            "split": ["train"] * 6 + ["test"],
        }
    )
    counts = eda.class_counts(table, ["x", "y", "z"])
    assert counts.to_dict("list") == {"class": ["x", "y", "z"], "count": [4, 2, 0], "share": [4 / 6, 2 / 6, 0.0]}
    assert eda.imbalance_ratio(counts) is None
    assert eda.imbalance_ratio(counts.iloc[:2]) == 2.0


def test_the_downloads_validation_set_counts_as_labelled() -> None:
    images = pd.DataFrame(
        {
            "id": ["a", "b", "valid/c", "valid/d", "t"],
            "split": ["train", "train", "valid", "valid", "test"],
            "label": pd.array([0, 1, 1, 0, None], dtype="Int64"),
            "hash": ["h1", "h2", "h1", "h3", "h3"],
            "problem": [""] * 5,
        }
    )
    assert eda.class_counts(images, ["x", "y"])["count"].tolist() == [2, 2]
    dup = eda.find_duplicates(images, ["x", "y"])
    assert dup["train"] == [["a", "valid/c"]] and dup["conflicting_groups"] == 1  # a copy across the split
    assert dup["train_test_pairs"] == [{"test": "t", "train": ["valid/d"], "labels": ["x"]}]


def test_find_duplicates() -> None:
    images = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d", "e", "t1", "t2", "t3", "z1", "z2"],
            "split": ["train"] * 5 + ["test"] * 3 + ["train"] * 2,
            "label": pd.array([0, 0, 1, 1, 2, None, None, None, 0, 1], dtype="Int64"),
            "hash": ["h1", "h1", "h2", "h2", "h3", "h3", "h4", "h4", "", ""],
            "problem": [""] * 8 + ["zero-byte"] * 2,
        }
    )
    images.loc[3, "hash"] = "h1"  # d: same bytes as a and b, another label
    dup = eda.find_duplicates(images, ["p", "q", "r"])
    assert dup["train_groups"] == 1 and dup["train"] == [["a", "b", "d"]] and dup["train_extra"] == 2
    assert dup["conflicting_groups"] == 1
    assert dup["conflicting"] == [[{"id": "a", "label": "p"}, {"id": "b", "label": "p"}, {"id": "d", "label": "q"}]]
    assert dup["train_test"] == 1 and dup["train_test_pairs"] == [{"test": "t1", "train": ["e"], "labels": ["r"]}]
    assert dup["test_groups"] == 1 and dup["test"] == [["t2", "t3"]]


def lemon(root: Path, samples: dict[str, Path] | None = None) -> Path:
    """A lemon-layout tree: 4 classes x 3 JPEGs, 2 test images; `samples` are added to class 0."""
    rows = []
    for label in range(4):
        for i in range(3):
            name = f"c{label}_{i}.jpg"
            jpeg(root / "train_images" / name, seed=10 * label + i)
            rows.append((name, label))
    for name, path in (samples or {}).items():
        shutil.copy(path, root / "train_images" / f"x_{path.name}")
        rows.append((f"x_{path.name}", 0))
    shutil.copy(root / "train_images" / "c0_0.jpg", root / "train_images" / "copy.jpg")
    rows.append(("copy.jpg", 1))  # a duplicate of c0_0.jpg with another label
    jpeg(root / "test_images" / "t0.jpg", seed=99)
    shutil.copy(root / "train_images" / "c2_1.jpg", root / "test_images" / "t1.jpg")
    (root / "train_images.csv").write_text("id,class_num\n" + "".join(f"{n},{lab}\n" for n, lab in rows))
    return root


def workspace(tmp_path: Path, data: Path) -> Workspace:
    return Workspace(get_competition("lemon"), data, tmp_path / "runs" / "lemon", tmp_path / "submissions" / "lemon")


def test_run_eda_saves_report_broken_list_and_plots(tmp_path: Path, samples: dict[str, Path]) -> None:
    ws = workspace(tmp_path, lemon(tmp_path / "data", samples))
    report = eda.run_eda(ws)
    out = ws.eda_dir()
    for name in ("report.json", "broken.csv", "images.csv", "class_histogram.png", "sizes.png", "modes.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "report.json").read_text())["images"] == {"train": 30, "valid": 0, "test": 2, "broken": 6}
    broken = pd.read_csv(out / "broken.csv")
    assert list(broken.columns) == ["id", "path", "problem"]
    assert dict(zip(broken["id"], broken["problem"])) == {
        "x_zero.jpg": "zero-byte",
        "x_text.jpg": "not an image",
        "x_truncated.jpg": "truncated",
        "x_truncated.png": "truncated",
        "x_truncated_raw.tif": "truncated",
        "x_truncated_tiff_lzw.tif": "truncated",
    }
    # class counts leave the 6 broken images out, like every later step
    assert report["classes"][0] == {"class": "excellent", "count": 14, "share": round(14 / 24, 6)}
    assert report["imbalance_ratio"] == 14 / 3
    unusual = {e["id"]: e["note"] for e in report["warnings"]["unusual_mode"]["examples"]}
    assert set(unusual) == {"x_cmyk.jpg", "x_rgba.png", "x_grey16.png", "x_grey.png", "x_grey_p.png"}
    assert report["warnings"]["exif_rotated"]["examples"] == [{"id": "x_rotated.jpg", "orientation": 6}]
    dup = report["duplicates"]
    assert dup["conflicting"] == [[{"id": "c0_0.jpg", "label": "excellent"}, {"id": "copy.jpg", "label": "good"}]]
    assert dup["train_test_pairs"] == [{"test": "t1.jpg", "train": ["c2_1.jpg"], "labels": ["processed"]}]
    assert ws.table(quiet=True)["id"].isin(broken["id"]).sum() == 0

    with pytest.raises(DataError, match=r"6 broken images: x_zero.jpg \(zero-byte\), x_text.jpg \(not an image\)"):
        eda.run_eda(ws, strict=True)


def test_report_notes_what_the_layout_leaves_unread(tmp_path: Path, samples: dict[str, Path]) -> None:
    data = lemon(tmp_path / "data", {"zero": samples["zero"]})
    ws = workspace(tmp_path, data)
    assert eda.run_eda(ws)["notes"] == []
    for i in range(40):  # a folder the layout does not name, more images than it reads
        jpeg(data / "lemon_images" / "part2" / f"p{i}.jpg", seed=i, size=8)
    shutil.rmtree(data / "test_images")
    notes = eda.run_eda(ws)["notes"]
    assert len(notes) == 2
    assert notes[0].startswith(f"{data}: the layout reads 14 of the 54 images below it; images in folders the layout "
                               "does not read: lemon_images/part2 (40); see layout.train_dir in ")
    assert notes[1] == (f"lemon: no test images (no test_images folder in {data}); nothing to submit: "
                        "flow train scores each run on its validation fold (flow split)")


def test_fixed_data_clears_broken_csv(tmp_path: Path, samples: dict[str, Path]) -> None:
    data = lemon(tmp_path / "data", {"zero": samples["zero"]})
    ws = workspace(tmp_path, data)
    assert eda.run_eda(ws)["images"]["broken"] == 1
    assert ws.broken_ids() == {"x_zero.jpg"}
    jpeg(data / "train_images" / "x_zero.jpg", seed=5)
    assert eda.run_eda(ws, strict=True)["broken"] == []
    assert ws.broken_file().read_text() == "id,path,problem\n"
    assert ws.broken_ids() == set()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.sampled_from("abcde"), st.booleans()), min_size=1, max_size=30))
def test_counts_and_duplicates_add_up(rows: list[tuple[int, str, bool]]) -> None:
    """Nothing lost, nothing counted twice: counts sum to the training rows, copies to rows less hashes."""
    images = pd.DataFrame(
        {
            "id": [f"i{k}" for k in range(len(rows))],
            "label": pd.array([lab if train else None for lab, _, train in rows], dtype="Int64"),
            "hash": [h for _, h, _ in rows],
            "split": ["train" if train else "test" for _, _, train in rows],
            "problem": "",
        }
    )
    train = images[images["split"] == "train"]
    counts = eda.class_counts(images, ["x", "y", "z"])
    assert counts["count"].sum() == len(train)
    assert counts["share"].sum() == pytest.approx(1.0 if len(train) else 0.0)
    dup = eda.find_duplicates(images)
    assert dup["train_extra"] == len(train) - train["hash"].nunique()
    assert dup["train_test"] == int(images.loc[images["split"] == "test", "hash"].isin(set(train["hash"])).sum())
    assert dup["conflicting_groups"] == int((train.groupby("hash")["label"].nunique() > 1).sum())
