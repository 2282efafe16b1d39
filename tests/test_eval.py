"""Evaluation metrics on tiny CPU fixtures.

FID and LPIPS run their real code paths with randomly initialised networks of the standard
architectures, injected by the tests (``fid_model``, ``lpips_model``): the weights cannot be
downloaded here, and a random network is enough to check the maths and the image path,
never to report a number.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dftnet.config import EvalConfig
from dftnet.eval import fid as fidm
from dftnet.eval import lpips_metric as lpm
from dftnet.eval.evaluate import SUMMARY_KEYS, evaluate_run
from dftnet.eval.identity import find_dlib_models
from dftnet.eval.judge import AUJudge
from dftnet.eval.paired import box_to_slices, compute_paired
from dftnet.eval.schema import RUN_METRICS
from dftnet.eval.stats import bootstrap_ci, mean_ci_over_seeds
from dftnet.eval.timing import time_generator, time_generators
from dftnet.data.imageops import to_model, to_uint8
from dftnet.nets.blocks import GeneratorOutput
from helpers import EYES, MOUTH, ReturnSource, TinyConvGen, TinyCritic, tiny_dataset


pytestmark = pytest.mark.usefixtures("one_thread")

# ------------------------------------------------------------------------ stand-ins


@pytest.fixture
def no_hub_weights(tmp_path, monkeypatch):
    """An empty torch hub cache: no FID or LPIPS weights anywhere."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    return tmp_path


# ------------------------------------------------------------------------------ FID
def random_inception():
    """pytorch-fid's Inception with random He-initialised convs. PyTorch's default conv init
    shrinks activations ~1e-8 by pool3 (eval-mode BN does not renormalise), so distinct image
    sets would all give FID ~0 and the tests could not fail; He init keeps unit scale."""
    model = fidm.build_fid_inception(None)
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    return model.eval()


@pytest.fixture(scope="module")
def inception():
    torch.manual_seed(0)
    return random_inception()


def test_fid_of_a_set_with_itself_is_zero_and_of_another_is_not(inception):
    g = torch.Generator().manual_seed(1)
    real = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=g)
    feats = fidm.images_to_features(inception, torch.cat([real, (real.float() * 0.6).to(torch.uint8)]), batch_size=3)
    assert feats.shape == (8, 2048)
    # Batch-size independence of the feature extraction.
    np.testing.assert_allclose(fidm.images_to_features(inception, real[:2], batch_size=2), feats[:2], rtol=1e-4, atol=1e-5)
    s_real, s_other = fidm.features_to_statistics(feats[:4]), fidm.features_to_statistics(feats[4:])
    # N < 2048 leaves the covariance singular; the eigenvalue form stays real, and a set's
    # distance to itself is zero up to rounding.
    assert abs(fidm.statistics_to_fid(*s_real, *s_real)) < 1e-3
    assert fidm.statistics_to_fid(*s_real, *s_other) > 1e-2


@pytest.mark.parametrize("n, dims", [(300, 20), (10, 32)])  # well-conditioned; singular (N < dims)
def test_statistics_to_fid_equals_pytorch_fid(n, dims):
    from pytorch_fid.fid_score import calculate_frechet_distance

    r = np.random.default_rng(0)
    a = fidm.features_to_statistics(r.normal(size=(n, dims)))
    b = fidm.features_to_statistics(r.normal(size=(n, dims)) * 1.3 + 0.2)
    assert fidm.statistics_to_fid(*a, *b) == pytest.approx(calculate_frechet_distance(*a, *b), rel=1e-6)


def test_fid_without_weights_is_none_with_where_it_looked(no_hub_weights):
    x = torch.zeros(4, 3, 16, 16, dtype=torch.uint8)
    out = fidm.compute_fid(x, x)
    assert out["value"] is None and str(no_hub_weights) in out["reason"] and "not found" in out["reason"]
    assert out["small_n"] is True and out["n_real"] == 4
    out = fidm.compute_fid(x, x, weights_path=str(no_hub_weights / "inception.pth"))
    assert out["value"] is None and "inception.pth" in out["reason"]


def test_fid_weights_load_from_the_hub_cache(no_hub_weights):
    """The real loading path, with a random state dict standing in for the downloaded file."""
    from pytorch_fid import inception as pfi

    with fidm._offline_fid_inception(None):
        net = pfi.fid_inception_v3()
    (no_hub_weights / "checkpoints").mkdir()
    torch.save(net.state_dict(), no_hub_weights / "checkpoints" / fidm.FID_WEIGHTS_FILE)
    model, reason, info = fidm.load_fid_inception()
    assert reason is None and info["weights_file"].endswith(fidm.FID_WEIGHTS_FILE)
    assert torch.equal(model.blocks[0][0].conv.weight, net.Conv2d_1a_3x3.conv.weight)
    assert torch.equal(model.blocks[3][2].branch_pool.conv.weight, net.Mixed_7c.branch_pool.conv.weight)


# ---------------------------------------------------------------------------- LPIPS
def test_lpips_is_zero_on_itself_and_symmetric():
    torch.manual_seed(0)
    model = lpm.build_lpips().eval()
    g = torch.Generator().manual_seed(2)
    a = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=g)
    b = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=g)
    assert torch.all(lpm.lpips_distances(model, a, a) == 0)
    ab, ba = lpm.lpips_distances(model, a, b), lpm.lpips_distances(model, b, a)
    assert torch.all(ab > 0) and torch.allclose(ab, ba, atol=1e-6)


def test_lpips_without_weights_is_none_and_loads_trunk_from_file(no_hub_weights):
    import torchvision

    x = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    out = lpm.compute_lpips({"source_edit": (x, x)})
    assert out["source_edit"]["mean"] is None and str(no_hub_weights) in out["reason"]
    trunk = torchvision.models.alexnet(weights=None).state_dict()
    (no_hub_weights / "checkpoints").mkdir()
    torch.save(trunk, no_hub_weights / "checkpoints" / lpm.ALEXNET_FILE)
    model, reason, _ = lpm.load_lpips()
    assert reason is None
    assert torch.equal(model.net.slice5._modules["10"].weight, trunk["features.10.weight"])


# ---------------------------------------------------------------------------- paired
def test_paired_identical_and_region_restricted_difference():
    g = torch.Generator().manual_seed(3)
    a = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8, generator=g)
    same = compute_paired(a, a.clone(), {"eyes": EYES, "mouth": MOUTH})["mean"]
    assert same["l1"] == 0 and same["ssim"] == pytest.approx(1.0) and same["psnr"] >= 100
    b = a.clone()
    rows, cols = box_to_slices(EYES, 64)
    b[..., rows, cols] = 255 - b[..., rows, cols]
    diff = compute_paired(b, a, {"eyes": EYES, "mouth": MOUTH})["mean"]
    assert diff["l1_eyes"] > 0.1 and diff["l1_mouth"] == 0 and diff["ssim_eyes"] < 0.9
    assert 0 < diff["l1"] < diff["l1_eyes"]
    assert compute_paired(a, None)["mean"] is None


# -------------------------------------------------------------------------- identity
def test_identity_embedding_distances():
    folder, reason = find_dlib_models()
    if folder is None:
        pytest.skip(reason)
    from dftnet.eval.identity import compute_identity

    g = torch.Generator().manual_seed(4)
    src = torch.randint(0, 256, (2, 3, 48, 48), dtype=torch.uint8, generator=g)
    out = compute_identity(src, torch.cat([src, src.flip(0)]), [0, 1, 0, 1], [1, 0])
    d = out["per_pair"]
    assert d[0] == pytest.approx(0, abs=1e-6) and d[1] == pytest.approx(0, abs=1e-6)
    assert d[2] > 0 and d[3] > 0 and out["mean_dist_other"] > 0
    assert out["n_sources_detected"] + out["n_sources_whole_crop"] == 2


# ---------------------------------------------------------------------------- timing
def test_timing_is_positive_ordered_and_interleaved():
    torch.manual_seed(0)
    out = time_generator(TinyConvGen(), image_size=16, batch_sizes=[1, 64], runs=5, warmup=1)
    b1, b64 = out["b1"], out["b64"]
    assert b64["ms_per_batch_median"] > b1["ms_per_batch_median"] > 0
    for r in (b1, b64):
        assert r["ms_per_batch_q1"] <= r["ms_per_batch_median"] <= r["ms_per_batch_q3"]
        assert 0 < r["ms_per_image_median"] < float("inf") and r["runs"] == 5
    assert out["environment"]["threads"] >= 1 and out["environment"]["torch"] == torch.__version__
    both = time_generators({"a": TinyConvGen(), "b": ReturnSource()}, 16, [4], runs=5, warmup=0)
    assert both["protocol"]["interleaved"] and both["ratios"]["a/b"]["b4"] > 0


# ----------------------------------------------------------------------------- stats
def test_bootstrap_ci_contains_the_mean_shrinks_and_is_seeded():
    r = np.random.default_rng(0)
    small, large = r.normal(1.0, 1.0, 20), r.normal(1.0, 1.0, 2000)
    lo, hi = bootstrap_ci(small, 500, seed=0)
    assert lo < small.mean() < hi
    lo2, hi2 = bootstrap_ci(large, 500, seed=0)
    assert lo2 < large.mean() < hi2 and hi2 - lo2 < (hi - lo) / 3
    assert bootstrap_ci(small, 500, seed=0) == [lo, hi] and bootstrap_ci(small, 500, seed=1) != [lo, hi]


def test_mean_ci_over_seeds_uses_student_t():
    out = mean_ci_over_seeds([1.0, 2.0, 3.0])
    half = 4.302652729911275 / np.sqrt(3)  # t(0.975, df=2) * std 1 / sqrt(3)
    assert out["mean"] == 2.0 and out["ci"] == pytest.approx([2 - half, 2 + half])
    assert mean_ci_over_seeds([1.0])["ci"] is None


# -------------------------------------------------------------------------- evaluate
def test_evaluate_run_with_random_nets_round_trips_sources():
    ds = tiny_dataset()
    cfg = EvalConfig(batch_size=4, bootstrap=20, timing_runs=5, timing_warmup=0, timing_batch_sizes=[1, 2])
    torch.manual_seed(0)
    metrics, edits = evaluate_run(ReturnSource(), TinyCritic(), ds, AUJudge(4, 32), cfg,
                                  regions={"eyes": EYES, "mouth": MOUTH}, fid_model=random_inception(),
                                  lpips_model=lpm.build_lpips().eval())
    sources = ds.images[ds.index(ds.pairs.source_ids)]
    assert edits.dtype == torch.uint8 and torch.equal(edits, sources)
    s = metrics["summary"]
    assert set(s) == set(SUMMARY_KEYS)  # the schema's metrics and nothing else (no timing: per architecture)
    # a generator that changes nothing scores exactly its floor on every metric that has one
    floors = [m for m in RUN_METRICS if m.floor]
    assert {m.key for m in floors} >= {"au_mae", "au_mae_AU45", "l1_gt", "ssim_gt_eyes", "ssim_gt_mouth"}
    for m in floors:
        assert s[m.key] == pytest.approx(s[m.floor]), m.key
        assert metrics["per_pair"][m.key] == pytest.approx(metrics["per_pair"][m.floor]), m.key
    # every per-pair metric: one value per test pair, its mean is the summary, its own CI brackets it
    for key, values in metrics["per_pair"].items():
        if values is not None:
            assert len(values) == len(ds.pairs) and s[key] == pytest.approx(np.mean(values)), key
            lo, hi = metrics["ci"][key]
            assert lo - 1e-9 <= s[key] <= hi + 1e-9, key
    assert s["au_mae_critic"] > 0
    assert s["lpips"] == 0 and s["l1_gt"] == 0 and s["ssim_gt"] == pytest.approx(1.0)
    assert metrics["paired"]["source_floor"]["l1"] == 0
    assert abs(s["fid"]) < 1e-3  # the edits are the test images themselves
    assert metrics["fid"]["small_n"] and metrics["protocol"]["injected_networks"] == ["fid", "lpips"]
    if find_dlib_models()[0] is not None:
        assert s["id_dist"] == pytest.approx(0, abs=1e-6) and s["id_share_same"] == 1.0
    json.dumps(metrics, allow_nan=False)


def test_evaluate_run_quantises_edits_like_real_images(no_hub_weights):
    class Shift(ReturnSource):
        def forward(self, x, aus):
            return GeneratorOutput(image=x + 0.3 / 127.5, attention=x[:, :1], parts={})

    ds = tiny_dataset()
    cfg = EvalConfig(batch_size=4, bootstrap=20, timing_runs=5, timing_warmup=0, timing_batch_sizes=[1], identity=False)
    metrics, edits = evaluate_run(Shift(), None, ds, None, cfg, regions={"eyes": EYES, "mouth": MOUTH})
    sources = ds.images[ds.index(ds.pairs.source_ids)]
    assert torch.equal(edits, to_uint8(to_model(sources) + 0.3 / 127.5))
    s, why = metrics["summary"], metrics["protocol"]["unavailable"]
    assert s["fid"] is None and s["lpips"] is None and s["au_mae"] is None and s["id_dist"] is None
    assert str(no_hub_weights) in why["fid"] and str(no_hub_weights) in why["lpips"]
    assert {"au", "au_critic", "identity"} <= set(why)
    assert s["l1_gt"] is not None and "ms_per_image_b1" not in s
    assert s["l1_gt_source"] == pytest.approx(metrics["paired"]["source_floor"]["l1"])
    json.dumps(metrics, allow_nan=False)
