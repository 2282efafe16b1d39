"""The one image contract: uint8 [0, 255] at rest and at the metric boundary, float [-1, 1] in networks."""

import torch


def to_model(images: torch.Tensor) -> torch.Tensor:
    """uint8 N x 3 x H x W -> float32 in [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8, quantised exactly as a PNG of the image would be (round, clamp)."""
    return images.detach().float().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


def aus_to_model(aus: torch.Tensor) -> torch.Tensor:
    """OpenFace AU intensities in [0, 5] -> the networks' [0, 1]."""
    from dftnet.data.aus import AU_MAX

    return aus.float() / AU_MAX
