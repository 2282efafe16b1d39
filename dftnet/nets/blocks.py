"""Building blocks shared by both generator families (DFT-Net, ``dftnet.nets.models``; GANimation,
``baselines.ganimation``): the output record, GANimation's layers and init, the AU tiling with
its exact speed-up, the upsampling path, and the encoder ``E`` (GANimation's trunk, which
DFT-Net shares). Nothing here knows either family, so both import it and neither imports
the other (choosing one by name: ``dftnet.nets.generators``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator, cast

import torch
import torch.nn as nn
import torch.nn.functional as nnf

from dftnet.runtime.errors import ConfigError


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
def stretch_gate(sigmoid: torch.Tensor, stretch: float) -> torch.Tensor:
    """A remedy, not in either paper (``model.attention_stretch``): the attention's sigmoid
    stretched by ``stretch`` beyond [0, 1] and clipped, ``clamp((1 + 2 s) * sigmoid - s, 0, 1)``
    (the stretch of Louizos et al.'s hard concrete, without its noise), so the gate reaches
    exactly 0 and 1 where a sigmoid only approaches them: the composite can then pass a pixel
    through untouched. ``stretch`` 0 returns ``sigmoid`` itself.

    The attention regularisers keep reading the sigmoid (``GeneratorOutput.parts["A_sigmoid"]``):
    on the clipped gate their gradient would vanish wherever it saturates, and GANimation's
    mask term, whose job is to keep the mask from saturating at 1, would stop working."""
    return sigmoid if stretch == 0 else ((1 + 2 * stretch) * sigmoid - stretch).clamp(0.0, 1.0)


def gate_small_changes(image: torch.Tensor, x_s: torch.Tensor, deadzone: float) -> torch.Tensor:
    """A remedy, not in either paper (``model.change_deadzone``): a pixel whose edit changes no
    channel by more than ``deadzone`` ([0, 1] intensity) is the source's pixel exactly, and the
    change ramps back linearly to its full size at twice that. Where nothing should change, both
    generators otherwise leave low-amplitude noise: DFT-Net's sub-pixel resampling and texture
    leaking through ``1 - A``, GANimation's colour ``C`` leaking through a mask below 1. The gate
    is on the pixel's largest channel change, so it never shifts a pixel's colour, only its size.

    Forward value only: the gradient passes straight through, as if there were no gate, so a
    change that starts small can still learn to grow past it. ``deadzone`` 0 returns ``image``."""
    if deadzone == 0:
        return image
    delta = (image - x_s).detach()
    size = delta.float().abs().amax(1, keepdim=True) / 2  # [-1, 1] images: half the span is [0, 1] units
    keep = (size / deadzone - 1).clamp(0.0, 1.0).to(image.dtype)
    return image + ((keep - 1) * delta)


def change_deadzone_now(module: nn.Module) -> float:
    """The change dead zone ``module`` applies now: ``change_deadzone_eval`` once trained (eval
    mode) where one is set, else ``change_deadzone`` (what it trained with)."""
    once_trained = float(cast(float, module.change_deadzone_eval))
    return once_trained if once_trained and not module.training else float(cast(float, module.change_deadzone))


def attention_for_regularisers(out: "GeneratorOutput") -> torch.Tensor:
    """The attention the regularisers see: the sigmoid before :func:`stretch_gate`, else ``A``."""
    return out.parts.get("A_sigmoid", out.attention)


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
    response = constant_map_response(conv.weight[:, n_img:], x.shape[-1], cast(int, conv.padding[0]))
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
        conv, norm_relu = cast(nn.Conv2d, self.stem[0]), self.stem[1:]
        skips = [norm_relu(conv_over_tiled_aus(conv, x, aus))]
        for down in self.down:
            skips.append(down(skips[-1]))
        return self.bottleneck(skips.pop()), skips


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Modules in eval mode inside the block, each back in its own previous mode afterwards."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)
