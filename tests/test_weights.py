"""`flow weights`: the ImageNet weights in paddle's cache listed, fetched (offline: one line) and added from a file.

Nothing here touches the network: paddle's cache is a temp folder, and a weights file is one paddle
itself saved from a model of the right architecture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import paddle.utils.download as download
import pytest
from clitools import flow, one_line_error

from kaggle_flow import models
from kaggle_flow.models import weights


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights cache in place of ~/.cache/paddle/hapi/weights, and no network."""
    folder = tmp_path / "weights-cache"
    monkeypatch.setattr(download, "WEIGHTS_HOME", str(folder))
    monkeypatch.chdir(tmp_path)

    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(weights.socket, "create_connection", no_network)
    monkeypatch.setattr(download, "get_weights_path_from_url", no_network)
    return folder


def imagenet_file(folder: Path, name: str = "resnet18", num_classes: int = 1000) -> Path:
    """A weights file of `name` as paddle saves it (random weights, `num_classes` outputs)."""
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / f"{name}-{num_classes}.pdparams"
    paddle.save(models.create_model(name, num_classes).state_dict(), str(file))
    return file


def test_the_list_shows_each_model_with_weights_and_the_cache(cache: Path) -> None:
    result = flow("weights")
    assert result.exit_code == 0, result.output
    assert "resnet18" in result.output and "11,699,112" in result.output and "smallcnn" not in result.output
    assert result.output.rstrip().splitlines()[-1] == f"Cache: {cache}"
    (cache).mkdir()
    (cache / "resnet18.pdparams").write_bytes(b"x" * 2**20)
    listed = {w.name: w for w in models.imagenet_weights()}
    assert listed["resnet18"].file == "resnet18.pdparams" and listed["resnet18"].size == 2**20
    assert listed["resnet50"].path is None
    assert "yes, 1.0 MiB" in flow("weights").output


def test_get_offline_is_one_line(cache: Path) -> None:
    line = one_line_error(flow("weights", "get", "resnet18"))
    assert line == (f"Error: no network: cannot download resnet18's ImageNet weights; copy the file resnet18.pdparams "
                    f"into {cache} or use `flow weights add resnet18 FILE`")
    assert one_line_error(flow("weights", "get", "smallcnn")).startswith("Error: no pretrained weights for smallcnn")


def test_get_returns_the_cached_file_without_network(cache: Path) -> None:
    cache.mkdir()
    (cache / "resnet18.pdparams").write_bytes(b"weights")
    result = flow("weights", "get", "resnet18")
    assert result.exit_code == 0 and result.output.strip() == f"resnet18: {cache / 'resnet18.pdparams'}"


def test_add_checks_the_file_and_copies_it_where_paddle_looks(cache: Path, tmp_path: Path) -> None:
    file = imagenet_file(tmp_path / "downloads")
    result = flow("weights", "add", "resnet18", file)
    assert result.exit_code == 0, result.output
    target = cache / "resnet18.pdparams"
    assert target.read_bytes() == file.read_bytes() and [p.name for p in cache.iterdir()] == ["resnet18.pdparams"]
    assert models.fetch_pretrained("resnet18") == target  # what --pretrained loads, offline


def test_add_refuses_another_architecture_or_a_truncated_file(cache: Path, tmp_path: Path) -> None:
    other = imagenet_file(tmp_path / "downloads", "resnet34")
    line = one_line_error(flow("weights", "add", "resnet18", other))
    assert line.startswith(f"Error: {other.relative_to(tmp_path)}: does not fit resnet18 (1,000 ImageNet classes): first mismatched key ")
    head = imagenet_file(tmp_path / "downloads", "resnet18", num_classes=10)
    assert one_line_error(flow("weights", "add", "resnet18", head)).endswith(
        "does not fit resnet18 (1,000 ImageNet classes): first mismatched key 'fc.weight' [512, 10] vs [512, 1000]")
    truncated = tmp_path / "truncated.pdparams"
    truncated.write_bytes(imagenet_file(tmp_path / "downloads").read_bytes()[:5000])
    line = one_line_error(flow("weights", "add", "resnet18", truncated))
    assert line.startswith("Error: truncated.pdparams: not a paddle weights file")
    assert not cache.exists() or not any(cache.iterdir())


def test_imagenet_weights_load_with_the_head_replaced(cache: Path, tmp_path: Path) -> None:
    file = imagenet_file(tmp_path / "downloads")
    models.add_imagenet_weights("resnet18", file)
    model = models.create_model("resnet18", 4, pretrained=True)
    saved = paddle.load(str(file))
    backbone = [k for k in saved if not k.startswith("fc.")]
    assert len(backbone) == len(model.state_dict()) - 2
    for key in backbone:
        np.testing.assert_array_equal(model.state_dict()[key].numpy(), np.asarray(saved[key]))
    assert list(model.fc.weight.shape) == [512, 4]
