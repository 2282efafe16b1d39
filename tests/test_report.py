"""The report: the schema round trip on real evaluation output, the paired bootstrap, the
learning gate, and each claim's verdict."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dftnet.claims import (CONTRADICTED, INCONCLUSIVE, NOT_MEASURABLE, SUPPORTED, Bootstrap, claim_ablations,
                           claim_artifacts, claim_eyelids, claim_speed, edits, not_learned, paired_difference)
from dftnet.config import EvalConfig, ModelConfig
from dftnet.errors import DataError
from dftnet.eval.evaluate import evaluate_run
from dftnet.eval.judge import AUJudge
from dftnet.eval.schema import METRICS, PER_PAIR_KEYS, RUN_METRICS
from dftnet.eval.stats import bootstrap_median_difference, hierarchical_bootstrap
from dftnet.eval.timing import time_generators
from dftnet.generators import at_paper_size, generator_cost
from dftnet.report import build_report
from dftnet.results import Run, Runs, Timing
from dftnet.stages import write_json
from test_eval import EYES, MOUTH, ReturnSource, TinyConvGen, TinyCritic, tiny_dataset

BOOT = Bootstrap(resamples=400, seed=0)


# ------------------------------------------------------------ the schema round trip
def test_real_evaluation_output_reads_back_through_the_report(tmp_path, one_thread):
    """evaluate_run -> metrics.json (as the evaluate stage writes it) -> build_report; no hand-written JSON."""
    ds = tiny_dataset(n_pairs=6)
    cfg = EvalConfig(batch_size=4, bootstrap=20, identity=False)
    torch.manual_seed(0)
    gens = {"dftnet": TinyConvGen(), "ganimation": ReturnSource()}
    judge = AUJudge(4, 32)
    paths, written = [], {}
    for variant, gen in gens.items():
        for seed in (0, 1):
            metrics, _ = evaluate_run(gen, TinyCritic(), ds, judge, cfg, regions={"eyes": EYES, "mouth": MOUTH})
            path = tmp_path / "eval" / variant / f"seed{seed}" / "metrics.json"
            write_json(path, {"variant": variant, "seed": seed, **metrics})
            paths.append(path)
            written[(variant, seed)] = metrics
    timing = time_generators(gens, 32, (1, 2), runs=5, warmup=0)
    run_cfg = ModelConfig(base_channels=4, n_res_blocks=1)
    timing["flops"] = {"dftnet": {size: {"image_size": px, "gflops": generator_cost(cfg, px)["gflops"]}
                                  for size, (cfg, px) in (("run", (run_cfg, 32)), ("paper", at_paper_size(run_cfg)))}}
    write_json(tmp_path / "timing.json", timing)

    build_report(paths, None, tmp_path / "reports", tmp_path / "timing.json", BOOT)
    rep = tmp_path / "reports"
    per_seed = pd.read_csv(rep / "results.csv")
    assert set(METRICS) <= set(per_seed.columns)
    for (variant, seed), metrics in written.items():
        row = per_seed[(per_seed.variant == variant) & (per_seed.seed == seed)].iloc[0]
        for key, value in metrics["summary"].items():
            if value is None:
                assert pd.isna(row[key]), key
            else:
                assert row[key] == pytest.approx(value, rel=1e-5, abs=1e-9), key
    md = (rep / "results.md").read_text()
    assert "N = 6 test pairs" in md and "N = ?" not in md and "not recorded" not in md.split("## Protocol")[1][:400]
    for m in RUN_METRICS:
        assert m.label in md, m.label
    claims = (rep / "claims.md").read_text()
    assert "**Rule.**" in claims and "Does each model edit?" in claims and "95% CI" in claims
    assert claims.split("\n\n", 1)[1] in md  # the same claims in both files
    timing_csv = pd.read_csv(rep / "results_timing.csv").set_index("variant")
    assert timing_csv.loc["dftnet", "ms_per_image_b1"] > 0
    assert timing_csv.loc["dftnet", "gflops_paper"] > timing_csv.loc["dftnet", "gflops_run"] > 0
    assert not list(rep.glob("*.tmp"))


def test_a_metrics_file_without_a_schema_metric_stops_naming_file_and_key(tmp_path):
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps({"variant": "dftnet", "seed": 0, "summary": {"au_mae": 0.5}, "protocol": {"n_pairs": 3}}))
    with pytest.raises(DataError, match=r"m\.json: summary lacks metric 'au_mae_source'"):
        build_report([bad], None, tmp_path / "reports")
    assert not (tmp_path / "reports").exists()


# ----------------------------------------------------------------- the bootstrap
def test_hierarchical_bootstrap_of_a_zero_difference_is_inconclusive_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    contains_zero = 0
    for k in range(200):
        seed_effect = rng.normal(0, 0.1, 5)
        groups = [rng.normal(0, 1, 60) + e - seed_effect.mean() for e in seed_effect]  # true mean exactly 0
        lo, hi = hierarchical_bootstrap(groups, 500, k)["ci"]
        contains_zero += lo < 0 < hi
    assert 0.90 <= contains_zero / 200 <= 0.995


def test_hierarchical_bootstrap_finds_a_large_difference_and_is_seeded():
    rng = np.random.default_rng(1)
    groups = [rng.normal(-0.5, 1, 60) for _ in range(3)]
    out = hierarchical_bootstrap(groups, 500, 0)
    assert out["ci"][1] < 0 and out["n_seeds"] == 3 and out["n_pairs"] == [60, 60, 60]
    assert out["estimate"] == pytest.approx(np.mean([g.mean() for g in groups]))
    assert hierarchical_bootstrap(groups, 500, 0) == out and hierarchical_bootstrap(groups, 500, 1) != out
    with pytest.raises(ValueError):
        hierarchical_bootstrap([[1.0, float("nan")]])


def test_seed_noise_widens_the_interval():
    rng = np.random.default_rng(2)
    pairs = rng.normal(0, 1, (3, 60))
    calm = hierarchical_bootstrap(list(pairs), 500, 0)["ci"]
    noisy = hierarchical_bootstrap(list(pairs + np.array([[-1.0], [0.0], [1.0]])), 500, 0)["ci"]
    assert noisy[1] - noisy[0] > 2 * (calm[1] - calm[0])


def test_median_difference_of_paired_repeats():
    a, b = np.full(50, 2.0) + np.linspace(0, 0.1, 50), np.full(50, 4.0)
    out = bootstrap_median_difference(a, b, 300, 0)
    assert out["estimate"] == pytest.approx(np.median(a) - 4.0) and out["ci"][1] < 0 and out["n"] == 50


# ------------------------------------------------------------- runs in memory
def run(variant: str, seed: int, n: int = 40, shift: dict | None = None, noise: float = 0.05, **kw) -> Run:
    """A run whose per-pair values are base + shift[key] + noise, with its floors beside them."""
    rng = np.random.default_rng(zlib.crc32(f"{variant}/{seed}".encode()))
    base = {"au_mae": 0.5, "au_mae_source": 0.9, "au_mae_AU45": 0.6, "au_mae_AU45_source": 1.0, "l1_gt": 0.05,
            "l1_gt_source": 0.04, "ssim_gt": 0.9, "ssim_gt_source": 0.92, "l1_gt_eyes": 0.05, "ssim_gt_eyes": 0.8,
            "lpips_gt": None}
    per_pair = {k: None for k in PER_PAIR_KEYS}
    for k, v in base.items():
        if v is not None:
            per_pair[k] = (v + (shift or {}).get(k, 0.0) + rng.normal(0, noise, n)).tolist()
    summary = {k: (float(np.mean(v)) if v else None) for k, v in per_pair.items()}
    summary.update({k: None for k in METRICS if k not in summary})
    summary.update(kw)
    return Run(Path(f"{variant}/seed{seed}"), variant, seed, summary, per_pair, {}, {}, {}, {"n_pairs": n,
               "unavailable": {"fid": "weights not found: pt_inception", "lpips": "weights not found: alexnet"}}, {})


def runs(spec: dict[str, dict], seeds=(0, 1, 2)) -> Runs:
    return Runs(run(v, s, shift=shift) for v, shift in spec.items() for s in seeds)


def test_paired_difference_verdicts():
    r = runs({"dftnet": {}, "ganimation": {"l1_gt": 0.02, "ssim_gt": -0.05}, "same": {}})
    better = paired_difference(r, "l1_gt", "dftnet", "ganimation", BOOT)
    assert better.status == SUPPORTED and better.hi < 0 and better.n_seeds == 3 and better.n_pairs == 40
    assert better.diff == pytest.approx(better.ref_mean - better.other_mean)
    assert paired_difference(r, "ssim_gt", "dftnet", "ganimation", BOOT).status == SUPPORTED  # higher is better
    assert paired_difference(r, "l1_gt", "ganimation", "dftnet", BOOT).status == CONTRADICTED
    assert paired_difference(r, "fid", "dftnet", "ganimation", BOOT).status == NOT_MEASURABLE
    assert "weights not found" in paired_difference(r, "fid", "dftnet", "ganimation", BOOT).reason
    assert paired_difference(r, "l1_gt", "dftnet", "absent", BOOT).status == NOT_MEASURABLE
    same = paired_difference(r, "l1_gt", "dftnet", "same", BOOT)
    assert same.status == INCONCLUSIVE and same.lo < 0 < same.hi
    assert "[95% CI" in better.describe() and "3 seeds x 40 pairs" in better.describe()


def test_the_gate_refuses_a_model_that_did_not_learn():
    r = runs({"dftnet": {}, "ganimation": {"au_mae": 0.45}, "warp_only": {"au_mae": 0.5, "l1_gt": 0.03}})
    assert edits(r, "dftnet", BOOT).status == SUPPORTED and not_learned(r, "dftnet", BOOT) is None
    why = not_learned(r, "ganimation", BOOT)  # 0.95 vs its floor 0.9: it did not learn
    assert re.match(r"GANimation did not learn to edit \(judge AU error 0\.9\d\d vs floor 0\.[89]\d\d, difference CI "
                    r"\[0\.\d+, 0\.\d+\]", why), why
    eyelids = claim_eyelids(r, BOOT)
    assert eyelids.verdict == NOT_MEASURABLE and "GANimation did not learn to edit" in eyelids.why
    ablation = {c.id: c for c in claim_ablations(r, BOOT)}
    assert ablation["4.1"].verdict == NOT_MEASURABLE and "warp_only did not learn to edit" in ablation["4.1"].why


def test_claims_on_models_that_edit():
    r = runs({"dftnet": {}, "ganimation": {"l1_gt_eyes": 0.02, "ssim_gt_eyes": -0.1, "au_mae_AU45": 0.2},
              "worse": {"au_mae": 0.1, "l1_gt": 0.03}, "better": {"au_mae": -0.1, "l1_gt": -0.03},
              "mixed": {"au_mae": 0.1, "l1_gt": -0.03}})
    assert claim_eyelids(r, BOOT).verdict == SUPPORTED
    art = claim_artifacts(r, BOOT)
    assert art.verdict == NOT_MEASURABLE and "FID unavailable" in art.why and any("proxy" in e for e in art.evidence)
    ab = {c.text.split("`")[1] if "`" in c.text else c.id: c for c in claim_ablations(r, BOOT)}
    assert ab["worse"].verdict == SUPPORTED and ab["better"].verdict == CONTRADICTED
    assert ab["mixed"].verdict == INCONCLUSIVE
    assert ab["4"].verdict == INCONCLUSIVE and "`mixed`: inconclusive" in ab["4"].why
    assert "not the paper's" in ab["4"].whose and "qualitative" in claim_eyelids(r, BOOT).whose


def test_speed_claim_reads_the_timing_repeats_and_the_flops():
    rng = np.random.default_rng(0)
    models = {v: {"b1": {"ms_per_batch": (ms + rng.normal(0, 0.05, 30)).tolist(), "ms_per_image_median": ms,
                         "ms_per_image_iqr": 0.1}} for v, ms in (("dftnet", 2.0), ("ganimation", 1.5))}
    flops = {"dftnet": {"run": {"image_size": 64, "gflops": 0.1, "base_channels": 8, "n_res_blocks": 2},
                        "paper": {"image_size": 128, "gflops": 23.5, "base_channels": 64, "n_res_blocks": 6}},
             "ganimation": {"run": {"image_size": 64, "gflops": 0.07}, "paper": {"image_size": 128, "gflops": 19.8}}}
    timing = Timing(Path("timing.json"), models, flops, {"device_name": "cpu", "threads": 2}, {})
    claim = claim_speed(timing, BOOT)
    assert claim.verdict == CONTRADICTED  # slower, CI away from 0
    assert any("30 paired timed passes" in e for e in claim.evidence)
    assert any("paper size" in e and "1.19x" in e for e in claim.evidence)
    assert claim_speed(None, BOOT).verdict == NOT_MEASURABLE
