"""The learning study: which training recipe makes DFT-Net and GANimation edit at CPU scale.

    python benchmarks/learning_study.py run [--recipes benchmarks/recipes.yaml] [--only C C_ncritic5 ...]
                                            [--seeds 0 1 2] [--variants dftnet ganimation] [--workers 2]
    python benchmarks/learning_study.py import-default   # the default `dvc repro`'s runs as recipe "default"
    python benchmarks/learning_study.py table            # -> reports/learning_study.md

A recipe is a named set of dotted overrides of ``params.yaml`` (``train.n_critic: 5``) in
``benchmarks/recipes.yaml``, each with the one thing it changes. Every (recipe, variant, seed)
trains from scratch on the prepared dataset (``data.root``; run ``dvc repro judge`` first)
with its learning curve read by the judge (``judge/judge.pt``), then edits every
**validation** pair once (never a test pair: those are read once, by ``evaluate``) and records
the judge's AU error of the edits, its two floors (the unedited sources' and the neutral
faces'), the raise progress of the asked AUs, the paired L1 to the ground-truth target and the
source's L1 (its floor), and the wall seconds. Each result is one JSON file under ``study/results/``; a run
whose file exists is skipped, so the study resumes and grows. Runs go in parallel
processes, one thread each (``--workers``); the table lists every finished run, failures
included.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import multiprocessing as mp

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "study"
TARGET_RATIO = 0.70     # edit AU error / floor, in every seed
TARGET_L1 = 1.5         # l1_gt / l1_gt_source


def recipe_params(recipes: dict, name: str, base_path: Path):
    """params.yaml with recipe ``name``'s dotted overrides applied, validated strictly."""
    import yaml

    from dftnet.config import Params, from_mapping

    raw = yaml.safe_load(base_path.read_text())
    for key, value in (recipes[name].get("set") or {}).items():
        node, *path = raw, *key.split(".")
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return from_mapping(Params, raw)


def run_one(recipes: dict, name: str, variant: str, seed: int, base_path: str) -> dict:
    import torch

    torch.set_num_threads(1)
    from dftnet import stages
    from dftnet.config import resolve_variant
    from dftnet.eval.judge import load_judge
    from dftnet.checkpoints import load_trained
    from dftnet.train import train

    params = recipe_params(recipes, name, Path(base_path))
    ds = stages.dataset(params)
    judge = load_judge(ROOT / "judge" / "judge.pt")
    out = STUDY / "runs" / name / variant / f"seed{seed}"
    run = resolve_variant(params, variant, seed)
    t0 = time.perf_counter()
    summary = train(run, ds, out, "cpu", judge=judge)
    seconds = time.perf_counter() - t0
    return write_result(name, variant, seed, out, summary["generator_steps"], round(seconds, 1),
                        score_on_validation(load_trained(out)[0], ds, judge), threads=1)


def score_on_validation(G, ds, judge) -> dict:
    """The judge's reading of ``G``'s edits of the validation pairs, with both floors and the
    raise progress, and the paired L1 against the ground truth."""
    from dftnet.data.synth_dataset import neutral_faces
    from dftnet.eval.evaluate import edit_pairs
    from dftnet.eval.judge import judge_predict
    from dftnet.eval.paired import compute_paired
    from dftnet.eval.response import progress

    pairs = ds.val_pairs
    if pairs is None:
        sys.exit(f"error: {ds.meta.get('source')} dataset without validation pairs: run `dvc repro prepare` again")
    sources, edits = edit_pairs(G, ds, 64, pairs=pairs)
    neutral = neutral_faces(ds, pairs.source_ids)
    target, labels = pairs.target_aus.float(), ds.aus[ds.index(pairs.source_ids)].float()
    read = {k: judge_predict(judge, x) for k, x in (("edit", edits), ("source", sources), ("neutral", neutral))}
    err = {k: float((v - target).abs().mean()) for k, v in read.items()}
    l1 = {k: compute_paired(x, pairs.gt)["mean"]["l1"] for k, x in (("edit", edits), ("source", sources))}
    return {"au_mae": err["edit"], "au_mae_source": err["source"], "au_mae_neutral": err["neutral"],
            "ratio": err["edit"] / err["source"], "ratio_neutral": err["edit"] / err["neutral"],
            "au_raise": progress(read["edit"], read["source"], target, labels)["raise"]["mean"],
            "l1_gt": l1["edit"], "l1_gt_source": l1["source"], "l1_ratio": l1["edit"] / l1["source"],
            "n_pairs": len(pairs), "split": "val"}


def write_result(recipe: str, variant: str, seed: int, run_dir: Path, steps: int, seconds: float, scores: dict,
                 threads) -> dict:
    """One study row, ``study/results/<recipe>__<variant>__seed<k>.json`` (written atomically):
    ``scores`` from :func:`score_on_validation`; the curve comes from ``run_dir/curve.csv``."""
    curve = (run_dir / "curve.csv").read_text().splitlines()
    result = {"recipe": recipe, "variant": variant, "seed": seed, "steps": steps, "seconds": seconds, **scores,
              "curve": [line.split(",")[:4] for line in curve[1:]], "threads": threads,
              "machine": f"{os.cpu_count()} CPU cores"}
    path = STUDY / "results" / f"{recipe}__{variant}__seed{seed}.json"
    from dftnet import atomic

    atomic.write_text(path, json.dumps(result, indent=1))
    return result


def cmd_run(args) -> None:
    import yaml

    recipes = yaml.safe_load(Path(args.recipes).read_text())
    names = args.only or list(recipes)
    for n in names:
        if n not in recipes:
            sys.exit(f"error: {args.recipes}: no recipe {n!r}")
        recipe_params(recipes, n, Path(args.params))  # validate before any training
    jobs = [(n, v, s) for n in names for v in args.variants for s in args.seeds
            if v in recipes[n].get("variants", args.variants) and not (STUDY / "results" / f"{n}__{v}__seed{s}.json").exists()]
    print(f"{len(jobs)} runs to do", file=sys.stderr)
    from dftnet.stages import die_with_parent

    with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn"), initializer=die_with_parent,
                             initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(run_one, recipes, n, v, s, args.params): (n, v, s) for n, v, s in jobs}
        for fut, job in futures.items():
            try:
                r = fut.result()
                print(f"{job}: ratio {r['ratio']:.3f} l1 {r['l1_ratio']:.2f}x {r['seconds']:.0f} s", file=sys.stderr)
            except Exception as err:  # one failed run must not lose the others
                print(f"{job}: FAILED {type(err).__name__}: {err}", file=sys.stderr)


def cmd_import_default(args) -> None:
    """The default ``dvc repro``'s trained runs (every variant and seed) as rows of recipe
    ``default``, scored on the validation pairs like every other row (``runs/<variant>/seed<k>/``:
    the generator, steps, seconds, learning curve)."""
    from dftnet import stages
    from dftnet.checkpoints import load_trained
    from dftnet.config import load_params
    from dftnet.eval.judge import load_judge

    params = load_params(args.params)
    ds, judge = stages.dataset(params), load_judge(ROOT / "judge" / "judge.pt")
    for variant in params.variants:
        for seed in params.seeds:
            run = ROOT / "runs" / variant / f"seed{seed}"
            train = json.loads((run / "train_summary.json").read_text())
            write_result("default", variant, seed, run, train["generator_steps"], train["train_seconds_this_session"],
                         score_on_validation(load_trained(run)[0], ds, judge),
                         threads="dvc repro (seeds in parallel; the last seed of each variant on both cores)")
            print(f"default {variant} seed{seed}")


def _table_row(name: str, what: str, variant: str, split: str, rows: list[dict]) -> str:
    def mean(k: str) -> str:
        vals = [r[k] for r in rows if r.get(k) is not None]
        return f"{sum(vals) / len(vals):.3f}" if vals else ""

    def per_seed(k: str) -> str:
        return ", ".join(f"{r[k]:.2f}" for r in rows)

    met = all(r["ratio"] <= TARGET_RATIO and r["l1_ratio"] <= TARGET_L1 for r in rows)
    return (f"| {name} | {what} | {variant} | {split} | {rows[0]['steps']} | {float(mean('seconds')):.0f} "
            f"| {mean('au_mae')} | {mean('au_mae_source')} | {mean('au_mae_neutral')} | {mean('au_raise')} "
            f"| {mean('ratio')} ({per_seed('ratio')}) | {float(mean('l1_ratio')):.2f} ({per_seed('l1_ratio')}) "
            f"| {'yes' if met else 'no'} ({len(rows)} seed{'s' if len(rows) > 1 else ''}) |")


def cmd_table(args) -> None:
    import yaml

    recipes = yaml.safe_load(Path(args.recipes).read_text())
    results = [json.loads(p.read_text()) for p in sorted((STUDY / "results").glob("*.json"))]
    lines = [
        "# Learning study",
        "",
        "Which recipe makes the generators *edit* at CPU scale (64 px, the embedded synthetic faces,",
        "320 training images of 32 identities; scored on the 120 **validation** pairs of 12 other people). Written by",
        "`python benchmarks/learning_study.py table` from `study/results/*.json`; every row is a run",
        f"seen on this machine ({os.cpu_count()} CPU cores, no GPU, one thread per run, two runs side by side;",
        "the `default` rows are the default `dvc repro`'s own runs, imported with `import-default`).",
        "What the rows mean for the default recipe: README, \"The default recipe\".",
        "",
        "- **ratio** = judge's AU error of the edits / the same error of the unedited sources (the floor).",
        f"  Target: <= {TARGET_RATIO} in every seed. Below 1 the edits move towards the target AUs.",
        "- **L1 x** = paired L1 of the edit to the ground-truth target / the unedited source's L1 to it.",
        f"  Target: <= {TARGET_L1} (clean edits); < 1 means the edit moves towards the true target in pixels.",
        "- **neutral** = the same error of the neutral faces (the source people with every AU at 0): erasing",
        "  the expression scores this, so a recipe edits only below it; **raise** = the share of each asked",
        "  AU rise the judge reads (1 = all of it, 0 = none).",
        "- **split**: `val` rows were scored on the validation pairs. `test*` rows were scored on the test",
        "  pairs before the validation split existed, with the judge of that time (trained on the GANs' own",
        "  images); their checkpoints are gone, so they stand as history, not comparable with `val` rows.",
        "- Per-seed values in brackets; `steps` generator steps; `s` wall seconds per run (mean), indicative",
        "  only: the machine's load varied between rounds (tests and other runs shared the cores at times).",
        "",
        "| recipe | what changes | variant | split | steps | s | AU err | floor | neutral | raise | ratio (per seed) "
        "| L1 x (per seed) | met |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        r.setdefault("split", "test*")
    for name in recipes:
        for variant in dict.fromkeys(r["variant"] for r in results):
            for split in ("val", "test*"):
                rows = sorted((r for r in results if r["recipe"] == name and r["variant"] == variant
                               and r["split"] == split), key=lambda r: r["seed"])
                if rows:
                    lines.append(_table_row(name, recipes[name].get("what", ""), variant, split, rows))
    lines += ["", "## Learning curves (judge ratio every 300 generator steps and at the end, mean over seeds)", "",
              "| recipe | variant | " + " | ".join(["step: ratio"] * 1) + " |", "|---|---|---|"]
    for name in recipes:
        for variant in dict.fromkeys(r["variant"] for r in results):
            rows = [r for r in results if r["recipe"] == name and r["variant"] == variant]
            if not rows:
                continue
            steps = [c[0] for c in rows[0]["curve"]]
            pts = []
            for i, s in enumerate(steps):
                if int(s) % 300 and i != len(steps) - 1:  # every 300 steps and the last point
                    continue
                vals = [float(r["curve"][i][3]) for r in rows if len(r["curve"]) > i]
                pts.append(f"{s}: {sum(vals) / len(vals):.2f}")
            lines.append(f"| {name} | {variant} | {', '.join(pts)} |")
    out = ROOT / "reports" / "learning_study.md"
    out.write_text("\n".join(lines) + "\n")
    print(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("run", "import-default", "table"))
    ap.add_argument("--recipes", default=str(ROOT / "benchmarks" / "recipes.yaml"))
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--variants", nargs="*", default=["dftnet", "ganimation"])
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    os.chdir(ROOT)
    {"run": cmd_run, "import-default": cmd_import_default, "table": cmd_table}[args.command](args)


if __name__ == "__main__":
    main()
