"""Data-parallel training: `flow train --nproc 2` on this CPU (gloo), the sharded sampler, the input
pipeline's device-side normalization, mixed-precision modes, and the one-line refusals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import paddle
import pandas as pd
import pytest
from clitools import flow, one_line_error

from kaggle_flow.config import RunConfig
from kaggle_flow.data.images import ImageCache
from kaggle_flow.data.loader import EpochSampler, ImageDataset, make_loader
from kaggle_flow.engine.step import Precision
from kaggle_flow.machine import usable_cores
from kaggle_flow.run_table import list_runs

TINY = ["--preset", "none", "--seed", "5"]
LENET = ["--model", "lenet", "--size", "28", "--epochs", "2", *TINY]  # no BatchNorm, no dropout: exactly data parallel
RUN_FILES = {"config.json", "metrics.csv", "best.pdparams", "last.pdparams", "last.pdopt", "last.pdstate",
             "curves.png", "confusion.png", "oof.csv", "summary.json", "log"}


def _runs(workdir: Path) -> list[Path]:
    return sorted(p for p in (workdir / "runs/digits").iterdir() if (p / "config.json").is_file())


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


RANK_HOOK = """\
import sys

argv = sys.orig_argv
if argv[argv.index("-m") + 1 : argv.index("-m") + 2] == ["kaggle_flow.engine.worker"] if "-m" in argv else False:
    import paddle

    from kaggle_flow.engine.step import Parallel

    average_buffers = Parallel.average_buffers

    def saving(self, model, *more):
        average_buffers(self, model, *more)
        paddle.save(model.state_dict(), f"{folder}/rank{{self.rank}}.pdparams")

    Parallel.average_buffers = saving
"""


def _rank_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder where each process of the data-parallel runs started from now on saves its weights,
    as rankR.pdparams, after every epoch's step that makes the processes' models one (the state a
    run ends with). A sitecustomize module of the test's own installs the hook in each process."""
    hook, ranks = tmp_path / "rank_hook", tmp_path / "ranks"
    hook.mkdir()
    ranks.mkdir()
    (hook / "sitecustomize.py").write_text(RANK_HOOK.format(folder=ranks))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH")) if p))
    return ranks


# --- two processes through the real command ------------------------------------------------------------


def test_two_processes_train_the_model_one_process_trains_with_the_global_batch(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rank_weights = _rank_weights(tmp_path, monkeypatch)
    result = flow("train", "digits", *LENET, "--batch-size", "16", "--nproc", "2")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "2 epochs of 42 steps, 2 CPU processes of 16 images a step (global batch 32)" in result.output
    assert "epoch   2/2" in result.output and "Training summary (lenet, fold 0)" in result.output  # rank 0's lines, relayed
    (run,) = _runs(workdir)
    assert {p.name for p in run.iterdir()} == RUN_FILES
    config = json.loads((run / "config.json").read_text())
    assert (config["nproc"], config["world_size"]) == (2, 2)
    assert list(pd.read_csv(run / "metrics.csv")["epoch"]) == [1, 2]
    worker1 = (run / "log/workerlog.1").read_text()
    assert "epoch" not in worker1 and "Saved" not in worker1  # rank 1 neither reports nor writes

    ranks = [paddle.load(str(rank_weights / f"rank{r}.pdparams")) for r in (0, 1)]
    assert _same_weights(ranks[0], ranks[1])  # the gradients were averaged at every step
    assert _same_weights(ranks[0], paddle.load(str(run / "last.pdparams")))

    single = flow("train", "digits", *LENET, "--batch-size", "32")
    assert single.exit_code == 0, single.output
    one = [r for r in _runs(workdir) if r != run][0]
    alone = paddle.load(str(one / "last.pdparams"))
    assert max(float(np.abs(alone[k].numpy() - ranks[0][k].numpy()).max()) for k in alone) < 1e-5
    two_metrics, one_metrics = pd.read_csv(run / "metrics.csv"), pd.read_csv(one / "metrics.csv")
    for column in ("train_loss", "train_acc", "val_loss", "val_acc"):  # validation sharded, then gathered
        np.testing.assert_allclose(two_metrics[column], one_metrics[column], rtol=1e-4)
    recipes = list_runs(workdir / "runs/digits").set_index("run")["recipe"]
    assert recipes[run.name].endswith("none bs16x2") and recipes[one.name].endswith("none bs32")


def _flow_process(*args: str) -> subprocess.Popen[str]:
    """`flow ARGS` as its own process (to be sent signals), in the current directory."""
    code = "from kaggle_flow.cli import main; main()"
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, seconds: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").is_dir() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def _pids(run: Path) -> list[int]:
    return [json.loads(f.read_text())["pid"] for f in sorted((run / "log").glob("status.*"))]


def _left_running(run: Path) -> list[int]:
    """Live processes whose command line names the run, working in its working folder: its ranks and
    their DataLoader workers (never those of a run of the same name in another test's folder)."""
    found, workdir = [], run.parents[2].resolve()  # WORKDIR/runs/COMP/RUN
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if run.name.encode() in (entry / "cmdline").read_bytes() and (entry / "cwd").resolve() == workdir and _alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_ctrl_c_stops_every_process_and_resume_continues_with_as_many(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = _flow_process("train", "digits", "--size", "12", "--epochs", "4", "--batch-size", "16", "--nproc", "2", *TINY)
    _wait_for(lambda: (workdir / "runs/digits").is_dir() and _runs(workdir) and (_runs(workdir)[0] / "metrics.csv").is_file())
    (run,) = _runs(workdir)
    parent.send_signal(signal.SIGINT)
    out, err = parent.communicate(timeout=60)
    assert parent.returncode == 1, out + err
    assert "Traceback" not in out + err
    epochs = len(pd.read_csv(run / "metrics.csv"))
    assert err.strip().splitlines()[-1] == (
        f"Error: interrupted after epoch {epochs} of 4; continue with: flow train digits --resume {run.name}"
    )
    assert not any(_alive(pid) for pid in _pids(run))
    assert one_line_error(flow("train", "digits", "--resume", run.name, "--nproc", "1")) == (
        f"Error: runs/digits/{run.name}: trained by 2 processes; resume it with as many: --nproc 2"
    )

    rank_weights = _rank_weights(tmp_path, monkeypatch)
    resumed = flow("train", "digits", "--resume", run.name)  # two processes again, from the run's config
    assert resumed.exit_code == 0, resumed.output
    assert "Data parallel: 2 CPU processes" in resumed.output
    assert f"Continuing after epoch {epochs} of 4" in resumed.output
    assert list(pd.read_csv(run / "metrics.csv")["epoch"]) == list(range(1, 5))
    ranks = [paddle.load(str(rank_weights / f"rank{r}.pdparams")) for r in (0, 1)]
    assert _same_weights(ranks[0], ranks[1])  # both loaded the checkpoint (Adam's moments too)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGHUP], ids=["kill-9", "SIGHUP"])
def test_flow_killed_any_way_leaves_no_process_training(workdir: Path, signum: int) -> None:
    """`kill -9` on flow, or its terminal closed: the launcher and the processes stop with it
    (the launcher and each rank run in sessions of their own, where no terminal signal reaches them)."""
    args = ["--size", "12", "--epochs", "50", "--batch-size", "16", "--nproc", "2", "--workers", "1", *TINY]
    parent = _flow_process("train", "digits", *args)
    try:
        _wait_for(lambda: (workdir / "runs/digits").is_dir() and _runs(workdir) and len(_pids(_runs(workdir)[0])) == 2)
        (run,) = _runs(workdir)
        _wait_for(lambda: "epoch   1/50" in (run / "log/console.0").read_text() if (run / "log/console.0").is_file() else False)
        assert _left_running(run)
        parent.send_signal(signum)
        out, err = parent.communicate(timeout=60)
        _wait_for(lambda: _left_running(run) == [], seconds=30)  # neither the launcher, the ranks, nor their loader workers
    finally:
        parent.kill()
        for pid in _left_running(_runs(workdir)[0]) if _runs(workdir) else []:
            os.kill(pid, signal.SIGKILL)
    if signum == signal.SIGHUP:
        assert parent.returncode == 1 and "Traceback" not in out + err
        assert err.strip().splitlines()[-1].startswith("Error: interrupted after epoch ")
    summary = json.loads((run / "summary.json").read_text())  # rank 0 stopped as by Ctrl-C: resumable
    assert summary["status"] == "interrupted" and summary["epochs_done"] >= 1
    paddle.load(str(run / "last.pdstate"))


def test_a_rank_that_dies_stops_the_others_with_one_line(workdir: Path) -> None:
    args = ["--size", "12", "--epochs", "50", "--batch-size", "16", "--nproc", "2", "--workers", "1", *TINY]
    parent = _flow_process("train", "digits", *args)
    _wait_for(lambda: (workdir / "runs/digits").is_dir() and _runs(workdir) and len(_pids(_runs(workdir)[0])) == 2)
    (run,) = _runs(workdir)
    _wait_for(lambda: "epoch   1/50" in (run / "log/console.0").read_text() if (run / "log/console.0").is_file() else False)
    os.kill(_pids(run)[1], signal.SIGKILL)
    started = time.monotonic()
    out, err = parent.communicate(timeout=60)
    assert time.monotonic() - started < 30
    assert parent.returncode == 1
    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if line.startswith("Error")]
    assert errors == [
        f"Error: rank 1 failed: it stopped without an error (killed by a signal, e.g. out of memory) "
        f"(log: runs/digits/{run.name}/log/workerlog.1)"
    ]
    assert _left_running(run) == []  # neither process, nor their DataLoader workers
    paddle.load(str(run / "last.pdparams"))  # the last checkpoint is whole
    assert not list(run.glob(".*.tmp"))


DISK_HOOK = """\
import glob, shutil, sys

argv = sys.orig_argv
if argv[argv.index("-m") + 1 : argv.index("-m") + 2] == ["kaggle_flow.engine.worker"] if "-m" in argv else False:
    real = shutil.disk_usage

    def disk_usage(path):  # the run folder's disk fills up once its first checkpoint is written
        usage = real(path)
        full = "-smallcnn-f0" in str(path) and glob.glob("{runs}/*-smallcnn-f0/last.pdstate")
        return usage._replace(free=1000) if full else usage

    shutil.disk_usage = disk_usage
"""


def test_a_full_disk_in_a_process_says_how_to_continue(workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = tmp_path / "disk_hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(DISK_HOOK.format(runs=workdir / "runs/digits"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH")) if p))
    result = flow("train", "digits", "--model", "smallcnn", "--size", "12", "--epochs", "3", "--nproc", "2", *TINY)
    (run,) = _runs(workdir)
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert line.startswith(f"Error: rank 0 failed: not enough free space in runs/digits/{run.name}")
    assert line.endswith(f"; once there is room, continue with: flow train digits --resume {run.name}")
    paddle.load(str(run / "last.pdstate"))  # the checkpoint it continues from is whole


# --- the one-line refusals ---------------------------------------------------------------------------------


def test_more_processes_than_cores_is_one_line(workdir: Path) -> None:
    cores = usable_cores()
    assert one_line_error(flow("train", "digits", "--nproc", str(cores + 1))) == (
        f"Error: --nproc {cores + 1}: this machine has {cores} usable CPU cores and no GPU; at most --nproc {cores}"
    )
    assert one_line_error(flow("run", "digits", "--nproc", "0")) == "Error: --nproc must be 1 or more (got 0)"
    assert not (workdir / "runs/digits").exists()


def test_a_master_port_in_use_is_one_line(workdir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_error(flow("train", "digits", "--nproc", "2", "--master", f"127.0.0.1:{port}"))
    assert line == f"Error: --master 127.0.0.1:{port}: port {port} is already in use on this machine; choose another"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nproc", "2", "--sync-bn"], "Error: --sync-bn: paddle's SyncBatchNorm runs on GPUs only (it has no CPU kernel)"),
        (["--gpus", "0,1"], "Error: --gpus 0,1: paddle sees no GPU here; --nproc N trains in N CPU processes"),
        (["--nproc", "2", "--nnodes", "2"], "Error: --nnodes 2: every machine needs --master HOST:PORT, the address of node 0"),
        (["--amp-level", "o3"], "Error: --amp-level takes o1, o2 or bf16 (got 'o3')"),
    ],
)
def test_bad_launch_options_are_one_line(workdir: Path, args: list[str], message: str) -> None:
    assert one_line_error(flow("train", "digits", *args)) == message


# --- the parts, in one process --------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 7, 64, 65, 130])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_are_disjoint_equal_and_make_the_global_batches(n: int, world: int) -> None:
    batch = 4
    global_batch = batch * world
    drop = n > global_batch
    keep = n // global_batch * global_batch if drop else None
    samplers = [EpochSampler(n, seed=3, rank=r, world=world, keep=keep, pad=not drop) for r in range(world)]
    for s in samplers:
        s.epoch = 2
    order = np.random.default_rng([3, 2]).permutation(n)  # the one order of epoch 2, as one process draws it
    shards = [list(s) for s in samplers]
    assert len({len(s) for s in shards}) == 1 and all(len(s) == len(x) for s, x in zip(shards, samplers))
    if drop:
        assert sorted(sum(shards, [])) == sorted(order[:keep].tolist())  # disjoint, together the cut order
        for step in range(keep // global_batch):  # every step's batches together: one process's batch
            together = sorted(i for s in shards for i in s[step * batch : (step + 1) * batch])
            assert together == sorted(order[step * global_batch : (step + 1) * global_batch].tolist())
    else:
        assert set(sum(shards, [])) == set(order.tolist())  # every item, a few twice to even the shards
    unpadded = [list(EpochSampler(n, seed=3, shuffle=False, rank=r, world=world)) for r in range(world)]
    assert sorted(sum(unpadded, [])) == list(range(n))  # evaluation: every row exactly once


def test_device_normalization_gives_the_normalized_nchw_batches() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 6, 6, 3), dtype=np.uint8)
    rows = pd.DataFrame({"id": [str(i) for i in range(10)], "path": [f"p{i}" for i in range(10)], "label": range(10)})
    cache = ImageCache(Path(":memory:"), list(rows["path"]), {}, 6, 3, images)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    data = ImageDataset(rows, cache, mean=mean, std=std, report=False)
    batches = [b.numpy() for b, _ in make_loader(data, batch_size=4, shuffle=False)]
    m = (np.asarray(mean, np.float32) * 255.0).reshape(1, -1, 1, 1)
    s = (np.asarray(std, np.float32) * 255.0).reshape(1, -1, 1, 1)
    expected = (images.transpose(0, 3, 1, 2).astype(np.float32) - m) / s
    assert [b.dtype for b in batches] == [np.float32] * 3
    np.testing.assert_allclose(np.concatenate(batches), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", ["off", "o1", "o2", "bf16"])
def test_every_amp_mode_runs_the_step_and_passes_through_on_a_cpu(mode: str) -> None:
    """On a CPU paddle's autocast, O2 decoration and scaler pass through: each mode takes the plain step."""

    def step(precision: Precision | None) -> np.ndarray:
        paddle.seed(0)
        model = paddle.nn.Linear(3, 2)
        opt = paddle.optimizer.Adam(0.1, parameters=model.parameters())
        x = paddle.to_tensor(np.arange(12, dtype=np.float32).reshape(4, 3))
        if precision is None:
            (model(x) ** 2).mean().backward()
            opt.step()
            return model.weight.numpy()
        opt = precision.prepare(model, opt)
        with precision.autocast():
            out = model(x)
        precision.backward_and_step((precision.float32(out) ** 2).mean(), opt)
        return model.weight.numpy()

    precision = Precision(mode)
    assert precision.enabled == (mode != "off")
    assert precision.scaler.is_enable() is False  # float16 scaling would need a GPU; bf16 and off never scale
    np.testing.assert_array_equal(step(precision), step(None))


def test_configs_before_the_amp_modes_still_read(workdir: Path) -> None:
    from kaggle_flow.competition import get_competition
    from kaggle_flow.engine.configure import build_config

    config = build_config(get_competition("digits"), {"epochs": 1})
    old = {**config.model_dump(mode="json"), "amp": True}
    for key in ("nproc", "world_size", "sync_bn", "scale_lr"):
        old.pop(key)
    read = RunConfig.model_validate(old)
    assert (read.amp, read.nproc, read.world_size) == ("o1", 1, 1)
    assert read.model_copy(update={"world_size": 4, "scale_lr": True}).peak_lr == pytest.approx(4 * read.lr)
