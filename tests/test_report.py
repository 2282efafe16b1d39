"""The report stage on fabricated metric files: tables, CI arithmetic, null rendering, verdicts."""

import json
import math

import pandas as pd
import pytest

from dftnet.data.aus import AU_NAMES
from dftnet.errors import DataError
from dftnet.report import (NOT_MEASURABLE, NOT_SUPPORTED, SUPPORTED, Runs, build_report, claim_ablations,
                           claim_artifacts, claim_eyelids, claim_speed, compare, load_run, mean_ci)

BASE = dict(au_mae=0.5, au_rmse=0.7, au_mae_source=1.2, au_mae_critic=0.3, fid=None, lpips=0.1, lpips_gt=0.2,
            id_dist=0.3, id_share_same=0.9, id_dist_other=0.8, l1_gt=0.05, psnr_gt=25.0, ssim_gt=0.8,
            l1_gt_eyes=0.06, l1_gt_mouth=0.07, ssim_gt_eyes=0.7, ssim_gt_mouth=0.75,
            ms_per_image_b1=5.0, ms_per_image_b64=0.5, au_mae_ci=[0.45, 0.55], id_dist_ci=[0.25, 0.35])


def write_run(root, variant, seed, per_au45=1.0, unavailable=None, **summary):
    s = dict(BASE, **summary)
    per_au = {a: 0.4 for a in AU_NAMES} | {"AU45": per_au45}
    d = {"variant": variant, "seed": seed, "summary": s,
         "au": {"edit": {"per_au": {a: {"mae": v} for a, v in per_au.items()}},
                "source": {"per_au": {a: {"mae": 1.5} for a in AU_NAMES}}},
         "protocol": {"n_images": 120, "device": "cpu", "versions": {"torch": "2.4"},
                      "unavailable": unavailable if unavailable is not None
                      else {"fid": "weights not found: pt_inception-2015-12-05-6726825d.pth"}}}
    path = root / "eval" / variant / f"seed{seed}" / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(d))
    return path


def runs_of(tmp_path, spec):
    """spec: {variant: [summary overrides per seed]} -> Runs."""
    return Runs(load_run(write_run(tmp_path, v, seed, **kw)) for v, per in spec.items() for seed, kw in enumerate(per))


def test_mean_ci_matches_hand_computation():
    a = mean_ci([1.0, 2.0, 3.0])
    # t_{0.975, 2} = 4.302653; sd = 1; half-width = 4.302653 / sqrt(3)
    assert a.mean == pytest.approx(2.0) and a.sd == pytest.approx(1.0)
    assert a.half_width == pytest.approx(2.484, abs=1e-3)
    assert (a.ci_lo, a.ci_hi) == pytest.approx((2.0 - 2.4841, 2.0 + 2.4841), abs=1e-4)
    one = mean_ci([4.0])
    assert one.mean == 4.0 and one.ci_lo is None and one.ci_hi is None and one.half_width is None
    assert mean_ci([None, 1.0, 3.0]).n == 2  # nulls are dropped, not zeros


def test_build_report_writes_tables(tmp_path):
    paths = [write_run(tmp_path, "dftnet", s, au_mae=v) for s, v in enumerate([1.0, 2.0, 3.0])]
    paths += [write_run(tmp_path, "ganimation", 0, au_mae=4.0)]
    judge = tmp_path / "judge.json"
    judge.write_text(json.dumps({"heldout": {"mean_mae": 0.31, "per_au": {
        a: {"mae": 0.3, "pearson_r": 0.8, "label_std": 1.1} for a in AU_NAMES}}}))
    build_report(paths, judge, tmp_path / "reports")
    rep = tmp_path / "reports"
    per_seed = pd.read_csv(rep / "results.csv")
    for col in ["variant", "seed", "au_mae", "au_mae_source", "fid", "lpips", "id_dist", "l1_gt", "ssim_gt",
                "ms_per_image_b1", "ms_per_image_b64", "psnr_gt", "id_share_same", "au_mae_boot_lo"]:
        assert col in per_seed.columns, col
    assert len(per_seed) == 4 and per_seed["fid"].isna().all()  # null -> empty cell
    agg = pd.read_csv(rep / "results_aggregate.csv").set_index(["variant", "metric"])
    row = agg.loc[("dftnet", "au_mae")]
    assert row["n_seeds"] == 3 and row["mean"] == pytest.approx(2.0)
    assert row["ci_hi"] - row["mean"] == pytest.approx(2.484, abs=1e-3)
    assert math.isnan(agg.loc[("ganimation", "au_mae"), "ci_lo"])  # n = 1: no CI
    assert agg.loc[("dftnet", "au_mae_AU45"), "mean"] == pytest.approx(1.0)
    md = (rep / "results.md").read_text()
    assert "2.000 ± 2.484" in md
    assert "n/a (weights not found)" in md
    assert "How to read this" in md and "0.310" in md and "AU45 (eyes)" in md and "AU12 (mouth)" in md
    assert "2048" in md and "pt_inception" in md
    assert (rep / "claims.md").read_text().split("\n\n", 1)[1] in md  # the same table in both
    assert not list(rep.glob("*.tmp"))


def test_null_without_weights_reason_is_plain_na(tmp_path):
    p = write_run(tmp_path, "dftnet", 0, unavailable={"fid": "fewer than 2 images"})
    build_report([p], None, tmp_path / "reports")
    md = (tmp_path / "reports" / "results.md").read_text()
    assert "n/a (weights not found)" not in md and "| n/a |" in md


def test_missing_key_names_file(tmp_path):
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps({"variant": "dftnet", "summary": {}}))
    with pytest.raises(DataError, match=r"m\.json.*seed"):
        build_report([bad], None, tmp_path / "reports")
    assert not (tmp_path / "reports").exists()


def test_compare_paired_by_seed():
    better = compare("au_mae", {0: 1.0, 1: 1.0}, {0: 2.0, 1: 3.0}, False, "dftnet", "ganimation")
    assert better.status == SUPPORTED and better.wins == 2
    # Better on the mean but worse in seed 1: not supported.
    mixed = compare("au_mae", {0: 1.0, 1: 2.5}, {0: 3.0, 1: 2.0}, False, "dftnet", "ganimation")
    assert mixed.status == NOT_SUPPORTED and mixed.wins == 1 and mixed.ref_mean < mixed.other_mean
    tie = compare("ssim_gt", {0: 0.5}, {0: 0.5}, True, "dftnet", "ganimation")
    assert tie.status == NOT_SUPPORTED
    higher = compare("ssim_gt", {0: 0.9}, {0: 0.5}, True, "dftnet", "ganimation")
    assert higher.status == SUPPORTED
    null = compare("fid", {0: None}, {0: None}, False, "dftnet", "ganimation", "weights not found: x")
    assert null.status == NOT_MEASURABLE and "weights not found" in null.reason
    missing = compare("au_mae", {0: 1.0}, {}, False, "dftnet", "ganimation")
    assert missing.status == NOT_MEASURABLE and "ganimation" in missing.reason


def test_eyelid_claim(tmp_path):
    good = runs_of(tmp_path / "a", {"dftnet": [dict(l1_gt_eyes=0.04, ssim_gt_eyes=0.8)] * 2,
                                    "ganimation": [dict(l1_gt_eyes=0.06, ssim_gt_eyes=0.7)] * 2})
    # Same per-AU AU45 error for both: a tie on the judge -> not supported.
    assert claim_eyelids(good).verdict == NOT_SUPPORTED
    runs = Runs(load_run(write_run(tmp_path / "b", v, s, per_au45=e, l1_gt_eyes=l1, ssim_gt_eyes=ss))
                for v, e, l1, ss in (("dftnet", 0.5, 0.04, 0.8), ("ganimation", 0.9, 0.06, 0.7)) for s in (0, 1, 2))
    claim = claim_eyelids(runs)
    assert claim.verdict == SUPPORTED and not claim.weak
    assert any("au_mae_AU45" in e for e in claim.evidence)
    only_dft = runs_of(tmp_path / "c", {"dftnet": [{}]})
    assert claim_eyelids(only_dft).verdict == NOT_MEASURABLE  # baseline missing


def test_artifact_claim_rests_on_fid(tmp_path):
    no_fid = runs_of(tmp_path / "a", {"dftnet": [dict(ssim_gt=0.9)], "ganimation": [dict(ssim_gt=0.5)]})
    claim = claim_artifacts(no_fid)
    assert claim.verdict == NOT_MEASURABLE and "weights not found" in claim.why
    assert any(e.startswith("proxy") for e in claim.evidence)
    with_fid = runs_of(tmp_path / "b", {"dftnet": [dict(fid=30.0), dict(fid=31.0)],
                                        "ganimation": [dict(fid=40.0), dict(fid=29.0)]})
    assert claim_artifacts(with_fid).verdict == NOT_SUPPORTED  # worse in seed 1


def test_speed_claim_and_weak_flag(tmp_path):
    runs = runs_of(tmp_path, {"dftnet": [dict(ms_per_image_b1=2.0, ms_per_image_b64=0.2)],
                              "ganimation": [dict(ms_per_image_b1=4.0, ms_per_image_b64=0.3)]})
    claim = claim_speed(runs)
    assert claim.verdict == SUPPORTED and claim.weak  # one seed
    assert any("2.00x" in e for e in claim.evidence)


def test_ablation_claim_lists_each_ablation(tmp_path):
    runs = runs_of(tmp_path, {"dftnet": [dict(au_mae=0.5, l1_gt=0.05)] * 3,
                              "ganimation": [dict(au_mae=0.9)] * 3,
                              "warp_only": [dict(au_mae=0.7, l1_gt=0.08)] * 3,
                              "no_skip": [dict(au_mae=0.4, l1_gt=0.09)] * 3})
    claims = claim_ablations(runs)
    assert [c.id for c in claims] == ["4", "4.1", "4.2"]
    by_text = {c.text: c for c in claims[1:]}
    assert by_text["ablation `warp_only` is worse than DFT-Net"].verdict == SUPPORTED
    assert by_text["ablation `no_skip` is worse than DFT-Net"].verdict == NOT_SUPPORTED  # better au_mae
    assert claims[0].verdict == NOT_SUPPORTED and "warp_only" in claims[0].why and "no_skip" in claims[0].why
    none = claim_ablations(runs_of(tmp_path / "x", {"dftnet": [{}], "ganimation": [{}]}))
    assert none[0].verdict == NOT_MEASURABLE


def test_no_verdict_rests_on_a_model_that_did_not_learn(tmp_path):
    runs = runs_of(tmp_path, {"dftnet": [dict(au_mae=0.5, l1_gt=0.05, ms_per_image_b1=2.0, ms_per_image_b64=0.2)] * 3,
                              "ganimation": [dict(au_mae=0.9, l1_gt=0.09, ms_per_image_b1=4.0, ms_per_image_b64=0.3)] * 3,
                              # seed 1 edits no closer to the targets than the unedited sources (1.2)
                              "warp_only": [dict(au_mae=0.7, l1_gt=0.08), dict(au_mae=1.25, l1_gt=0.08),
                                            dict(au_mae=0.7, l1_gt=0.08)]})
    claims = {c.id: c for c in claim_ablations(runs)}
    assert claims["4.1"].verdict == NOT_MEASURABLE
    assert "did not beat the unedited-source floor in seed 1" in claims["4.1"].why
    assert claim_speed(runs).verdict == SUPPORTED  # speed is the architecture's: no gate
    assert claim_artifacts(runs).verdict == NOT_MEASURABLE
