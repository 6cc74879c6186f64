"""Several files per sample (Human Protein Atlas: {id}_red.png, _green, _blue, _yellow) stacked into one
4-channel input: `flow init --from` recognising the download, `flow import`, `flow train` and `flow submit`
on it, the first layer's weights adapted from RGB, and a missing channel file as one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import paddle
import pytest
from clitools import flow, one_line_error
from PIL import Image

from kaggle_flow import models
from kaggle_flow.competition import load_file
from kaggle_flow.data import augment
from kaggle_flow.data.images import build_cache, load_image, load_sample, preview_rgb
from kaggle_flow.errors import ConfigError, FlowError
from kaggle_flow.explore.scan import scan_images
from kaggle_flow.models.channels import adapt_conv_weight, first_conv
from kaggle_flow.models.state_file import read_state
from kaggle_flow.sample_files import sample_channels, sample_files
from kaggle_flow.table.layouts import read_table

CHANNELS = ("red", "green", "blue", "yellow")
SIDE = 16


def _digit_maker(seed: int):  # noqa: ANN202
    """A function class -> a SIDE px grey digit of sklearn's 8x8 digits, drawn at random."""
    from sklearn.datasets import load_digits

    digits, rng = load_digits(), np.random.default_rng(seed)
    pools = {c: np.flatnonzero(digits.target == c) for c in range(10)}

    def digit(c: int) -> np.ndarray:
        image = (digits.images[rng.choice(pools[c])] * (255 / 16)).astype(np.uint8)
        return np.asarray(Image.fromarray(image).resize((SIDE, SIDE), Image.BILINEAR))

    return digit, rng


def hpa_tree(root: Path, per_class: int = 12, n_test: int = 6) -> Path:
    """train.csv (Id,label), train/{Id}_{red,green,blue,yellow}.png, test/ the same, sample_submission.csv.

    The class (digits 0, 1, 2) is drawn in the green channel only; red holds a digit of any class, blue
    and yellow noise: the label is read from the pixels of one channel, never from a colour or a place.
    """
    digit, rng = _digit_maker(0)

    def sample(folder: Path, sid: str, label: int) -> None:
        layers = {"red": digit(int(rng.integers(10))), "green": digit(label),
                  "blue": rng.integers(0, 120, (SIDE, SIDE)).astype(np.uint8),
                  "yellow": rng.integers(0, 120, (SIDE, SIDE)).astype(np.uint8)}
        folder.mkdir(parents=True, exist_ok=True)
        for name in CHANNELS:
            Image.fromarray(layers[name], "L").save(folder / f"{sid}_{name}.png")

    lines = ["Id,label"]
    for i in range(per_class * 3):
        sid = f"{i:08x}-bbc3-11e8"
        sample(root / "train", sid, i % 3)
        lines.append(f"{sid},{i % 3}")
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    test = [f"{1000 + i:08x}-aaa1-11e8" for i in range(n_test)]
    for i, sid in enumerate(test):
        sample(root / "test", sid, i % 3)
    (root / "sample_submission.csv").write_text("Id,Predicted\n" + "".join(f"{t},0\n" for t in reversed(test)))
    return root


@pytest.fixture
def hpa(workdir: Path) -> Path:
    """An HPA-shaped download in the working directory, and competitions/hpa.toml that `flow init` wrote for it."""
    download = hpa_tree(workdir / "download")
    result = flow("init", "hpa", "--from", download)
    assert result.exit_code == 0, result.output
    return download


def test_init_recognises_the_channel_files(hpa: Path, workdir: Path) -> None:
    comp = load_file(workdir / "competitions" / "hpa.toml")
    assert comp.layout.channel_files == list(CHANNELS) and comp.layout.id_extension == ".png"
    assert comp.channels == 4 and len(comp.mean) == len(comp.std) == 4
    assert comp.mean[2] < comp.mean[1]  # measured: noise below 120 in blue, digits up to 255 in green
    train_part = (workdir / "competitions" / "hpa.toml").read_text().split("[train]\n")[1]
    assert "images of several channels (microscopy, satellite bands) get mirror images" in train_part.splitlines()[0]
    assert (comp.layout.id_column, comp.submission.id_column, comp.submission.id_form) == ("Id", "Id", "name")
    table = read_table(hpa, comp)
    train = table[table["split"] == "train"]
    assert len(train) == 36 and train["id"].iloc[0] == "00000000-bbc3-11e8"
    assert train["path"].iloc[0].endswith("train/00000000-bbc3-11e8_{red,green,blue,yellow}.png")
    assert sorted(table.loc[table["split"] == "test", "id"]) == [f"{1000 + i:08x}-aaa1-11e8" for i in range(6)]


def test_a_sample_decodes_as_its_channel_files_stacked(hpa: Path, workdir: Path) -> None:
    comp = load_file(workdir / "competitions" / "hpa.toml")
    path = read_table(hpa, comp)["path"].iloc[0]
    files = sample_files(path)
    assert [name for name, _ in sample_channels(path)] == list(CHANNELS)
    image = load_sample(path, SIDE, 4)
    assert image.shape == (SIDE, SIDE, 4) and image.dtype == np.uint8
    for k, file in enumerate(files):
        np.testing.assert_array_equal(image[:, :, k], np.asarray(Image.open(file)))
    np.testing.assert_array_equal(preview_rgb(image), image[:, :, :3])  # galleries: red, green, blue
    cache = build_cache([path], 8, 4)
    assert cache.images.shape == (1, 8, 8, 4) and not cache.failed
    scan = scan_images([path], perceptual=True, show_progress=False).iloc[0]
    assert scan["bytes"] == sum(Path(f).stat().st_size for f in files) and scan["problem"] == "" and scan["phash"]


def test_import_train_and_submit_four_channels(hpa: Path, workdir: Path) -> None:
    assert flow("import", "hpa", hpa).exit_code == 0
    for model in ("smallcnn", "resnet-t"):
        result = flow("train", "hpa", "--model", model, "--epochs", "1", "--size", "16", "--batch-size", "8")
        assert result.exit_code == 0, result.output
        run = next(p for p in (workdir / "runs" / "hpa").iterdir() if p.name.endswith(f"-{model}-f0"))
        built = models.create_model(model, 3, in_channels=4, image_size=SIDE)
        key = next(k for k, v in built.state_dict().items() if v is first_conv(built)[2].weight)
        assert read_state(run / "best.pdparams")[key].shape[1] == 4  # the first layer takes the four channels
        submitted = flow("submit", "hpa", "--run", run.name)
        assert submitted.exit_code == 0, submitted.output
    csv = sorted((workdir / "submissions" / "hpa").glob("*.csv"))[0]
    sample = pd.read_csv(hpa / "sample_submission.csv", dtype=str)
    written = pd.read_csv(csv, dtype=str)
    assert list(written.columns) == ["Id", "Predicted"] and written["Id"].tolist() == sample["Id"].tolist()
    assert set(written["Predicted"]) <= {"0", "1", "2"}
    shown = flow("augment", "hpa", "--preset", "heavy", "--size", "16", "--n", "4")
    assert shown.exit_code == 0, shown.output


def test_a_missing_channel_of_a_training_id_is_one_line(hpa: Path) -> None:
    (hpa / "train" / "00000005-bbc3-11e8_yellow.png").unlink()
    assert one_line_error(flow("import", "hpa", hpa)) == (
        "Error: the files do not match the 'hpa' layout: download/train/00000005-bbc3-11e8_yellow.png: "
        "channel 'yellow' of id '00000005-bbc3-11e8' is missing")


def test_a_missing_channel_of_a_test_id_is_a_broken_test_image(hpa: Path, workdir: Path) -> None:
    assert flow("import", "hpa", hpa).exit_code == 0
    gone = workdir / "data" / "hpa" / "test" / "000003e9-aaa1-11e8_yellow.png"
    gone.unlink()
    eda = flow("eda", "hpa")
    assert eda.exit_code == 0, eda.output
    broken = pd.read_csv(workdir / "runs" / "hpa" / "eda" / "broken.csv", dtype=str)
    assert broken["id"].tolist() == ["000003e9-aaa1-11e8"]
    comp = load_file(workdir / "competitions" / "hpa.toml")
    table = read_table(workdir / "data" / "hpa", comp)
    path = table.loc[table["id"] == "000003e9-aaa1-11e8", "path"].item()
    cache = build_cache(table["path"].tolist(), 8, 4)
    assert cache.failed == {path: f"FileNotFoundError: {gone}: channel 'yellow' is missing"}
    assert flow("train", "hpa", "--model", "smallcnn", "--epochs", "1", "--size", "8").exit_code == 0
    submitted = flow("submit", "hpa")
    assert submitted.exit_code == 0, submitted.output
    assert "1 broken test image keeps its row, predicted as the average of the others: 000003e9-aaa1-11e8" in submitted.output


# --- the first layer of weights with 3 input channels, for 1, 2, 4 -------------------------------------


def test_rgb_filters_adapted_to_other_channel_counts() -> None:
    rgb = np.random.default_rng(0).normal(size=(8, 3, 3, 3)).astype(np.float32)
    four = adapt_conv_weight(rgb, 4)
    np.testing.assert_array_equal(four[:, :3], rgb)  # red, green, blue as they were
    np.testing.assert_allclose(four[:, 3], rgb.mean(axis=1), rtol=1e-6)  # the new channel: the RGB mean
    grey = adapt_conv_weight(rgb, 1)
    np.testing.assert_allclose(grey[:, 0], 3 * rgb.mean(axis=1), rtol=1e-5)  # grey: the sum, as a grey image in RGB
    np.testing.assert_array_equal(adapt_conv_weight(rgb, 2), rgb[:, :2])


def test_rgb_weights_load_into_a_four_channel_model(tmp_path: Path) -> None:
    """The ImageNet case: a model's RGB weights (1,000 classes) into a 4-channel one of 3 classes."""
    rgb = models.create_model("resnet-t", 1000, in_channels=3)
    file = tmp_path / "imagenet.pdparams"
    paddle.save(rgb.state_dict(), str(file))
    four = models.create_model("resnet-t", 3, in_channels=4, weights=file)
    want, got = first_conv(rgb)[2].weight.numpy(), first_conv(four)[2].weight.numpy()
    assert got.shape[1] == 4
    np.testing.assert_array_equal(got[:, :3], want)
    np.testing.assert_allclose(got[:, 3], want.mean(axis=1), rtol=1e-5)
    own = tmp_path / "four.pdparams"
    paddle.save(four.state_dict(), str(own))
    with pytest.raises(FlowError) as exc:  # a 4-channel checkpoint is no RGB file: never adapted
        models.create_model("resnet-t", 3, in_channels=1, weights=own)
    assert str(exc.value).startswith(f"{own}: does not fit resnet-t: first mismatched key ")
    assert str(exc.value).endswith("[16, 4, 3, 3] vs [16, 1, 3, 3]")


@pytest.mark.parametrize("name", [n for n in models.MODELS if n not in ("vgg16", "resnet101", "resnet50")])
def test_every_model_takes_four_channels(name: str) -> None:
    model = models.create_model(name, 3, in_channels=4)
    model.eval()
    size = models.MODELS[name].min_size
    with paddle.no_grad():
        out = model(paddle.rand([1, 4, size, size])).numpy()
    assert out.shape == (1, 3) and np.isfinite(out).all()
    assert models.count_params(model) == models.param_count(name, 3, 4)


# --- the TOML, decoding, augmentation ----------------------------------------------------------------


@pytest.mark.parametrize(("change", "message"), [
    ('channel_files = ["red", "green", "blue"]', "channels = 4, and layout.channel_files names 3 files a sample (one per channel)"),
    ('id_extension = ""', 'layout.channel_files: set layout.id_extension too, the channel files\' extension (e.g. ".png")'),
    ('channel_files = ["red", "gr,een", "blue", "yellow"]', 'layout.channel_files: "gr,een" is not a channel name '
                                                           "(no comma, brace, slash or space)"),
])
def test_channel_keys_are_checked_in_one_line(hpa: Path, workdir: Path, change: str, message: str) -> None:
    toml = workdir / "competitions" / "hpa.toml"
    key = change.split(" = ")[0]
    lines = [line for line in toml.read_text().splitlines() if not line.startswith(f"{key} =")]
    at = lines.index("[layout]") + 1
    toml.write_text("\n".join([*lines[:at], change, *lines[at:]]) + "\n")
    with pytest.raises(ConfigError) as exc:
        load_file(toml)
    assert str(exc.value) == f"{toml}: {message}"


def test_nine_channels_are_refused(hpa: Path, workdir: Path) -> None:
    toml = workdir / "competitions" / "hpa.toml"
    toml.write_text(toml.read_text().replace("channels = 4", "channels = 9"))
    with pytest.raises(ConfigError) as exc:
        load_file(toml)
    assert "key 'channels': Input should be less than or equal to 8" in str(exc.value)


def test_one_file_of_four_bands(tmp_path: Path) -> None:
    rgba = np.random.default_rng(1).integers(0, 256, (12, 12, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png", 12, 4), rgba)  # its own bands, no compositing
    Image.fromarray(rgba[:, :, :3], "RGB").save(tmp_path / "b.png")
    with pytest.raises(ValueError, match=r"3 channels \(RGB\), the competition reads 4"):
        load_image(tmp_path / "b.png", 12, 4)


@pytest.mark.parametrize("channels", [2, 4, 5])
@pytest.mark.parametrize("name", list(augment.PRESETS))
def test_every_preset_works_on_other_channel_counts(name: str, channels: int) -> None:
    transform = augment.build_train_transform(name, 24, channels, erasing=0.5, cutout=0.5, gridmask=0.5)
    image = np.random.default_rng(0).integers(0, 256, (30, 28, channels), dtype=np.uint8)
    for seed in range(8):
        transform.set_random_seed(seed)
        out = transform(image=image)["image"]
        assert out.shape == (24, 24, channels) and out.dtype == np.uint8
    kinds = {type(t).__name__ for t in transform.transforms}
    assert not kinds & {"ColorJitter", "HueSaturationValue"}  # RGB's colour: refused by albumentations here


def test_a_download_copied_elsewhere_reads_the_same(hpa: Path, workdir: Path, tmp_path: Path) -> None:
    """The path pattern is built from the folder read: a copy of the download reads its own files."""
    copy = tmp_path / "copy"
    shutil.copytree(hpa, copy)
    comp = load_file(workdir / "competitions" / "hpa.toml")
    paths = read_table(copy, comp)["path"]
    assert all(p.startswith(str(copy.resolve())) for p in paths)
    assert all(Path(f).is_file() for p in paths for f in sample_files(p))


@pytest.mark.parametrize("mode", ["RGBA", "CMYK", "L"])
def test_eda_says_nothing_of_bands_a_four_channel_competition_keeps(mode: str) -> None:
    from kaggle_flow.explore import eda

    assert eda.mode_note(mode, 4) == ""


def test_a_shared_folder_takes_the_sample_ids_and_keeps_a_test_id_with_a_channel_missing(hpa: Path, workdir: Path) -> None:
    for file in (hpa / "test").iterdir():
        file.rename(hpa / "train" / file.name)
    (hpa / "train" / "000003e9-aaa1-11e8_green.png").unlink()
    toml = workdir / "competitions" / "hpa.toml"
    toml.write_text(toml.read_text().replace('test_dir = "test"', 'test_dir = "train"'))
    table = read_table(hpa, load_file(toml))
    test = table[table["split"] == "test"]
    assert test["id"].tolist() == [f"{1005 - i:08x}-aaa1-11e8" for i in range(6)]  # the sample's order
    assert len(table) == 42
    (hpa / "sample_submission.csv").unlink()  # no sample: the samples no training row reads
    test = read_table(hpa, load_file(toml)).query("split == 'test'")
    assert sorted(test["id"]) == [f"{1000 + i:08x}-aaa1-11e8" for i in range(6)]
