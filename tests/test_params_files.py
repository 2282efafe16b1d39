"""The params files that ride on another stay in step with it."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def flat(node, prefix=""):
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def test_the_128_px_real_params_differ_from_the_64_px_ones_only_in_size():
    a = flat(yaml.safe_load((ROOT / "params-real.yaml").read_text()))
    b = flat(yaml.safe_load((ROOT / "params-real-128.yaml").read_text()))
    assert a.keys() == b.keys()
    differ = {k for k in a if a[k] != b[k]}
    assert differ == {"data.root", "data.image_size", "model.critic_layers"}
    assert b["data.image_size"] == 128 and b["model.critic_layers"] == a["model.critic_layers"] + 1


def test_the_long_cpu_params_differ_from_the_default_only_in_their_recipe():
    a = flat(yaml.safe_load((ROOT / "params.yaml").read_text()))
    b = flat(yaml.safe_load((ROOT / "params-cpu-long.yaml").read_text()))
    gone = {k for k in a.keys() - b.keys() if k.split(".")[1] in ("warp_only", "no_skip", "no_att_loss")}
    remedies = {k for k in b.keys() - a.keys() if k.split(".")[1] in ("dftnet_clean", "ganimation_clean")}
    assert a.keys() - b.keys() == gone and b.keys() - a.keys() == {"train.lambdas.idt", "train.critic_warmup"} | remedies
    assert gone and remedies  # the default runs the paper's variants; the long recipe the remedies too
    differ = {k for k in a.keys() & b.keys() if a[k] != b[k]}
    assert differ == {"data.root", "model.base_channels", "model.critic_layers", "train.epochs", "train.decay_epochs"}
    assert b["data.root"] != a["data.root"]  # its bench never touches the default run's data


def test_the_longest_cpu_params_are_the_earlier_long_ones_at_20000_steps_without_the_remedies():
    # cpu-xl kept the long recipe its seed 0 ran (a 4-conv critic, no D_C warm start)
    a = flat(yaml.safe_load((ROOT / "params-cpu-long.yaml").read_text()))
    b = flat(yaml.safe_load((ROOT / "params-cpu-xl.yaml").read_text()))
    assert b.keys() < a.keys()
    assert {k.split(".")[1] for k in a.keys() - b.keys()} == {"dftnet_clean", "ganimation_clean", "critic_warmup"}
    assert {k for k in b if a[k] != b[k]} == {"data.root", "model.critic_layers", "train.epochs", "train.decay_epochs"}
    assert b["model.critic_layers"] == 4
    assert b["train.epochs"] * 40 == 20_000 and b["data.root"] not in (a["data.root"], "data/faces")


def test_the_shipped_generator_was_trained_with_the_current_long_real_face_recipe():
    import json

    from dftnet.config import load_params, resolve_variant, run_config_from_dict
    from dftnet.edit import SHIPPED, load_generator

    provenance = json.loads((SHIPPED / "provenance.json").read_text())
    recorded = run_config_from_dict(provenance["run"])
    current = resolve_variant(load_params(ROOT / "params-real-long.yaml"), "dftnet", recorded.seed)
    assert recorded == current, "params-real-long.yaml changed: retrain (make real-long) and ship again (dftnet.edit.ship)"
    assert provenance["params_file"] == "params-real-long.yaml"
    G, run = load_generator(SHIPPED)
    assert run == recorded and sum(p.numel() for p in G.parameters()) > 0
    meta = json.loads((SHIPPED / "meta.json").read_text())
    assert meta["grey"] is True and meta["annotator"] is not None


def test_the_long_real_params_are_the_real_ones_with_the_long_cpu_recipe():
    real = flat(yaml.safe_load((ROOT / "params-real.yaml").read_text()))
    long = flat(yaml.safe_load((ROOT / "params-cpu-long.yaml").read_text()))
    b = flat(yaml.safe_load((ROOT / "params-real-long.yaml").read_text()))
    ablations = {k for k in real if k.split(".")[:2] in (["variants", "warp_only"], ["variants", "no_skip"],
                                                        ["variants", "no_att_loss"])}
    assert real.keys() - b.keys() == ablations and b.keys() - real.keys() == {"train.lambdas.idt", "train.critic_warmup"}
    assert {k for k in b.keys() & real.keys() if b[k] != real[k]} == {
        "data.root", "model.base_channels", "model.critic_layers", "train.epochs", "train.decay_epochs"}
    for key in ("model.base_channels", "model.critic_layers", "train.critic_warmup", "train.lambdas.idt"):
        assert b[key] == long[key], key  # cpu-long's recipe, as frozen on synthetic validation pairs
    assert b["train.epochs"] * 200 == long["train.epochs"] * 40  # the same 5,400 generator steps
    assert b["data.root"] not in (real["data.root"], "data/faces")
