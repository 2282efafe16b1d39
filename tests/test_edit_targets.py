"""benchmarks/edit_targets.py on hand-built evaluation files: the ratios and the verdicts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def metrics(au_mae, raise_, au45_raise, au45_lower, unchanged, l1):
    """An evaluate metrics.json reduced to what the targets read; every floor or ceiling is 1 or 0.5."""
    summary = {"au_mae": au_mae, "au_mae_neutral": 1.0, "au_raise": raise_, "au_raise_gt": 1.0,
               "l1_unchanged": unchanged * 0.001, "l1_unchanged_source": 0.001, "l1_gt": l1 * 0.01, "l1_gt_source": 0.01}
    way = lambda v: {"per_au": {"AU45": v, "AU12": 9.0}, "mean": 9.0}  # noqa: E731
    progress = {"edit": {"raise": way(au45_raise * 0.5), "lower": way(au45_lower * 0.5)},
                "gt": {"raise": way(0.5), "lower": way(0.5)}}
    return {"summary": summary, "au": {"progress": progress}}


def run(tmp_path, *args):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "edit_targets.py"), "--eval", str(tmp_path / "eval"),
                           *args], capture_output=True, text=True, timeout=60)


def test_each_seed_is_checked_against_each_target(tmp_path):
    seeds = {"good": [(0.7, 0.9, 0.6, 0.5, 2.0, 0.9), (0.75, 0.8, 0.5, 0.7, 1.5, 0.8)],
             "bad": [(0.7, 0.9, 0.6, 0.6, 1.9, 0.9), (0.8, 0.9, 0.4, 0.6, 2.1, 1.0)]}
    for variant, rows in seeds.items():
        for k, row in enumerate(rows):
            (tmp_path / "eval" / variant / f"seed{k}").mkdir(parents=True)
            (tmp_path / "eval" / variant / f"seed{k}" / "metrics.json").write_text(json.dumps(metrics(*row)))
    out = run(tmp_path, "--variants", "good", "bad", "--out", str(tmp_path / "t.md"))
    assert out.returncode == 0, out.stderr
    assert "| good | 0 | 0.70 | 0.90 | 0.60 | 0.50 | 2.00 | 0.90 |" in out.stdout  # the bounds are inclusive
    assert "| bad | 1 | **0.80** (missed) | 0.90 | **0.40** (missed) | 0.60 | **2.10** (missed) | **1.00** (missed) |" in out.stdout
    assert "- `good` (2 seeds): every target met on every seed" in out.stdout
    assert ("- `bad` (2 seeds): missed on some seed: AU error / neutral face, AU45 raise / GT, unchanged L1 / source, "
            "overall L1 / source") in out.stdout  # overall L1 must be strictly below the source's
    assert (tmp_path / "t.md").read_text().endswith(out.stdout)


def test_a_variant_without_evaluated_seeds_stops_with_one_line(tmp_path):
    out = run(tmp_path, "--variants", "nothing")
    assert out.returncode == 1 and out.stderr.strip().count("\n") == 0 and "nothing: no evaluated seed" in out.stderr


def test_compare_pairs_by_seed_and_pair(tmp_path):
    base = [0.001 * k for k in range(6)]
    for variant, shift in (("a", 0.002), ("b", 0.0)):
        for seed in range(2):
            m = metrics(0.7, 0.9, 0.6, 0.6, 1.5, 0.9)
            m["pairs"] = {"pair_id": [f"p{k}" for k in range(6)], "source_identity": ["x", "x", "y", "y", "z", "z"]}
            m["per_pair"] = {k: [v + shift + seed for v in base] for k in ("l1_unchanged", "l1_unchanged_far", "au_mae", "l1_gt")}
            (tmp_path / "eval" / variant / f"seed{seed}").mkdir(parents=True)
            (tmp_path / "eval" / variant / f"seed{seed}" / "metrics.json").write_text(json.dumps(m))
    out = run(tmp_path, "--variants", "a", "b", "--compare")
    assert out.returncode == 0, out.stderr
    # every pair differs by 0.002 (up to rounding) in every seed: no spread, so the interval is the point
    assert "- unchanged-region L1 (`l1_unchanged`), `a` - `b`: +0.00200 [95% CI +0.00200, +0.00200], p = " in out.stdout
    assert out.stdout.count("`a` - `b`") == 4


def test_a_broken_metrics_file_stops_with_one_line_naming_it(tmp_path):
    for text, why in (("{not json", "not a readable metrics file"), ('{"summary": {}}', "lacks what the targets read")):
        (tmp_path / "eval" / "v" / "seed0").mkdir(parents=True, exist_ok=True)
        (tmp_path / "eval" / "v" / "seed0" / "metrics.json").write_text(text)
        out = run(tmp_path, "--variants", "v", "--out", str(tmp_path / "t.md"))
        assert out.returncode == 1 and out.stderr.strip().count("\n") == 0, out.stderr
        assert "seed0/metrics.json: " + why in out.stderr and not (tmp_path / "t.md").exists()
