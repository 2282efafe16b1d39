"""What several test modules share: small runs, datasets, stand-in networks and the CLI.

Test modules import these from here, never from one another.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn as nn
import yaml

from dftnet.nets.blocks import GeneratorOutput
from dftnet.config import Params, from_mapping, resolve_variant
from dftnet.data.aus import N_AUS
from dftnet.data.dataset import EvalPairs, FaceDataset

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ runs and data
def tiny_run(variant="dftnet", epochs=2, size=32, **train_overrides):
    """A small run of ``variant`` from params.yaml; a remedy's entry is taken from
    params-cpu-long.yaml and added to params.yaml's, as its comment tells a user to."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    if variant not in raw["variants"]:
        raw["variants"][variant] = yaml.safe_load((ROOT / "params-cpu-long.yaml").read_text())["variants"][variant]
    params = from_mapping(Params, raw)
    run = resolve_variant(params, variant, seed=0)
    model = dataclasses.replace(run.model, base_channels=8, n_res_blocks=1, critic_channels=8, critic_layers=3)
    t = dataclasses.replace(run.train, epochs=epochs, decay_epochs=1, batch_size=4, n_critic=2,
                            checkpoint_every=1, log_every=1, **train_overrides)
    return dataclasses.replace(run, image_size=size, model=model, train=t)


def random_dataset(n=24, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = [f"img{k:03d}" for k in range(n)]
    return FaceDataset(ids=ids, images=torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g),
                       aus=torch.rand(n, 17, generator=g) * 5, train_ids=ids[:16], test_ids=ids[16:])


def toy_params() -> dict:
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["data"]["image_size"] = 32
    p["data"]["synthetic"].update(n_train_identities=4, n_test_identities=3, n_val_identities=2, n_judge_identities=4,
                                  images_per_identity=4, pairs_per_test_identity=2)
    p["model"].update(base_channels=4, n_res_blocks=1, critic_channels=8, critic_layers=3)
    p["train"].update(epochs=2, decay_epochs=1, batch_size=4, n_critic=2, log_every=1, checkpoint_every=1,
                      curve_every=1, curve_pairs=4)
    p["seeds"] = [0, 1]
    p["variants"] = {k: p["variants"][k] for k in ("dftnet", "ganimation", "warp_only")}
    p["judge"].update(epochs=2, base_channels=8)
    p["eval"].update(bootstrap=50, timing_runs=5, timing_warmup=1, timing_batch_sizes=[1, 4], identity=False)
    return p


# -------------------------------------------------------------------- the CLI
def cli(tmp_path: Path, *args: str, params: dict | None = None) -> subprocess.CompletedProcess:
    """``dftnet <args>`` in ``tmp_path`` with the toy params (or ``params``)."""
    path = tmp_path / "params.yaml"
    if params is not None or not path.exists():
        path.write_text(yaml.safe_dump(params if params is not None else toy_params()))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "dftnet.cli", "--params", str(path), *args],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)


def one_line(out: subprocess.CompletedProcess, code: int = 2) -> str:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == code and len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-2000:]
    return lines[0]


# ------------------------------------------------------------ evaluation stand-ins
EYES, MOUTH = (0.25, 0.25, 0.75, 0.45), (0.3, 0.65, 0.7, 0.85)


class ReturnSource(nn.Module):
    """Edits nothing: the edit is the source."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x, aus):
        return GeneratorOutput(image=x, attention=torch.ones_like(x[:, :1]), parts={})


class TinyConvGen(nn.Module):
    def __init__(self, ch: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3 + N_AUS, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1),
                                 nn.ReLU(), nn.Conv2d(ch, 4, 3, padding=1))

    def forward(self, x, aus):
        h = self.net(torch.cat([x, aus[:, :, None, None].expand(-1, -1, *x.shape[-2:])], 1))
        a = torch.sigmoid(h[:, :1])
        return GeneratorOutput(image=a * x + (1 - a) * torch.tanh(h[:, 1:]), attention=a, parts={})


class TinyCritic(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 4, 2, 1)
        self.aus = nn.Linear(8, N_AUS)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        return h[:, :1], torch.sigmoid(self.aus(h.mean((2, 3))))


def tiny_dataset(size: int = 32, n_people: int = 4, per_person: int = 2, n_pairs: int = 4, seed: int = 0) -> FaceDataset:
    g = torch.Generator().manual_seed(seed)
    n = n_people * per_person
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    ids = [f"img{i:02d}" for i in range(n)]
    who = [f"p{i // per_person}" for i in range(n)]
    test = ids[n // 2:]
    src = [test[i % len(test)] for i in range(n_pairs)]
    pairs = EvalPairs(pair_ids=[f"pair{i}" for i in range(n_pairs)], source_ids=src, target_ids=[""] * n_pairs,
                      target_aus=5 * torch.rand(n_pairs, N_AUS, generator=g),
                      gt=images[[ids.index(s) for s in src]].clone())
    return FaceDataset(ids=ids, images=images, aus=5 * torch.rand(n, N_AUS, generator=g), train_ids=ids[:n // 2],
                       test_ids=test, identities=who, pairs=pairs, meta={"source": "test"})
