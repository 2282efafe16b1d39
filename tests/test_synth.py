"""The synthetic renderer: AU locality, blink, determinism, splits, shapes and the dataset builder."""

import dataclasses
import itertools

import pytest
import torch

from dftnet.config import SyntheticConfig
from dftnet.data.aus import AU_INDEX, AU_NAMES, N_AUS
from dftnet.data.contact_sheet import write_contact_sheet
from dftnet.data.synth import REGIONS, render, render_uint8, sample_expressions, sample_identities
from dftnet.data.synth_dataset import build_synthetic_dataset

SIZE = 64


def _box_mask(name: str, size: int, dilate: int = 1) -> torch.Tensor:
    x0, y0, x1, y1 = REGIONS[name]
    m = torch.zeros(size, size, dtype=torch.bool)
    m[max(int(y0 * size) - dilate, 0):int(-(-y1 * size // 1)) + dilate,
      max(int(x0 * size) - dilate, 0):int(-(-x1 * size // 1)) + dilate] = True
    return m


@pytest.mark.parametrize("name", AU_NAMES)
def test_each_au_acts_inside_its_region(name):
    ident = sample_identities(4, seed=3, split="test")
    base = torch.zeros(4, N_AUS)
    base[2:] = sample_expressions(2, torch.Generator().manual_seed(1))
    lo, hi = base.clone(), base.clone()
    lo[:, AU_INDEX[name]], hi[:, AU_INDEX[name]] = 0.0, 5.0
    change = (render(ident, hi, SIZE) - render(ident, lo, SIZE)).abs().sum(1)  # 4 x H x W
    total = change.sum((1, 2))
    inside = (change * _box_mask(name, SIZE)).sum((1, 2))
    assert (total > 1.0).all(), f"{name} barely changes the image: {total.tolist()}"
    assert (inside / total > 0.95).all(), f"{name} acts outside {REGIONS[name]}: {(inside / total).tolist()}"


def test_full_blink_hides_the_iris():
    ident = sample_identities(3, seed=0)
    red = dataclasses.replace(ident, iris=torch.tensor([[1.0, 0.0, 0.0]]).expand(3, 3).clone())
    green = dataclasses.replace(ident, iris=torch.tensor([[0.0, 1.0, 0.0]]).expand(3, 3).clone())
    aus = torch.zeros(3, N_AUS)
    open_diff = (render(red, aus, SIZE) - render(green, aus, SIZE)).abs().sum()
    aus[:, AU_INDEX["AU45"]] = 5.0
    closed_diff = (render(red, aus, SIZE) - render(green, aus, SIZE)).abs().sum()
    assert open_diff > 5.0  # open eyes show the iris colour
    assert closed_diff == 0.0  # closed eyes show none of it
    # And the iris-coloured pixels leave the eye region.
    eyes = _box_mask("eyes", SIZE, dilate=0)
    img = render(red, aus, SIZE)[:, :, eyes]
    assert not ((img[:, 0] > 0.6) & (img[:, 1] < 0.2) & (img[:, 2] < 0.2)).any()


def test_deterministic_and_seed_dependent():
    aus = sample_expressions(4, torch.Generator().manual_seed(0))
    a = render_uint8(sample_identities(4, seed=5), aus, SIZE)
    b = render_uint8(sample_identities(4, seed=5), aus, SIZE)
    c = render_uint8(sample_identities(4, seed=6), aus, SIZE)
    assert torch.equal(a, b)
    assert (a != c).any(dim=(1, 2, 3)).all()
    assert torch.equal(sample_expressions(9, torch.Generator().manual_seed(2)),
                       sample_expressions(9, torch.Generator().manual_seed(2)))


def test_batch_independent_and_equal_aus_render_equal():
    ident = sample_identities(20, seed=1)
    aus = sample_expressions(20, torch.Generator().manual_seed(3))
    whole = render(ident, aus, SIZE)
    idx = torch.tensor([17, 3])
    assert torch.equal(render(ident.take(idx), aus[idx], SIZE), whole[idx])
    assert torch.equal(render(ident, aus, SIZE), whole)


def test_identities_of_every_split_are_disjoint():
    splits = {s: sample_identities(30, seed=0, split=s) for s in ("train", "test", "val", "judge")}
    for s1, s2 in itertools.combinations(splits, 2):
        for f in dataclasses.fields(splits[s1]):
            a, b = getattr(splits[s1], f.name).flatten(1), getattr(splits[s2], f.name).flatten(1)
            assert not (a[:, None] == b[None]).all(-1).any(), f"{f.name}: a {s1} identity equals a {s2} one"
    with pytest.raises(ValueError, match="split"):
        sample_identities(1, seed=0, split="holdout")


@pytest.mark.parametrize("size", [32, 64, 128])
def test_shapes_dtypes_ranges(size):
    ident = sample_identities(3, seed=0)
    aus = sample_expressions(3, torch.Generator().manual_seed(0))
    img = render(ident, aus, size)
    assert img.shape == (3, 3, size, size) and img.dtype == torch.float32
    assert img.min() >= 0 and img.max() <= 1
    u8 = render_uint8(ident, aus, size)
    assert u8.dtype == torch.uint8 and torch.equal(u8, (img * 255).round().to(torch.uint8))
    with pytest.raises(ValueError, match="aus"):
        render(ident, aus[:2], size)


def test_expressions_cover_every_au():
    aus = sample_expressions(2000, torch.Generator().manual_seed(0))
    assert aus.shape == (2000, N_AUS) and aus.dtype == torch.float32
    assert aus.min() >= 0 and aus.max() <= 5
    for j, name in enumerate(AU_NAMES):
        active = aus[:, j][aus[:, j] > 0.6]
        assert len(active) > 100, f"{name} is rarely active"
        assert active.max() > 4.0 and (active < 2.5).any(), f"{name} lacks a spread of intensities"
    assert (aus.sum(1) == 0).any()  # some neutral faces


def test_regions_are_valid_boxes():
    for name in AU_NAMES + ("eyes", "mouth"):
        x0, y0, x1, y1 = REGIONS[name]
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1


def test_build_synthetic_dataset():
    cfg = SyntheticConfig(seed=4, n_train_identities=3, n_test_identities=2, images_per_identity=4,
                          pairs_per_test_identity=3, n_val_identities=2, n_judge_identities=3)
    ds = build_synthetic_dataset(cfg, SIZE)
    assert len(ds) == 40 and ds.images.shape == (40, 3, SIZE, SIZE) and ds.images.dtype == torch.uint8
    # Four disjoint sets of people: the GANs' train, validation and test, and the judge's own.
    people = {name: {ds.identities[i] for i in ds.index(ids).tolist()}
              for name, ids in (("train", ds.train_ids), ("test", ds.test_ids), ("val", ds.val_ids),
                                ("judge", ds.judge_ids))}
    assert [len(p) for p in people.values()] == [3, 2, 2, 3]
    assert not any(people[a] & people[b] for a, b in itertools.combinations(people, 2))
    assert len(ds.val_pairs) == 6 and set(ds.val_pairs.source_ids) <= set(ds.val_ids)
    assert set(ds.val_pairs.target_ids) <= set(ds.val_ids) and ds.val_pairs.gt.shape == (6, 3, SIZE, SIZE)
    assert ds.aus.dtype == torch.float32 and torch.equal(ds.aus, torch.round(ds.aus * 100) / 100)
    assert ds.train_ids[:2] == ["train_p0000_e00", "train_p0000_e01"] and ds.test_ids[-1] == "test_p0001_e03"
    assert len(ds.train_ids) == 12 and len(ds.test_ids) == 8 and not set(ds.train_ids) & set(ds.test_ids)
    assert ds.identities[4] == "train_p0001" and ds.identities[19] == "test_p0001" and ds.identities[-1] == "judge_p0002"
    assert ds.meta["source"] == "synthetic" and ds.meta["renderer_version"] == 1 and ds.meta["image_size"] == SIZE
    pairs = ds.pairs
    assert pairs.pair_ids[0] == "pair_00000" and len(pairs) == 6 and pairs.gt.shape == (6, 3, SIZE, SIZE)
    person = {i: p for i, p in zip(ds.ids, ds.identities)}
    test_ident = sample_identities(2, cfg.seed, "test")
    for k in range(len(pairs)):
        src, tgt = pairs.source_ids[k], pairs.target_ids[k]
        assert src in ds.test_ids and tgt in ds.test_ids and person[src] != person[tgt]
        assert torch.equal(pairs.target_aus[k], ds.aus[ds.index([tgt])][0])
        p = int(person[src][-4:])
        gt = render_uint8(test_ident.take(torch.tensor([p])), pairs.target_aus[k:k + 1], SIZE)[0]
        assert torch.equal(pairs.gt[k], gt)
    # The source image is that identity rendered under its stored AUs.
    i = ds.index([pairs.source_ids[0]])
    p = int(person[pairs.source_ids[0]][-4:])
    assert torch.equal(ds.images[i], render_uint8(test_ident.take(torch.tensor([p])), ds.aus[i], SIZE))
    again = build_synthetic_dataset(cfg, SIZE)
    assert torch.equal(again.images, ds.images) and torch.equal(again.pairs.gt, pairs.gt)
    assert again.pairs.source_ids == pairs.source_ids


def test_single_test_identity_draws_fresh_targets():
    cfg = SyntheticConfig(n_train_identities=1, n_test_identities=1, images_per_identity=2, pairs_per_test_identity=2)
    pairs = build_synthetic_dataset(cfg, 32).pairs
    assert pairs.target_ids == ["", ""] and pairs.gt.shape == (2, 3, 32, 32)


def test_contact_sheet(tmp_path):
    path = tmp_path / "sheet.png"
    write_contact_sheet(path, size=32, n_identities=2, steps=(0, 5))
    from PIL import Image

    with Image.open(path) as im:
        assert im.width > 2 * 2 * 32 and im.height >= len(AU_NAMES) * 32
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.png"]
