"""What a kill -9 leaves behind, and the next command that deals with it.

Each fault is a real `flow` process killed with SIGKILL at a named moment: the temp file of a
submission, of the ledger or of the image cache written but not yet renamed, or a training run
after its first epoch. The next command of the same kind removes the temps (fileio.reap_temps) and
`flow runs` shows the run as resumable, which it is.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clitools import fake_run, flow

from kaggle_flow import fileio
from kaggle_flow.fileio import FOREIGN_TEMP_AGE_S, reap_temps

STALL = """
import os, sys, time
from pathlib import Path
target, nth, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3]
real_replace = os.replace
seen = []

def stall(src, dst):  # the named moment: the temp is written, its rename not yet done
    if Path(dst).name.endswith(target):
        seen.append(dst)
        if len(seen) == nth:
            Path(marker).write_text(str(src))
            time.sleep(600)
    real_replace(src, dst)

os.replace = stall
sys.argv = ["flow", *sys.argv[4:]]
from kaggle_flow.cli import app
app()
"""


def _killed_at_rename(workdir: Path, target: str, *args: str, nth: int = 1) -> Path:
    """Run `flow ARGS` until it is about to rename a temp onto a file named `...target` (the nth
    time), then SIGKILL it. Returns the temp the process was writing."""
    marker = workdir / "stalled"
    env = {**os.environ, "FLOW_NO_PROGRESS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", STALL, target, str(nth), str(marker), *args], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"flow {' '.join(args)} never reached the rename of {target}:\n{proc.communicate()[1]}")
        time.sleep(0.05)
    while not marker.read_text():
        time.sleep(0.01)
    proc.kill()  # SIGKILL: no handler, no finally
    proc.communicate(timeout=60)
    assert proc.returncode == -9
    temp = workdir / marker.read_text()
    marker.unlink()
    return temp


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp")) if folder.is_dir() else []


@pytest.mark.parametrize("target", ["ledger.csv", "_r1.csv"], ids=["ledger", "submission"])
def test_a_submit_killed_while_writing_leaves_a_temp_the_next_submit_removes(workdir: Path, target: str) -> None:
    fake_run(workdir / "runs/digits", "r1")
    subs = workdir / "submissions/digits"
    temp = _killed_at_rename(workdir, target, "submit", "digits")
    assert temp.parent == subs and temp.is_file() and _temps(subs) == [temp.name]
    assert temp.name.startswith(".") and f".csv.{fileio._host_tag()}." in temp.name
    result = flow("submit", "digits")
    assert result.exit_code == 0, result.output
    assert _temps(subs) == []
    assert len(list(subs.glob("2*_r1.csv"))) == 1  # the killed one never got its name


def test_a_cache_build_killed_while_writing_leaves_a_temp_the_next_build_removes(workdir: Path) -> None:
    fake_run(workdir / "runs/digits", "r1")
    cache = workdir / "runs/digits/cache"
    temp = _killed_at_rename(workdir, ".npy", "predict", "digits")
    assert temp.parent == cache and temp.stat().st_size > 297 * 16 * 16  # every test image, at full size
    assert _temps(cache) == [temp.name]
    result = flow("predict", "digits")
    assert result.exit_code == 0, result.output
    assert _temps(cache) == [] and len(list(cache.glob("*.npy"))) == 1


def test_a_training_killed_after_an_epoch_is_listed_resumable_and_resumes(workdir: Path) -> None:
    args = ("train", "digits", "--model", "smallcnn", "--size", "8", "--epochs", "2")
    temp = _killed_at_rename(workdir, "last.pdstate", *args, nth=2)  # as epoch 2's checkpoint is written
    run = temp.parent
    assert (run / "last.pdstate").is_file() and not (run / "summary.json").exists() and temp.is_file()
    listed = flow("runs", "digits")
    assert listed.exit_code == 0, listed.output
    resume = f"flow train digits --resume {run.name}"
    assert f"{run.name}: stopped after epoch 1 of 2 without a summary (killed, or still training); resume: {resume}" in listed.output
    result = flow(*resume.split()[1:])
    assert result.exit_code == 0, result.output
    assert "resumable" not in flow("runs", "digits").output


def test_reap_keeps_what_a_live_process_writes(tmp_path: Path) -> None:
    host = fileio._host_tag()
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(done.stdout)  # a process that has ended
    names = {
        "dead": f".a.csv.{host}.{dead_pid}.0123abcd.tmp",
        "live": f".b.csv.{host}.{os.getpid()}.0123abcd.tmp",  # this test's own process, still writing
        "foreign": f".c.csv.other-machine.{dead_pid}.0123abcd.tmp",  # another machine's: its PID means nothing here
        "foreign_old": f".d.csv.other-machine.{os.getpid()}.0123abcd.tmp",
        "old_style_old": ".e.csv.0123abcd.tmp",
        "not_flows": ".notes.tmp",
    }
    for name in names.values():
        (tmp_path / name).write_text("x")
    long_ago = time.time() - FOREIGN_TEMP_AGE_S - 60
    for key in ("foreign_old", "old_style_old", "not_flows"):
        os.utime(tmp_path / names[key], (long_ago, long_ago))
    removed = reap_temps(tmp_path)
    assert sorted(p.name for p in removed) == sorted(names[k] for k in ("dead", "foreign_old", "old_style_old"))
    assert _temps(tmp_path) == sorted(names[k] for k in ("live", "foreign", "not_flows"))
    assert reap_temps(tmp_path / "missing") == []
