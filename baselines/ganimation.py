"""GANimation's generator (Pumarola et al., ECCV 2018), ported from the official code.

Topology as ``networks/generator_wasserstein_gan.py`` of albertpumarola/GANimation: the
source concatenated with the tiled target AUs, a 7x7 stem, ``n_down`` 4x4 stride-2 convs,
``n_res_blocks`` residual blocks, ``n_down`` transposed convs (InstanceNorm with affine and
ReLU throughout), then two 7x7 heads: colour ``C`` (tanh) and attention ``A`` (sigmoid).
The edit is composed as ``models/ganimation.py`` does it: ``A * X_s + (1 - A) * C``.

The trunk reuses DFT-Net's building blocks (``E``, ``UpPath``), which are the same layers
in the same order, so the two families differ exactly where the methods differ.
Every deviation from the official code is listed in ``baselines/PORTING.md``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from dftnet.nets import losses
from dftnet.config import ModelConfig
from dftnet.data.aus import N_AUS
from dftnet.nets.blocks import (E, GeneratorOutput, UpPath, attention_for_regularisers, check_downsampling,
                           change_deadzone_now, gate_small_changes, init_weights, stretch_gate)


def mask_loss(A: torch.Tensor) -> torch.Tensor:
    """GANimation's attention loss (``lambda_mask`` term): ``mean(A)`` over batch and pixels.
    A weights the *source*, so this pushes the mask towards 0, i.e. towards repainting;
    ``lambda_mask`` is small (0.1) because it only prevents A from saturating at 1."""
    return torch.mean(A.float())


class GANimationGenerator(nn.Module):
    """G(X_s, y_t) = A * X_s + (1 - A) * C, one encoder-decoder with a colour and a mask head."""

    # The official code applies its mask terms to the edit and to the cycle reconstruction.
    regularise_cycle_pass = True

    def __init__(
        self,
        cfg: ModelConfig,  # base_channels, n_down, n_res_blocks (texture and skip do not apply)
        image_size: int,   # square side in px; must be divisible by 2**cfg.n_down
    ):
        super().__init__()
        check_downsampling(image_size, cfg.n_down, "model.n_down")
        self.encoder = E(3 + N_AUS, cfg.base_channels, cfg.n_down, cfg.n_res_blocks)
        self.decoder = UpPath(cfg.base_channels, cfg.n_down, skip=False)
        self.to_C = nn.Sequential(nn.Conv2d(cfg.base_channels, 3, 7, 1, 3, bias=False), nn.Tanh())
        self.to_A = nn.Sequential(nn.Conv2d(cfg.base_channels, 1, 7, 1, 3, bias=False), nn.Sigmoid())
        self.stretch = cfg.attention_stretch
        self.change_deadzone, self.change_deadzone_eval = cfg.change_deadzone, cfg.change_deadzone_eval
        self.apply(init_weights)

    def forward(self, x_s: torch.Tensor, aus: torch.Tensor) -> GeneratorOutput:
        h, _ = self.encoder(x_s, aus)
        y = self.decoder(h, [])
        C, sigmoid = self.to_C(y), self.to_A(y)
        A = stretch_gate(sigmoid, self.stretch)
        parts = {"C": C} if self.stretch == 0 else {"C": C, "A_sigmoid": sigmoid}
        image = gate_small_changes(A * x_s + (1 - A) * C, x_s, change_deadzone_now(self))
        return GeneratorOutput(image=image, attention=A, parts=parts)

    def regularisers(self, out: GeneratorOutput, active: set[str]) -> dict[str, torch.Tensor]:
        """Unweighted mask regularisers of the official code, only those in ``active``:
        ``att`` = mean(A) (``lambda_mask``), ``att_tv`` = GANimation's mask smoothness, the
        summed absolute differences of :func:`dftnet.nets.losses.total_variation`
        (``lambda_mask_smooth``). There is no flow, so ``tv`` is not returned."""
        terms = {}
        A = attention_for_regularisers(out)
        if "att" in active:
            terms["att"] = mask_loss(A)
        if "att_tv" in active:
            terms["att_tv"] = losses.total_variation(A)
        return terms
