"""Colour that an edit puts into a grey photo: an artifact measure that needs no ground truth.

    python benchmarks/grey_colour.py --params params-real-long.yaml \
        --runs real-long/runs/dftnet/seed0 real-long/runs/ganimation/seed0 --out reports/real-long/grey_colour.md

On photos there is no true edit, so claim 2's primary (`l1_unchanged`) is not measurable there.
But the faces of ``../shared/data/faces-gray`` are grey (their three channels equal), so any
colour in an edit is the generator's own: the speckle of DFT-Net's texture ``B`` and GANimation's
colour ``C`` leaking through the attention, which the figures show and no AU reader sees. Per
pair: the mean chroma (max minus min over the channels, in [0, 1]) of the edit, and the share of
its pixels with a chroma above ``VISIBLE`` (8/255). Reads the test pairs of the prepared dataset
(``data.root``) as ``evaluate`` does; chooses nothing. The first run is the reference: each other
run's difference from it, paired by pair, with the claims' 95% CI (``crossed_t_interval``, seeds
x people; give every seed of a variant to pool them).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
VISIBLE = 8 / 255


def chroma(images_uint8: torch.Tensor) -> torch.Tensor:
    """Per pixel max minus min over the channels, in [0, 1]: 0 wherever the image is grey. P x H x W."""
    x = images_uint8.float() / 255
    return x.amax(dim=1) - x.amin(dim=1)


def colour_per_pair(images_uint8: torch.Tensor) -> dict[str, np.ndarray]:
    c = chroma(images_uint8)
    return {"chroma": c.mean(dim=(1, 2)).numpy(), "coloured_share": (c > VISIBLE).float().mean(dim=(1, 2)).numpy()}


def main(argv: list[str] | None = None) -> int:
    from dftnet.config import load_params
    from dftnet.eval.evaluate import edit_pairs
    from dftnet.eval.stats import crossed_t_interval
    from dftnet.runtime import atomic
    from dftnet.runtime.errors import ConfigError, DataError
    from dftnet.stages import dataset
    from dftnet.edit import GENERATOR, load_generator

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params-real-long.yaml")
    ap.add_argument("--runs", nargs="+", required=True,
                    help="run folders <runs>/<variant>/seed<k> or exported generators; the first variant is the reference")
    ap.add_argument("--out", default=None, help="also write the table here (markdown)")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    torch.set_num_threads(params.compute.threads)
    ds = dataset(params)
    if ds.pairs is None:
        raise DataError(f"{params.data.root}: no test pairs")
    who_of = dict(zip(ds.ids, ds.identities)) if ds.identities is not None else {}  # as evaluate clusters pairs
    people = np.array([who_of.get(s, s) for s in ds.pairs.source_ids])
    per_variant: dict[str, list[dict[str, np.ndarray]]] = defaultdict(list)
    sources = None
    for run_dir in map(Path, args.runs):
        G, run = load_generator(run_dir, "cpu")  # a finished run folder, or an exported one (models/real-faces)
        sources, edits = edit_pairs(G, ds, params.eval.batch_size)
        name = f"{run.variant} ({run_dir})" if (run_dir / GENERATOR).is_file() else run.variant
        per_variant[name].append(colour_per_pair(edits))
    assert sources is not None
    src = colour_per_pair(sources)
    names = list(per_variant)
    lines = [f"# Colour put into grey photos ({params.data.root}, {len(people)} test pairs of "
             f"{len(set(people))} people)", "",
             "Chroma: per pixel max minus min over the channels (0 = grey), mean over the image; "
             f"coloured share: pixels with chroma above {VISIBLE * 255:.0f}/255. "
             f"`python benchmarks/grey_colour.py --params {args.params} --runs {' '.join(args.runs)}`", "",
             "| variant | seeds | chroma | coloured share |", "|---|---|---|---|",
             f"| source (unedited) | | {src['chroma'].mean():.4f} | {src['coloured_share'].mean():.3f} |"]
    for v in names:
        rows = per_variant[v]
        lines.append(f"| {v} | {len(rows)} | {np.mean([r['chroma'].mean() for r in rows]):.4f} | "
                     f"{np.mean([r['coloured_share'].mean() for r in rows]):.3f} |")
    ref = names[0]
    for v in names[1:]:
        if len(per_variant[v]) != len(per_variant[ref]):
            raise ConfigError(f"--runs: {v} has {len(per_variant[v])} seeds, {ref} {len(per_variant[ref])}: give the same seeds")
        lines += ["", f"{ref} - {v}, paired by seed and pair (95% CI over seeds x people, `crossed_t_interval`):"]
        for key in ("chroma", "coloured_share"):
            diff = np.stack([a[key] - b[key] for a, b in zip(per_variant[ref], per_variant[v])])
            ci = crossed_t_interval(diff, people)
            lines.append(f"- {key}: {ci['estimate']:+.4f} [{ci['ci'][0]:+.4f}, {ci['ci'][1]:+.4f}] "
                         f"({ci['n_seeds']} seeds x {ci['n_pairs']} pairs of {ci['n_clusters']} people)")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        atomic.write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    from dftnet.runtime.errors import guarded

    sys.exit(guarded(main))
