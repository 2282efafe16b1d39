"""Generators and the critic by name, and what they cost: the one module that knows every family.

``model.generator`` in the params picks the family (``dftnet``: :class:`dftnet.nets.models.DFTNet`;
``ganimation``: :class:`baselines.ganimation.GANimationGenerator`); both take the same
``(ModelConfig, image_size)`` and return :class:`dftnet.nets.blocks.GeneratorOutput`. A new family
is one entry in :data:`GENERATORS`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import torch
import torch.nn as nn

from baselines.ganimation import GANimationGenerator
from dftnet.config import ModelConfig
from dftnet.data.aus import N_AUS
from dftnet.runtime.errors import ConfigError
from dftnet.nets.models import D, DFTNet

GENERATORS = {"dftnet": DFTNet, "ganimation": GANimationGenerator}


def build_generator(cfg: ModelConfig, image_size: int) -> nn.Module:
    """The generator family named by ``cfg.generator``; every family shares one call signature."""
    if cfg.generator not in GENERATORS:
        raise ConfigError(f"model.generator: expected one of {', '.join(GENERATORS)}, got {cfg.generator!r}")
    return GENERATORS[cfg.generator](cfg, image_size)


def build_critic(cfg: ModelConfig, image_size: int) -> D:
    return D(cfg, image_size)


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
    # Any: mypy checks each ** value against every field of ModelConfig, not the keys given
    sizes = cast("dict[str, Any]", {k: v for k, v in PAPER_SIZE.items() if k != "image_size"})
    return dataclasses.replace(cfg, **sizes), PAPER_SIZE["image_size"]


def generator_cost(cfg: ModelConfig, image_size: int) -> dict:
    """Parameters and forward GFLOPs per image of the generator ``cfg`` describes."""
    generator = build_generator(cfg, image_size)
    return {"params": count_parameters(generator), "gflops": forward_gflops(generator, image_size)}
