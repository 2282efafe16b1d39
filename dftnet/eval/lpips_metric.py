"""LPIPS (Zhang et al. 2018), the ``lpips`` package v0.1 with the AlexNet trunk.

Inputs are uint8 images, mapped to [-1, 1] as the networks see them (``to_model``), at
their own resolution (no resize; LPIPS was calibrated on 64 x 64 patches).

Weights: the trunk is torchvision's ImageNet AlexNet (``alexnet-owt-7be5be79.pth``), read
from ``lpips_weights`` (a folder) or the torch hub cache; the linear calibration layers
(``alex.pth``) come from that folder where present, else from inside the lpips package. The
package is built with ``pnet_rand=True`` so that it never downloads, and the trunk is then
loaded from disk. Where the trunk is absent LPIPS is ``None`` with the reason.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import torch
from tqdm import tqdm

from dftnet.data.imageops import to_model

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
LINEAR_FILE = "alex.pth"


def find_lpips_weights(weights_dir: str = "") -> tuple[Path | None, Path, list[str]]:
    """(AlexNet trunk file or None, linear-layer file, places looked in for the trunk)."""
    import lpips

    package_linear = Path(lpips.__file__).parent / "weights" / "v0.1" / LINEAR_FILE
    if weights_dir:
        trunk_candidates = [Path(weights_dir) / ALEXNET_FILE]
        linear = Path(weights_dir) / LINEAR_FILE
        linear = linear if linear.is_file() else package_linear
    else:
        trunk_candidates = [Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE]
        linear = package_linear
    trunk = next((p for p in trunk_candidates if p.is_file()), None)
    return trunk, linear, [str(p) for p in trunk_candidates]


def _load_alexnet_trunk(model, state: dict) -> None:
    """Copy torchvision AlexNet ``features.{i}.*`` into lpips' ``net.slice{k}.{i}.*``."""
    slices = {}
    for k in range(1, model.net.N_slices + 1):
        for name, _ in getattr(model.net, f"slice{k}").named_children():
            slices[int(name)] = k
    mapped = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "features":
            i = int(parts[1])
            mapped[f"net.slice{slices[i]}.{i}.{parts[2]}"] = value
    expected = {k for k in model.state_dict() if k.startswith("net.")}
    if set(mapped) != expected:
        missing = sorted(expected - set(mapped))
        raise ValueError(f"AlexNet weights do not fit lpips' trunk (missing {missing[:3]})")
    model.load_state_dict(mapped, strict=False)


def build_lpips(weights_dir: str = ""):
    """lpips' AlexNet LPIPS v0.1 with the package's own linear layers and an uninitialised
    trunk (:func:`load_lpips` loads the trunk; a test may use it as it is: never reported as LPIPS)."""
    import warnings

    import lpips

    linear = find_lpips_weights(weights_dir)[1]
    with warnings.catch_warnings():
        # lpips passes torchvision's deprecated `pretrained=False`; the trunk is loaded separately.
        warnings.simplefilter("ignore", UserWarning)
        return lpips.LPIPS(pretrained=True, net="alex", version="0.1", pnet_rand=True,
                           model_path=str(linear), verbose=False)


def load_lpips(weights_dir: str = "", device: str | torch.device = "cpu"):
    """``(model, None, info)`` in eval mode, or ``(None, reason, info)`` where weights are absent."""
    from dftnet.eval.fid import sha256_prefix

    trunk, linear, looked = find_lpips_weights(weights_dir)
    info = {"trunk_file": str(trunk) if trunk else None, "linear_file": str(linear)}
    if trunk is None:
        return None, "weights not found: looked in " + ", ".join(looked), info
    model = build_lpips(weights_dir)
    info["trunk_sha256_prefix"] = sha256_prefix(trunk)
    _load_alexnet_trunk(model, torch.load(trunk, map_location="cpu", weights_only=True))
    return model.eval().to(device), None, info


@torch.inference_mode()
def lpips_distances(model, a_uint8: torch.Tensor, b_uint8: torch.Tensor, batch_size: int = 64,
                    device: str | torch.device = "cpu") -> torch.Tensor:
    """Per-image LPIPS between paired uint8 image sets, float N."""
    if a_uint8.shape != b_uint8.shape:
        raise ValueError(f"lpips: image sets differ in shape, {tuple(a_uint8.shape)} vs {tuple(b_uint8.shape)}")
    out = []
    for s in tqdm(range(0, len(a_uint8), batch_size), desc="lpips", leave=False, disable=None):
        a = to_model(a_uint8[s:s + batch_size].to(device))
        b = to_model(b_uint8[s:s + batch_size].to(device))
        out.append(model(a, b).flatten().float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


def lpips_protocol() -> dict:
    return {"name": "lpips_alex_v0.1", "library": f"lpips {version('lpips')}", "trunk": ALEXNET_FILE,
            "input": "uint8 -> [-1,1] (x/127.5 - 1)", "resize": "none (native resolution)"}


def compute_lpips(pairs: dict, weights_dir: str = "", device: str | torch.device = "cpu", batch_size: int = 64,
                  model=None) -> dict:
    """LPIPS for each named pair of uint8 sets, ``{name: (a, b)}`` -> ``{name: {mean, per_image}}``.

    ``value``s are None with a ``reason`` where the weights are absent. ``model``: a network
    the caller built (recorded as injected) instead of the weights.
    """
    if model is None:
        model, reason, info = load_lpips(weights_dir, device)
    else:
        reason, info = None, {"trunk_file": "injected by the caller"}
    out = {"reason": reason, "protocol": {**lpips_protocol(), **info}}
    for name, (a, b) in pairs.items():
        if model is None:
            out[name] = {"mean": None, "per_image": None}
            continue
        d = lpips_distances(model, a, b, batch_size, device)
        out[name] = {"mean": float(d.mean()) if len(d) else None, "per_image": d.tolist()}
    return out
