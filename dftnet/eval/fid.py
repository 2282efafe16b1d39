"""FID (Heusel et al. 2017) with pytorch-fid's InceptionV3, the standard 2048-d pool3 protocol.

Data flow, one function per stage so each is testable alone:
``images_to_features`` -> ``features_to_statistics`` -> ``statistics_to_fid``.

Image path (as pytorch-fid does for PNG files): uint8 N x 3 x H x W -> float in [0, 1]
(``ToTensor``'s division by 255); the network resizes to 299 x 299 bilinearly
(``resize_input=True``, ``align_corners=False``) and maps to [-1, 1] (``normalize_input=True``).

Weights: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (the TF FID graph ported),
read from an explicit path or the torch hub cache. Nothing is ever downloaded: pytorch-fid's
own constructor would fetch the file, so the same architecture is built here with the
weights loaded from disk. Where the file is absent FID is ``None`` with the reason.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_DIMS = 2048  # pool3 features; fewer images than this leave the covariance singular


def find_fid_weights(weights_path: str = "") -> tuple[Path | None, list[str]]:
    """The Inception weights file and the places looked in: the explicit path, else the hub cache."""
    if weights_path:
        candidates = [Path(weights_path)]
    else:
        candidates = [Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_FILE]
    found = next((p for p in candidates if p.is_file()), None)
    return found, [str(p) for p in candidates]


def sha256_prefix(path: Path, n: int = 8) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:n]


@contextmanager
def _offline_fid_inception(state_dict: dict | None):
    """Make pytorch-fid's ``InceptionV3(use_fid_inception=True)`` build offline.

    pytorch-fid's ``fid_inception_v3`` builds the FID variant of torchvision's Inception and
    then downloads its weights; for the duration of the block it is replaced by the same
    construction (pytorch-fid's own patched blocks) that loads ``state_dict`` instead, or
    keeps the random initialisation when ``state_dict`` is None (tests only).
    """
    from pytorch_fid import inception as pfi

    def build():
        net = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
        net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
        net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
        net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
        net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
        net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
        net.Mixed_7b = pfi.FIDInceptionE_1(1280)
        net.Mixed_7c = pfi.FIDInceptionE_2(2048)
        if state_dict is not None:
            net.load_state_dict(state_dict)
        return net

    original = pfi.fid_inception_v3
    pfi.fid_inception_v3 = build
    try:
        yield
    finally:
        pfi.fid_inception_v3 = original


def build_fid_inception(state: dict | None):
    """pytorch-fid's FID Inception (pool3, 2048-d) with ``state`` loaded; ``None``: the
    architecture with PyTorch's initialisation (a seam for tests; never reported as FID)."""
    from pytorch_fid.inception import InceptionV3

    with _offline_fid_inception(state):
        return InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[FID_DIMS]], resize_input=True, normalize_input=True)


def load_fid_inception(weights_path: str = "", device: str | torch.device = "cpu"):
    """``(model, None, info)`` with the FID Inception in eval mode, or ``(None, reason, info)``."""
    info: dict = {"weights_file": None, "weights_sha256_prefix": None}
    path, looked = find_fid_weights(weights_path)
    if path is None:
        return None, "weights not found: looked in " + ", ".join(looked), info
    state = torch.load(path, map_location="cpu", weights_only=True)
    info.update(weights_file=str(path), weights_sha256_prefix=sha256_prefix(path))
    return build_fid_inception(state).eval().to(device), None, info


@torch.inference_mode()
def images_to_features(model, images_uint8: torch.Tensor, batch_size: int = 50,
                       device: str | torch.device = "cpu") -> np.ndarray:
    """uint8 N x 3 x H x W -> float64 N x 2048 pool3 features (pytorch-fid's PNG path)."""
    if images_uint8.dtype != torch.uint8:
        raise TypeError(f"images_to_features: expected uint8 images, got {images_uint8.dtype}")
    feats = []
    for start in tqdm(range(0, len(images_uint8), batch_size), desc="fid features", leave=False, disable=None):
        x = images_uint8[start:start + batch_size].to(device).float() / 255.0
        feats.append(model(x)[0].squeeze(-1).squeeze(-1).double().cpu())
    return torch.cat(feats).numpy() if feats else np.zeros((0, FID_DIMS))


def features_to_statistics(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (``np.cov``, N - 1 normalisation, as pytorch-fid)."""
    feats = np.asarray(feats, dtype=np.float64)
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def statistics_to_fid(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``.

    tr((S1 S2)^(1/2)) is computed as the sum of square roots of the eigenvalues of the
    symmetric PSD matrix S1^(1/2) S2 S1^(1/2), which has the same eigenvalues as S1 S2.
    This equals pytorch-fid's ``calculate_frechet_distance`` (scipy ``sqrtm``; tested), and
    stays real and finite when the covariances are singular (fewer images than 2048).
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root1 @ s2 @ root1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def fid_protocol() -> dict:
    return {
        "name": "fid_pool3_2048",
        "library": f"pytorch-fid {version('pytorch-fid')}",
        "weights": FID_WEIGHTS_FILE,
        "input": "uint8 -> float [0,1] (/255, as ToTensor on PNG)",
        "resize": "bilinear to 299x299 inside InceptionV3 (align_corners=False)",
        "normalize": "2x-1 inside InceptionV3",
        "dims": FID_DIMS,
        "covariance": "np.cov, N-1",
    }


def compute_fid(real_uint8: torch.Tensor, fake_uint8: torch.Tensor, weights_path: str = "",
                device: str | torch.device = "cpu", batch_size: int = 50, model=None) -> dict:
    """FID between two uint8 image sets, with its protocol; ``value`` is None (and ``reason``
    says why) where the weights are absent. ``small_n`` flags sets under 2048 images, where
    the covariance is rank-deficient and FID is biased upward; compare such values only at
    equal N. ``model``: a network the caller built (recorded as injected) instead of the weights."""
    n_real, n_fake = int(len(real_uint8)), int(len(fake_uint8))
    out: dict[str, Any] = {"value": None, "reason": None, "n_real": n_real, "n_fake": n_fake,
           "small_n": min(n_real, n_fake) < FID_DIMS, "protocol": fid_protocol()}
    if model is None:
        model, reason, info = load_fid_inception(weights_path, device)
    else:
        reason, info = None, {"weights_file": "injected by the caller", "weights_sha256_prefix": None}
    out["protocol"].update(info)
    if model is None:
        out["reason"] = reason
        return out
    if min(n_real, n_fake) < 2:
        out["reason"] = f"needs at least 2 images per set, got {n_real} real and {n_fake} edited"
        return out
    mu_r, s_r = features_to_statistics(images_to_features(model, real_uint8, batch_size, device))
    mu_f, s_f = features_to_statistics(images_to_features(model, fake_uint8, batch_size, device))
    out["value"] = statistics_to_fid(mu_r, s_r, mu_f, s_f)
    return out
