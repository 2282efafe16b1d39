"""Floors that copying and erasing cannot beat: the neutral face, the signed AU response, the
pixel masks, and the gate on real evaluation output of a tiny synthetic dataset."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from dftnet.nets.blocks import GeneratorOutput
from dftnet.reporting.claims import INCONCLUSIVE, Bootstrap, gate
from dftnet.config import EvalConfig, SyntheticConfig
from dftnet.data.aus import N_AUS
from dftnet.data.synth_dataset import build_synthetic_dataset, neutral_faces
from dftnet.eval.evaluate import evaluate_run
from dftnet.eval.judge import AUJudge, judge_predict
from dftnet.eval.response import mask_l1, masks, progress
from dftnet.data.imageops import to_model
from dftnet.reporting.results import load_run, Runs
from dftnet.stages import write_json

pytestmark = pytest.mark.usefixtures("one_thread")


def test_progress_matches_a_hand_computed_example():
    # 3 pairs, AUs 0 and 1 only (the rest unasked: target = label = 0, readings 0)
    labels = torch.zeros(3, N_AUS)
    target = torch.zeros(3, N_AUS)
    read_src, read_edit = torch.zeros(3, N_AUS), torch.zeros(3, N_AUS)
    labels[:, :2] = torch.tensor([[0.0, 3.0], [1.0, 0.5], [2.0, 2.0]])
    target[:, :2] = torch.tensor([[2.0, 1.0], [4.0, 1.0], [2.5, 2.0]])   # asked: +2, -2 | +3, (+0.5: not asked) | none
    read_src[:, :2] = torch.tensor([[0.5, 2.5], [1.0, 0.0], [2.0, 2.0]])
    read_edit[:, :2] = torch.tensor([[1.5, 1.5], [2.5, 0.4], [0.0, 0.0]])
    p = progress(read_edit, read_src, target, labels)
    # pair 0: raise (1.5 - 0.5) / 2 = 0.5, lower (1.5 - 2.5) / -2 = 0.5; pair 1: raise (2.5 - 1) / 3 = 0.5
    assert p["raise"]["per_pair"][:2] == pytest.approx([0.5, 0.5]) and math.isnan(p["raise"]["per_pair"][2])
    assert p["lower"]["per_pair"][0] == pytest.approx(0.5) and math.isnan(p["lower"]["per_pair"][1])
    assert p["raise"]["mean"] == pytest.approx(0.5) and p["raise"]["n_asked"] == 2 and p["lower"]["n_asked"] == 1
    assert p["raise"]["per_au"]["AU01"] == pytest.approx(0.5) and math.isnan(p["raise"]["per_au"]["AU02"])
    # the unedited source makes no progress; an all-zero (neutral) reading never raises
    assert progress(read_src, read_src, target, labels)["raise"]["mean"] == 0
    assert progress(torch.zeros_like(read_src), read_src, target, labels)["raise"]["mean"] <= 0


def test_masks_split_the_raise_mask_from_the_unchanged_region():
    src = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    neutral, gt = src.clone(), src.clone()
    gt[..., 0, 0] = 200            # a new feature: differs from source and neutral
    neutral[..., 0, 1] = 100
    gt[..., 0, 1] = 100            # the neutral face's look: differs from the source only
    raise_mask, unchanged = masks(gt, src, neutral)
    assert raise_mask[0].nonzero().tolist() == [[0, 0]]
    assert not unchanged[0, 0, 0] and not unchanged[0, 0, 1] and unchanged[0, 3, 3]
    edit = gt.clone()
    edit[..., 3, 3] = 51           # an artifact where nothing should change: 0.2 on one of 14 pixels
    assert mask_l1(edit, gt, unchanged)[0] == pytest.approx(0.2 / 14, rel=1e-5)
    assert mask_l1(src, gt, raise_mask)[0] == pytest.approx(200 / 255, rel=1e-5)


class Lookup(nn.Module):
    """Answers each source with a fixed image (matched by its pixels): the neutral face, or the source itself."""

    def __init__(self, sources: torch.Tensor, answers: torch.Tensor):
        super().__init__()
        self.keys = [to_model(s).flatten() for s in sources]
        self.answers = to_model(answers)
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x, aus):
        rows = [next(i for i, k in enumerate(self.keys) if torch.equal(k, xi.flatten())) for xi in x]
        return GeneratorOutput(image=self.answers[rows], attention=torch.ones_like(x[:, :1]), parts={})


@pytest.fixture(scope="module")
def synthetic():
    cfg = SyntheticConfig(seed=1, n_train_identities=2, n_test_identities=4, n_val_identities=2, n_judge_identities=2,
                          images_per_identity=3, pairs_per_test_identity=5)
    return build_synthetic_dataset(cfg, 32)


def test_floors_on_real_evaluation_output_and_the_gate_refuses_copying_and_erasing(synthetic, tmp_path):
    ds = synthetic
    torch.manual_seed(0)
    judge = AUJudge(4, 32).eval()
    with torch.no_grad():  # a judge that reads something: its head's bias moves readings off 0
        judge.head.bias.fill_(1.0)
    cfg = EvalConfig(batch_size=8, bootstrap=20, identity=False)
    sources = ds.images[ds.index(ds.pairs.source_ids)]
    neutral = neutral_faces(ds, ds.pairs.source_ids)
    # the neutral face is each source person with every AU at 0: renders of the test people, not of others
    assert neutral.shape == sources.shape and not torch.equal(neutral, sources)
    target = ds.pairs.target_aus.float()
    paths = []
    for name, answers in (("copier", sources), ("eraser", neutral)):
        metrics, _ = evaluate_run(Lookup(sources, answers), None, ds, judge, cfg)
        s = metrics["summary"]
        # the neutral floor is the judge's error on the neutral render; the ceiling its error on the truth
        assert s["au_mae_neutral"] == pytest.approx(float((judge_predict(judge, neutral) - target).abs().mean()), rel=1e-5)
        assert s["au_mae_gt"] == pytest.approx(float((judge_predict(judge, ds.pairs.gt) - target).abs().mean()), rel=1e-5)
        ref = "_source" if name == "copier" else "_neutral"
        for key in ("au_mae", "au_raise", "au_lower", "l1_raise", "l1_unchanged"):
            assert s[key] == pytest.approx(s[key + ref]), (name, key)
        assert s["au_raise_source"] == 0 and s["l1_unchanged_source"] <= 0.05 and s["l1_unchanged"] >= 0
        assert metrics["pairs"]["source_identity"][0].startswith("test_p")
        for seed in (0, 1):
            path = tmp_path / name / f"seed{seed}.json"
            write_json(path, {"variant": name, "seed": seed, **metrics})
            paths.append(path)
    runs = Runs(load_run(p) for p in paths)
    for name in ("copier", "eraser"):
        assert gate(runs, name, Bootstrap()).status == INCONCLUSIVE, name
