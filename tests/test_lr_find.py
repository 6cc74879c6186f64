"""The learning-rate finder: the exponential sweep, the stop at 4x the lowest smoothed loss, fastai's
valley, `flow lr-find` (a PNG, a command to copy, no run folder) and `flow train --lr find`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from clitools import flow, one_line_error

from kaggle_flow.engine import lr_find
from kaggle_flow.engine.lr_find import Curve, Sweep, record, suggest, valley

TINY = ("--model", "smallcnn", "--size", "8")


def _runs(workdir: Path) -> list[Path]:
    folder = workdir / "runs" / "digits"
    return [p for p in folder.iterdir() if (p / "config.json").is_file()] if folder.is_dir() else []


def test_the_schedule_rises_exponentially_from_start_to_end() -> None:
    sweep = Sweep(1e-6, 1.0, 13)
    schedule = sweep.schedule()
    lrs = []
    for _ in range(sweep.steps):
        lrs.append(schedule())
        schedule.step()
    assert np.allclose(lrs, [1e-6 * (1.0 / 1e-6) ** (i / 12) for i in range(13)], rtol=1e-9)
    assert lrs[0] == pytest.approx(1e-6) and lrs[-1] == pytest.approx(1.0)


def test_the_sweep_stops_once_the_smoothed_loss_passes_4x_its_lowest() -> None:
    losses = [2.0] * 20 + [1.0] * 20 + [50.0] * 60  # smoothed: falls towards 1, then climbs fast

    def step(i: int) -> tuple[float, float]:
        return 1e-3 * i, losses[i]

    curve = record(step, len(losses))
    average, smoothed = 0.0, []
    for i, loss in enumerate(losses):  # the bias-corrected moving average, beta 0.98
        average = 0.98 * average + 0.02 * loss
        smoothed.append(average / (1 - 0.98 ** (i + 1)))
    stop = next(i for i in range(1, len(losses)) if smoothed[i] > 4 * min(smoothed[:i]))
    assert curve.stopped and len(curve.smoothed) == stop + 1
    assert np.allclose(curve.smoothed, smoothed[: stop + 1])
    assert curve.smoothed[-1] > 4 * curve.smoothed[:-1].min() >= curve.smoothed[-2]


def test_a_loss_that_never_climbs_sweeps_every_step() -> None:
    curve = record(lambda i: (float(i), 1.0 / (i + 1)), 30)
    assert not curve.stopped and len(curve.lrs) == 30


def test_the_valley_is_a_third_and_a_sixth_into_the_longest_fall() -> None:
    """Flat 3.0 for 5 steps, 21 steps down by 0.1 to 0.9 (steps 5-25), then up: the longest fall is
    22 long, from index 3 as fastai counts it, so 3 + int(22/3) + int(22/6) = 13."""
    losses = [3.0] * 5 + [3 - 0.1 * k for k in range(1, 22)] + [1.5, 3.0, 6.0]
    assert valley(losses) == 13
    assert valley([5.0, 4.0, 3.0, 2.0, 1.0, 0.5, 0.4]) == -1 + int(7 / 3) + int(7 / 6)  # a fall from the first point
    assert valley([2.0, 1.0, 3.0, 4.0]) == 0  # fastai's -1 here would pick the last step


def test_the_suggestion_leaves_out_the_first_tenth_and_the_last_five_steps() -> None:
    """A fall at the very start (noise of the first steps) is not the valley the suggestion comes from."""
    smoothed = np.array([9.0, 8.0, 7.0, 6.0] + [5.0] * 6 + [5.0 - 0.2 * k for k in range(1, 16)] + [4.0, 6.0, 9, 12, 20])
    curve = Curve(np.geomspace(1e-5, 1, len(smoothed)), smoothed, smoothed, stopped=True)
    index = suggest(curve, planned=40)
    assert 10 <= index <= 24 and index == 4 + valley(list(smoothed[4:-5]))


@pytest.mark.parametrize(("args", "message"), [
    (("--start", "0"), "Error: --start must be a finite number above 0 (got 0.0)"),
    (("--end", "1e-8"), "Error: --end must be a finite number above --start 1e-07 (got 1e-08)"),
    (("--steps", "2"), "Error: --steps must be 5 or more (got 2)"),
])
def test_bad_sweeps_are_one_line(workdir: Path, args: tuple[str, ...], message: str) -> None:
    result = flow("lr-find", "digits", *args)
    assert result.exit_code == 1 and one_line_error(result) == message


def test_lr_find_writes_the_plot_prints_the_command_and_makes_no_run(workdir: Path) -> None:
    result = flow("lr-find", "digits", *TINY, "--steps", "30")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    suggested = lines[-1].rsplit(" ", 1)[-1]
    assert lines[-1] == f"Train with it: flow train digits --model smallcnn --size 8 --lr {suggested}"
    assert 1e-7 <= float(suggested) <= 10
    assert "Learning-rate finder: smallcnn at 8 px, batch 64, adam; lr 1e-07 to 10 over 30 steps" in result.output
    png = workdir / "runs" / "digits" / "lr_find.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _runs(workdir) == []


def test_train_with_lr_find_uses_the_suggestion(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lr_find, "Sweep", lambda: Sweep(1e-5, 1.0, 20))  # a short sweep: the default is 100 steps
    result = flow("train", "digits", *TINY, "--epochs", "1", "--lr", "find")
    assert result.exit_code == 0, result.output
    (run,) = _runs(workdir)
    config = json.loads((run / "config.json").read_text())
    found = next(line for line in result.output.splitlines() if line.startswith("Suggested lr "))
    assert math.isclose(config["lr"], float(found.split()[2]))
    assert config["auto"]["lr"].startswith(f"{config['lr']:.1e}: the learning-rate finder's suggestion (--lr find; ")
    assert f"  lr      {config['lr']:.1e}: the learning-rate finder's suggestion" in result.output
    assert f"adam lr {config['lr']:g} cosine" in result.output


def test_lr_takes_a_number_or_find(workdir: Path) -> None:
    result = flow("train", "digits", "--lr", "fast")
    assert result.exit_code == 1 and one_line_error(result) == "Error: --lr takes a number or 'find' (got 'fast')"
