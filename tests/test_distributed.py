"""Data-parallel training (``compute.train_processes``): two gloo processes on the CPU against one
process with the same global batch, and a rank killed mid-run then resumed."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dftnet.runtime import numerics
from dftnet.training import launch, train as trainer
from dftnet.config import load_params
from dftnet.data.canonical import load_dataset, save_dataset
from helpers import random_dataset, tiny_run

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _data(tmp_path: Path) -> Path:
    ds = random_dataset(n=24, size=32)
    ds.meta = {"source": "test"}
    save_dataset(ds, tmp_path / "data")
    return tmp_path / "data"


def _params(data: Path, processes: int = 2):
    p = load_params(ROOT / "params.yaml")
    return dataclasses.replace(p, data=dataclasses.replace(p.data, root=str(data)),
                               compute=dataclasses.replace(p.compute, train_processes=processes))


def _ckpt(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)


def _losses(run_dir: Path) -> torch.Tensor:
    rows = (run_dir / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    cols = [i for i, name in enumerate(header) if name.startswith(("d_", "g_"))]
    table = [[r.split(",")[i] for i in cols] for r in rows[1:]]
    used = [j for j in range(len(cols)) if all(row[j] for row in table)]  # terms this variant logs
    return torch.tensor([[float(row[j]) for j in used] for row in table], dtype=torch.float64)


def test_two_gloo_processes_train_as_one_process_with_the_same_global_batch(tmp_path, one_thread):
    data = _data(tmp_path)
    run = tiny_run(epochs=2, curve_every=0)  # global batch 4: two shards of 2
    numerics.pin(1, True)
    trainer.train(run, load_dataset(data), tmp_path / "one", "cpu")
    launch.launch_distributed(_params(data), run, tmp_path / "two", None, 1, None)
    one, two = _ckpt(tmp_path / "one"), _ckpt(tmp_path / "two")
    assert one["step"] == two["step"] == 4
    # The losses every step logs agree to 1e-4 relative (measured: 2.6e-5 at worst, the flow's TV
    # after 4 steps; the others to 1e-7): sums over 2 shards round unlike one batch's ...
    torch.testing.assert_close(_losses(tmp_path / "two"), _losses(tmp_path / "one"), rtol=1e-4, atol=1e-7)
    # ... and so do the critic's weights. Adam divides each gradient by its own running size, so
    # where a gradient is 0 up to rounding (a few entries of E's stem) its sign is noise and the
    # weight may move up to lr per step either way: that, no more, bounds the generator.
    for name, w in one["D"].items():
        torch.testing.assert_close(two["D"][name], w, rtol=0, atol=1e-6)
    bound = 2 * run.train.lr * one["step"]
    worst = max(float((two["G"][n] - w).abs().max()) for n, w in one["G"].items())
    assert worst <= bound, (worst, bound)


def _rank_pid(out: Path, rank: int) -> int | None:
    """The pid of the training process of ``rank`` writing ``out`` (from /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"dftnet.training.launch" in cmd and str(out).encode() in cmd and f"RANK={rank}".encode() in env:
            return int(entry.name)
    return None


def test_a_killed_rank_resumes_bit_exact(tmp_path, one_thread):
    data = _data(tmp_path)
    run = tiny_run(epochs=40, curve_every=0)  # a checkpoint every epoch
    params = _params(data)
    launch.launch_distributed(params, run, tmp_path / "whole", None, 1, None)

    out = tmp_path / "killed"
    spec = tmp_path / "run.json"
    spec.write_text(__import__("json").dumps(run.to_dict()))
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "-m", "dftnet.training.launch", "--config", str(spec), "--data", str(data), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    pid = _rank_pid(out, 1)
    assert pid is not None and proc.poll() is None, "the run ended before a rank could be killed"
    os.kill(pid, signal.SIGKILL)
    assert proc.wait(timeout=120) != 0
    killed_at = _ckpt(out)["epoch"]
    assert 1 <= killed_at < run.train.epochs
    launch.launch_distributed(params, run, out, None, 1, None)  # resume from the last checkpoint
    whole, resumed = _ckpt(tmp_path / "whole"), _ckpt(out)
    for part in ("G", "D"):
        for name, w in whole[part].items():
            assert torch.equal(resumed[part][name], w), (part, name, killed_at)
    assert resumed["step"] == whole["step"]
    torch.testing.assert_close(_losses(out), _losses(tmp_path / "whole"), rtol=0, atol=0)


def test_a_batch_that_does_not_split_is_one_line(tmp_path):
    from dftnet.runtime.errors import DataError

    data = _data(tmp_path)
    run = tiny_run(epochs=1, curve_every=0)
    run = dataclasses.replace(run, train=dataclasses.replace(run.train, batch_size=3))
    with pytest.raises(DataError, match="train.batch_size: 3 does not split over 2 processes"):
        launch.launch_distributed(_params(data), run, tmp_path / "odd", None, 1, None)
