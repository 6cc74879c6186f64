"""The automatic recipe and the machine: each choice follows the data and the device, with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaggle_flow import machine
from kaggle_flow.engine import recipe
from kaggle_flow.errors import FlowError


def facts(n: int = 1000, w: int = 320, h: int = 240, place: str = "cpu") -> recipe.Facts:
    return recipe.Facts(n_train=n, largest_class=n // 2, median_width=w, median_height=h, place=place, cores=2, source="test")


def test_size_is_the_median_short_side_capped_by_the_device() -> None:
    assert recipe.choose_size(facts(w=28, h=28))[0] == 28
    size, why = recipe.choose_size(facts(w=320, h=240))
    assert size == recipe.CPU_SIZE and why == "64 px: median image 320x240 px (test), capped at 64 on a CPU"
    assert recipe.choose_size(facts(w=320, h=240, place="gpu"))[0] == 224
    size, why = recipe.choose_size(facts(w=8, h=8), min_size=16)
    assert size == 16 and why.endswith("raised to the 16 px minimum")


def test_model_follows_the_device_the_data_and_max_params() -> None:
    assert recipe.choose_model(facts(n=1000), None, 4, 3)[0] == "resnet-t"
    assert recipe.choose_model(facts(n=3000), None, 4, 3)[0] == "resnet-s"
    assert recipe.choose_model(facts(n=1000, place="gpu"), None, 4, 3)[0] == "resnet-m"
    from kaggle_flow.models import param_count

    limit = param_count("resnet-s", 4) - 1
    name, why = recipe.choose_model(facts(n=3000), limit, 4, 3)
    assert name == "resnet-t" and why.endswith(f"within max_params {limit:,}")
    with pytest.raises(FlowError, match=r"^max_params 1,000: even resnet-t has [\d,]+ parameters; give --model$"):
        recipe.choose_model(facts(), 1000, 4, 3)


def test_tiny_images_on_a_cpu_train_the_small_cnn() -> None:
    name, why = recipe.choose_model(facts(n=1442, w=28, h=28), None, 10, 1)
    assert name == "smallcnn" and why == "smallcnn: CPU, tiny images (median short side 28 px, under 64), 0.1 M parameters"
    name, why = recipe.choose_model(facts(n=1442, w=56, h=56), None, 10, 1)  # objects wider than smallcnn's 30 px view
    assert name == "smallcnn3" and why == "smallcnn3: CPU, tiny images (median short side 56 px, under 64), 0.3 M parameters"
    from kaggle_flow.models import param_count

    limit = param_count("smallcnn3", 10, 1) - 1
    name, why = recipe.choose_model(facts(n=1442, w=56, h=56), limit, 10, 1)
    assert name == "smallcnn" and why.endswith(f"0.1 M parameters, within max_params {limit:,}")
    assert recipe.choose_model(facts(n=1442, w=64, h=80), None, 10, 1)[0] == "resnet-t"  # the family's stem halves 64 px
    assert recipe.choose_model(facts(n=1442, w=28, h=28, place="gpu"), None, 10, 1)[0] == "resnet-m"
    with pytest.raises(FlowError, match=r"^max_params 1,000: even smallcnn has [\d,]+ parameters; give --model$"):
        recipe.choose_model(facts(n=1442, w=28, h=28), 1000, 10, 1)


def test_epochs_aim_at_a_number_of_images_and_fit_the_cpu_budget() -> None:
    assert recipe.choose_epochs(facts(n=5000), None)[0] == 10
    assert recipe.choose_epochs(facts(n=1000), None)[0] == 50
    assert recipe.choose_epochs(facts(n=100), None)[0] == 60
    slow, why = recipe.choose_epochs(facts(n=1000), images_per_s=50.0)  # 50 epochs would take 1,000 s
    assert slow == 10 and why == "10: about 3.3 min at the 50 images/s measured for this model and size"
    few, why = recipe.choose_epochs(facts(n=37800), images_per_s=262.0)  # Digit Recognizer's size: 1 epoch fits the budget
    assert few == 3 and why == "3, the fewest the recipe trains: about 7.2 min at the 262 images/s measured for this model and size"
    assert recipe.choose_epochs(facts(n=1000, place="gpu"), images_per_s=50.0)[0] == 50
    assert recipe.choose_epochs(facts(n=1000), images_per_s=50.0, per_epoch=2000)[0] == 5  # label shuffling: longer epochs


def test_resolve_chooses_only_what_is_auto() -> None:
    wanted = recipe.Choices(model="smallcnn", image_size="auto", batch_size=16, epochs=3)
    out = recipe.resolve(wanted, facts(w=28, h=28), num_classes=10, channels=1, max_params=None)
    assert (out.model, out.image_size, out.batch_size, out.epochs) == ("smallcnn", 28, 16, 3)
    assert list(out.reasons) == ["image_size"] and out.reasons["image_size"].startswith("28 px: median image 28x28 px")
    with pytest.raises(FlowError, match="^image_size are 'auto' but nothing was measured"):
        recipe.resolve(wanted, None, num_classes=10, channels=1, max_params=None)


def test_measure_reads_the_image_headers(workdir: Path) -> None:
    from kaggle_flow.table.layouts import labelled
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace("mnist", remember_it=False)
    rows = labelled(ws.table(quiet=True))
    found = recipe.measure(ws, rows, "cpu", sample=50)
    assert (found.median_width, found.median_height, found.n_train) == (28, 28, len(rows))
    assert found.source == "the headers of 50 training images"


def test_usable_cores_follow_the_affinity_and_the_cgroup_quota(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    quota = tmp_path / "cpu.max"
    monkeypatch.setattr(machine, "CGROUP_V2", quota)
    quota.write_text("max 100000\n")
    assert machine.usable_cores() == 4
    quota.write_text("250000 100000\n")  # 2.5 CPUs
    assert machine.usable_cores() == 2
    quota.write_text("50000 100000\n")
    assert machine.usable_cores() == 1


def test_the_users_thread_count_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine, "usable_cores", lambda: 8)
    monkeypatch.setattr(machine, "USER_THREADS", None)
    assert machine.cpu_threads() == 7  # one core left to the data pipeline
    monkeypatch.setattr(machine, "usable_cores", lambda: 1)
    assert machine.cpu_threads() == 1
    monkeypatch.setattr(machine, "usable_cores", lambda: 8)
    monkeypatch.setattr(machine, "USER_THREADS", "3")
    assert machine.cpu_threads() == 3
    import paddle

    calls: list[int] = []
    monkeypatch.setattr(paddle.base.core, "set_num_threads", calls.append)
    assert machine.use_cpu_threads() == 3 and calls == [3]


def test_the_measured_speed_is_kept_so_later_runs_choose_the_same_epochs(tmp_path: Path) -> None:
    file = tmp_path / "runs/lemon/speeds.json"
    timings = iter([50.0, 400.0])  # a busy machine first, then a quiet one
    speed, when = recipe.remembered_speed(file, "resnet-t 64px", lambda: next(timings))
    assert (speed, when) == (50.0, "")
    again, when = recipe.remembered_speed(file, "resnet-t 64px", lambda: next(timings))
    assert again == 50.0 and when.endswith(f" ({file})") and when.startswith(" on 20")
    assert recipe.choose_epochs(facts(n=1000), again, when=when)[1].endswith(f"measured for this model and size{when}")
    other, _ = recipe.remembered_speed(file, "resnet-s 64px", lambda: next(timings))  # another model: measured
    assert other == 400.0 and set(json.loads(file.read_text())) == {"resnet-t 64px", "resnet-s 64px"}

    file.write_text("{broken")
    assert recipe.remembered_speed(file, "resnet-t 64px", lambda: 300.0) == (300.0, "")  # measured over
    assert json.loads(file.read_text())["resnet-t 64px"]["images_per_s"] == 300.0
    file.write_text('{"resnet-t 64px": {"images_per_s": "NaN", "measured": "x"}}')  # edited by hand
    assert recipe.remembered_speed(file, "resnet-t 64px", lambda: 250.0) == (250.0, "")


def test_a_second_run_reuses_the_speed_of_the_first(workdir: Path) -> None:
    """`flow train mnist --model resnet-t --epochs auto` twice: one measurement, the same epochs."""
    from kaggle_flow.table.layouts import labelled
    from kaggle_flow.engine.configure import resolve_config
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace("mnist", remember_it=False)
    rows = labelled(ws.table(quiet=True))
    flags = {"model": "resnet-t", "epochs": "auto", "batch_size": 32}
    first = resolve_config(ws, flags, train_rows=rows)
    kept = json.loads((ws.runs_dir / "speeds.json").read_text())
    (key,) = kept
    assert key == f"resnet-t 28px batch 32 1x10 {machine.cpu_threads()} threads"
    speed = 40 if first.epochs != recipe.MIN_CPU_EPOCHS else 160  # a speed kept that gives other epochs than measured
    kept[key]["images_per_s"] = float(speed)
    (ws.runs_dir / "speeds.json").write_text(json.dumps(kept))
    second = resolve_config(ws, flags, train_rows=rows)
    assert second.epochs == max(recipe.MIN_CPU_EPOCHS, int(recipe.CPU_BUDGET_S * speed // len(rows))) != first.epochs
    assert second.auto["epochs"].endswith(f"at the {speed} images/s measured for this model and size on "
                                          f"{kept[key]['measured']} ({ws.runs_dir / 'speeds.json'})")

