"""`flow init NAME --from DOWNLOAD` on trees laid out like eight Kaggle downloads (bench/kaggle_trees.py):
the TOML it writes means what the generator's expected one means, and `flow import` reads it."""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import pytest
from clitools import flow, one_line_error
from kaggle_trees import LAYOUTS, expected_counts, expected_toml, make

from kaggle_flow.competition import Competition, load_file

METRICS = {"dogs_vs_cats": "logloss", "histopathologic": "auc", "aptos": "kappa", "plant_pathology": "mean_auc",
           "digit_recognizer": "accuracy", "seedlings": "micro_f1", "aerial_cactus": "auc",
           "aerial_cactus_zip": "auc", "cassava": "accuracy"}
ZIPPED = ("seedlings", "plant_pathology")  # zipped here, with their image folders as nested zips


def _meaning(comp: Competition) -> dict[str, object]:
    """What a TOML means to flow: everything but its title, name and file (and the import hint)."""
    sub = comp.submission
    return {
        "classes": comp.classes, "metric": comp.metric, "channels": comp.channels, "mean": comp.mean,
        "std": comp.std, "image_size": comp.image_size, "layout": comp.layout.model_dump(),
        "submission": {**sub.model_dump(), "positive": None, "columns": sub.value_columns(comp.classes)},
        "positive": sub.positive_index(comp.classes) if sub.kind == "probability" else None,
        "train": comp.train.model_dump(exclude={"lr", "preset"}),  # flow's from-scratch recipe, checked below
    }


def _zip_with_nested(tree: Path, archive: Path) -> Path:
    """The download zip of `tree`, each image folder inside it as a zip of its own (older downloads)."""
    for folder in [p for p in tree.iterdir() if p.is_dir()]:
        with zipfile.ZipFile(tree / f"{folder.name}.zip", "w") as zf:
            for path in sorted(folder.rglob("*")):
                zf.write(path, path.relative_to(tree).as_posix())
        shutil.rmtree(folder)
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(tree.rglob("*")):
            zf.write(path, path.relative_to(tree).as_posix())
    return archive


def _download(name: str, root: Path, zipped: bool) -> Path:
    tree = make(name, root)
    return _zip_with_nested(tree, root / f"{name}.zip") if zipped else tree


CASES = [(name, False) for name in LAYOUTS] + [(name, True) for name in ZIPPED]


@pytest.mark.parametrize(("name", "zipped"), CASES, ids=[n + ("-zip" if z else "") for n, z in CASES])
def test_init_writes_what_the_download_means_and_import_reads_it(
    workdir: Path, tmp_path: Path, name: str, zipped: bool
) -> None:
    download = _download(name, tmp_path / "downloads", zipped)
    result = flow("init", "comp", "--from", download, "--metric", METRICS[name])
    assert result.exit_code == 0, result.output
    assert "assumed" not in result.output
    written = load_file(workdir / "competitions/comp.toml")
    expected = load_file(tmp_path / "downloads" / f"{name}.toml")
    assert _meaning(written) == _meaning(expected)
    # the recipe of a download: Adam at the from-scratch rate, and no mirror images of grey glyphs
    assert (written.train.lr, written.train.preset) == (3e-3, "affine" if written.channels == 1 else "light")

    result = flow("import", "comp", download)
    assert result.exit_code == 0, result.output
    counts = expected_counts(name)
    assert f"{counts['train']} training and {counts['test']} test images" in result.output


@pytest.mark.parametrize(
    ("name", "metric"),
    [("cassava", "accuracy"), ("plant_pathology", "logloss"), ("aerial_cactus", "auc"), ("seedlings", "accuracy")],
)
def test_init_without_metric_says_what_it_assumed(workdir: Path, tmp_path: Path, name: str, metric: str) -> None:
    result = flow("init", "comp", "--from", make(name, tmp_path / "downloads"))
    assert result.exit_code == 0, result.output
    assert load_file(workdir / "competitions/comp.toml").metric == metric
    lines = [line for line in result.output.splitlines() if "assumed" in line]
    assert len(lines) == 1 and lines[0].startswith(f"metric: {metric} assumed (")
    assert lines[0].endswith("change it with --metric or the TOML's metric")


def test_init_prints_each_finding_with_its_file(workdir: Path, tmp_path: Path) -> None:
    result = flow("init", "cassava", "--from", make("cassava", tmp_path / "downloads"), "--metric", "accuracy")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "training images in train_images/, named by column 'image_id' (train.csv)" in out
    assert "labels: column 'label' (class index) (train.csv)" in out
    assert "label names of the codes (5) (label_num_to_disease_map.json)" in out
    assert "(sample_submission.csv)" in out


# --- one line each, nothing written --------------------------------------------------------


def _no_toml(workdir: Path) -> None:
    assert not (workdir / "competitions").exists() or not list((workdir / "competitions").glob("*.toml"))


def test_init_refuses_a_builtin_name(workdir: Path, tmp_path: Path) -> None:
    line = one_line_error(flow("init", "digits", "--from", make("cassava", tmp_path / "d")))
    assert line == "Error: 'digits' is a built-in competition; pick another name"
    _no_toml(workdir)


def test_init_refuses_an_existing_toml(workdir: Path, tmp_path: Path) -> None:
    tree = make("cassava", tmp_path / "d")
    assert flow("init", "cas", "--from", tree).exit_code == 0
    before = (workdir / "competitions/cas.toml").read_text()
    line = one_line_error(flow("init", "cas", "--from", tree, "--metric", "kappa"))
    assert line == "Error: competitions/cas.toml: already exists; edit it or remove it first"
    assert (workdir / "competitions/cas.toml").read_text() == before


def test_init_refuses_an_unknown_metric(workdir: Path, tmp_path: Path) -> None:
    line = one_line_error(flow("init", "cas", "--from", make("cassava", tmp_path / "d"), "--metric", "f2"))
    assert line.startswith("Error: --metric: unknown metric 'f2' (valid: accuracy, ")
    _no_toml(workdir)


def test_init_refuses_a_download_without_images(workdir: Path, tmp_path: Path) -> None:
    tree = make("aerial_cactus", tmp_path / "d")
    shutil.rmtree(tree / "train")
    line = one_line_error(flow("init", "cac", "--from", tree))
    assert line.startswith(f"Error: {(tree / 'train.csv').relative_to(workdir)}: no column names the images of test (first ids: '")
    _no_toml(workdir)


def test_init_refuses_a_download_without_labels(workdir: Path, tmp_path: Path) -> None:
    tree = make("aerial_cactus", tmp_path / "d")
    (tree / "train.csv").unlink()
    line = one_line_error(flow("init", "cac", "--from", tree))
    assert line == (
        f"Error: {tree.relative_to(workdir)}: cannot read the labels: no class folders, no labels CSV, no class prefix in the file names in train"
    )
    _no_toml(workdir)


def test_init_names_sample_ids_that_match_no_test_image(workdir: Path, tmp_path: Path) -> None:
    tree = make("aptos", tmp_path / "d")
    sample = tree / "sample_submission.csv"
    sample.write_text("id_code,diagnosis\nnope1,0\nnope2,0\n")
    line = one_line_error(flow("init", "apt", "--from", tree))
    assert line == f"Error: {sample.relative_to(workdir)}: ids that match no test image in test_images: 'nope1', 'nope2'"
    _no_toml(workdir)


def test_init_without_a_sample_warns_and_writes(workdir: Path, tmp_path: Path) -> None:
    tree = make("aptos", tmp_path / "d")
    (tree / "sample_submission.csv").unlink()
    result = flow("init", "apt", "--from", tree, "--metric", "kappa")
    assert result.exit_code == 0, result.output
    warning = [line for line in result.output.splitlines() if "sample_submission.csv" in line]
    assert warning == [f"Warning: {tree.relative_to(workdir)}: no sample_submission.csv; assumed one class a row: id_code,diagnosis "
                       "(see [submission] in the TOML)"]
    sub = load_file(workdir / "competitions/apt.toml").submission
    assert (sub.kind, sub.id_column, sub.label_column, sub.id_form) == ("label", "id_code", "diagnosis", "stem")


def test_a_zip_bomb_inside_the_download_is_refused_by_init_and_import(workdir: Path, tmp_path: Path) -> None:
    tree = make("aerial_cactus", tmp_path / "d")
    with zipfile.ZipFile(tree / "extra.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("extra/zeros.bin", bytes(50 * 10**6))
    archive = _zip_with_nested(tree, tmp_path / "cactus.zip")
    rel = archive.relative_to(workdir)
    line = one_line_error(flow("init", "cac", "--from", archive, "--metric", "auc"))
    assert line.startswith(f"Error: {rel}/extra.zip: unpacks to 50.0 MB from ")
    assert line.endswith("refused as a likely zip bomb (pass --allow-large if it is genuine)")
    _no_toml(workdir)
    (workdir / "competitions").mkdir(exist_ok=True)
    (workdir / "competitions/cac.toml").write_text(expected_toml("aerial_cactus"))
    line = one_line_error(flow("import", "cac", archive))
    assert line.startswith(f"Error: {rel}/extra.zip: unpacks to 50.0 MB from ")
    assert not (workdir / "data/cac").exists()


def test_init_from_a_training_csv_keeps_the_samples_own_name(workdir: Path, tmp_path: Path) -> None:
    from trees import lemon_tree

    root = lemon_tree(tmp_path / "lem")
    result = flow("init", "lem", "--from", root / "train_images.csv")
    assert result.exit_code == 0, result.output
    comp = load_file(workdir / "competitions/lem.toml")
    assert (comp.layout.kind, comp.layout.label_column, comp.layout.test_dir) == ("csv", "class_num", "test_images")
    sub = comp.submission
    assert (sub.kind, sub.sample, sub.id_form, sub.label_column) == ("label", "sample_submit.csv", "name", "class_num")
    assert flow("import", "lem", root).exit_code == 0


def test_init_reads_a_top_k_sample(workdir: Path, tmp_path: Path) -> None:
    tree = make("cassava", tmp_path / "d")
    sample = tree / "sample_submission.csv"
    lines = sample.read_text().splitlines()
    sample.write_text("\n".join([lines[0]] + [line.rsplit(",", 1)[0] + ",4 3 2" for line in lines[1:]]) + "\n")
    result = flow("init", "cas", "--from", tree)
    assert result.exit_code == 0, result.output
    assert "metric: map@3 assumed (the sample ranks classes)" in result.output
    comp = load_file(workdir / "competitions/cas.toml")
    assert (comp.submission.kind, comp.submission.k, comp.submission.label_form, comp.metric) == ("top_k", 3, "index", "map@3")
    assert flow("import", "cas", tree).exit_code == 0


def _digit_jpegs(workdir: Path, root: Path, mode: str) -> Path:
    """A folder-per-class download of 3 classes x 12 real MNIST digits and 6 test digits, JPEGs in `mode`
    ("colour": RGB, each digit drawn in a colour of its own)."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    rows = pd.read_csv(workdir / "data/mnist/train.csv")
    rows = rows[rows["label"] < 3].groupby("label").head(14)
    for k, (image_id, label) in enumerate(zip(rows["id"], rows["label"])):
        folder = root / ("test" if k % 7 == 6 else f"train/{label}")  # 12 a class for training, 6 for test
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.open(workdir / "data/mnist/train" / image_id).convert("RGB" if mode == "colour" else mode)
        if mode == "colour":
            colour = np.random.default_rng(k).uniform(0.2, 1.0, size=3)
            image = Image.fromarray((np.asarray(image) * colour).astype(np.uint8))
        image.save(folder / f"{k}.jpg", quality=90)
    return root


@pytest.mark.parametrize(("mode", "channels", "preset", "why"), [
    ("L", 1, "affine", "grey images (digits, letters, scans) get shifts and small rotations, never a mirror image"),
    ("RGB", 1, "affine", "grey images (digits, letters, scans) get shifts and small rotations, never a mirror image"),
    ("colour", 3, "light", "colour photos get mirror images, a small affine and a little brightness/contrast"),
])
def test_grey_jpegs_get_one_channel_and_no_mirror_images(workdir: Path, tmp_path: Path, mode: str, channels: int,
                                                          preset: str, why: str) -> None:
    import albumentations as A

    from kaggle_flow.data.augment import PRESETS

    download = _digit_jpegs(workdir, tmp_path / "download", mode)
    result = flow("init", "comp", "--from", download, "--metric", "accuracy")
    assert result.exit_code == 0, result.output
    written = load_file(workdir / "competitions/comp.toml")
    assert (written.channels, written.train.preset) == (channels, preset)
    assert any(isinstance(t, A.HorizontalFlip) for t in PRESETS[preset].build(28)) == (channels == 3)
    text = (workdir / "competitions/comp.toml").read_text()
    assert text.split("[train]\n")[1].splitlines()[0].endswith(why)  # the comment says what the preset does
    if channels == 1:
        how = "mode L" if mode == "L" else "RGB with three equal channels"  # grey saved as colour JPEGs is grey too
        assert re.search(rf"grey images \({how} in all \d+ sampled of \d+\): channels = 1, mean 0\.\d+ and std 0\.\d+ of their pixels \(train\)",
                         result.output), result.output
        assert 0.05 < written.mean[0] < 0.3 and 0.15 < written.std[0] < 0.45  # MNIST's: 0.13 and 0.31
    assert flow("import", "comp", download).exit_code == 0
    eda = flow("eda", "comp")
    assert eda.exit_code == 0 and "in a 3-channel competition" not in eda.output and "in a 1-channel" not in eda.output
