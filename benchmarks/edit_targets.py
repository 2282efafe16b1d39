"""The edit-quality targets (the artifacts issue) on the **test** pairs, per model and seed.

    python benchmarks/edit_targets.py --eval cpu-long/eval --variants dftnet_clean ganimation_clean \
        [--compare] [--out reports/cpu-long/targets.md]

Reads what ``evaluate`` wrote (``<eval>/<variant>/seed<k>/metrics.json``; it read the test pairs
once) and reads nothing else: no image, no network. Each row is one trained seed, each cell a
ratio against its floor or ceiling and whether it meets the target, with the thresholds of the
study (:mod:`learning_study`, which checks the same targets on validation pairs). ``--compare``
adds the first variant minus each other one on the artifacts and the AU error, paired by seed and
test pair, with the claims' crossed-t 95% CI (:func:`dftnet.eval.stats.crossed_t_interval`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_study import TARGET_AU45, TARGET_NEUTRAL, TARGET_RAISE, TARGET_UNCHANGED  # noqa: E402

EYELID = "AU45"
# (column, target, how the ratio must compare with it): each ratio is against its floor or ceiling
COLUMNS = (
    ("AU error / neutral face", TARGET_NEUTRAL, "<="),
    ("raise / ground truth", TARGET_RAISE, ">="),
    ("AU45 raise / GT", TARGET_AU45, ">="),
    ("AU45 lower / GT", TARGET_AU45, ">="),
    ("unchanged L1 / source", TARGET_UNCHANGED, "<="),
    ("overall L1 / source", 1.0, "<"),  # an edit closer to the truth than doing nothing
)
MEETS = {"<=": lambda v, t: v <= t, "<": lambda v, t: v < t, ">=": lambda v, t: v >= t}


def load(eval_root: Path, variant: str) -> dict[str, dict]:
    """``{seed folder: metrics.json}`` of one variant, each file read once; a file that is not
    valid JSON or lacks what the targets read stops with one line naming it."""
    files = sorted((eval_root / variant).glob("seed*/metrics.json"))
    if not files:
        sys.exit(f"error: {eval_root / variant}: no evaluated seed (run evaluate first)")
    out = {}
    for f in files:
        try:
            out[f.parent.name] = json.loads(f.read_text())
            ratios(out[f.parent.name])
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            sys.exit(f"error: {f}: not a readable metrics file ({err})")
        except (KeyError, TypeError, ZeroDivisionError) as err:
            sys.exit(f"error: {f}: lacks what the targets read ({type(err).__name__}: {err})")
    return out


def ratios(metrics: dict) -> list[float]:
    """The six ratios of one evaluated seed, in :data:`COLUMNS`' order."""
    s, prog = metrics["summary"], metrics["au"]["progress"]
    return [s["au_mae"] / s["au_mae_neutral"],
            s["au_raise"] / s["au_raise_gt"],
            prog["edit"]["raise"]["per_au"][EYELID] / prog["gt"]["raise"]["per_au"][EYELID],
            prog["edit"]["lower"]["per_au"][EYELID] / prog["gt"]["lower"]["per_au"][EYELID],
            s["l1_unchanged"] / s["l1_unchanged_source"],
            s["l1_gt"] / s["l1_gt_source"]]


def table(runs: dict[str, dict[str, dict]]) -> str:
    """The markdown table, one row per (variant, seed), and a last line per variant."""
    head = "| variant | seed | " + " | ".join(f"{c} ({op} {t:g})" for c, t, op in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    verdicts = []
    for variant, seeds in runs.items():
        every = [True] * len(COLUMNS)
        for seed, metrics in seeds.items():
            values = ratios(metrics)
            ok = [MEETS[op](v, t) for v, (_, t, op) in zip(values, COLUMNS)]
            every = [a and b for a, b in zip(every, ok)]
            cells = [f"{v:.2f}" if o else f"**{v:.2f}** (missed)" for v, o in zip(values, ok)]
            lines.append(f"| {variant} | {seed[4:]} | " + " | ".join(cells) + " |")
        missed = [c for (c, _, _), e in zip(COLUMNS, every) if not e]
        verdicts.append(f"- `{variant}` ({len(seeds)} seeds): "
                        + ("every target met on every seed" if not missed else "missed on some seed: " + ", ".join(missed)))
    return "\n".join(lines + [""] + verdicts) + "\n"


COMPARED = (("l1_unchanged", "unchanged-region L1"), ("l1_unchanged_far", "unchanged region 3 px from any edit"),
            ("au_mae", "AU error"), ("l1_gt", "overall L1"))


def compare(runs: dict[str, dict[str, dict]]) -> str:
    """The first variant minus each other one, per metric: estimate [95% CI], p (not Holm-adjusted)."""
    import numpy as np

    from dftnet.eval.stats import crossed_t_interval

    def per_pair(seeds: dict[str, dict], metric: str) -> np.ndarray:
        return np.array([[np.nan if x is None else x for x in m["per_pair"][metric]] for m in seeds.values()], dtype=float)

    (first, seeds_a), *others = runs.items()
    pairs = next(iter(seeds_a.values()))["pairs"]
    lines = []
    for other, seeds_b in others:
        if next(iter(seeds_b.values()))["pairs"] != pairs or list(seeds_b) != list(seeds_a):
            sys.exit(f"error: {other} and {first} were not evaluated on the same pairs and seeds")
        for metric, what in COMPARED:
            r = crossed_t_interval(per_pair(seeds_a, metric) - per_pair(seeds_b, metric), pairs["source_identity"])
            lines.append(f"- {what} (`{metric}`), `{first}` - `{other}`: {r['estimate']:+.5f} "
                         f"[95% CI {r['ci'][0]:+.5f}, {r['ci'][1]:+.5f}], p = {r['p']:.3g} "
                         f"({r['n_seeds']} seeds x {r['n_pairs']} pairs, {r['method']}; not Holm-adjusted)")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval", required=True, type=Path, help="the evaluate stage's folder (eval/ or <work>/eval)")
    ap.add_argument("--variants", nargs="+", default=["dftnet", "ganimation"])
    ap.add_argument("--compare", action="store_true", help="the first variant minus each other one, with 95%% CIs")
    ap.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = ap.parse_args()
    runs = {v: load(args.eval, v) for v in args.variants}
    text = table(runs)
    if args.compare:
        text += "\n" + compare(runs)
    print(text, end="")
    if args.out:
        from dftnet.runtime.atomic import replacing

        with replacing(args.out) as tmp:
            tmp.write_text(f"# Edit-quality targets on the test pairs\n\nFrom `{args.eval}` "
                           "(benchmarks/edit_targets.py): each ratio against its floor or ceiling, per trained seed.\n\n" + text)


if __name__ == "__main__":
    main()
