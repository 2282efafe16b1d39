"""Error against ground truth where it exists (synthetic pairs render the true edit).

All on uint8 images mapped to float [0, 1] (``data_range=1``):

- L1: mean absolute difference.
- PSNR: per image (torchmetrics ``peak_signal_noise_ratio``), then averaged over images;
  identical images have infinite PSNR, capped at ``PSNR_CAP_DB`` so that means and JSON
  stay finite.
- SSIM: torchmetrics ``structural_similarity_index_measure`` with its defaults (Gaussian
  window 11, sigma 1.5, k1 0.01, k2 0.03, reflection padding), on the RGB image. A region's
  SSIM is the mean of the full-image SSIM map inside the region's box, so that small boxes
  (an eye region is ~10 px at 64 px) need no window of their own, and the whole-image value
  is the same average over every pixel.

Regions are normalised ``(x0, y0, x1, y1)`` boxes, by default the synthetic renderer's
``dftnet.data.synth.REGIONS`` "eyes" and "mouth".
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

PSNR_CAP_DB = 100.0


def default_regions() -> dict[str, tuple[float, float, float, float]]:
    from dftnet.data.synth import REGIONS

    # tuple() of a 4-tuple is a 4-tuple, which mypy does not infer
    return {"eyes": cast("tuple[float, float, float, float]", tuple(REGIONS["eyes"])),
            "mouth": cast("tuple[float, float, float, float]", tuple(REGIONS["mouth"]))}


def box_to_slices(box, size: int) -> tuple[slice, slice]:
    """Normalised (x0, y0, x1, y1) -> (rows, cols) pixel slices covering every touched pixel."""
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise ValueError(f"region box {box}: expected 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
    rows = slice(math.floor(y0 * size), max(math.ceil(y1 * size), math.floor(y0 * size) + 1))
    cols = slice(math.floor(x0 * size), max(math.ceil(x1 * size), math.floor(x0 * size) + 1))
    return rows, cols


def _unit(images_uint8: torch.Tensor) -> torch.Tensor:
    if images_uint8.dtype != torch.uint8:
        raise TypeError(f"paired metrics: expected uint8 images, got {images_uint8.dtype}")
    return images_uint8.float() / 255.0


def paired_per_image(pred_uint8: torch.Tensor, target_uint8: torch.Tensor, regions: dict) -> dict[str, torch.Tensor]:
    """Per-image L1, PSNR, SSIM over the whole image and L1/SSIM in each region (float N each)."""
    if pred_uint8.shape != target_uint8.shape:
        raise ValueError(f"paired metrics: shapes differ, {tuple(pred_uint8.shape)} vs {tuple(target_uint8.shape)}")
    p, t = _unit(pred_uint8), _unit(target_uint8)
    mse = (p - t).pow(2).mean(dim=(1, 2, 3))
    psnr = peak_signal_noise_ratio(p, t, data_range=1.0, reduction="none", dim=(1, 2, 3))
    psnr = torch.where(mse > 0, psnr, torch.full_like(psnr, PSNR_CAP_DB)).clamp(max=PSNR_CAP_DB)
    ssim, ssim_map = structural_similarity_index_measure(p, t, data_range=1.0, reduction="none", return_full_image=True)
    abs_diff = (p - t).abs()
    out = {"l1": abs_diff.mean(dim=(1, 2, 3)), "psnr": psnr, "ssim": ssim}
    for name, box in regions.items():
        rows, cols = box_to_slices(box, p.shape[-1])
        out[f"l1_{name}"] = abs_diff[..., rows, cols].mean(dim=(1, 2, 3))
        out[f"ssim_{name}"] = ssim_map[..., rows, cols].mean(dim=(1, 2, 3))
    return out


def compute_paired(pred_uint8: torch.Tensor, target_uint8: torch.Tensor | None, regions: dict | None = None,
                   batch_size: int = 256) -> dict:
    """Means (and per-image values) of the paired errors; None with a reason where there is no ground truth."""
    if target_uint8 is None:
        return {"reason": "no ground truth for these pairs (real data)", "mean": None, "per_image": None}
    regions = default_regions() if regions is None else regions
    parts = [paired_per_image(pred_uint8[s:s + batch_size], target_uint8[s:s + batch_size], regions)
             for s in range(0, len(pred_uint8), batch_size)]
    per_image = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    return {"reason": None,
            "mean": {k: float(v.mean()) for k, v in per_image.items()},
            "per_image": {k: v.tolist() for k, v in per_image.items()},
            "protocol": {"scale": "uint8/255, data_range=1", "psnr_cap_db": PSNR_CAP_DB,
                         "ssim": "torchmetrics defaults: gaussian 11, sigma 1.5, k1 0.01, k2 0.03, RGB",
                         "region_ssim": "mean of the full-image SSIM map inside the box",
                         "regions": {k: list(v) for k, v in regions.items()}}}
