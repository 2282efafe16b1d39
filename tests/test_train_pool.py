"""``stages.train_variants``: one pool of runs over several variants gives each run exactly the
weights it gets trained alone (``train_variant``): the pool only changes which runs share a core."""
import time

import torch
import yaml

from dftnet import stages
from dftnet.training import checkpoints
from tests.helpers import cli, one_line, toy_params


def _weights(path):
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {**{f"G.{k}": t for k, t in state["G"].items()}, **{f"D.{k}": t for k, t in state["D"].items()}}


def test_pooled_variants_train_exactly_as_each_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = toy_params()
    p["variants"] = {"dftnet": {}, "ganimation": {"model": {"generator": "ganimation"}}}
    p["seeds"] = [0]
    p["train"].update(epochs=1, curve_every=0)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    params = stages.load(tmp_path / "params.yaml")
    stages.prepare(params)
    stages.train_variants(params, ["dftnet", "ganimation"], "pooled", judge_path=None, logs_root="logs_pooled")
    for v in ("dftnet", "ganimation"):
        stages.train_variant(params, v, "alone", judge_path=None, logs_root="logs_alone")
        pooled = _weights(tmp_path / "pooled" / v / "seed0" / checkpoints.CHECKPOINT)
        alone = _weights(tmp_path / "alone" / v / "seed0" / checkpoints.CHECKPOINT)
        assert pooled.keys() == alone.keys()
        assert all(torch.equal(pooled[k], alone[k]) for k in pooled), v
        assert (tmp_path / "logs_pooled" / f"{v}.csv").read_text() == (tmp_path / "logs_alone" / f"{v}.csv").read_text()


def test_a_time_limit_starts_no_run_past_it_and_names_the_unfinished(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = toy_params()
    p["variants"] = {"dftnet": {}, "ganimation": {"model": {"generator": "ganimation"}}}
    p["train"].update(epochs=1, curve_every=0)
    for name, seeds in (("one.yaml", [0]), ("two.yaml", [0, 1])):
        (tmp_path / name).write_text(yaml.safe_dump({**p, "seeds": seeds}))
    one, two = stages.load(tmp_path / "one.yaml"), stages.load(tmp_path / "two.yaml")
    stages.prepare(two)
    variants, past = ["dftnet", "ganimation"], time.time() - 1
    assert stages.train_variants(two, variants, "runs", judge_path=None, deadline=past) == [
        "dftnet/seed0", "ganimation/seed0", "dftnet/seed1", "ganimation/seed1"]  # seed 0 of each first
    assert not (tmp_path / "runs").exists()  # no run started past the limit
    assert stages.train_variants(one, variants, "runs", judge_path=None) == []
    assert stages.train_variants(two, variants, "runs", judge_path=None, deadline=past) == [
        "dftnet/seed1", "ganimation/seed1"]  # the finished runs are finished, time or not


def test_bench_refuses_a_time_limit_that_is_not_positive(tmp_path):
    line = one_line(cli(tmp_path, "bench", "--work", "w", "--reports", "r", "--hours", "0"))
    assert line == "error: --hours: 0.0 must be a positive number of hours" and not (tmp_path / "w").exists()


def test_bench_refuses_a_time_limit_for_data_parallel_runs_before_any_output(tmp_path):
    p = toy_params()
    p["compute"]["train_processes"] = 2
    line = one_line(cli(tmp_path, "bench", "--work", "w", "--reports", "r", "--hours", "1", params=p))
    assert line.startswith("error: --hours: needs compute.train_processes: 1") and not (tmp_path / "w").exists()
