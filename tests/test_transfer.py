"""Transfer learning: --init-from an earlier run of any competition, and the automatic recipe's ImageNet start.

No network: paddle's weights cache is a temp folder holding weights files paddle itself saved, and
the check for a network is replaced by one that fails.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import paddle
import pytest
from clitools import fake_run, flow, one_line_error
from tiny_comp import make_tiny

from kaggle_flow.runs import all_runs

# --- --init-from: the weights of an earlier run, any competition -------------------------------------


def test_init_from_a_run_of_another_competition_replaces_the_head(workdir: Path) -> None:
    digits = flow("train", "digits", "--epochs", "1", "--model", "smallcnn")
    assert digits.exit_code == 0, digits.output
    source = all_runs(Path("runs/digits"))[-1]
    make_tiny(workdir)
    result = flow("train", "tiny", "--epochs", "1", "--lr", "1e-9", "--init-from", source.id)
    assert result.exit_code == 0, result.output
    assert f"Starting from the weights of {source.path} (digits, smallcnn, 10 classes)" in result.output
    assert (f"Warning: {source.best}: classifier head of another class count; fc.weight, fc.bias left freshly "
            "initialized") in result.output
    run = all_runs(workdir / "runs/tiny")[-1]
    recorded = json.loads(run.config_file.read_text())
    assert recorded["init_from"] == str(source.path) and recorded["weights"] == str(source.best)
    start, after = paddle.load(str(source.best)), paddle.load(str(run.last))
    convs = [k for k in start if k.endswith(".weight") and np.asarray(start[k]).ndim == 4]
    assert convs
    for key in convs:  # every convolution starts from the digits run (a rate of 1e-9 moves nothing)
        np.testing.assert_allclose(np.asarray(after[key]), np.asarray(start[key]), atol=1e-6, err_msg=key)
    assert list(np.asarray(after["fc.weight"]).shape)[-1] == 3
    # a run folder path works as well as its id
    again = flow("train", "tiny", "--epochs", "1", "--init-from", source.path)
    assert again.exit_code == 0, again.output


def test_init_from_refuses_bad_sources_in_one_line(workdir: Path) -> None:
    make_tiny(workdir)
    (workdir / "competitions" / "rgb.toml").write_text(
        (workdir / "competitions" / "tiny.toml").read_text().replace("channels = 1\nmean = [0.5]\nstd = [0.25]",
                                                                       "channels = 3\nmean = [0.5, 0.5, 0.5]\nstd = [0.25, 0.25, 0.25]"))
    (workdir / "data" / "rgb").symlink_to(workdir / "data" / "tiny", target_is_directory=True)
    grey = fake_run(workdir / "runs/digits", "grey")
    assert one_line_error(flow("train", "tiny", "--init-from", "grey", "--model", "resnet-t")) == (
        "Error: --init-from grey: a smallcnn run, and this run trains resnet-t: give --model smallcnn or a resnet-t run")
    assert one_line_error(flow("train", "rgb", "--init-from", "grey")) == (
        "Error: --init-from grey: smallcnn trained on 1-channel (grey) images, and rgb's have 3 (RGB): grey filters "
        "hold no colour; pick a run of RGB images")
    grey.best.unlink()
    assert one_line_error(flow("train", "tiny", "--init-from", "grey")) == (
        f"Error: --init-from grey: no weights to start from ({grey.best.relative_to(workdir)} missing, or the run failed)")
    assert one_line_error(flow("train", "tiny", "--init-from", "nope")) == (
        "Error: --init-from nope: no such run (neither a run folder nor a run id under runs/*/)")
    assert one_line_error(flow("train", "tiny", "--init-from", "grey", "--weights", "x.pdparams")) == (
        "Error: --init-from and --weights both name the weights to start from: give one")


# --- the automatic recipe: ImageNet weights for RGB photos where they are at hand ---------------------


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """paddle's weights cache in a temp folder, holding a resnet18 file paddle saved; no network."""
    import paddle.utils.download as download

    from kaggle_flow import models
    from kaggle_flow.models import weights

    folder = tmp_path / "weights-cache"
    folder.mkdir()
    paddle.save(models.create_model("resnet18", 1000).state_dict(), str(folder / "resnet18.pdparams"))
    monkeypatch.setattr(download, "WEIGHTS_HOME", str(folder))

    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(weights.socket, "create_connection", no_network)
    return folder


def photo_facts(w: int = 320, h: int = 240, download: bool = True, place: str = "cpu") -> Any:
    from kaggle_flow.engine import recipe

    return recipe.Facts(n_train=992, largest_class=400, median_width=w, median_height=h, place=place, cores=2,
                        source="test", imagenet=recipe.ImagenetAtHand.here(download=download))


AUTO_MODEL = {"model": "auto", "image_size": "auto", "batch_size": 32, "epochs": 3}


def lemon_config(facts: Any, **flags: Any) -> Any:
    from kaggle_flow.competition import get_competition
    from kaggle_flow.engine.configure import build_config

    return build_config(get_competition("lemon"), {**AUTO_MODEL, **flags}, facts=facts)


def test_photos_with_weights_at_hand_start_from_imagenet(cache: Path) -> None:
    from kaggle_flow.engine import recipe

    config = lemon_config(photo_facts())
    assert (config.model, config.pretrained, config.lr, config.freeze_epochs) == ("resnet18", True, 3e-4, 1)
    assert (config.mean, config.std, config.image_size) == (recipe.IMAGENET_MEAN, recipe.IMAGENET_STD, 64)
    assert config.auto["model"] == (f"resnet18, ImageNet weights (in {cache}): CPU, RGB photos (median 320x240 px, "
                                    "short side >= 64), 11.2 M parameters")
    assert config.auto["lr"] == "0.0003: fine-tuning ImageNet weights (adam)" and config.optimizer == "adam"
    given = lemon_config(photo_facts(), lr=1e-3, freeze_epochs=2)
    assert (given.lr, given.freeze_epochs) == (1e-3, 2) and "lr" not in given.auto
    assert not lemon_config(photo_facts(), pretrained=False).pretrained
    gpu = lemon_config(photo_facts(place="gpu"))  # resnet50's weights are not here: the next that is
    assert (gpu.model, gpu.image_size) == ("resnet18", 224)


def test_grey_or_tiny_images_train_from_scratch(cache: Path) -> None:
    from kaggle_flow.engine import recipe

    wanted = recipe.Choices(**AUTO_MODEL)
    for facts, channels, model in ((photo_facts(w=28, h=28), 3, "smallcnn"), (photo_facts(), 1, "resnet-t")):
        chosen = recipe.resolve(wanted, facts, num_classes=10, channels=channels, max_params=None)
        assert (chosen.model, chosen.pretrained, chosen.note) == (model, False, "")


def test_no_weights_offline_is_one_line_and_the_family(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (cache / "resnet18.pdparams").unlink()
    config = lemon_config(photo_facts())
    assert (config.model, config.pretrained, config.lr, config.freeze_epochs) == ("resnet-t", False, 3e-3, 0)
    assert capsys.readouterr().out.strip() == (
        f"no ImageNet weights for resnet18 here (looked in {cache}); training from scratch; "
        "`flow weights get resnet18` where there is a network")


def test_a_network_or_no_download(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kaggle_flow.models import weights

    (cache / "resnet18.pdparams").unlink()
    monkeypatch.setattr(weights.socket, "create_connection", lambda *a, **k: type("S", (), {"close": lambda self: None})())
    online = lemon_config(photo_facts())
    assert online.model == "resnet18" and "downloaded on first use" in online.auto["model"]
    assert lemon_config(photo_facts(download=False)).model == "resnet-t"


def test_max_params_picks_a_smaller_pretrained_model_else_the_family(cache: Path) -> None:
    from kaggle_flow import models

    paddle.save(models.create_model("mobilenet_v2", 1000).state_dict(), str(cache / "mobilenet_v2_x1.0.pdparams"))
    smaller = lemon_config(photo_facts(), max_params=5_000_000)
    assert smaller.model == "mobilenet_v2" and smaller.pretrained
    scratch = lemon_config(photo_facts(), max_params=1_000_000)
    assert (scratch.model, scratch.pretrained) == ("resnet-t", False)


PHOTOS_TOML = """title = "generated RGB photos"
classes = ["red", "green", "blue"]
channels = 3

[layout]
kind = "csv"
train_csv = "train.csv"
train_dir = "train"
test_dir = "test"

[train]
preset = "none"
"""


def make_photos(root: Path, per_class: int = 8) -> None:
    """competitions/photos.toml and data/photos: 96x80 RGB images, one dominant colour per class."""
    from PIL import Image

    (root / "competitions").mkdir(exist_ok=True)
    (root / "competitions" / "photos.toml").write_text(PHOTOS_TOML)
    data = root / "data" / "photos"
    (data / "train").mkdir(parents=True)
    (data / "test").mkdir()
    rng = np.random.default_rng(0)
    lines = ["id,label"]
    for i in range(per_class * 3):
        pixels = rng.integers(0, 90, (80, 96, 3))
        pixels[..., i % 3] += 150
        Image.fromarray(pixels.astype(np.uint8)).save(data / "train" / f"p{i:02d}.png")
        lines.append(f"p{i:02d}.png,{i % 3}")
    (data / "train.csv").write_text("\n".join(lines) + "\n")
    Image.fromarray(pixels.astype(np.uint8)).save(data / "test" / "t0.png")


def test_a_photo_run_fine_tunes_imagenet_weights_after_a_frozen_epoch(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kaggle_flow.engine.train import train
    from kaggle_flow.workspace import open_workspace

    monkeypatch.chdir(tmp_path)
    make_photos(tmp_path)
    imagenet = paddle.load(str(cache / "resnet18.pdparams"))
    backbone = [k for k in imagenet if not k.startswith("fc.")]
    seen: list[dict[str, np.ndarray]] = []

    def after_epoch(epoch: int, row: dict) -> None:
        last = next(Path("runs/photos").glob("*/last.pdparams"))
        seen.append({k: np.asarray(v) for k, v in paddle.load(str(last)).items()})

    run = train(open_workspace("photos"), {"image_size": 32, "epochs": 2, "batch_size": 8}, on_epoch_end=after_epoch)
    out = capsys.readouterr().out
    assert "  model   resnet18, ImageNet weights (in " in out and "  lr      0.0003: fine-tuning ImageNet weights (adam)" in out
    assert "Backbone frozen for epochs 1-1 (only the new head trains), then every layer trains" in out
    assert (run.config.model, run.config.pretrained, run.config.freeze_epochs) == ("resnet18", True, 1)
    frozen, thawed = seen
    for key in backbone:  # the frozen epoch leaves the backbone (BatchNorm statistics too) as ImageNet left it
        np.testing.assert_array_equal(frozen[key], np.asarray(imagenet[key]), err_msg=key)
    assert not np.array_equal(frozen["fc.weight"], thawed["fc.weight"])
    moved = [k for k in backbone if not np.array_equal(thawed[k], frozen[k])]
    assert len(moved) == len(backbone)  # then every layer trains


def test_pretrained_flag_picks_a_pretrained_model_whatever_the_images(cache: Path) -> None:
    from kaggle_flow.engine import recipe

    wanted = recipe.Choices(**AUTO_MODEL)
    chosen = recipe.resolve(wanted, photo_facts(w=28, h=28), num_classes=10, channels=1, max_params=None, pretrained=True)
    assert (chosen.model, chosen.pretrained) == ("resnet18", True)
    assert chosen.reasons["model"] == f"resnet18, ImageNet weights (in {cache}): CPU, --pretrained, 11.2 M parameters"
