"""The fast path (dftnet/nets/accel.py) on the CPU: what `auto` resolves to, bf16 training and its
resume guard, channels_last against the contiguous layout, the compiled generator against the
eager one, the penalty's precision switch, timing with the fast path, and GPU claims."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from dftnet.runtime import numerics
from dftnet.training import train as trainer
from dftnet.nets import accel, losses
from dftnet.nets.accel import Fast
from dftnet.config import ComputeConfig
from dftnet.runtime.errors import DataError
from dftnet.eval.timing import time_generator
from dftnet.nets.generators import build_critic, build_generator

from helpers import random_dataset, tiny_run

ROOT = Path(__file__).resolve().parents[1]


def compute(**kw) -> ComputeConfig:
    return dataclasses.replace(ComputeConfig(), **kw)


def test_auto_is_the_fast_path_on_cuda_and_the_plain_path_on_the_cpu():
    assert accel.resolve(compute(), torch.device("cpu")) == Fast("fp32", False, False, False)
    assert accel.resolve(compute(), torch.device("cuda")) == Fast("bf16", False, True, True)
    explicit = compute(precision="bf16", penalty_precision="fp32", channels_last="enabled", compile="disabled")
    assert accel.resolve(explicit, torch.device("cpu")) == Fast("bf16", True, True, False)
    paper = compute(precision="fp32", channels_last="disabled", compile="disabled")
    assert accel.resolve(paper, torch.device("cuda")) == Fast("fp32", False, False, False)


def _losses(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / trainer.LOG).dropna(axis=1, how="all")


def test_bf16_training_runs_records_its_precision_and_resumes_only_in_bf16(tmp_path):
    ds, run = random_dataset(), tiny_run(epochs=2)
    bf16 = compute(precision="bf16")
    summary = trainer.train(run, ds, tmp_path / "bf16", "cpu", epochs_this_session=1, compute=bf16)
    assert summary == {}  # stopped after its first epoch, resumable
    assert torch.load(tmp_path / "bf16" / trainer.CHECKPOINT, weights_only=True)["precision"] == "bf16"
    with pytest.raises(DataError, match=r"checkpoint\.pt: the run started in bf16, compute\.precision resolves to fp32"):
        trainer.train(run, ds, tmp_path / "bf16", "cpu", compute=compute(precision="fp32"))
    summary = trainer.train(run, ds, tmp_path / "bf16", "cpu", compute=bf16)
    assert summary["fast_path"]["precision"] == "bf16" and summary["epochs"] == 2
    fp32 = trainer.train(run, ds, tmp_path / "fp32", "cpu")
    assert fp32["fast_path"] == Fast().to_dict()
    a, b = _losses(tmp_path / "bf16"), _losses(tmp_path / "fp32")
    assert a.notna().equals(b.notna())  # the same terms, every one finite (the trainer checks)
    assert not a.equals(b)  # bf16 really ran: its losses are not fp32's


def test_channels_last_trains_as_the_contiguous_layout_up_to_summation_order(tmp_path):
    ds, run = random_dataset(), tiny_run(epochs=2)
    trainer.train(run, ds, tmp_path / "plain", "cpu")
    trainer.train(run, ds, tmp_path / "nhwc", "cpu", compute=compute(channels_last="enabled"))
    a, b = _losses(tmp_path / "plain"), _losses(tmp_path / "nhwc")
    assert ((a - b).abs() <= 1e-4 * (a.abs() + 1e-3)).all().all()
    pa = torch.load(tmp_path / "plain" / trainer.CHECKPOINT, weights_only=True)
    pb = torch.load(tmp_path / "nhwc" / trainer.CHECKPOINT, weights_only=True)
    steps = pa["step"]
    # as with data parallelism: a gradient that is 0 up to rounding makes Adam step lr either way
    for net, lr in (("G", run.train.lr), ("D", run.train.lr_critic)):
        worst = max(float((pa[net][k] - pb[net][k]).abs().max()) for k in pa[net])
        assert worst <= 2 * lr * steps * run.train.n_critic, (net, worst)


def _eager_and_compiled(dtype: torch.dtype):
    """G's edit and parameter gradients, eager then compiled (the same weights and inputs)."""
    torch.manual_seed(0)
    run = tiny_run()
    G, D = build_generator(run.model, 32).to(dtype), build_critic(run.model, 32).to(dtype)
    keys = list(G.state_dict())
    x, aus = (torch.rand(4, 3, 32, 32) * 2 - 1).to(dtype), torch.rand(4, 17).to(dtype)
    results = []
    for compile_ in (False, True):
        if compile_:
            accel.prepare_networks(Fast(compile=True), G, D)
        G.zero_grad(set_to_none=True)
        out = G(x, aus).image
        out.square().mean().backward()
        results.append((out.detach(), [p.grad.clone() for p in G.parameters()]))
    assert list(G.state_dict()) == keys  # checkpoints of a compiled run load anywhere
    return results


@pytest.mark.slow
def test_compiled_generator_equals_eager_and_keeps_its_checkpoint_keys():
    # float32, as training runs: the edit agrees to rounding. Its gradients are not compared
    # here: the warp's bilinear weights are piecewise linear in the flow, so a last-bit
    # difference in Phi can move a sample across a pixel edge and change the flow's gradient
    # by up to 1% on some CPUs (seen on an AMD EPYC); float64 below leaves no such crossing.
    (eager, _), (compiled, _) = _eager_and_compiled(torch.float32)
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)
    (eager, g_eager), (compiled, g_compiled) = _eager_and_compiled(torch.float64)
    torch.testing.assert_close(compiled, eager, rtol=1e-12, atol=1e-12)
    for g, ref in zip(g_compiled, g_eager):
        torch.testing.assert_close(g, ref, rtol=1e-10, atol=1e-12)


def test_penalty_precision_switches_the_critic_pass_of_the_penalty_to_fp32():
    torch.manual_seed(0)
    D = build_critic(tiny_run().model, 32)
    seen = []
    D.main[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    real, fake, alpha = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), torch.rand(2)
    for fast in (Fast("bf16", gp_fp32=False), Fast("bf16", gp_fp32=True), Fast("fp32", gp_fp32=True)):
        with accel.autocast(fast, torch.device("cpu")), accel.penalty_precision(fast, torch.device("cpu")):
            gp = losses.gradient_penalty(lambda z: D(z)[0], real, fake, alpha)
        assert torch.isfinite(gp)
    assert seen == [torch.bfloat16, torch.float32, torch.float32]


def test_timing_with_the_fast_path_restores_the_layout_and_graphs_need_cuda():
    torch.manual_seed(0)
    G = build_generator(tiny_run().model, 32)
    fast = Fast(channels_last=True)
    out = time_generator(G, 32, batch_sizes=(1, 2), runs=5, warmup=1, fast=fast)
    assert out["protocol"]["fast_path"]["channels_last"] and out["protocol"]["cuda_graphs"] is False
    assert "wall clock" in out["protocol"]["timer"]
    assert all(p.is_contiguous() for p in G.parameters())
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        time_generator(G, 32, batch_sizes=(1,), runs=5, warmup=1, graphs=True)


CLAIM = "import sys; from dftnet.runtime import numerics; print(numerics.claim_gpu(3, sys.argv[1]))"


def _claim_in_child(where: Path) -> int:
    out = subprocess.run([sys.executable, "-c", CLAIM, str(where)], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def test_each_process_claims_a_gpu_no_other_holds_and_frees_it_at_exit(tmp_path, monkeypatch):
    monkeypatch.setattr(numerics, "_HELD", {})
    try:
        assert numerics.claim_gpu(3, tmp_path) == 0
        assert _claim_in_child(tmp_path) == 1  # 0 is held here
        assert _claim_in_child(tmp_path) == 1  # the child's claim ended with it
        assert numerics.claim_gpu(3, tmp_path) == 0  # a second run in this process keeps its GPU
        assert _claim_in_child(tmp_path) == 1
    finally:
        for fd in numerics._HELD.values():
            os.close(fd)
    assert _claim_in_child(tmp_path) == 0
    assert numerics.place(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.slow
def test_the_targets_benchmark_writes_every_target_with_a_verdict(tmp_path):
    """benchmarks/bench_targets.py end to end on the CPU at toy size (the figures are the GPU's job)."""
    import yaml

    params = yaml.safe_load((ROOT / "params-paper.yaml").read_text())
    params["data"]["image_size"] = 32
    params["model"].update(base_channels=4, n_res_blocks=1, critic_channels=8, critic_layers=3)
    params["train"].update(batch_size=4, n_critic=2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_targets.py"), "--params",
                          str(tmp_path / "params.yaml"), "--device", "cpu", "--batch", "4", "--runs", "5",
                          "--train-images", "16", "--epochs", "3", "--workers", "0", "--threads", "1",
                          "--out", str(tmp_path / "targets.md")], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr[-2000:]
    report = (tmp_path / "targets.md").read_text()
    verdicts = [line.rsplit("|", 2)[1].strip() for line in report.splitlines()[6:10]]
    assert len(verdicts) == 4 and set(verdicts) <= {"met", "not met"}, report
    assert "32 px, batch 1" in report and "wall clock" in report and "extrapolation" in report
