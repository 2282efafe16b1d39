"""The artifact remedies (variants, not the papers'): the flow dead zone, the stretched
attention gate, the change gate, and the unchanged region's decomposition by part."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from dftnet.nets.blocks import GeneratorOutput, attention_for_regularisers, gate_small_changes, stretch_gate
from dftnet.config import ModelConfig
from dftnet.data.aus import N_AUS
from dftnet.eval.response import unchanged_parts
from dftnet.nets.generators import build_generator
from dftnet.nets.models import f, shrink_flow

pytestmark = pytest.mark.usefixtures("one_thread")


def test_dead_zone_zeroes_short_flow_exactly_and_shortens_long_flow_by_it():
    w = 8  # one pixel = 2 / 8 = 0.25 normalised units
    Phi = torch.zeros(1, 2, w, w)
    Phi[0, 0, 0, 0] = 0.25 * 0.4            # 0.4 px: inside a 0.5 px dead zone
    Phi[0, :, 1, 1] = torch.tensor([0.25 * 3.0, 0.25 * 4.0])  # 5 px long: becomes 4.5 px, same direction
    out = shrink_flow(Phi, 0.5)
    assert out[0, :, 0, 0].tolist() == [0.0, 0.0]
    assert out[0, :, 1, 1] * 4 == pytest.approx(torch.tensor([3.0, 4.0]) * 0.9, rel=1e-6)
    x = torch.rand(1, 3, w, w)
    assert torch.equal(f(torch.zeros(1, 2, w, w), x), x)  # what a zeroed vector does: the exact identity
    assert shrink_flow(Phi, 0.0) is Phi


def test_dead_zone_passes_the_gradient_straight_through():
    Phi = torch.full((1, 2, 4, 4), 0.01, requires_grad=True)  # inside the dead zone: no forward effect
    (shrink_flow(Phi, 0.5) * torch.arange(32.0).view(1, 2, 4, 4)).sum().backward()
    assert torch.equal(Phi.grad, torch.arange(32.0).view(1, 2, 4, 4))


def test_stretched_gate_reaches_zero_and_one_and_is_the_sigmoid_at_zero_stretch():
    s = torch.tensor([0.02, 0.5, 0.97])
    assert stretch_gate(s, 0.0) is s
    assert stretch_gate(s, 0.1).tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert stretch_gate(torch.tensor([0.6]), 0.1).item() == pytest.approx(1.2 * 0.6 - 0.1)


@pytest.mark.parametrize("generator", ["dftnet", "ganimation"])
def test_the_regularisers_read_the_sigmoid_and_zero_stretch_leaves_the_model_unchanged(generator):
    x, aus = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, N_AUS)
    cfg = ModelConfig(generator=generator, base_channels=4, n_res_blocks=1)
    torch.manual_seed(0)
    plain = build_generator(cfg, 16)
    torch.manual_seed(0)
    stretched = build_generator(ModelConfig(generator=generator, base_channels=4, n_res_blocks=1, attention_stretch=0.1), 16)
    assert plain.state_dict().keys() == stretched.state_dict().keys()
    a, b = plain(x, aus), stretched(x, aus)
    assert "A_sigmoid" not in a.parts and torch.equal(b.parts["A_sigmoid"], a.attention)
    assert torch.equal(attention_for_regularisers(b), a.attention)
    assert plain.regularisers(a, {"att"})["att"] == stretched.regularisers(b, {"att"})["att"]
    assert torch.equal(b.attention, stretch_gate(a.attention, 0.1))


def test_change_gate_copies_small_changes_ramps_middle_ones_and_keeps_large_ones():
    src = torch.zeros(1, 3, 1, 4)
    edit = src.clone()
    edit[0, :, 0, 0] = torch.tensor([0.02, -0.03, 0.0])  # largest channel 0.015 in [0, 1] units: under 0.02
    edit[0, :, 0, 1] = torch.tensor([0.06, 0.0, 0.0])    # 0.03: half way up the ramp (0.02 to 0.04)
    edit[0, :, 0, 2] = torch.tensor([0.0, 0.5, -0.1])    # 0.25: far above it, kept whole
    edit[0, :, 0, 3] = torch.tensor([0.0, 0.0, 0.08])    # 0.04: the ramp's top, kept whole
    out = gate_small_changes(edit, src, 0.02)
    assert out[0, :, 0, 0].tolist() == [0.0, 0.0, 0.0]   # exactly the source's pixel
    assert out[0, :, 0, 1].tolist() == pytest.approx([0.03, 0.0, 0.0], abs=1e-7)
    assert torch.equal(out[0, :, 0, 2:], edit[0, :, 0, 2:])
    assert gate_small_changes(edit, src, 0.0) is edit


def test_change_gate_passes_the_gradient_straight_through_and_is_off_at_zero():
    src = torch.zeros(1, 3, 2, 2)
    edit = torch.full((1, 3, 2, 2), 0.001, requires_grad=True)  # inside the gate: the output is the source
    out = gate_small_changes(edit, src, 0.02)
    assert torch.equal(out.detach(), src)
    (out * torch.arange(12.0).view(1, 3, 2, 2)).sum().backward()
    assert torch.equal(edit.grad, torch.arange(12.0).view(1, 3, 2, 2))
    x, aus = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, N_AUS)
    for generator in ("dftnet", "ganimation"):
        torch.manual_seed(0)
        plain = build_generator(ModelConfig(generator=generator, base_channels=4, n_res_blocks=1), 16)
        torch.manual_seed(0)
        gated = build_generator(ModelConfig(generator=generator, base_channels=4, n_res_blocks=1, change_deadzone=0.05), 16)
        a, b = plain(x, aus).image, gated(x, aus).image
        assert torch.equal(b, gate_small_changes(a, x, 0.05)) and not torch.equal(a, b)


class Copier(nn.Module):
    """Returns the source, with a flow of ``flow_px`` pixels and a synthesis weight of ``w``."""

    def __init__(self, flow_px: float, w: float):
        super().__init__()
        self.flow_px, self.w = flow_px, w
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x, aus):
        Phi = torch.zeros(x.shape[0], 2, *x.shape[2:])
        Phi[:, 0] = self.flow_px * 2 / x.shape[-1]
        return GeneratorOutput(image=x, attention=torch.full_like(x[:, :1], 1 - self.w),
                               parts={"Phi": Phi, "X_a": f(Phi, x)})


def test_unchanged_parts_on_a_hand_built_example():
    src = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    src[..., :, 2:] = 255                   # a vertical edge between columns 1 and 2
    gt = src.clone()
    unchanged = torch.ones(1, 4, 4, dtype=torch.bool)
    edit = src.clone()
    edit[..., 0, 0] = 10                    # one pixel of 16 not copied
    pp, why = unchanged_parts(Copier(0.5, 0.25), src, torch.zeros(1, N_AUS), gt, unchanged, edit, 8, "cpu")
    assert why is None
    assert pp["copied_unchanged"] == [pytest.approx(15 / 16)]
    assert pp["synth_unchanged"] == [pytest.approx(0.25)]
    assert pp["flow_unchanged"] == [pytest.approx(0.5)]
    # a backward warp by half a pixel along x: column 1 samples between 0 and 255 (off by 0.5 on
    # every row); columns 0 and 2 sample between equal pixels, column 3 the repeated border
    assert pp["l1_unchanged_warp"] == [pytest.approx(0.5 * 4 / 16, abs=1 / 255)]

    class NoFlow(Copier):
        def forward(self, x, aus):
            return GeneratorOutput(image=x, attention=torch.ones_like(x[:, :1]), parts={})

    pp, why = unchanged_parts(NoFlow(0, 0), src, torch.zeros(1, N_AUS), gt, unchanged, src, 8, "cpu")
    assert "no flow" in why and "flow_unchanged" not in pp and pp["copied_unchanged"] == [1.0]


def test_flow_magnitude_is_the_mean_vector_length_in_pixels():
    from dftnet.nets import losses
    from dftnet.nets.models import flow_in_pixels

    Phi_px = torch.zeros(2, 2, 2, 2)
    Phi_px[0, :, 0, 0] = torch.tensor([3.0, 4.0])   # 5 px
    Phi_px[1, 1, 1, 1] = -2.0                        # 2 px
    assert losses.flow_magnitude(Phi_px).item() == pytest.approx(7 / 8, abs=1e-5)
    Phi = torch.zeros(1, 2, 8, 8)
    Phi[0, 0] = 0.25                                 # one pixel in x at 8 px: 2 / 8
    assert losses.flow_magnitude(flow_in_pixels(Phi)).item() == pytest.approx(1.0, abs=1e-5)


def test_the_flow_term_is_trained_only_when_its_lambda_is_set():
    cfg = ModelConfig(base_channels=4, n_res_blocks=1)
    G = build_generator(cfg, 16)
    out = G(torch.rand(1, 3, 16, 16), torch.rand(1, N_AUS))
    assert "flow" not in G.regularisers(out, {"tv"}) and "flow" in G.regularisers(out, {"tv", "flow"})
    ganimation = build_generator(ModelConfig(generator="ganimation", base_channels=4, n_res_blocks=1), 16)
    assert "flow" not in ganimation.regularisers(ganimation(torch.rand(1, 3, 16, 16), torch.rand(1, N_AUS)), {"flow"})


def test_far_region_keeps_the_unchanged_pixels_beyond_the_halo():
    from dftnet.eval.response import far_region

    unchanged = torch.ones(1, 9, 9, dtype=torch.bool)
    unchanged[0, 4, 4] = False              # the true edit changes one pixel
    far = far_region(unchanged, 2)
    assert not far[0, 2:7, 2:7].any()       # the changed pixel and its 2-px halo
    assert far.sum() == 81 - 25 and far[0, 0, 0] and far[0, 4, 7]
