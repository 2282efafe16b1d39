"""Each figure writes a readable PNG with stand-in generators on a tiny drawn dataset."""

import math

import pytest
import torch
from PIL import Image
from torch import nn

from dftnet.data.aus import AU_INDEX, N_AUS
from dftnet.data.dataset import EvalPairs, FaceDataset
from dftnet.reporting.figures import edit_images, fig3_eyelids, fig4_intermediate, fig5_interpolation, interpolate_aus, \
    training_curves
from dftnet.nets.blocks import GeneratorOutput

SIZE = 32
EYE_BOX = (0.15, 0.2, 0.85, 0.55)


def draw_face(person: int, aus: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """uint8 3 x H x W: a disc in the person's tone, eyes that close with AU45, a mouth that opens with AU26."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    img = torch.full((3, size, size), 40.0)
    tone = torch.tensor([200.0, 150 + 10 * person, 120 + 15 * person])
    img[:, x**2 + y**2 < 0.8] = tone[:, None]
    openness = 0.12 * (1 - float(aus[AU_INDEX["AU45"]]) / 5) + 0.01
    for cx in (-0.35, 0.35):
        img[:, ((x - cx) ** 2 / 0.04 + (y + 0.25) ** 2 / openness**2) < 1] = 20.0
    mouth = 0.05 + 0.1 * float(aus[AU_INDEX["AU26"]]) / 5
    img[0, (x**2 / 0.12 + (y - 0.4) ** 2 / mouth**2) < 1] = 150.0
    return img.round().to(torch.uint8)


def fake_dataset(with_pairs: bool = True) -> FaceDataset:
    g = torch.Generator().manual_seed(0)
    aus = torch.rand(12, N_AUS, generator=g) * 2
    aus[::3, AU_INDEX["AU45"]] = 4.5  # a few closed eyes for the "opening" block
    persons = [i // 3 for i in range(12)]
    images = torch.stack([draw_face(p, a) for p, a in zip(persons, aus)])
    ids = [f"p{p}_{i}" for i, p in enumerate(persons)]
    pairs = None
    if with_pairs:
        tgt = torch.rand(4, N_AUS, generator=g) * 5
        src_ids = ids[6:10]
        gt = torch.stack([draw_face(persons[6 + i], tgt[i]) for i in range(4)])
        pairs = EvalPairs([f"pair{i}" for i in range(4)], src_ids, [""] * 4, tgt, gt)
    return FaceDataset(ids, images, aus, ids[:6], ids[6:], [str(p) for p in persons], pairs)


class StandInDFT(nn.Module):
    """Shifts the source by an AU-dependent number of rows (X_a), adds a texture B, mixes with A."""

    def __init__(self, texture: bool = True):
        super().__init__()
        self.texture = texture
        self.b = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x, aus):
        shift = int(round(float(aus[:, AU_INDEX["AU45"]].mean()) * 3))
        x_a = torch.roll(x, shifts=shift, dims=2)
        a = torch.sigmoid(x[:, :1] * 3 + aus.mean(1).view(-1, 1, 1, 1))
        parts = {"X_a": x_a, "Phi": torch.zeros(x.shape[0], 2, *x.shape[2:])}
        if not self.texture:
            return GeneratorOutput(x_a, torch.ones_like(a), parts)
        b = torch.tanh(self.b(x))
        parts["B"] = b
        return GeneratorOutput((1 - a) * b + a * x_a, a, parts)


class StandInGANimation(nn.Module):
    def forward(self, x, aus):
        c = torch.tanh(x.flip(-1) + aus[:, :3].view(-1, 3, 1, 1))
        a = torch.sigmoid(x[:, 1:2] * 2 - aus[:, -1:].view(-1, 1, 1, 1))
        return GeneratorOutput(a * x + (1 - a) * c, a, {"C": c})


@pytest.fixture
def gens():
    torch.manual_seed(0)
    return {"ganimation": StandInGANimation(), "dftnet": StandInDFT(), "warp_only": StandInDFT(texture=False)}


def png_size(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_interpolated_targets():
    s, t = torch.zeros(2, N_AUS), torch.full((2, N_AUS), 4.0)
    assert torch.equal(interpolate_aus(s, t, 0.0), s)
    assert torch.equal(interpolate_aus(s, t, 1.0), t)
    assert torch.allclose(interpolate_aus(s, t, 0.75), torch.full((2, N_AUS), 3.0))


def test_alpha_zero_is_the_edit_at_source_aus(gens):
    ds = fake_dataset()
    src, src_aus, tgt = ds.images[:3], ds.aus[:3], ds.aus[3:6]
    at_zero = edit_images(gens["dftnet"], src, interpolate_aus(src_aus, tgt, 0.0))
    assert torch.equal(at_zero, edit_images(gens["dftnet"], src, src_aus))
    assert not torch.equal(at_zero, edit_images(gens["dftnet"], src, interpolate_aus(src_aus, tgt, 1.0)))


def test_fig3_eyelids(tmp_path, gens):
    ds = fake_dataset()
    people = {i: int(ds.identities[i]) for i in range(len(ds))}
    out = tmp_path / "fig3.png"
    gens["dftnet"].train()
    fig3_eyelids(gens, ds, out, EYE_BOX, n_rows=3, ground_truth=lambda n, aus: draw_face(people[n], aus))
    w, h = png_size(out)
    assert w > 600 and h > 300  # 6 columns; a closing block and an opening block
    assert gens["dftnet"].training  # the caller's mode is restored
    assert not list(tmp_path.glob("*.tmp"))


def test_fig4_intermediate(tmp_path, gens):
    out = tmp_path / "fig4.png"
    fig4_intermediate(gens["dftnet"], gens["ganimation"], fake_dataset(), [0, 1, 2], out)
    w, h = png_size(out)
    assert w > 900 and h > 300  # 9 columns, 3 rows


def test_fig5_interpolation(tmp_path, gens):
    out = tmp_path / "fig5.png"
    fig5_interpolation(gens, fake_dataset(), out, alphas=(0.0, 0.5, 1.0), n_rows=2)
    w, h = png_size(out)
    assert w > 1000 and h > 200  # 2 + 3 x 3 columns
    fig5_interpolation({"dftnet": gens["dftnet"]}, fake_dataset(with_pairs=False), tmp_path / "nopairs.png")
    assert png_size(tmp_path / "nopairs.png")[0] > 300


def test_training_curves(tmp_path):
    logs = {}
    for variant in ("dftnet", "ganimation"):
        for seed in (0, 1):
            path = tmp_path / variant / f"seed{seed}" / "log.csv"
            path.parent.mkdir(parents=True)
            rows = ["step,epoch,lr,d_adv,d_gp,d_cond,g_adv,g_cond,g_cyc,g_tv,g_att,g_att_tv"]
            for s in range(0, 200, 10):
                tv = "" if variant == "ganimation" else f"{0.1 / (1 + s):.4f}"  # weight 0: empty column
                rows.append(f"{s},{s // 50},1e-4,{-math.exp(-s / 80):.4f},0.1,0.2,"
                            f"{math.sin(s / 20):.4f},0.3,0.2,{tv},0.4,")
            path.write_text("\n".join(rows) + "\n")
            logs[f"{variant}/seed{seed}"] = path
    out = tmp_path / "curves.png"
    training_curves(logs, out)
    w, h = png_size(out)
    assert w > 800 and h > 600


def test_au_response_draws_every_variant_beside_the_truth_and_the_neutral_face(tmp_path):
    from pathlib import Path

    from dftnet.reporting.figures import au_response
    from dftnet.reporting.results import Run, Runs

    def run(variant, seed, raise_au01):
        per = lambda v: {"per_au": {"AU01": v, "AU12": 0.5, "AU45": float("nan")}}  # noqa: E731
        progress = {"judge": {"edit": {"raise": per(raise_au01), "lower": per(0.3)},
                              "gt": {"raise": per(0.9), "lower": per(0.8)}, "neutral": {"raise": per(-0.1),
                                                                                     "lower": per(0.9)}}}
        return Run(Path("x"), variant, seed, {}, {}, {}, {}, {}, {}, {}, progress=progress)

    out = tmp_path / "au_response.png"
    au_response(Runs([run("dftnet", 0, 0.4), run("dftnet", 1, 0.6), run("ganimation", 0, 0.2)]), out)
    w, h = png_size(out)
    assert w > 800 and h > 500
