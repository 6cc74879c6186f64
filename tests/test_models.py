"""The model registry: every entry builds and runs from its smallest size up, weights load or fail clearly,
the head splits off for --freeze, and a training step can be timed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import paddle
import pytest

from kaggle_flow import models
from kaggle_flow.models import resnets, weights
from kaggle_flow.engine import speed
from kaggle_flow.errors import FlowError, NotFoundError

# Models with tens of millions of parameters: one image per forward pass keeps this file fast on a CPU.
HEAVY = {"alexnet", "vgg11", "vgg16", "resnet101"}
NAMES = list(models.MODELS)
FAMILY = list(resnets.PRESETS)


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
def test_every_model_gives_logits_from_its_min_size_up(name: str, channels: int) -> None:
    info = models.MODELS[name]
    model = models.create_model(name, num_classes=5, in_channels=channels)
    n = 1 if name in HEAVY else 2
    for size in sorted({info.min_size, 28, 47, 64, 96} - set(range(info.min_size))):
        out = _forward(model, channels, size, n=n)
        assert out.shape == (n, 5), size
        assert np.isfinite(out).all()


@pytest.mark.parametrize("name", FAMILY)
def test_the_resnet_family_takes_any_size_with_the_same_parameters(name: str) -> None:
    counts = set()
    for size in (16, 28, 64, 224):
        model = models.create_model(name, num_classes=7, in_channels=1, image_size=size)
        assert _forward(model, 1, size).shape == (2, 7), size
        counts.add(models.count_params(model))
    assert counts == {models.param_count(name, 7, in_channels=1)}


def test_the_stem_follows_the_training_size() -> None:
    """Full resolution for small images, 1/2 from 64 px, 1/4 from 128 px: the first stage's map size."""
    sizes = {}
    for image_size in (None, 28, 63, 64, 127, 128, 224):
        model = models.create_model("resnet-t", 10, image_size=image_size)
        side = image_size or 32
        sizes[image_size] = model.pool(model.stem(paddle.rand([1, 3, side, side]))).shape[-1]
    assert sizes == {None: 32, 28: 28, 63: 63, 64: 32, 127: 64, 128: 32, 224: 56}


def test_a_family_checkpoint_loads_at_another_size(tmp_path: Path) -> None:
    small = models.create_model("resnet-s", 10, in_channels=1, image_size=28)
    file = tmp_path / "best.pdparams"
    paddle.save(small.state_dict(), str(file))
    large = models.create_model("resnet-s", 10, in_channels=1, image_size=224, weights=file)
    for key, value in small.state_dict().items():
        np.testing.assert_array_equal(large.state_dict()[key].numpy(), value.numpy())


def test_the_family_uses_plain_convolutions_and_can_start_its_blocks_as_the_identity() -> None:
    model = models.create_model("resnet-m", 10)
    blocks = [layer for layer in model.sublayers() if isinstance(layer, resnets.BasicBlock)]
    assert len(blocks) == sum(resnets.PRESETS["resnet-m"].blocks)
    assert all(block.bn2.weight.numpy().all() for block in blocks)
    weight = blocks[-1].conv2.weight.numpy()  # Kaiming-normal: std sqrt(2 / fan_in) for ReLU
    assert abs(weight.std() / np.sqrt(2 / np.prod(weight.shape[1:])) - 1) < 0.05
    assert not any(isinstance(layer, paddle.nn.Conv2D) and layer._groups > 1 for layer in model.sublayers())
    identity = resnets.ResNet(10, widths=(8, 16), blocks=(2, 1), zero_init_residual=True)
    for block in (layer for layer in identity.sublayers() if isinstance(layer, resnets.BasicBlock)):
        assert not block.bn2.weight.numpy().any()  # the branch adds 0 until it learns
        x = paddle.rand([1, block.conv1._in_channels, 8, 8])
        block.eval()
        np.testing.assert_allclose(block(x).numpy(), paddle.nn.functional.relu(block.shortcut(x)).numpy(), atol=1e-6)


def test_the_family_grows_from_tiny_to_resnet18_size() -> None:
    counts = [models.param_count(name) for name in FAMILY]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    assert models.param_count("resnet-t") < models.param_count("smallcnn") * 2
    assert abs(models.param_count("resnet-l") / models.param_count("resnet18") - 1) < 0.01


@pytest.mark.parametrize("name", NAMES)
def test_param_count_matches_the_built_model(name: str) -> None:
    if name in HEAVY:
        pytest.skip("the same code path as the light models; building these costs seconds")
    assert models.param_count(name, 10) == models.count_params(models.create_model(name, 10, in_channels=3))
    assert models.param_count(name, 4, 1) == models.count_params(models.create_model(name, 4, in_channels=1))


def test_registry_entries_are_consistent() -> None:
    assert [m.name for m in models.MODELS.values()] == NAMES
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
    assert str(exc.value).startswith(f"{file}: does not fit smallcnn: first mismatched key ")


def test_mismatched_shapes_are_refused(tmp_path: Path) -> None:
    state = models.create_model("smallcnn", 10, in_channels=1).state_dict()
    state["features.3.0.weight"] = paddle.zeros([32, 7, 3, 3])
    file = tmp_path / "bad.pdparams"
    paddle.save(state, str(file))
    with pytest.raises(FlowError) as exc:
        models.create_model("smallcnn", 10, in_channels=1, weights=file)
    assert str(exc.value) == f"{file}: does not fit smallcnn: first mismatched key 'features.3.0.weight' [32, 7, 3, 3] vs [32, 32, 3, 3]"


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
    monkeypatch.setattr(weights.socket, "create_connection", no_network)
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
    monkeypatch.setattr(weights.socket, "create_connection", lambda *a, **k: Socket())
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


# --- the head, for --freeze ------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_head_and_backbone_split_the_parameters(name: str) -> None:
    if name in HEAVY:
        pytest.skip("the same code path as the light models; building these costs seconds")
    model = models.create_model(name, num_classes=7)
    head = models.head_parameters(model, name)
    assert [p.shape[-1] for p in head] == [7, 7]  # the weight [in, 7] and bias [7] of the last Linear
    models.set_backbone_trainable(model, name, False)
    trainable = [p.name for p in model.parameters() if not p.stop_gradient]
    frozen = [p.name for p in model.parameters() if p.stop_gradient]
    assert sorted(trainable) == sorted(p.name for p in head)
    assert len(trainable) + len(frozen) == len(model.parameters()) == len({p.name for p in model.parameters()})
    models.set_backbone_trainable(paddle.DataParallel(model), name, True)  # wrapped for data-parallel training
    assert not any(p.stop_gradient for p in model.parameters())


@pytest.mark.parametrize("name", ["resnet-t", "mobilenet_v3_small"])
def test_a_frozen_backbone_trains_only_the_head(name: str) -> None:
    """One step in training mode: the head moves; backbone weights and BatchNorm statistics do not."""
    model = models.create_model(name, num_classes=3)
    models.set_backbone_trainable(model, name, False)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    head = {p.name for p in models.head_parameters(model, name)}
    keys = {k for k, p in model.state_dict().items() if p.name in head}
    optimizer = paddle.optimizer.Adam(learning_rate=0.1, parameters=model.parameters())
    model.train()  # what the training loop does each epoch: must not thaw the BatchNorm statistics
    loss = paddle.nn.functional.cross_entropy(model(paddle.rand([4, 3, 32, 32])), paddle.to_tensor([0, 1, 2, 0]))
    loss.backward()
    optimizer.step()
    changed = {k for k, v in model.state_dict().items() if not np.array_equal(v.numpy(), before[k])}
    assert changed == keys and len(keys) == 2


def test_a_model_without_a_head_cannot_be_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(models.MODELS._entries, "lenet", dataclasses.replace(models.MODELS["lenet"], head=None))
    model = models.create_model("lenet", 10, in_channels=1)
    for call in (lambda: models.head_parameters(model, "lenet"), lambda: models.set_backbone_trainable(model, "lenet", False)):
        with pytest.raises(FlowError) as exc:
            call()
        assert str(exc.value) == "--freeze: lenet has no separable classifier head"


# --- training speed --------------------------------------------------------------------------


def test_train_speed_times_a_training_step() -> None:
    timed = speed.train_speed("resnet-t", size=16, batch_size=8, seconds=0.2)
    assert timed.images_per_s is not None and timed.images_per_s > 0
    assert timed.device in ("cpu", "gpu") and timed.note == ""


def test_train_speed_does_not_time_a_model_that_is_too_slow() -> None:
    timed = speed.train_speed("smallcnn", size=16, batch_size=8, seconds=0.2, max_step_s=0)
    assert timed.images_per_s is None
    assert timed.note.startswith("not timed: about ") and timed.note.endswith(" s a step of 8 here")


def test_train_speed_refuses_a_too_small_size() -> None:
    with pytest.raises(FlowError, match=r"^image size 16 is too small for resnet18"):
        speed.train_speed("resnet18", size=16)
