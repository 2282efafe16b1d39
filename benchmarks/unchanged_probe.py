"""Where a trained run's unchanged-region error lies, and what a gate at inference buys.

    python benchmarks/unchanged_probe.py rings study/runs/<recipe>/<variant>/seed<k> [...]
    python benchmarks/unchanged_probe.py parts RUN [...]                      # DFT-Net runs
    python benchmarks/unchanged_probe.py gate  RUN [...] [--deadzones 0.01 0.02 0.04]
    python benchmarks/unchanged_probe.py flowzone RUN [...] --deadzones 0.75 1.0  # DFT-Net runs
    python benchmarks/unchanged_probe.py gates RUN [...] --flow-gates 0 0.3 0.5 --deadzones 0 0.02 0.03
    python benchmarks/unchanged_probe.py grid  RUN [RUN ...] --out edits.png [--gated 0.3:0.03]
    ... --last-weights   # a run with train.ema: its weights as last trained, not their average

Each reads the **validation** pairs (never the test pairs) of the prepared dataset
(``data.root`` of ``--params``); ``rings`` and ``gate`` print, ``grid`` writes one PNG.

- ``rings``: the unchanged region (the ground truth within MASK_TOL of the source on every
  channel) split by the Chebyshev distance to the nearest pixel the true edit changes (1, 2, 3,
  4-8 px, farther); for each ring its share of the region and its part of the edit's and of the
  source's L1 to the ground truth there. Error next to the true edit's boundary is the edit
  spilling past it; error far from it is noise over the face.
- ``parts``: DFT-Net's edit taken apart, as L1 to the ground truth over the unchanged region and
  over its far part (more than HALO_PX from any change): the source, the edit, the warped source
  ``X_a`` alone, and the edit recomposed with ``X_a = X_s`` (no warp); and the share of far pixels
  whose flow survives the dead zone. Which of the warp or the texture ``B`` puts the error there.
- ``gate``: the run's edits with :func:`dftnet.nets.blocks.gate_small_changes` applied after
  training (``model.change_deadzone`` trains with it instead), scored as the learning study
  scores a row (:func:`learning_study.score_on_pairs`).
- ``flowzone``: a DFT-Net run evaluated with ``model.flow_deadzone`` set to each value instead of
  the one it trained with, scored like ``gate``: what a wider dead zone would buy before training
  with it.
- ``gates``: the run evaluated with each pair of the once-trained gates,
  ``model.flow_gate_eval`` (px, DFT-Net: :func:`dftnet.nets.models.gate_flow`) by
  ``model.change_deadzone_eval`` (intensity: :func:`gate_small_changes`), scored like ``gate``;
  the grid the learning study's ``_fg*_cg*`` rows were chosen from.
- ``grid``: to look at, not to score: 8 validation pairs (every 12th) as rows; columns the source,
  the ground truth, then per run its edit and 4x its absolute difference from the ground truth
  (``--gated FLOW:CHANGE``: then the same with those once-trained gates).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
RINGS = ((1, 1), (2, 2), (3, 3), (4, 8), (9, None))
SHOWN = ("unchanged_ratio", "far_ratio", "l1_ratio", "ratio_neutral", "au_raise", "au_raise_gt", "au45_raise",
         "au45_lower", "copied_unchanged")


def distance_to_change(unchanged: torch.Tensor, up_to: int) -> torch.Tensor:
    """Chebyshev distance (px) from each unchanged pixel to the nearest changed one, capped at
    ``up_to + 1`` (changed pixels get 1: every caller masks them out)."""
    from dftnet.eval.response import far_region

    dist = torch.full(unchanged.shape, up_to + 1)
    for px in range(up_to, 0, -1):
        dist[~far_region(unchanged, px)] = px
    return dist


def rings(run: Path, ds, averaged: bool = True) -> None:
    from dftnet.data.synth_dataset import neutral_faces
    from dftnet.eval.evaluate import edit_pairs
    from dftnet.eval.response import masks
    from dftnet.training.checkpoints import load_trained

    pairs = ds.val_pairs
    sources, edits = edit_pairs(load_trained(run, averaged=averaged)[0], ds, 64, pairs=pairs)
    _, unchanged = masks(pairs.gt, sources, neutral_faces(ds, pairs.source_ids))
    dist = distance_to_change(unchanged, 8)
    err = {k: (x.float() / 255 - pairs.gt.float() / 255).abs().mean(1) for k, x in (("edit", edits), ("source", sources))}
    n = unchanged.sum()
    print(f"{run}: unchanged region {float(unchanged.float().mean()):.3f} of the image, L1 there edit "
          f"{float(err['edit'][unchanged].mean()):.5f}, source {float(err['source'][unchanged].mean()):.5f}")
    for lo, hi in RINGS:
        ring = unchanged & (dist >= lo) & (dist <= (hi if hi is not None else 99))
        part = {k: float(e[ring].sum() / n) for k, e in err.items()}
        print(f"  {lo}{'' if hi == lo else '-' + str(hi) if hi else '+'} px: share {float(ring.sum() / n):.3f}, "
              f"edit {part['edit']:.5f}, source {part['source']:.5f}, x {part['edit'] / max(part['source'], 1e-12):.1f}")
    big = unchanged & (err["edit"] > 0.04)
    print(f"  pixels the edit misses by > 0.04: {float(big.sum() / n):.4f} of the region, "
          f"{float(err['edit'][big].sum() / n):.5f} of its L1")


class Gated(torch.nn.Module):
    """A trained generator whose edits pass :func:`gate_small_changes` afterwards."""

    def __init__(self, G: torch.nn.Module, deadzone: float):
        super().__init__()
        self.G, self.deadzone = G, deadzone

    def forward(self, x, aus):
        from dftnet.nets.blocks import GeneratorOutput, gate_small_changes

        out = self.G(x, aus)
        return GeneratorOutput(gate_small_changes(out.image, x, self.deadzone), out.attention, out.parts)


def gate(run: Path, ds, deadzones: list[float], averaged: bool = True) -> None:
    from dftnet.eval.judge import load_judge
    from dftnet.training.checkpoints import load_trained
    from learning_study import score_on_pairs

    G, judge = load_trained(run, averaged=averaged)[0], load_judge(ROOT / "judge" / "judge.pt")
    for dz in [0.0, *deadzones]:
        s = score_on_pairs(Gated(G, dz).eval(), ds, judge)
        print(f"{run} deadzone {dz}: " + ", ".join(f"{k} {s[k]:.3f}" for k in SHOWN), flush=True)


def parts(run: Path, ds, averaged: bool = True) -> None:
    from dftnet.data.imageops import aus_to_model, to_model, to_uint8
    from dftnet.data.synth_dataset import neutral_faces
    from dftnet.eval.response import far_region, masks
    from dftnet.eval.schema import HALO_PX
    from dftnet.nets.models import compose, flow_in_pixels
    from dftnet.training.checkpoints import load_trained

    G = load_trained(run, averaged=averaged)[0].eval()
    pairs = ds.val_pairs
    sources = ds.images[ds.index(pairs.source_ids)]
    _, unchanged = masks(pairs.gt, sources, neutral_faces(ds, pairs.source_ids))
    far = far_region(unchanged, HALO_PX)
    got: dict[str, list[torch.Tensor]] = {"edit": [], "X_a alone": [], "edit with X_a = X_s": [], "flow": []}
    with torch.no_grad():
        for s in range(0, len(pairs), 64):
            x = to_model(sources[s:s + 64])
            out = G(x, aus_to_model(pairs.target_aus[s:s + 64]))
            if "B" not in out.parts:
                sys.exit(f"error: {run}: parts needs a DFT-Net run with its texture decoder")
            got["edit"].append(to_uint8(out.image))
            got["X_a alone"].append(to_uint8(out.parts["X_a"]))
            got["edit with X_a = X_s"].append(to_uint8(compose(out.attention, out.parts["B"], x)))
            got["flow"].append(flow_in_pixels(out.parts["Phi"]).norm(dim=1))
    gt = pairs.gt.float() / 255

    def l1(images: torch.Tensor, mask: torch.Tensor) -> str:
        return f"{float((images.float() / 255 - gt).abs().mean(1)[mask].mean()):.5f}"

    print(f"{run} (L1 to the ground truth: unchanged region / its part beyond {HALO_PX} px)")
    print(f"  source: {l1(sources, unchanged)} / {l1(sources, far)}")
    for name in ("edit", "X_a alone", "edit with X_a = X_s"):
        images = torch.cat(got[name])
        print(f"  {name}: {l1(images, unchanged)} / {l1(images, far)}")
    flow = torch.cat(got["flow"])
    print(f"  far pixels with a flow past the dead zone: {float((flow[far] > 0).float().mean()):.3f}")


def flowzone(run: Path, ds, deadzones: list[float], averaged: bool = True) -> None:
    from dftnet.eval.judge import load_judge
    from dftnet.training.checkpoints import load_trained
    from learning_study import score_on_pairs

    G, judge = load_trained(run, averaged=averaged)[0].eval(), load_judge(ROOT / "judge" / "judge.pt")
    if not hasattr(G, "flow_deadzone"):
        sys.exit(f"error: {run}: flowzone needs a DFT-Net run (a generator with a flow)")
    for dz in [G.flow_deadzone, *deadzones]:
        G.flow_deadzone = dz
        s = score_on_pairs(G, ds, judge)
        print(f"{run} flow dead zone {dz} px: " + ", ".join(f"{k} {s[k]:.3f}" for k in SHOWN), flush=True)


def set_gates(G: torch.nn.Module, flow_gate: float, change_deadzone: float, strict: bool = True) -> torch.nn.Module:
    """``G`` with the once-trained gates set (eval mode); a flow gate needs a DFT-Net generator
    (``strict`` false: a generator without a flow takes the change gate alone)."""
    if strict and flow_gate and not hasattr(G, "flow_gate_eval"):
        sys.exit("error: --flow-gates: a flow gate needs a DFT-Net run (a generator with a flow)")
    if hasattr(G, "flow_gate_eval"):
        G.flow_gate_eval = flow_gate
    G.change_deadzone_eval = change_deadzone
    return G.eval()


def gates(run: Path, ds, flow_gates: list[float], deadzones: list[float], averaged: bool = True) -> None:
    from dftnet.eval.judge import load_judge
    from dftnet.training.checkpoints import load_trained
    from learning_study import score_on_pairs

    G, judge = load_trained(run, averaged=averaged)[0], load_judge(ROOT / "judge" / "judge.pt")
    for fg in flow_gates:
        for dz in deadzones:
            s = score_on_pairs(set_gates(G, fg, dz), ds, judge)
            print(f"{run} flow gate {fg} px, change dead zone {dz}: " + ", ".join(f"{k} {s[k]:.3f}" for k in SHOWN),
                  flush=True)


def grid(runs: list[Path], ds, out: Path, averaged: bool = True, gated: tuple[float, float] | None = None) -> None:
    from PIL import Image

    from dftnet.eval.evaluate import edit_pairs
    from dftnet.runtime import atomic
    from dftnet.training.checkpoints import load_trained

    pairs = ds.val_pairs
    rows = list(range(0, len(pairs), 12))[:8]
    cols = []
    for run in runs:
        G = load_trained(run, averaged=averaged)[0]
        for setting in [None] + ([gated] if gated else []):
            sources, edits = edit_pairs(set_gates(G, *setting, strict=False) if setting else G, ds, 64, pairs=pairs)
            if not cols:
                cols += [sources[rows], pairs.gt[rows]]
            cols += [edits[rows], ((edits[rows].float() - pairs.gt[rows].float()).abs() * 4).clamp(0, 255).to(torch.uint8)]
    image = torch.cat([torch.cat(list(c), dim=1) for c in cols], dim=2).permute(1, 2, 0).numpy()
    png = Image.fromarray(image).resize((image.shape[1] * 2, image.shape[0] * 2), Image.NEAREST)
    atomic.write_with(out, lambda tmp: png.save(tmp, format="PNG"))
    print(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("rings", "parts", "gate", "flowzone", "gates", "grid"))
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--deadzones", nargs="+", type=float,
                    help="gate: change dead zones, [0, 1] intensity (default 0.01 0.02 0.04); "
                         "flowzone: flow dead zones in px (default 0.75 1.0)")
    ap.add_argument("--flow-gates", nargs="+", type=float, default=[0.0],
                    help="gates: once-trained flow gates in px (DFT-Net runs; default 0)")
    ap.add_argument("--gated", help="grid: FLOW:CHANGE, also show each run with these once-trained gates")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--out", type=Path, help="grid: the PNG to write")
    ap.add_argument("--last-weights", action="store_true",
                    help="a run trained with train.ema: read its weights as last trained instead of their average")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from dftnet import stages
    from dftnet.config import load_params

    ds = stages.dataset(load_params(args.params))
    for run in args.runs:
        if not (run / "checkpoint.pt").is_file():
            sys.exit(f"error: {run}: no checkpoint.pt")
    if args.command == "grid":
        if args.out is None:
            sys.exit("error: grid: --out is required")
        try:
            gated = tuple(float(v) for v in args.gated.split(":")) if args.gated else None
        except ValueError:
            gated = None
        if args.gated and (gated is None or len(gated) != 2):
            sys.exit(f"error: --gated: {args.gated!r} is not FLOW:CHANGE (two numbers)")
        return grid(args.runs, ds, args.out, not args.last_weights, gated)
    for run in args.runs:
        if args.command == "rings":
            rings(run, ds, not args.last_weights)
        elif args.command == "parts":
            parts(run, ds, not args.last_weights)
        elif args.command == "gates":
            gates(run, ds, args.flow_gates, args.deadzones or [0.0, 0.02, 0.03], not args.last_weights)
        elif args.command == "flowzone":
            flowzone(run, ds, args.deadzones or [0.75, 1.0], not args.last_weights)
        else:
            gate(run, ds, args.deadzones or [0.01, 0.02, 0.04], not args.last_weights)


if __name__ == "__main__":
    main()
