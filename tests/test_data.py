"""The image cache and the dataset: decode once, skip and report broken images, normalize on the device."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from tiny_comp import make_tiny

from kaggle_flow.data import images
from kaggle_flow.data.loader import ImageDataset, eval_loader, make_loader
from kaggle_flow.engine import train
from kaggle_flow.engine.configure import build_config
from kaggle_flow.workspace import open_workspace


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    make_tiny(tmp_path)
    return tmp_path


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = images.decode

    def counting(path: str, size: int, channels: int) -> np.ndarray:
        calls.append(path)
        return real(path, size, channels)

    monkeypatch.setattr(images, "decode", counting)
    return calls


def test_training_decodes_every_image_once(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_decodes(monkeypatch)
    epochs_seen: list[int] = []
    ws = open_workspace("tiny")
    run = train.train(ws, {"epochs": 3, "preset": "affine"}, on_epoch_end=lambda e, row: epochs_seen.append(len(calls)))
    assert len(calls) == 60 and len(set(calls)) == 60  # every training image, once, before epoch 1
    assert epochs_seen == [60, 60, 60]  # epochs 2 and 3 decode nothing
    assert list((tiny / "runs/tiny/cache").glob("16px-1ch-*.npy"))
    train.train(ws, {"epochs": 1})  # a second run reuses the cache
    assert len(calls) == 60
    assert run.best.is_file()


def test_cache_key_follows_files_and_size(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_decodes(monkeypatch)
    paths = sorted(str(p) for p in (tiny / "data/tiny/train").glob("*.png"))[:5]
    cache_dir = tiny / "cache"
    first = images.build_cache(paths, 16, 1, cache_dir)
    again = images.build_cache(paths, 16, 1, cache_dir)
    assert len(calls) == 5 and again.file == first.file
    assert np.array_equal(np.asarray(again.images), np.asarray(first.images))
    assert images.build_cache(paths, 12, 1, cache_dir).images.shape == (5, 12, 12, 1)
    assert images.build_cache(paths[:4], 16, 1, cache_dir).file != first.file
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(paths[0])  # a changed file
    assert images.build_cache(paths, 16, 1, cache_dir).file != first.file
    assert len(calls) == 5 + 5 + 4 + 5
    assert not list(cache_dir.glob(".*.tmp"))


def test_broken_image_is_skipped_and_reported(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tiny / "data/tiny/train/img_004.png").write_bytes(b"not a png at all")
    run = train.train(open_workspace("tiny"), {"epochs": 1})
    err = capsys.readouterr().err
    assert "Warning: 1 images could not be read: img_004.png (UnidentifiedImageError" in err
    oof = pd.read_csv(run.oof)
    assert "img_004.png" not in set(oof["id"])


def test_items_stay_uint8_and_batches_arrive_normalized_nchw(tiny: Path) -> None:
    rows = pd.read_csv(tiny / "data/tiny/train.csv").head(4)
    rows["path"] = [str(tiny / "data/tiny/train" / i) for i in rows["id"]]
    cache = images.build_cache(rows["path"].tolist(), 16, 1, None)
    dataset = ImageDataset(rows, cache, mean=[0.5], std=[0.25])
    image, label = dataset[2]
    raw = np.asarray(Image.open(rows["path"][2]))
    assert image.shape == (16, 16, 1) and image.dtype == np.uint8 and label == rows["label"][2]
    assert np.array_equal(image[:, :, 0], raw)
    batch, labels = next(iter(make_loader(dataset, batch_size=4, shuffle=False)))
    assert batch.shape == [4, 1, 16, 16] and str(batch.dtype) == "paddle.float32"
    assert batch.numpy()[2, 0] == pytest.approx((raw / 255 - 0.5) / 0.25, abs=1e-5)
    assert labels.numpy().tolist() == rows["label"].tolist()


def test_eval_loader_keeps_row_order_and_reports_unreadable(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    test = sorted((tiny / "data/tiny/test").glob("*.png"))
    test[1].write_bytes(b"broken")
    rows = pd.DataFrame({"id": [p.name for p in test], "path": [str(p) for p in test], "label": pd.array([pd.NA] * len(test), dtype="Int64")})
    config = build_config(open_workspace("tiny").comp)
    loader = eval_loader(rows, config, batch_size=4, cache_dir=tiny / "cache")
    assert list(loader.dataset.kept) == [0, 2, 3, 4, 5]
    batches = list(loader)
    assert sum(int(b[0].shape[0]) for b in batches) == 5 and set(batches[0][1].numpy().tolist()) == {-1}
    assert "test_01.png" in capsys.readouterr().err


def test_load_image_handles_modes_and_exif(tmp_path: Path) -> None:
    grey16 = tmp_path / "g16.png"
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(grey16)
    assert images.load_image(grey16, 8, 1).max() == 255
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.zeros((8, 8, 4), np.uint8)).save(rgba)  # fully transparent: white
    assert images.load_image(rgba, 8, 3).min() == 255
    rotated = tmp_path / "exif.jpg"
    array = np.zeros((10, 20, 3), np.uint8)
    array[:, :10] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.fromarray(array).save(rotated, exif=exif, quality=95)
    out = images.load_image(rotated, 20, 1)
    assert out.shape == (20, 20, 1)
    assert out[:10].mean() > 200 and out[10:].mean() < 50  # the white half is now on top


def test_a_pass_left_midway_stops_the_loaders_reader(tiny: Path) -> None:
    """Ctrl-C mid-epoch: paddle's reader thread must be gone before the interpreter exits (a reader
    still inside paddle's C++ code then aborts the process with SIGABRT)."""
    rows = pd.read_csv(tiny / "data/tiny/train.csv")
    rows["path"] = [str(tiny / "data/tiny/train" / i) for i in rows["id"]]
    config = build_config(open_workspace("tiny").comp)
    loader = eval_loader(rows, config, batch_size=1, cache_dir=tiny / "cache")
    assert len(loader) > 4  # more batches than paddle's queue holds: its reader blocks, waiting
    before = set(threading.enumerate())
    with pytest.raises(KeyboardInterrupt), loader.batches() as batches:
        next(iter(batches))
        readers = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        assert readers, "the loader reads in a thread of its own"
        raise KeyboardInterrupt
    assert not any(t.is_alive() for t in readers)
