"""Measures that neither copying the source nor erasing the expression can pass.

An AU error averaged over all 17 AUs rewards a generator that makes every face neutral: most
targets ask few AUs to rise. These measures look only at what was asked:

- **Signed AU response** (:func:`progress`): for every (pair, AU) asked to change by at least
  :data:`~dftnet.eval.schema.ASKED_STEP` (``|target - source label| >= 1``), the progress
  ``(reading(edit) - reading(source)) / (target - source label)``: 1 = the whole asked change,
  0 = none, < 0 = the wrong way. Raises and lowers are kept apart: the neutral face scores
  about as well as the truth on lowers and <= 0 on raises.
- **Paired pixels on two masks** (:func:`mask_l1`), synthetic data only: L1 to the ground truth
  on the *raise mask* (the truth differs from both the source and the neutral face by more than
  :data:`~dftnet.eval.schema.MASK_TOL`: the target's own features) and on the *unchanged region*
  (the truth equals the source within the same tolerance: any change there is an artifact).
"""

from __future__ import annotations

import numpy as np
import torch

from dftnet.data.aus import AU_NAMES
from dftnet.eval.schema import ASKED_STEP, HALO_PX, MASK_TOL


def _nanmean(x: torch.Tensor, mask: torch.Tensor, dim) -> torch.Tensor:
    """Mean of ``x`` over ``mask`` along ``dim``; NaN where the mask is empty."""
    n = mask.sum(dim)
    total = torch.where(mask, x, torch.zeros_like(x)).sum(dim)
    return torch.where(n > 0, total / n.clamp(min=1), torch.full_like(total, float("nan")))


def progress(read_edit: torch.Tensor, read_source: torch.Tensor, target: torch.Tensor,
             source_labels: torch.Tensor) -> dict:
    """Raise and lower progress of one set of edits (all P x 17, AU scale 0-5).

    Returns ``{"raise", "lower"}``, each ``{"per_pair": [P values, NaN where the pair asks no
    such change], "mean": mean over the pairs that ask one (NaN if none), "per_au": {AU: mean
    over the pairs that ask it, or NaN}, "n_asked": number of (pair, AU) asked}``.
    """
    asked = target.double() - source_labels.double()
    prog = (read_edit.double() - read_source.double()) / torch.where(asked.abs() > 0, asked, torch.ones_like(asked))
    out = {}
    for name, mask in (("raise", asked >= ASKED_STEP), ("lower", asked <= -ASKED_STEP)):
        per_pair = _nanmean(prog, mask, 1)
        finite = per_pair[~per_pair.isnan()]
        out[name] = {"per_pair": per_pair.tolist(),
                     "mean": float(finite.mean()) if len(finite) else float("nan"),
                     "per_au": dict(zip(AU_NAMES, _nanmean(prog, mask, 0).tolist())),
                     "n_asked": int(mask.sum())}
    return out


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0


def masks(gt: torch.Tensor, source: torch.Tensor, neutral: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(raise mask, unchanged region), bool P x H x W, from uint8 P x 3 x H x W images."""
    g = _unit(gt)
    d_src = (g - _unit(source)).abs().amax(1)
    d_neu = (g - _unit(neutral)).abs().amax(1)
    return (d_src > MASK_TOL) & (d_neu > MASK_TOL), d_src <= MASK_TOL


def far_region(unchanged: torch.Tensor, px: int) -> torch.Tensor:
    """The part of the unchanged region (bool P x H x W) more than ``px`` pixels (Chebyshev) from
    any pixel the true edit changes: an error there is not an edit spilling past its boundary."""
    changed = (~unchanged).float().unsqueeze(1)
    near = torch.nn.functional.max_pool2d(changed, 2 * px + 1, stride=1, padding=px)[:, 0] > 0
    return unchanged & ~near


def mask_l1(images: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> list[float]:
    """Per pair: mean |image - gt| over the mask's pixels (all channels); NaN where the mask is empty."""
    err = (_unit(images) - _unit(gt)).abs().mean(1)
    return _nanmean(err, mask, (1, 2)).tolist()


def nanmean(values) -> float | None:
    """Mean of the finite values; None where there are none."""
    x = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else None


@torch.inference_mode()
def unchanged_parts(gen, sources: torch.Tensor, target_aus: torch.Tensor, gt: torch.Tensor, unchanged: torch.Tensor,
                    edits: torch.Tensor, batch_size: int, device) -> tuple[dict, str | None]:
    """Where the unchanged region's error comes from, per pair (``unchanged``: bool P x H x W).

    - ``l1_unchanged_far`` (and ``_source``): L1 to the ground truth on the part of the region more
      than :data:`~dftnet.eval.schema.HALO_PX` pixels from anything the true edit changes
      (:func:`far_region`): artifacts, not an edit spilling past its boundary.
    - ``copied_unchanged``: share of its pixels the edit copies exactly from the source (uint8).
    - ``synth_unchanged``: mean weight of the synthesised image there, ``1 - A`` (DFT-Net's
      texture ``B``, GANimation's colour ``C``).
    - ``flow_unchanged``: mean length of the flow ``Phi`` there, in pixels (DFT-Net only).
    - ``l1_unchanged_warp``: L1 to the ground truth there of the warped source ``X_a`` alone,
      quantised like an edit (DFT-Net only): the warp's share of the error.

    Returns ``(per-pair lists, why the DFT-Net parts are missing or None)``.
    """
    from dftnet.nets.blocks import eval_mode
    from dftnet.data.imageops import aus_to_model, to_model, to_uint8
    from dftnet.nets.models import flow_in_pixels

    weight, flow, warp = [], [], []
    with eval_mode(gen):
        for s in range(0, len(sources), batch_size):
            out = gen(to_model(sources[s:s + batch_size].to(device)), aus_to_model(target_aus[s:s + batch_size]).to(device))
            weight.append((1 - out.attention.float()).cpu()[:, 0])
            if "Phi" in out.parts:
                flow.append(flow_in_pixels(out.parts["Phi"].float()).norm(dim=1).cpu())
                warp.append(to_uint8(out.parts["X_a"]).cpu())
    mask = unchanged.cpu()
    same = (edits == sources).all(1).float()
    far = far_region(mask, HALO_PX)
    pp = {"l1_unchanged_far": mask_l1(edits, gt, far), "l1_unchanged_far_source": mask_l1(sources, gt, far),
          "copied_unchanged": _nanmean(same, mask, (1, 2)).tolist(),
          "synth_unchanged": _nanmean(torch.cat(weight), mask, (1, 2)).tolist()}
    if not flow:
        return pp, "the generator has no flow or warp (GANimation: A * X_s + (1 - A) * C)"
    pp["flow_unchanged"] = _nanmean(torch.cat(flow), mask, (1, 2)).tolist()
    pp["l1_unchanged_warp"] = mask_l1(torch.cat(warp), gt, mask)
    return pp, None
