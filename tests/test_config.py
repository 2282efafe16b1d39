"""Strict params: unknown keys, wrong types and out-of-range values fail naming the key."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dftnet.config import load_params, resolve_variant
from dftnet.runtime.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def write_params(tmp_path, edit):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_shipped_params_load_and_every_variant_resolves():
    params = load_params(ROOT / "params.yaml")
    assert {"dftnet", "ganimation", "warp_only", "no_skip", "no_att_loss"} <= set(params.variants)
    assert resolve_variant(params, "ganimation", 0).model.generator == "ganimation"
    assert resolve_variant(params, "warp_only", 0).model.texture is False
    assert resolve_variant(params, "no_att_loss", 0).train.lambdas.att == 0.0
    assert resolve_variant(params, "no_att_loss", 0).train.lambdas.cyc == params.train.lambdas.cyc
    # the default recipe: every variant and seed draws a learning curve, three seeds
    assert len(params.seeds) == 3 and params.train.curve_every > 0
    assert all(resolve_variant(params, v, 0).train.lr_critic == params.train.lr_critic for v in params.variants)


@pytest.mark.parametrize("edit, key", [
    (lambda r: r["train"].update(epoch=3), "train.epoch: unknown key"),
    (lambda r: r["train"]["lambdas"].update(cyc=-1), "train.lambdas.cyc: expected a value >= 0"),
    (lambda r: r["train"].update(batch_size="16"), "train.batch_size: expected an integer"),
    (lambda r: r["train"].update(batch_size=True), "train.batch_size: expected an integer"),
    (lambda r: r["model"].update(generator="stargan"), "model.generator: expected one of"),
    (lambda r: r["data"].update(image_size=8), "data.image_size: expected a value >= 16"),
    (lambda r: r.update(seeds=[]), "seeds:"),
    (lambda r: r["variants"].update(bad={"model": {"skp": False}}), "variants.bad.model.skp: unknown key"),
    (lambda r: r["variants"].update(bad={"optim": {}}), "variants.bad.optim: unknown key"),
    (lambda r: r["variants"].update(bad={"train": {"n_critic": 0}}), "variants.bad.train.n_critic: expected a value >= 1"),
    (lambda r: r["train"].update(decay_epochs=99), "train.decay_epochs"),
    (lambda r: r["train"].update(lr_critic=-1e-4), "train.lr_critic: expected a value >= 0"),
    (lambda r: r["train"].update(curve_every=-1), "train.curve_every: expected a value >= 0"),
    (lambda r: r["model"].update(texture_upsample="bilinear"), "model.texture_upsample: expected one of"),
])
def test_bad_params_fail_naming_the_key(tmp_path, edit, key):
    with pytest.raises(ConfigError) as err:
        load_params(write_params(tmp_path, edit))
    assert str(err.value).startswith(key), str(err.value)
    assert "\n" not in str(err.value)


def test_a_new_variant_is_one_params_entry(tmp_path):
    path = write_params(tmp_path, lambda r: r["variants"].update(no_cycle={"train": {"lambdas": {"cyc": 0.0}}}))
    run = resolve_variant(load_params(path), "no_cycle", seed=3)
    assert run.train.lambdas.cyc == 0.0 and run.seed == 3 and run.model.generator == "dftnet"


def test_cli_prints_one_line_and_exits_2(tmp_path):
    path = write_params(tmp_path, lambda r: r["judge"].update(lr=-1))
    out = subprocess.run([sys.executable, "-m", "dftnet.cli", "--params", str(path), "prepare"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["error: judge.lr: expected a value >= 0.0, got -1.0"]


@pytest.mark.parametrize("argv, call, expected", [
    (["judge"], "train_judge", ("judge", Path("metrics/judge.json"))),
    (["judge", "--out", "cpu-long/judge"], "train_judge", ("cpu-long/judge", Path("cpu-long/metrics/judge.json"))),
    (["judge", "--out", "j", "--metrics", "m.json"], "train_judge", ("j", "m.json")),
    (["evaluate", "dftnet"], "evaluate_variant", ("eval", Path("metrics"))),
    (["evaluate", "dftnet", "--out", "cpu-long/eval"], "evaluate_variant", ("cpu-long/eval", Path("cpu-long/metrics"))),
])
def test_a_judge_or_evaluation_pointed_elsewhere_keeps_its_metrics_there(monkeypatch, argv, call, expected):
    from dftnet import cli, stages

    seen = {}
    monkeypatch.setattr(stages, "load", lambda path: "params")
    monkeypatch.setattr(stages, call, lambda params, *args: seen.setdefault("args", args))
    assert cli.main(argv) == 0
    out, metrics = (seen["args"][0], seen["args"][1]) if call == "train_judge" else (seen["args"][3], seen["args"][4])
    assert (out, metrics) == expected
