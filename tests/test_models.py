"""The model registry: every entry builds and runs at its smallest size, weights load or fail clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import pytest

from kaggle_flow import models
from kaggle_flow.errors import FlowError, NotFoundError

# Models with tens of millions of parameters: one image per forward pass keeps this file fast on a CPU.
HEAVY = {"alexnet", "vgg11", "vgg16", "resnet101"}
NAMES = list(models.MODELS)


def _cases() -> list:
    cases = []
    for name in NAMES:
        for channels in (1, 3):
            cases.append(pytest.param(name, channels, id=f"{name}-{channels}ch"))
    return cases


def _forward(model: paddle.nn.Layer, channels: int, size: int, n: int = 2) -> np.ndarray:
    model.eval()
    with paddle.no_grad():
        return model(paddle.rand([n, channels, size, size])).numpy()


@pytest.mark.parametrize(("name", "channels"), _cases())
def test_every_model_gives_logits_at_its_min_size(name: str, channels: int) -> None:
    info = models.get_model_info(name)
    model = models.create_model(name, num_classes=5, in_channels=channels)
    sizes = {info.min_size} | ({28} if name in ("smallcnn", "lenet") else set())
    for size in sorted(sizes):
        out = _forward(model, channels, size, n=1 if name in HEAVY else 2)
        assert out.shape == ((1 if name in HEAVY else 2), 5)
        assert np.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_param_count_matches_the_built_model(name: str) -> None:
    if name in HEAVY:
        pytest.skip("the same code path as the light models; building these costs seconds")
    assert models.param_count(name, 10) == models.count_params(models.create_model(name, 10, in_channels=3))


def test_registry_entries_are_consistent() -> None:
    assert [m.name for m in models.list_models()] == NAMES
    for name, info in models.MODELS.items():
        assert info.name == name and info.description and info.min_size >= 8


def test_unknown_model_lists_the_valid_names() -> None:
    with pytest.raises(NotFoundError) as exc:
        models.create_model("resnet9000", 10)
    assert str(exc.value) == f"unknown model 'resnet9000' (valid: {', '.join(NAMES)})"


def test_too_small_size_is_refused() -> None:
    with pytest.raises(FlowError) as exc:
        models.check_size("resnet18", 16)
    assert str(exc.value) == "image size 16 is too small for resnet18: it needs at least 32 px"
    models.check_size("resnet18", 32)
    models.check_size("smallcnn", 8)


def test_parameter_budget() -> None:
    models.check_params(100, None, "smallcnn")
    models.check_params(100, 100, "smallcnn")
    with pytest.raises(FlowError) as exc:
        models.check_params(108_794, 100_000, "smallcnn")
    assert str(exc.value) == "smallcnn has 108,794 parameters, over the competition's limit of 100,000: pick a smaller model"


def test_smallcnn_is_small() -> None:
    assert 100_000 <= models.count_params(models.create_model("smallcnn", 10, in_channels=1)) <= 300_000


def test_weights_round_trip(tmp_path: Path) -> None:
    source = models.create_model("smallcnn", 10, in_channels=1)
    file = tmp_path / "best.pdparams"
    paddle.save(source.state_dict(), str(file))
    loaded = models.create_model("smallcnn", 10, in_channels=1, weights=file)
    x = paddle.rand([2, 1, 28, 28])
    source.eval()
    loaded.eval()
    np.testing.assert_allclose(loaded(x).numpy(), source(x).numpy(), rtol=1e-5, atol=1e-6)


def test_rgb_weights_load_into_a_grey_model_with_a_new_head(tmp_path: Path) -> None:
    """The ImageNet case: RGB first conv summed to grey, a 1000-class head left fresh."""
    rgb = models.create_model("smallcnn", 1000, in_channels=3)
    file = tmp_path / "imagenet.pdparams"
    paddle.save(rgb.state_dict(), str(file))
    grey = models.create_model("smallcnn", 10, in_channels=1, weights=file)
    rgb.fc = paddle.nn.Identity()
    grey.fc = paddle.nn.Identity()
    rgb.eval()
    grey.eval()
    x = paddle.rand([2, 1, 16, 16])
    features_rgb = rgb(paddle.concat([x, x, x], axis=1)).numpy()
    np.testing.assert_allclose(grey(x).numpy(), features_rgb, rtol=1e-4, atol=1e-5)


def test_weights_of_another_model_are_refused(tmp_path: Path) -> None:
    file = tmp_path / "lenet.pdparams"
    paddle.save(models.create_model("lenet", 10, in_channels=1).state_dict(), str(file))
    with pytest.raises(FlowError) as exc:
        models.create_model("smallcnn", 10, in_channels=1, weights=file)
    assert str(exc.value).startswith(f"{file}: does not fit smallcnn: missing keys ")


def test_mismatched_shapes_are_refused(tmp_path: Path) -> None:
    state = models.create_model("smallcnn", 10, in_channels=1).state_dict()
    state["features.3.0.weight"] = paddle.zeros([32, 7, 3, 3])
    file = tmp_path / "bad.pdparams"
    paddle.save(state, str(file))
    with pytest.raises(FlowError) as exc:
        models.create_model("smallcnn", 10, in_channels=1, weights=file)
    assert str(exc.value) == f"{file}: does not fit smallcnn: shape mismatch features.3.0.weight [32, 7, 3, 3] vs [32, 32, 3, 3]"


def test_missing_and_broken_weights_files(tmp_path: Path) -> None:
    with pytest.raises(FlowError) as exc:
        models.create_model("smallcnn", 10, weights=tmp_path / "nope.pdparams")
    assert str(exc.value) == f"{tmp_path / 'nope.pdparams'}: weights file not found"
    junk = tmp_path / "junk.pdparams"
    junk.write_text("not weights")
    with pytest.raises(FlowError) as exc:
        models.create_model("smallcnn", 10, weights=junk)
    assert str(exc.value).startswith(f"{junk}: not a paddle weights file")


def test_pretrained_offline_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import paddle.utils.download as download

    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(download, "WEIGHTS_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(models.socket, "create_connection", no_network)
    monkeypatch.setattr(download, "get_weights_path_from_url", no_network)
    with pytest.raises(FlowError) as exc:
        models.create_model("resnet18", 10, pretrained=True)
    assert str(exc.value) == (
        "cannot fetch the pretrained weights for resnet18 (no network?): pass --weights FILE or train from scratch"
    )


def test_pretrained_download_failure_after_connecting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import paddle.utils.download as download

    class Socket:
        def close(self) -> None:
            pass

    def failed(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Download failed. Retry limit reached")

    monkeypatch.setattr(download, "WEIGHTS_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(models.socket, "create_connection", lambda *a, **k: Socket())
    monkeypatch.setattr(download, "get_weights_path_from_url", failed)
    with pytest.raises(FlowError, match=r"^cannot fetch the pretrained weights for mobilenet_v3_small \(no network\?\)"):
        models.create_model("mobilenet_v3_small", 10, pretrained=True)


def test_pretrained_from_the_cache_replaces_the_head(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import paddle.utils.download as download

    imagenet = models.create_model("shufflenet_v2", 1000, in_channels=3)
    cache = tmp_path / "cache"
    cache.mkdir()
    paddle.save(imagenet.state_dict(), str(cache / "shufflenet_v2_x1_0.pdparams"))
    monkeypatch.setattr(download, "WEIGHTS_HOME", str(cache))
    model = models.create_model("shufflenet_v2", 4, in_channels=3, pretrained=True)
    for key, value in imagenet.state_dict().items():
        if not key.startswith("_fc."):
            np.testing.assert_array_equal(model.state_dict()[key].numpy(), value.numpy())
    assert list(model._fc.weight.shape) == [1024, 4]


def test_no_pretrained_weights_for_own_models() -> None:
    with pytest.raises(FlowError, match=r"^no pretrained weights for smallcnn \(available for: alexnet, "):
        models.create_model("smallcnn", 10, pretrained=True)
