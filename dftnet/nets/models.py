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

The critic is GANimation's (``networks/discriminator_wasserstein_gan.py``): see :class:`D`, with its
heads ``D_A`` (realism, Eq. (6)) and ``D_C`` (AU regression, Eq. (7)). Shared layers (``E`` and
the up path): ``dftnet.nets.blocks``; construction by name: ``dftnet.nets.generators``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as nnf

from dftnet.nets import losses
from dftnet.nets.blocks import (E, GeneratorOutput, UpPath, attention_for_regularisers, check_downsampling,
                           change_deadzone_now, gate_small_changes, init_weights, stretch_gate)
from dftnet.config import ModelConfig
from dftnet.data.aus import N_AUS


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
    are off by up to a pixel at 128 px). A non-finite ``Phi`` (a diverged run) samples the
    centre instead: grid_sample's CPU backward indexes memory with NaN coordinates and crashes
    the process, while the trainer's finiteness check stops the run with a message.
    """
    _, _, h, w = X_s.shape
    grid = identity_grid(h, w, X_s.device) + Phi.float().permute(0, 2, 3, 1)
    grid = torch.nan_to_num(grid, nan=0.0)  # finite values pass unchanged, gradients too
    return nnf.grid_sample(X_s.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


def flow_in_pixels(Phi: torch.Tensor) -> torch.Tensor:
    """``Phi`` (normalised offsets, one pixel = 2 / W in x and 2 / H in y) in pixels."""
    h, w = Phi.shape[-2:]
    return Phi * torch.tensor([w / 2, h / 2], dtype=Phi.dtype, device=Phi.device).view(1, 2, 1, 1)


def shrink_flow(Phi: torch.Tensor, deadzone_px: float) -> torch.Tensor:
    """A remedy, not in the paper (``model.flow_deadzone``): the soft threshold of each flow
    vector's length in pixels, ``Phi * max(0, 1 - deadzone / |Phi|)``. Vectors shorter than the
    dead zone become exactly 0, where ``f`` is the exact identity (the pixel is copied, not
    resampled); longer ones shorten by it. Eq. (9) penalises the flow's *gradients*, so a small
    uniform offset costs nothing there and bilinear resampling by it blurs the whole face.

    Forward value only: the gradient passes straight through as if there were no threshold,
    so a flow that starts at 0 (F's zero-initialised head) can still learn to grow past it.
    """
    if deadzone_px == 0:
        return Phi
    length = flow_in_pixels(Phi.detach().float()).norm(dim=1, keepdim=True)
    factor = (1 - deadzone_px / length.clamp_min(1e-12)).clamp_min(0).to(Phi.dtype)
    return Phi + (Phi.detach() * factor - Phi.detach())


def gate_flow(Phi: torch.Tensor, gate_px: float) -> torch.Tensor:
    """A remedy, not in the paper (``model.flow_gate_eval``, once trained): flow vectors shorter
    than ``gate_px`` pixels become exactly 0 (the pixel is copied), those longer than twice it
    keep their length, and the length ramps linearly between (``Phi * clamp(|Phi| / gate - 1, 0,
    1)``, continuous). Unlike :func:`shrink_flow` it leaves the edit's long flows as trained, so a
    model asked to keep still where its flow is a fraction of a pixel is not also asked for a
    weaker edit. ``gate_px`` 0 returns ``Phi``."""
    if gate_px == 0:
        return Phi
    length = flow_in_pixels(Phi.detach().float()).norm(dim=1, keepdim=True)
    keep = (length / gate_px - 1).clamp(0.0, 1.0).to(Phi.dtype)
    return Phi + (Phi.detach() * keep - Phi.detach())


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
        self.stretch = cfg.attention_stretch
        self.flow_deadzone = cfg.flow_deadzone
        self.flow_deadzone_eval = cfg.flow_deadzone_eval
        self.flow_gate_eval = cfg.flow_gate_eval
        self.change_deadzone, self.change_deadzone_eval = cfg.change_deadzone, cfg.change_deadzone_eval
        self.T = T(cfg.base_channels, cfg.n_down, cfg.skip, cfg.texture_upsample) if cfg.texture else None

    def forward(self, x_s: torch.Tensor, aus: torch.Tensor) -> GeneratorOutput:
        h, skips = self.E(x_s, aus)
        Phi, A = self.F(h)
        # Once trained (eval mode), the wider dead zone where one is set: trained with it, F
        # learns longer flows around it (docs/recipe.md), so training keeps flow_deadzone.
        eval_zone = self.flow_deadzone_eval and not self.training
        Phi = shrink_flow(Phi, self.flow_deadzone_eval if eval_zone else self.flow_deadzone)
        if not self.training:
            Phi = gate_flow(Phi, self.flow_gate_eval)
        X_a = f(Phi, x_s)
        if self.T is None:  # warp_only: the warped source is the edit
            X_a = gate_small_changes(X_a, x_s, change_deadzone_now(self))
            return GeneratorOutput(image=X_a, attention=torch.ones_like(X_a[:, :1]), parts={"X_a": X_a, "Phi": Phi})
        B = self.T(h, skips)
        parts = {"X_a": X_a, "B": B, "Phi": Phi}
        if self.stretch:
            parts["A_sigmoid"], A = A, stretch_gate(A, self.stretch)
        image = gate_small_changes(compose(A, B, X_a), x_s, change_deadzone_now(self))
        return GeneratorOutput(image=image, attention=A, parts=parts)

    def regularisers(self, out: GeneratorOutput, active: set[str]) -> dict[str, torch.Tensor]:
        """Unweighted generator regularisers named as in LambdaConfig, only those in ``active``:
        ``tv`` (Eq. (9), squared-difference smoothness of Phi in pixels), ``att`` (Eq. (10),
        mean(1 - A)), ``att_tv`` (TV of A), ``flow`` (a remedy: the mean flow length in pixels).
        warp_only has no attention, so it returns neither attention term."""
        terms = {}
        if "tv" in active:
            terms["tv"] = losses.flow_smoothness(flow_in_pixels(out.parts["Phi"]))
        if "flow" in active:
            terms["flow"] = losses.flow_magnitude(flow_in_pixels(out.parts["Phi"]))
        if self.T is not None:
            A = attention_for_regularisers(out)
            if "att" in active:
                terms["att"] = losses.attention_loss(A)
            if "att_tv" in active:
                terms["att_tv"] = losses.total_variation(A)
        return terms


# ------------------------------------------------------------------------- critic
CRITIC_MAX_CHANNELS = 2048  # the official has no explicit cap: its 6 layers from 64 end at 2048; bounds deeper critics

class D(nn.Module):
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
