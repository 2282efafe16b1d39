"""Shape contracts, the warp f, Eq. (5), the ablations, the critic heads and GANimation's port."""

import dataclasses

import pytest
import torch

from baselines.ganimation import GANimationGenerator
from dftnet.nets import blocks, losses, models
from dftnet.config import ModelConfig
from dftnet.data.aus import N_AUS
from dftnet.runtime.errors import ConfigError
from dftnet.nets.blocks import GeneratorOutput
from dftnet.nets.generators import build_critic, build_generator, count_parameters, generator_cost
from dftnet.nets.models import D, DFTNet, compose, f

TINY = ModelConfig(base_channels=8, n_down=2, n_res_blocks=1, critic_channels=8, critic_layers=4)


def inputs(size: int, batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=g) * 2 - 1, torch.rand(batch, N_AUS, generator=g)


def randomise_flow_head(G: DFTNet) -> None:
    """Phi's head starts at zero; give it weights so the warp does something."""
    with torch.no_grad():
        G.F.to_Phi.weight.normal_(0, 0.02)


# ------------------------------------------------------------------ shape contracts
@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("generator", ["dftnet", "ganimation"])
def test_generator_shapes(size, generator):
    G = build_generator(dataclasses.replace(TINY, generator=generator), size)
    x, aus = inputs(size)
    out = G(x, aus)
    assert isinstance(out, GeneratorOutput)
    assert out.image.shape == (2, 3, size, size) and out.attention.shape == (2, 1, size, size)
    assert out.image.min() >= -1 and out.image.max() <= 1
    assert out.attention.min() >= 0 and out.attention.max() <= 1
    if generator == "dftnet":
        assert {k: tuple(v.shape) for k, v in out.parts.items()} == {
            "X_a": (2, 3, size, size), "B": (2, 3, size, size), "Phi": (2, 2, size, size)}
    else:
        assert isinstance(G, GANimationGenerator) and out.parts["C"].shape == (2, 3, size, size)


@pytest.mark.parametrize("size,layers", [(64, 4), (128, 4), (128, 6)])
def test_critic_heads_and_shapes(size, layers):
    D = build_critic(dataclasses.replace(TINY, critic_layers=layers), size)
    assert isinstance(D.D_A, torch.nn.Conv2d) and isinstance(D.D_C, torch.nn.Conv2d)
    assert D.D_C.kernel_size == (size // 2**layers,) * 2  # official: image_size / 64 with 6 layers
    scores, aus = D(inputs(size)[0])
    assert scores.shape == (2, 1, size // 2**layers, size // 2**layers)
    assert aus.shape == (2, N_AUS)


def test_critic_channels_double_up_to_the_cap(monkeypatch):
    assert models.CRITIC_MAX_CHANNELS == 2048
    monkeypatch.setattr(models, "CRITIC_MAX_CHANNELS", 32)  # 2048 itself would build 100M weights
    critic = D(dataclasses.replace(TINY, critic_layers=5), 64)
    assert [m.out_channels for m in critic.main if isinstance(m, torch.nn.Conv2d)] == [8, 16, 32, 32, 32]


def test_bad_sizes_raise_config_errors_naming_the_key():
    with pytest.raises(ConfigError, match="model.critic_layers"):
        D(dataclasses.replace(TINY, critic_layers=5), 48)
    with pytest.raises(ConfigError, match="model.n_down"):
        DFTNet(TINY, 30)
    with pytest.raises(ConfigError, match="model.n_down"):
        GANimationGenerator(dataclasses.replace(TINY, n_down=3), 36)


# ----------------------------------------------------------------------- the warp f
def test_zero_flow_is_the_identity():
    x = inputs(16)[0]
    assert torch.allclose(f(torch.zeros(2, 2, 16, 16), x), x, atol=1e-5)


def test_flow_of_2_over_W_moves_the_image_by_one_pixel():
    x = torch.rand(1, 3, 12, 16)
    Phi = torch.zeros(1, 2, 12, 16)
    Phi[:, 0] = 2 / 16  # x offset: X_a[.., i] = X_s[.., i + 1]
    assert torch.allclose(f(Phi, x)[..., :, :-1], x[..., :, 1:], atol=1e-5)
    assert torch.allclose(f(Phi, x)[..., :, -1], x[..., :, -1], atol=1e-5)  # border padding
    Phi = torch.zeros(1, 2, 12, 16)
    Phi[:, 1] = -2 / 12  # y offset, one pixel up: X_a[.., j, :] = X_s[.., j - 1, :]
    assert torch.allclose(f(Phi, x)[..., 1:, :], x[..., :-1, :], atol=1e-5)


# ---------------------------------------------------------------- Eq. (5), DFT-Net
def test_compose_is_eq5():
    A = torch.tensor([0.0, 0.25, 1.0]).view(1, 1, 1, 3)
    B = torch.tensor([1.0, 1.0, 1.0]).view(1, 1, 1, 3)
    X_a = torch.tensor([-1.0, -1.0, -1.0]).view(1, 1, 1, 3)
    assert torch.allclose(compose(A, B, X_a), torch.tensor([1.0, 0.5, -1.0]).view(1, 1, 1, 3))


def test_dftnet_output_is_composed_from_its_parts():
    G = DFTNet(TINY, 32)
    randomise_flow_head(G)
    out = G(*inputs(32))
    A, B, X_a = out.attention, out.parts["B"], out.parts["X_a"]
    assert torch.allclose(out.image, (1 - A) * B + A * X_a)
    assert torch.allclose(X_a, f(out.parts["Phi"], inputs(32)[0]))


def test_at_init_the_warp_is_the_identity_and_still_learns():
    G = DFTNet(TINY, 32)
    x, aus = inputs(32)
    out = G(x, aus)
    assert out.parts["Phi"].abs().max() == 0
    assert torch.allclose(out.parts["X_a"], x, atol=1e-5)
    out.image.square().mean().backward()
    assert G.F.to_Phi.weight.grad.abs().sum() > 0  # zero init does not freeze the head


def test_warp_only_has_no_texture_decoder_and_outputs_X_a():
    cfg = dataclasses.replace(TINY, texture=False)
    G = DFTNet(cfg, 32)
    randomise_flow_head(G)
    assert G.T is None and G.F.to_A is None
    assert not [n for n, _ in G.named_parameters() if n.startswith("T.")]
    out = G(*inputs(32))
    assert "B" not in out.parts and torch.equal(out.image, out.parts["X_a"])
    assert torch.equal(out.attention, torch.ones(2, 1, 32, 32))
    assert count_parameters(G) < count_parameters(DFTNet(TINY, 32))


def test_no_skip_texture_decoder_takes_no_skip_inputs():
    with_skip, without = DFTNet(TINY, 32), DFTNet(dataclasses.replace(TINY, skip=False), 32)
    assert count_parameters(without.T) < count_parameters(with_skip.T)
    assert without.T.up.out_channels == TINY.base_channels
    assert with_skip.T.up.out_channels == 2 * TINY.base_channels
    h = torch.randn(1, TINY.base_channels * 4, 8, 8)
    assert without.T(h, []).shape == (1, 3, 32, 32)  # skips are not read
    with pytest.raises(IndexError):
        with_skip.T(h, [])


# -------------------------------------------------------------------- GANimation
def test_ganimation_composition_is_the_official_one():
    G = GANimationGenerator(TINY, 32)
    x, aus = inputs(32)
    out = G(x, aus)
    A, C = out.attention, out.parts["C"]
    assert torch.allclose(out.image, A * x + (1 - A) * C)


def official_generator_parameters(c: int, n_down: int, n_res: int) -> int:
    """networks/generator_wasserstein_gan.py, counted by hand: convs without bias,
    InstanceNorm(affine) adds 2 per channel."""
    total = (3 + N_AUS) * c * 49 + 2 * c
    for i in range(n_down):  # each down has a mirrored up with the same weight count
        total += 2 * (c * 2**i * c * 2 ** (i + 1) * 16) + 2 * c * 2 ** (i + 1) + 2 * c * 2**i
    top = c * 2**n_down
    total += n_res * 2 * (top * top * 9 + 2 * top)
    return total + c * 3 * 49 + c * 49


@pytest.mark.parametrize("c,n_res", [(8, 1), (64, 6)])
def test_ganimation_parameter_count_matches_the_official_topology(c, n_res):
    cfg = dataclasses.replace(TINY, generator="ganimation", base_channels=c, n_res_blocks=n_res)
    assert count_parameters(GANimationGenerator(cfg, 128)) == official_generator_parameters(c, 2, n_res)


# ------------------------------------------------------------------- regularisers
def test_regularisers_return_only_active_applicable_terms():
    x, aus = inputs(32)
    G = DFTNet(TINY, 32)
    out = G(x, aus)
    terms = G.regularisers(out, {"tv", "att", "att_tv"})
    assert terms["att"] == losses.attention_loss(out.attention)
    assert terms["att_tv"] == losses.total_variation(out.attention)
    assert terms["tv"] == losses.flow_smoothness(models.flow_in_pixels(out.parts["Phi"]))
    assert set(G.regularisers(out, {"tv"})) == {"tv"}
    warp_only = DFTNet(dataclasses.replace(TINY, texture=False), 32)
    assert set(warp_only.regularisers(warp_only(x, aus), {"tv", "att", "att_tv"})) == {"tv"}
    gan = GANimationGenerator(TINY, 32)
    out = gan(x, aus)
    terms = gan.regularisers(out, {"tv", "att", "att_tv"})
    assert set(terms) == {"att", "att_tv"} and terms["att"] == out.attention.mean()


# ---------------------------------------------------------- determinism and cost
@pytest.mark.parametrize("generator", ["dftnet", "ganimation"])
def test_forward_is_deterministic_under_a_fixed_seed(generator):
    cfg = dataclasses.replace(TINY, generator=generator)
    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        G = build_generator(cfg, 32)
        outs.append(G(*inputs(32)).image)
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(G(*inputs(32)).image, outs[1])


def test_generator_cost_counts_parameters_and_flops():
    cost = generator_cost(TINY, 32)
    assert cost["params"] == count_parameters(DFTNet(TINY, 32))
    gan = generator_cost(dataclasses.replace(TINY, generator="ganimation"), 32)
    assert 0 < gan["gflops"] < cost["gflops"]  # DFT-Net has one decoder more
    # executed FLOPs: the stem convolves the 3 image channels only (conv_over_tiled_aus)
    assert gan["gflops"] > 2 * 3 * 49 * 8 * 32 * 32 / 1e9


# ------------------------------------------------------------- exact speed-ups
@pytest.mark.parametrize("size,k,pad,c_out,batch", [(64, 7, 3, 8, 8), (32, 7, 3, 16, 1), (16, 3, 1, 4, 5), (8, 4, 2, 2, 3)])
def test_stem_over_tiled_aus_equals_the_plain_convolution(size, k, pad, c_out, batch):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3 + N_AUS, c_out, k, 1, pad, bias=False)
    x, aus = inputs(size, batch)
    plain = conv(blocks.tile_aus(x, aus))
    fast = blocks.conv_over_tiled_aus(conv, x, aus)
    assert fast.shape == plain.shape
    assert torch.allclose(fast, plain, atol=1e-5, rtol=1e-5)


def test_fast_stem_gradients_equal_the_plain_ones():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3 + N_AUS, 8, 7, 1, 3, bias=False)
    x, aus = inputs(32, 4)
    grads = []
    for fn in (lambda xx: conv(blocks.tile_aus(xx, aus)), lambda xx: blocks.conv_over_tiled_aus(conv, xx, aus)):
        conv.zero_grad()
        xx = x.clone().requires_grad_(True)
        (fn(xx) ** 2).sum().backward()
        grads.append((xx.grad.clone(), conv.weight.grad.clone()))
    for a, b in zip(*grads):  # float32 sums in another order: equal to ~1e-6 of the largest value
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5 * a.abs().max().item())


@pytest.mark.parametrize("generator", ["dftnet", "ganimation"])
def test_generators_equal_their_plain_forward(generator):
    """The whole generator with the fast stem equals one whose E runs the plain conv over tile_aus."""
    torch.manual_seed(0)
    G = build_generator(dataclasses.replace(TINY, generator=generator), 32)
    x, aus = inputs(32, 3)
    fast = G(x, aus).image
    enc = G.E if generator == "dftnet" else G.encoder

    def plain_forward(xx, a):
        skips = [enc.stem(blocks.tile_aus(xx, a))]
        for down in enc.down:
            skips.append(down(skips[-1]))
        return enc.bottleneck(skips.pop()), skips

    enc.forward = plain_forward
    assert torch.allclose(G(x, aus).image, fast, atol=1e-5)


def test_resize_upsampling_keeps_the_shapes_and_has_no_transposed_convs():
    cfg = dataclasses.replace(TINY, texture_upsample="resize")
    G = DFTNet(cfg, 32)
    out = G(*inputs(32))
    assert out.parts["B"].shape == (2, 3, 32, 32)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in G.T.modules())
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in G.F.modules())  # F keeps GANimation's


def test_regularisers_on_the_cycle_pass_follow_each_method():
    assert DFTNet.regularise_cycle_pass is False          # the paper: Eqs. (9)-(10) on the edit
    assert GANimationGenerator.regularise_cycle_pass is True  # the official code: both passes
