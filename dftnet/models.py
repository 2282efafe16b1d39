"""DFT-Net (ICIP 2019): encoder E, flow decoder F, texture decoder T, warp f; and the critic D.

The generator edits a source face ``X_s`` towards target Action Units ``y_t`` in two
disentangled steps (Sec. 2): ``F`` predicts an appearance flow ``Phi`` that *moves* the
source pixels, ``X_a = f(Phi, X_s)``; ``T`` *synthesises* texture ``B`` for what moving cannot
explain (teeth, mouth interiors, shading); the attention ``A`` blends the two (Eq. (5)):

    X_t = (1 - A) * B + A * X_a

Choices the paper leaves open, and why this suite makes them:

* **One shared encoder E, two parallel decoders F and T.** The paper describes "two parallel
  networks" (flow and texture) conditioned on the same source and AUs. Sharing E (stem,
  ``n_down`` downsamplings and the ``n_res_blocks`` bottleneck: exactly GANimation's trunk)
  makes the comparison with GANimation about the decoders and the warp, not about a second
  encoder's extra capacity, and costs one trunk instead of two.
* **F has no skip connections; T has (U-Net style).** A flow should be smooth and is
  decided by the expression, which the bottleneck encodes; E's high-resolution features
  would mostly inject image texture into ``Phi``. ``T`` must reproduce fine detail where it
  repaints, so it concatenates E's feature map of matching resolution after each upsampling
  (``skip=False`` is the ablation). F's decoder is then GANimation's decoder verbatim.
* **A comes from F.** ``A`` says where the warp is trusted, which is a property of the
  deformation (disocclusions such as an opening mouth are where warping fails), so it is a
  head of the flow branch, beside ``Phi``. It also makes the ``warp_only`` ablation clean:
  without T there is nothing to blend, and dropping T drops the A head too (``A = 1``).
* **Phi is the raw output of a zero-initialised 7x7 conv** (no tanh). Zero weights give
  ``Phi = 0`` at initialisation, i.e. the identity warp: training starts from "copy the
  source", which the cycle loss already rewards, instead of from a random field that folds
  the face and sends the critic chasing warp artefacts. Gradients still reach the head (its
  inputs are non-zero), so it leaves zero on the first step. No tanh: it would saturate
  gradients for large motions, and ``padding_mode="border"`` already keeps any offset valid.
* **Phi is an offset in grid_sample's normalised coordinates**, added to the identity grid
  of pixel centres with ``align_corners=False`` (x = (2i + 1) / W - 1): one pixel is
  ``2 / W`` in x and ``2 / H`` in y, and the identity grid samples each pixel exactly.
  Channel 0 is the x (width) offset, channel 1 the y offset, as grid_sample orders them.
  ``f`` is a backward warp: ``X_a[y, x] = X_s[y + Phi_y, x + Phi_x]`` (bilinear).
* Norms, activations and weight init follow GANimation (InstanceNorm with affine, ReLU,
  convs without bias before a norm, N(0, 0.02) weights), so the two generators differ only
  where the methods differ.

The critic is GANimation's (``networks/discriminator_wasserstein_gan.py``): see :class:`Critic`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as nnf

from dftnet import losses
from dftnet.config import ModelConfig
from dftnet.data.aus import N_AUS
from dftnet.errors import ConfigError


@dataclass
class GeneratorOutput:
    """What every generator returns; both families share this call signature.

    image:     the edit, float in [-1, 1], B x 3 x H x W.
    attention: A, B x 1 x H x W in [0, 1], the weight of the (warped) source in the
               composition: DFT-Net (1-A)*B + A*X_a (Eq. 5); GANimation A*X_s + (1-A)*C.
    parts:     intermediates for figures and regularisers: DFT-Net "X_a", "B", "Phi";
               GANimation "C".
    """

    image: torch.Tensor
    attention: torch.Tensor
    parts: dict = field(default_factory=dict)


# ------------------------------------------------------------------ building blocks
def init_weights(module: nn.Module) -> None:
    """GANimation's init (``networks/networks.py``): conv weights N(0, 0.02), biases 0.

    InstanceNorm affine parameters keep PyTorch 2's init, scale 1 and shift 0. This differs
    from the official code as it ran: under PyTorch 0.3/0.4 the default affine scale was drawn
    from U(0, 1) (see baselines/PORTING.md)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def conv_norm_relu(
    c_in: int,                # input channels
    c_out: int,               # output channels
    kernel: int,              # square kernel size
    stride: int,              # stride (2 halves the size; with transpose=True, doubles it)
    padding: int,             # zero padding on each side
    transpose: bool = False,  # transposed conv (decoder upsampling)
) -> nn.Sequential:
    """Conv (no bias: the affine norm has one) -> InstanceNorm(affine) -> ReLU."""
    conv = nn.ConvTranspose2d if transpose else nn.Conv2d
    return nn.Sequential(conv(c_in, c_out, kernel, stride, padding, bias=False),
                         nn.InstanceNorm2d(c_out, affine=True),
                         nn.ReLU(inplace=True))


class ResBlock(nn.Module):
    """GANimation's bottleneck block: x + IN(conv3x3(ReLU(IN(conv3x3(x)))))."""

    def __init__(
        self,
        channels: int,  # input and output channels
    ):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.InstanceNorm2d(channels, affine=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)


def tile_aus(x: torch.Tensor, aus: torch.Tensor) -> torch.Tensor:
    """Concatenate each AU, tiled to H x W, to the image: B x (3 + 17) x H x W."""
    b, _, h, w = x.shape
    return torch.cat([x, aus.to(x.dtype).view(b, -1, 1, 1).expand(b, aus.shape[1], h, w)], dim=1)


def constant_map_response(weight: torch.Tensor, size: int, padding: int) -> torch.Tensor:
    """What a stride-1, zero-padded conv with ``weight`` (C x A x k x k) makes of A constant
    all-ones maps of side ``size``: A x C x S x S, S = size + 2 padding - k + 1 (the conv's output side).

    Inside the image this is the kernel's sum; near the border only the taps that fall on the
    image count. The taps that are valid at output (i, j) form a rectangle (rows valid for i
    times columns valid for j), so the response is a row mask, the kernel and a column mask
    multiplied: O(size^2 k) per channel pair instead of the convolution's O(size^2 k^2).
    """
    k = weight.shape[-1]
    out = size + 2 * padding - k + 1
    pos = torch.arange(out, device=weight.device).view(-1, 1) - padding + torch.arange(k, device=weight.device)
    valid = ((pos >= 0) & (pos < size)).to(weight.dtype)  # S x k: tap u lands inside the image at output row i
    return torch.einsum("iu,cauv,jv->acij", valid, weight, valid)


def conv_over_tiled_aus(conv: nn.Conv2d, x: torch.Tensor, aus: torch.Tensor) -> torch.Tensor:
    """Exactly ``conv(tile_aus(x, aus))`` (up to float rounding), much cheaper.

    A convolution is linear in its input channels, and each tiled AU channel is a constant
    map scaled by that AU. So the conv over the 3 + 17 channels is the conv over the 3 image
    channels plus, per AU, its intensity times the conv's response to a constant map, which
    depends on neither the image nor the batch and is computed once per forward. At 64 px
    with 8 stem channels this removes about 85% of the stem's multiply-adds (the largest
    layer of both generators). ``conv`` must be stride 1, zero padding, no bias, square kernel.
    """
    n_img = x.shape[1]
    out = nnf.conv2d(x, conv.weight[:, :n_img], None, 1, conv.padding)
    response = constant_map_response(conv.weight[:, n_img:], x.shape[-1], conv.padding[0])
    return out + torch.einsum("ba,achw->bchw", aus.to(out.dtype), response.to(out.dtype))


def check_downsampling(image_size: int, n: int, key: str) -> None:
    """``n`` stride-2 layers need a size divisible by 2**n; fail naming the params key."""
    if image_size % 2**n:
        raise ConfigError(f"{key}: {n} stride-2 layers need data.image_size divisible by {2**n}, "
                          f"got {image_size}")


def resize_conv_norm_relu(c_in: int, c_out: int) -> nn.Sequential:
    """Nearest-neighbour x2 resize, then 3x3 conv -> InstanceNorm(affine) -> ReLU: an upsampling
    without the uneven kernel overlap of a 4x4 stride-2 transposed conv, whose checkerboard
    and banding artefacts it avoids (Odena et al., Distill 2016)."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), *conv_norm_relu(c_in, c_out, 3, 1, 1))


class UpPath(nn.Module):
    """``n_down`` upsamplings halving channels, mirroring E: 4x4 stride-2 transposed convs
    (GANimation's), or resize-then-convolve (``upsample="resize"``).

    With ``skip``, E's feature map of the same resolution is concatenated after each
    upsampling (U-Net); ``out_channels`` is what a head on top receives.
    """

    def __init__(
        self,
        base_channels: int,             # channels of E's stem; the bottleneck has base * 2**n_down
        n_down: int,                    # upsamplings (E's downsamplings)
        skip: bool,                     # concatenate E's feature maps at matching resolutions
        upsample: str = "transpose",    # "transpose" (GANimation) or "resize" (nearest x2 + 3x3 conv)
    ):
        super().__init__()
        self.skip = skip
        self.ups = nn.ModuleList()
        c = base_channels * 2**n_down
        for level in reversed(range(n_down)):  # output of this up has E's level-`level` size
            c_out = base_channels * 2**level
            self.ups.append(conv_norm_relu(c, c_out, 4, 2, 1, transpose=True) if upsample == "transpose"
                            else resize_conv_norm_relu(c, c_out))
            c = 2 * c_out if skip else c_out
        self.out_channels = c

    def forward(self, h: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """``skips`` as E returns them (finest first); ignored without ``skip``."""
        x = h
        for i, up in enumerate(self.ups):
            x = up(x)
            if self.skip:
                x = torch.cat([x, skips[-1 - i]], dim=1)
        return x


# ------------------------------------------------------------------------ DFT-Net
class E(nn.Module):
    """Encoder E: GANimation's trunk up to and including the residual bottleneck, over the
    source image and its target AUs tiled to H x W (:func:`tile_aus`).

    The stem over the tiled AUs is computed by :func:`conv_over_tiled_aus`, which equals the
    plain convolution over the concatenation (``tests/test_models.py``) at a fraction of the cost.

    Returns the bottleneck ``h`` (base * 2**n_down channels, H / 2**n_down) and the feature
    maps at every coarser-than-bottleneck level, ``skips[l]`` with base * 2**l channels at
    H / 2**l for l = 0 .. n_down - 1 (level 0 is the 7x7 stem's output), for T's skips.
    """

    def __init__(
        self,
        in_channels: int,    # 3 image channels + one tiled channel per AU
        base_channels: int,  # channels after the 7x7 stem; doubled per downsampling
        n_down: int,         # 4x4 stride-2 convs
        n_res_blocks: int,   # residual blocks at the bottleneck (0 = none)
    ):
        super().__init__()
        self.stem = conv_norm_relu(in_channels, base_channels, 7, 1, 3)
        self.down = nn.ModuleList(
            conv_norm_relu(base_channels * 2**i, base_channels * 2 ** (i + 1), 4, 2, 1) for i in range(n_down))
        self.bottleneck = nn.Sequential(*(ResBlock(base_channels * 2**n_down) for _ in range(n_res_blocks)))
        self.apply(init_weights)

    def forward(self, x: torch.Tensor, aus: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        conv, norm_relu = self.stem[0], self.stem[1:]
        skips = [norm_relu(conv_over_tiled_aus(conv, x, aus))]
        for down in self.down:
            skips.append(down(skips[-1]))
        return self.bottleneck(skips.pop()), skips


class F(nn.Module):
    """Flow decoder F: GANimation's upsampling path, then two 7x7 heads: the flow ``Phi``
    (2 channels, zero-initialised: identity warp at the start) and, when there is texture to
    blend, the attention ``A`` (1 channel, sigmoid), the weight of the warped source."""

    def __init__(
        self,
        base_channels: int,  # channels of E's stem
        n_down: int,         # upsamplings
        attention: bool,     # predict A (False for warp_only: nothing to blend)
    ):
        super().__init__()
        self.up = UpPath(base_channels, n_down, skip=False)
        self.to_Phi = nn.Conv2d(self.up.out_channels, 2, 7, 1, 3, bias=False)
        self.to_A = nn.Sequential(nn.Conv2d(self.up.out_channels, 1, 7, 1, 3, bias=False),
                                  nn.Sigmoid()) if attention else None
        self.apply(init_weights)
        nn.init.zeros_(self.to_Phi.weight)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        y = self.up(h, [])
        return self.to_Phi(y), (self.to_A(y) if self.to_A is not None else None)


class T(nn.Module):
    """Texture decoder T: upsampling path with (optional) U-Net skips from E, then a 7x7
    head to the texture ``B`` (3 channels, tanh), as GANimation's colour head."""

    def __init__(
        self,
        base_channels: int,  # channels of E's stem
        n_down: int,         # upsamplings
        skip: bool,          # concatenate E's feature maps (False = no_skip ablation)
        upsample: str,       # "transpose" (GANimation's 4x4 stride-2) or "resize" (nearest x2 + 3x3 conv)
    ):
        super().__init__()
        self.up = UpPath(base_channels, n_down, skip=skip, upsample=upsample)
        self.to_B = nn.Sequential(nn.Conv2d(self.up.out_channels, 3, 7, 1, 3, bias=False), nn.Tanh())
        self.apply(init_weights)

    def forward(self, h: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        return self.to_B(self.up(h, skips))


def identity_grid(h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
    """Pixel centres in grid_sample's normalised coordinates (align_corners=False): 1 x H x W x 2."""
    xs = (torch.arange(w, device=device, dtype=torch.float32) * 2 + 1) / w - 1
    ys = (torch.arange(h, device=device, dtype=torch.float32) * 2 + 1) / h - 1
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    return torch.stack([gx, gy], dim=-1).unsqueeze(0)


def f(Phi: torch.Tensor, X_s: torch.Tensor) -> torch.Tensor:
    """The warp f(Phi, X_s) (Sec. 2.1): bilinear backward warp of ``X_s`` by the flow ``Phi``.

    ``Phi`` (B x 2 x H x W, x offset then y offset) is added to the identity grid of pixel
    centres in normalised units (one pixel = 2 / W), sampled with ``align_corners=False`` to
    match that grid and ``padding_mode="border"`` so pixels pulled from outside the image
    repeat the edge instead of fading to black. Computed in float32 (grid coordinates in bf16
    are off by up to a pixel at 128 px).
    """
    _, _, h, w = X_s.shape
    grid = identity_grid(h, w, X_s.device) + Phi.float().permute(0, 2, 3, 1)
    return nnf.grid_sample(X_s.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


warp = f


def flow_in_pixels(Phi: torch.Tensor) -> torch.Tensor:
    """``Phi`` (normalised offsets, one pixel = 2 / W in x and 2 / H in y) in pixels."""
    h, w = Phi.shape[-2:]
    return Phi * torch.tensor([w / 2, h / 2], dtype=Phi.dtype, device=Phi.device).view(1, 2, 1, 1)


def compose(A: torch.Tensor, B: torch.Tensor, X_a: torch.Tensor) -> torch.Tensor:
    """Eq. (5): ``(1 - A) * B + A * X_a``; A weights the warped source."""
    return (1 - A) * B + A * X_a


class DFTNet(nn.Module):
    """The DFT-Net generator G(X_s, y_t) = (1 - A) * T(E(.)) + A * f(Phi, X_s) (Eq. (5))."""

    # The paper states Eqs. (9)-(10) on the edit's flow and attention; GANimation's code also
    # applies its mask terms to the cycle pass, which would double their weight here.
    regularise_cycle_pass = False

    def __init__(
        self,
        cfg: ModelConfig,  # trunk sizes and the texture/skip ablation flags
        image_size: int,   # square side in px; must be divisible by 2**cfg.n_down
    ):
        super().__init__()
        check_downsampling(image_size, cfg.n_down, "model.n_down")
        self.E = E(3 + N_AUS, cfg.base_channels, cfg.n_down, cfg.n_res_blocks)
        self.F = F(cfg.base_channels, cfg.n_down, attention=cfg.texture)
        self.T = T(cfg.base_channels, cfg.n_down, cfg.skip, cfg.texture_upsample) if cfg.texture else None

    def forward(self, x_s: torch.Tensor, aus: torch.Tensor) -> GeneratorOutput:
        h, skips = self.E(x_s, aus)
        Phi, A = self.F(h)
        X_a = f(Phi, x_s)
        if self.T is None:  # warp_only: the warped source is the edit
            return GeneratorOutput(image=X_a, attention=torch.ones_like(X_a[:, :1]), parts={"X_a": X_a, "Phi": Phi})
        B = self.T(h, skips)
        return GeneratorOutput(image=compose(A, B, X_a), attention=A, parts={"X_a": X_a, "B": B, "Phi": Phi})

    def regularisers(self, out: GeneratorOutput, active: set[str]) -> dict[str, torch.Tensor]:
        """Unweighted generator regularisers named as in LambdaConfig, only those in ``active``:
        ``tv`` (Eq. (9), squared-difference smoothness of Phi in pixels), ``att`` (Eq. (10),
        mean(1 - A)), ``att_tv`` (TV of A). warp_only has no attention, so it returns neither
        attention term."""
        terms = {}
        if "tv" in active:
            terms["tv"] = losses.flow_smoothness(flow_in_pixels(out.parts["Phi"]))
        if self.T is not None:
            if "att" in active:
                terms["att"] = losses.attention_loss(out.attention)
            if "att_tv" in active:
                terms["att_tv"] = losses.total_variation(out.attention)
        return terms


# ------------------------------------------------------------------------- critic
CRITIC_MAX_CHANNELS = 2048  # the official has no explicit cap: its 6 layers from 64 end at 2048; bounds deeper critics

class Critic(nn.Module):
    """The critic D, GANimation's discriminator (``networks/discriminator_wasserstein_gan.py``).

    ``critic_layers`` 4x4 stride-2 convs (with bias, no normalisation: WGAN-GP's penalty is
    per sample, which batch statistics would break), LeakyReLU(0.01), channels starting at
    ``critic_channels`` and doubling up to 2048. Two heads on the last feature map:
    ``D_A``, a 3x3 conv to one realism score per patch (PatchGAN, Eq. (6)), and ``D_C``, a
    conv covering the whole map that regresses the 17 AUs (Eq. (7)).
    """

    def __init__(
        self,
        cfg: ModelConfig,  # critic_channels, critic_layers
        image_size: int,   # square side in px; must be divisible by 2**cfg.critic_layers
    ):
        super().__init__()
        check_downsampling(image_size, cfg.critic_layers, "model.critic_layers")
        layers, c_in, c = [], 3, cfg.critic_channels
        for _ in range(cfg.critic_layers):
            layers += [nn.Conv2d(c_in, c, 4, 2, 1), nn.LeakyReLU(0.01)]
            c_in, c = c, min(2 * c, CRITIC_MAX_CHANNELS)
        self.main = nn.Sequential(*layers)
        self.D_A = nn.Conv2d(c_in, 1, 3, 1, 1, bias=False)
        self.D_C = nn.Conv2d(c_in, N_AUS, image_size // 2**cfg.critic_layers, bias=False)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: B x 3 x H x W -> (realism scores B x 1 x h x w, AU regression B x 17)."""
        h = self.main(x)
        return self.D_A(h), self.D_C(h).flatten(1)


# ------------------------------------------------------------------ construction
def build_generator(cfg: ModelConfig, image_size: int) -> nn.Module:
    """The generator family named by ``cfg.generator``; both share one call signature."""
    if cfg.generator == "dftnet":
        return DFTNet(cfg, image_size)
    if cfg.generator == "ganimation":
        from baselines.ganimation import GANimationGenerator  # baselines import this module

        return GANimationGenerator(cfg, image_size)
    raise ConfigError(f"model.generator: expected dftnet or ganimation, got {cfg.generator!r}")


def build_critic(cfg: ModelConfig, image_size: int) -> Critic:
    return Critic(cfg, image_size)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def forward_gflops(generator: nn.Module, image_size: int) -> float:
    """GFLOPs of one forward pass per image, as ``torch.utils.flop_counter`` counts them
    (2 per multiply-add of convs and matmuls; norms, activations and grid_sample are not
    counted, a few tenths of a percent at these sizes)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, image_size, image_size)
    aus = torch.zeros(1, N_AUS)
    was_training = generator.training
    generator.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        generator(x, aus)
    generator.train(was_training)
    return counter.get_total_flops() / 1e9


# The paper's generator size (GANimation's): 128 px, 64 channels, 6 residual blocks, 2 downsamplings.
PAPER_SIZE = {"image_size": 128, "base_channels": 64, "n_res_blocks": 6, "n_down": 2}


def at_paper_size(cfg: ModelConfig) -> tuple[ModelConfig, int]:
    """``cfg`` with the paper's widths and depths (its variant switches kept), and the paper's image size."""
    import dataclasses

    return dataclasses.replace(cfg, **{k: v for k, v in PAPER_SIZE.items() if k != "image_size"}), PAPER_SIZE["image_size"]


def generator_cost(cfg: ModelConfig, image_size: int) -> dict:
    """Parameters and forward GFLOPs per image of the generator ``cfg`` describes."""
    generator = build_generator(cfg, image_size)
    return {"params": count_parameters(generator), "gflops": forward_gflops(generator, image_size)}
