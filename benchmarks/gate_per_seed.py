"""The gate per seed: does each training run, on its own, beat erasing and raise the asked AUs?

    python benchmarks/gate_per_seed.py --eval real-long/eval --out reports/real-long/gate_per_seed.md

`claims.md` pools a variant's seeds (CI over seeds x people), so with two or three seeds one
seed that edits less can leave the pooled gate inconclusive while every run edits. This table
reads the same per-pair numbers that `evaluate` wrote (`<eval>/<variant>/seed<k>/metrics.json`)
and gives, per run, the AU error minus the neutral face's (erasing; on photos the all-zero
reading) and the raise progress, each with a 95% CI over the source people
(`crossed_t_interval`, one seed), then the pooled row as the claims compute it. Photos are read
with the MediaPipe proxies (`au_mae_mp`), synthetic data with the judge (`au_mae`), as the gate
does. Chooses nothing; reads no image.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def reader(metrics: dict) -> str:
    """``_mp`` where the run was read by the MediaPipe proxies (photos), else ``""`` (the judge)."""
    mp = metrics["per_pair"].get("au_mae_mp")
    return "_mp" if mp is not None and np.isfinite(np.asarray(mp, dtype=float)).any() else ""


def gate_values(metrics: dict) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per pair: edit minus erasing (AU error) and the raise progress; and each pair's source person."""
    r = reader(metrics)
    pp = metrics["per_pair"]
    diff = np.asarray(pp[f"au_mae{r}"], dtype=float) - np.asarray(pp[f"au_mae{r}_neutral"], dtype=float)
    return diff, np.asarray(pp[f"au_raise{r}"], dtype=float), list(map(str, metrics["pairs"]["source_identity"]))


def interval(values: np.ndarray, people: list[str]) -> dict:
    from dftnet.eval.stats import crossed_t_interval

    return crossed_t_interval(np.atleast_2d(values), people)


def fmt(ci: dict, digits: int = 3) -> str:
    e, (lo, hi) = ci["estimate"], ci["ci"]
    return f"{e:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def table(runs: dict[str, dict[int, dict]]) -> list[str]:
    """Markdown rows: one per (variant, seed), then each variant's pooled row."""
    lines = ["| variant | seed | AU error | erasing | edit - erasing [95% CI] | raise progress [95% CI] | gate |",
             "|---|---|---|---|---|---|---|"]
    for variant, by_seed in runs.items():
        diffs, raises, people = [], [], None
        for seed, m in sorted(by_seed.items()):
            d, rz, people = gate_values(m)
            r = reader(m)
            a, b = interval(d, people), interval(rz, people)
            ok = a["ci"][1] < 0 and b["ci"][0] > 0
            lines.append(f"| {variant} | {seed} | {np.nanmean(m['per_pair'][f'au_mae{r}']):.3f} | "
                         f"{np.nanmean(m['per_pair'][f'au_mae{r}_neutral']):.3f} | {fmt(a)} | {fmt(b, 2)} | "
                         f"{'edits' if ok else 'did not pass'} |")
            diffs.append(d)
            raises.append(rz)
        if len(diffs) > 1 and people is not None:
            a, b = interval(np.stack(diffs), people), interval(np.stack(raises), people)
            ok = a["ci"][1] < 0 and b["ci"][0] > 0
            lines.append(f"| {variant} | pooled ({len(diffs)}) | | | {fmt(a)} (df {a['df']:.1f}) | {fmt(b, 2)} | "
                         f"{'edits' if ok else 'did not pass'} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    from dftnet.runtime import atomic
    from dftnet.runtime.errors import DataError

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval", default="eval", help="the evaluation folder: <eval>/<variant>/seed<k>/metrics.json")
    ap.add_argument("--variants", nargs="*", default=None, help="default: every variant folder under --eval")
    ap.add_argument("--out", default=None, help="also write the table here (markdown)")
    args = ap.parse_args(argv)
    root = Path(args.eval)
    if not root.is_dir():
        raise DataError(f"{root}: no such evaluation folder")
    variants = args.variants or sorted(p.name for p in root.iterdir() if p.is_dir())
    runs: dict[str, dict[int, dict]] = {}
    for v in variants:
        files = sorted((root / v).glob("seed*/metrics.json"))
        if not files:
            raise DataError(f"{root / v}: no seed*/metrics.json")
        runs[v] = {}
        for f in files:
            try:
                m = json.loads(f.read_text())
                runs[v][int(f.parent.name[4:])] = m
                gate_values(m)
            except (ValueError, KeyError, TypeError) as e:
                raise DataError(f"{f}: not an evaluate metrics file ({type(e).__name__}: {e})") from None
    lines = [f"# The gate per training run ({root})", "",
             "Edit minus erasing (the neutral face; on photos the all-zero reading) in AU error, and raise "
             "progress, per run with a 95% CI over the source people; pooled rows as `claims.md` computes them "
             "(seeds x people). A run edits when the first CI is below 0 and the second above 0. "
             f"`python benchmarks/gate_per_seed.py --eval {args.eval}`", ""] + table(runs)
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        atomic.write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    from dftnet.runtime.errors import guarded

    sys.exit(guarded(main))
