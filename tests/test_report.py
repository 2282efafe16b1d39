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

from dftnet.reporting.claims import (CONTRADICTED, INCONCLUSIVE, NOT_MEASURABLE, SUPPORTED, Bootstrap, all_claims,
                           claim_ablations, claim_speed, gate, not_learned, remedy_claims, speed_claims,
                           paired_difference)
from dftnet.config import EvalConfig, ModelConfig
from dftnet.runtime.errors import DataError
from dftnet.eval.evaluate import evaluate_run
from dftnet.eval.judge import AUJudge
from dftnet.eval.schema import METRICS, PER_PAIR_KEYS, RUN_METRICS
from dftnet.eval.stats import bootstrap_median_difference, crossed_bootstrap, crossed_t_interval, holm
from dftnet.eval.timing import time_generators
from dftnet.nets.generators import at_paper_size, generator_cost
from dftnet.reporting.report import build_report, build_timing_report
from dftnet.reporting.results import Run, Runs, Timing
from dftnet.stages import write_json
from helpers import EYES, MOUTH, ROOT, ReturnSource, TinyConvGen, TinyCritic, tiny_dataset

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

    build_report(paths, None, tmp_path / "reports", BOOT)
    rep = tmp_path / "reports"
    assert not (rep / "results_timing.csv").exists() and "ms/image" not in (rep / "results.md").read_text()
    build_timing_report(tmp_path / "timing.json", list(gens), rep, BOOT)
    timing_md = (rep / "timing.md").read_text()
    assert "## Claim 3" in timing_md and "ms/image" in timing_md
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
    assert "reports/timing.md" in claims and "ms_per_image" not in claims  # nothing read by the clock
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


# ----------------------------------------------------------------- the intervals
def crossed_data(rng, true=0.3, n_seeds=3, n_people=12, per_person=10, seed_sd=0.5, person_sd=1.0, pair_sd=1.0,
                 noise_sd=0.5):
    """Seeds x pairs like the experiment's: a real seed effect (not centred), person and pair
    effects shared by every seed (all seeds edit the same pairs), and seed-by-pair noise."""
    people = np.repeat(np.arange(n_people), per_person)
    shared = rng.normal(0, person_sd, n_people)[people] + rng.normal(0, pair_sd, people.size)
    values = (true + rng.normal(0, seed_sd, (n_seeds, 1)) + shared[None, :]
              + rng.normal(0, noise_sd, (n_seeds, people.size)))
    return values, [f"p{k}" for k in people]


@pytest.mark.parametrize("seed_sd", [0.0, 0.5, 1.0])
def test_crossed_t_interval_covers_the_truth_95_percent_of_the_time(seed_sd):
    rng = np.random.default_rng(0)
    n, hits = 600, 0
    for _ in range(n):
        values, people = crossed_data(rng, seed_sd=seed_sd)
        lo, hi = crossed_t_interval(values, people)["ci"]
        hits += lo <= 0.3 <= hi
    assert 0.92 <= hits / n <= 0.995, hits / n


def test_crossed_intervals_share_the_pairs_between_seeds():
    """Seeds that edited the same pairs identically carry the pairs' noise once, not divided by
    their number: three identical seeds give the interval of one."""
    rng = np.random.default_rng(3)
    values, people = crossed_data(rng, n_seeds=1, seed_sd=0.0, noise_sd=0.0)
    three = np.repeat(values, 3, axis=0)
    one_b, three_b = (crossed_bootstrap(v, people, 2000, 0)["ci"] for v in (values, three))
    assert (three_b[1] - three_b[0]) == pytest.approx(one_b[1] - one_b[0], rel=0.15)
    one_t, three_t = (crossed_t_interval(v, people)["ci"] for v in (values, three))
    assert three_t == pytest.approx(one_t)


def test_crossed_intervals_resample_people_not_pairs():
    """Pairs of one person move together: a person effect widens the interval, pair noise of the
    same total size within people much less."""
    rng = np.random.default_rng(4)
    by_person, _ = crossed_data(rng, seed_sd=0, person_sd=1.0, pair_sd=0.0, noise_sd=0.0)
    by_pair, people = crossed_data(rng, seed_sd=0, person_sd=0.0, pair_sd=1.0, noise_sd=0.0)
    width = {k: np.diff(crossed_t_interval(v, people)["ci"])[0] for k, v in (("person", by_person), ("pair", by_pair))}
    assert width["person"] > 2 * width["pair"]


def test_crossed_intervals_handle_missing_pairs_and_bad_input():
    values = np.array([[1.0, np.nan, 3.0, 2.0], [2.0, np.nan, 2.0, 1.0]])
    out = crossed_t_interval(values, ["a", "a", "b", "b"])
    assert out["estimate"] == pytest.approx(np.mean([2.0, 5 / 3])) and out["n_clusters"] == 2
    assert crossed_bootstrap(values, ["a", "a", "b", "b"], 200, 0)["estimate"] == pytest.approx(out["estimate"])
    with pytest.raises(ValueError, match="cluster labels"):
        crossed_t_interval(values, ["a"])
    with pytest.raises(ValueError, match="no finite value"):
        crossed_t_interval(np.full((2, 3), np.nan), ["a", "b", "c"])


def test_holm_adjusts_step_down_and_keeps_the_order():
    assert holm([0.01, 0.04, None, 0.03]) == pytest.approx([0.03, 0.06, None, 0.06])
    assert holm([0.5]) == [0.5] and holm([]) == []


def test_median_difference_of_paired_repeats():
    a, b = np.full(50, 2.0) + np.linspace(0, 0.1, 50), np.full(50, 4.0)
    out = bootstrap_median_difference(a, b, 300, 0)
    assert out["estimate"] == pytest.approx(np.median(a) - 4.0) and out["ci"][1] < 0 and out["n"] == 50


# ------------------------------------------------------------- runs in memory
BASE = {"au_mae": 0.5, "au_mae_source": 0.9, "au_mae_neutral": 0.7, "au_raise": 0.5, "au_raise_source": 0.0,
        "au_mae_AU45": 0.6, "au_mae_AU45_source": 1.0, "l1_gt": 0.05, "l1_gt_source": 0.04, "ssim_gt": 0.9,
        "ssim_gt_source": 0.92, "l1_gt_eyes": 0.05, "ssim_gt_eyes": 0.8, "l1_raise": 0.1, "l1_unchanged": 0.005,
        "l1_unchanged_source": 0.001, "lpips_gt": None}


def run(variant: str, seed: int, n: int = 40, shift: dict | None = None, noise: float = 0.05, **kw) -> Run:
    """A run whose per-pair values are base + shift[key] + noise, with its floors beside them;
    its n pairs show n / 4 people."""
    rng = np.random.default_rng(zlib.crc32(f"{variant}/{seed}".encode()))
    per_pair = {k: None for k in PER_PAIR_KEYS}
    for k, v in BASE.items():
        if v is not None:
            per_pair[k] = (v + (shift or {}).get(k, 0.0) + rng.normal(0, noise, n)).tolist()
    per_pair["au_raise_source"] = [0.0] * n
    summary = {k: (float(np.mean(v)) if v else None) for k, v in per_pair.items()}
    summary.update({k: None for k in METRICS if k not in summary})
    summary.update(kw)
    return Run(Path(f"{variant}/seed{seed}"), variant, seed, summary, per_pair, {}, {}, {}, {"n_pairs": n,
               "unavailable": {"fid": "weights not found: pt_inception", "lpips": "weights not found: alexnet"}}, {},
               [f"pair{k}" for k in range(n)], [f"person{k // 4}" for k in range(n)])


def runs(spec: dict[str, dict], seeds=(0, 1, 2)) -> Runs:
    return Runs(run(v, s, shift=shift) for v, shift in spec.items() for s in seeds)


def test_paired_difference_verdicts():
    r = runs({"dftnet": {}, "ganimation": {"l1_gt": 0.02, "ssim_gt": -0.05}, "same": {}})
    better = paired_difference(r, "l1_gt", "dftnet", "ganimation", BOOT)
    assert better.status == SUPPORTED and better.hi < 0 and better.n_seeds == 3 and better.n_pairs == 40
    assert better.n_clusters == 10 and better.p < 0.05
    assert better.diff == pytest.approx(better.ref_mean - better.other_mean)
    assert paired_difference(r, "ssim_gt", "dftnet", "ganimation", BOOT).status == SUPPORTED  # higher is better
    assert paired_difference(r, "l1_gt", "ganimation", "dftnet", BOOT).status == CONTRADICTED
    assert paired_difference(r, "fid", "dftnet", "ganimation", BOOT).status == NOT_MEASURABLE
    assert "weights not found" in paired_difference(r, "fid", "dftnet", "ganimation", BOOT).reason
    assert paired_difference(r, "l1_gt", "dftnet", "absent", BOOT).status == NOT_MEASURABLE
    same = paired_difference(r, "l1_gt", "dftnet", "same", BOOT)
    assert same.status == INCONCLUSIVE and same.lo < 0 < same.hi
    assert "[95% CI" in better.describe() and "3 seeds x 40 pairs of 10 people" in better.describe()


def test_a_metric_with_seed_means_only_gets_a_t_interval_over_the_seeds():
    r = Runs(run(v, s, **{"fid": f}) for v, fs in (("dftnet", (10.0, 11.0, 12.0)), ("ganimation", (20.0, 22.0, 21.0)))
             for s, f in enumerate(fs))
    d = paired_difference(r, "fid", "dftnet", "ganimation", BOOT)
    assert d.status == SUPPORTED and d.diff == pytest.approx(-10.0) and "Student t over 3 seed means" in d.describe()


def test_the_gate_needs_the_neutral_floor_beaten_and_the_asked_aus_raised():
    r = runs({"dftnet": {}, "eraser": {"au_mae": 0.2, "au_raise": -0.5}, "copier": {"au_mae": 0.4, "au_raise": -0.5},
              "timid": {"au_raise": -0.5}, "ganimation": {}})
    assert gate(r, "dftnet", BOOT).status == SUPPORTED and not_learned(r, "dftnet", BOOT) is None
    for v in ("eraser", "copier", "timid"):
        assert gate(r, v, BOOT).status == INCONCLUSIVE, v
    why = not_learned(r, "eraser", BOOT)  # AU error 0.7 = the neutral face's, raise 0: it erased
    assert re.match(r"eraser did not pass the gate \(`au_mae` 0\.\d+ vs neutral face 0\.\d+, difference CI", why), why
    assert "`au_raise`" in why
    ablation = {c.id: c for c in claim_ablations(r, BOOT)}
    assert ablation["4.1"].verdict == NOT_MEASURABLE and "copier did not pass the gate" in ablation["4.1"].why


def test_claims_rest_on_their_primary_with_holm():
    r = runs({"dftnet": {}, "ganimation": {"l1_gt_eyes": 0.1, "ssim_gt_eyes": -0.1, "au_mae_AU45": 0.2,
                                           "l1_unchanged": 0.1},
              "worse": {"l1_raise": 0.1}, "better": {"l1_raise": -0.1}, "alike": {"l1_raise": 0.0005}})
    claims = {c.id: c for c in all_claims(r, BOOT)}
    assert claims["1"].verdict == SUPPORTED and claims["1"].primary.metric == "l1_gt_eyes"
    assert claims["1"].primary.p_holm >= claims["1"].primary.p and "Holm-adjusted p" in claims["1"].why
    art = claims["2"]
    assert art.verdict == SUPPORTED and art.primary.metric == "l1_unchanged"
    assert any("supporting: `fid`: not measurable" in e for e in art.evidence)
    ab = {c.text.split("`")[1] if "`" in c.text else c.id: c for c in claims.values() if c.id.startswith("4")}
    assert ab["worse"].verdict == SUPPORTED and ab["better"].verdict == CONTRADICTED
    assert ab["alike"].verdict == INCONCLUSIVE and ab["worse"].primary.metric == "l1_raise"
    assert ab["4"].verdict == INCONCLUSIVE and "`alike`: inconclusive" in ab["4"].why
    assert "not the paper's" in ab["4"].whose and "qualitative" in claims["1"].whose
    assert "3" not in claims  # the clock's claim is its own family: speed_claims


def test_remedies_are_claims_of_their_own_not_ablations():
    r = runs({"dftnet": {}, "ganimation": {}, "worse": {"l1_raise": 0.1},
              "dftnet_clean": {"l1_unchanged": -0.1}, "ganimation_clean": {"l1_unchanged": 0.1}})
    remedies = {"dftnet_clean": "dftnet", "ganimation_clean": "ganimation"}
    claims = {c.id: c for c in all_claims(r, BOOT, not_ablations=list(remedies))}
    assert claims["4"].text == "each ablation hurts (worse)" and "4.2" not in claims
    rows = {(c.primary.reference, c.primary.other): c for c in remedy_claims(r, remedies, BOOT)}
    clean, dirty = rows["dftnet_clean", "dftnet"], rows["ganimation_clean", "ganimation"]
    assert clean.verdict == SUPPORTED and clean.text == "remedy `dftnet_clean` shows fewer artifacts than DFT-Net"
    assert dirty.verdict == CONTRADICTED and dirty.primary.metric == "l1_unchanged"
    both = rows["dftnet_clean", "ganimation_clean"]  # claim 2 asked of the remedied pair
    assert both.verdict == SUPPORTED and both.text.startswith("remedied, DFT-Net shows fewer artifacts than GANimation")
    assert len(rows) == 3 and clean.primary.p_holm >= clean.primary.p  # Holm over the remedies only
    assert {c.id for c in claims.values()} == {"1", "2", "4", "4.1"}


def test_a_variant_is_a_remedy_when_it_sets_a_remedy_apart_from_its_own_model():
    from dftnet.config import load_params, remedy_of

    params = load_params(ROOT / "params-cpu-long.yaml")  # the file that runs the remedies
    roles = {v: remedy_of(params, v) for v in params.variants}
    assert roles["dftnet_clean"] == "dftnet" and roles["ganimation_clean"] == "ganimation"
    assert roles["dftnet"] is None and roles["ganimation"] is None
    default = load_params(ROOT / "params.yaml")
    assert all(remedy_of(default, v) is None for v in default.variants)  # the paper's variants and ablations


def test_holm_can_turn_a_marginal_primary_inconclusive():
    r = runs({"dftnet": {}, "ganimation": {}, **{v: {"l1_raise": 0.012} for v in "abcdef"}})
    plain = claim_ablations(r, BOOT)[1:]
    marginal = [c for c in plain if c.verdict == SUPPORTED and c.primary.p > 0.01]
    assert marginal, [c.primary.p for c in plain]
    corrected = {c.id: c for c in all_claims(r, BOOT)}
    for c in marginal:
        assert corrected[c.id].primary.p_holm > 0.05 and corrected[c.id].verdict == INCONCLUSIVE


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
    (alone,) = speed_claims(timing, BOOT)  # a family of one: Holm leaves its p as it is
    assert alone.primary.p_holm == alone.primary.p and alone.verdict == CONTRADICTED
