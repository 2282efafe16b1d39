"""The AU judge: an independent CNN regressor that reads AU intensities off an image.

Why a separate network: the critic D also regresses AUs, but the generator is trained to
satisfy exactly that critic (Eq. 7), so its reading of an edit is not evidence that the
edit carries the target AUs. The judge is trained in its own stage on its own split: people no
GAN ever sees (synthetic data: identities rendered for it alone; photos: ``judge_ids``), so
nothing that fools the critic was learnt from the same images. Its own accuracy is reported on
held-out judge identities and on the test split (per-AU MAE and Pearson r beside the label
spread and the MAE of the best constant, the training labels' median), so an AU error
measured with it can be read against what it can resolve.

Flips are the only augmentation: the 17 OpenFace AUs are bilateral, so a mirrored face
carries the same labels.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from dftnet.runtime import atomic, safeload
from dftnet.nets.blocks import eval_mode
from dftnet.config import JudgeConfig, from_mapping
from dftnet.data.aus import AU_MAX, AU_NAMES, N_AUS
from dftnet.data.dataset import FaceDataset
from dftnet.runtime.errors import ConfigError, DataError, TrainingDiverged
from dftnet.data.imageops import to_model

JUDGE_FORMAT = 1


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class AUJudge(nn.Module):
    """Stride-2 conv+BN+ReLU stages down to 4 x 4, each followed by a stride-1 block from
    the second stage on; global average pool; linear to 17 AUs.

    The output is linear (not squashed): most AUs are 0 on most faces, and a sigmoid could
    only approach 0 asymptotically. Readings are clamped to [0, AU_MAX] in ``judge_predict``.
    """

    def __init__(
        self,
        base_channels: int = 32,  # channels of the first conv; doubled per stage, capped at 8x
        image_size: int = 64,     # square input side in px; sets the number of stages (down to 4 x 4)
    ):
        super().__init__()
        self.base_channels, self.image_size = base_channels, image_size
        n_stages = max(1, int(math.log2(image_size // 4)))
        layers, c = [], 3
        for i in range(n_stages):
            c_out = base_channels * 2 ** min(i, 3)
            layers.append(_block(c, c_out, 2))
            if i > 0:
                layers.append(_block(c_out, c_out, 1))
            c = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, N_AUS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: B x 3 x H x W in [-1, 1] -> B x 17 raw AU intensities (OpenFace scale, unclamped)."""
        return self.head(self.features(x).mean(dim=(2, 3)))


# ----------------------------------------------------------------------------- quality
def au_quality(pred: torch.Tensor, true: torch.Tensor, reference_median: torch.Tensor | None = None) -> dict:
    """Per-AU MAE and Pearson r of ``pred`` against ``true`` (N x 17, 0-5 scale), with the
    label spread: its std and the MAE of always predicting ``reference_median`` (the training
    labels' median, the MAE-optimal constant; the sample median where not given). r is None for
    an AU constant in ``true``."""
    pred, true = pred.double(), true.double()
    ref = (true.median(0).values if reference_median is None else reference_median.double()).expand_as(true)
    mae = (pred - true).abs().mean(0)
    pc, tc = pred - pred.mean(0), true - true.mean(0)
    denom = pc.pow(2).sum(0).sqrt() * tc.pow(2).sum(0).sqrt()
    r = [float(n / d) if d > 1e-12 else None for n, d in zip((pc * tc).sum(0), denom)]
    rs = [v for v in r if v is not None]
    return {
        "n": int(len(true)),
        "mean_mae": float(mae.mean()),
        "mean_label_std": float(true.std(0, unbiased=False).mean()),
        "mean_mae_predict_median": float((ref - true).abs().mean()),
        "mean_pearson_r": float(np.mean(rs)) if rs else None,
        "per_au": {name: {"mae": float(mae[i]), "pearson_r": r[i], "label_std": float(true[:, i].std(unbiased=False)),
                          "mae_predict_median": float((ref[:, i] - true[:, i]).abs().mean())}
                   for i, name in enumerate(AU_NAMES)},
    }


@torch.inference_mode()
def judge_predict(judge: AUJudge, images_uint8: torch.Tensor, batch_size: int = 256,
                  device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 N x 3 x H x W -> float32 N x 17 AU intensities, clamped to the 0-5 scale (CPU)."""
    with eval_mode(judge):
        out = [judge(to_model(images_uint8[s:s + batch_size].to(device))).clamp(0, AU_MAX).float().cpu()
               for s in range(0, len(images_uint8), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, N_AUS)


# ---------------------------------------------------------------------------- training
def split_identities(ds: FaceDataset, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The judge's rows (:attr:`FaceDataset.judge_idx`: its own split on real photos, so that it
    never shares images or labels with the GANs' critic) split by person: (fit rows, held-out
    rows); every image of a held-out identity is held out, so the judge is scored on faces it never saw."""
    train_idx = ds.judge_idx
    who = np.asarray(ds.identities if ds.identities is not None else ds.ids)[train_idx.numpy()]
    people = np.unique(who)
    n_val = int(round(val_fraction * len(people)))
    if val_fraction > 0 and len(people) > 1:
        n_val = min(max(n_val, 1), len(people) - 1)
    held = set(np.random.default_rng(seed).permutation(people)[:n_val].tolist())
    mask = torch.from_numpy(np.array([w in held for w in who], dtype=bool))
    return train_idx[~mask], train_idx[mask]


def train_judge(ds: FaceDataset, cfg: JudgeConfig, device: str | torch.device = "cpu") -> tuple[AUJudge, dict]:
    """Fit the judge on its split (the training split, or ``judge_ids`` on real photos) minus ``val_fraction`` of its identities; report
    its quality on those held-out identities and on the test split. Seeded (``cfg.seed``)."""
    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    fit_idx, val_idx = split_identities(ds, cfg.val_fraction, cfg.seed)
    if len(fit_idx) == 0:
        raise DataError("judge: no training images left to fit on (check the train split and judge.val_fraction)")
    judge = AUJudge(cfg.base_channels, ds.image_size).to(device)
    train_mean = ds.aus[fit_idx].float().mean(0)
    train_median = ds.aus[fit_idx].float().median(0).values
    with torch.no_grad():  # start from the label mean, so early steps learn the image, not the offset
        judge.head.bias.copy_(train_mean)
    opt = torch.optim.Adam(judge.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    images, labels = ds.images[fit_idx].to(device), ds.aus[fit_idx].float().to(device)
    t0, losses = time.perf_counter(), []
    for _ in tqdm(range(cfg.epochs), desc="judge epochs", leave=False, disable=None):
        judge.train()
        order = torch.randperm(len(fit_idx), generator=gen).to(device)
        flips = torch.rand(len(fit_idx), generator=gen).to(device) < 0.5
        total = torch.zeros((), device=device)  # summed on device: no host sync per step
        for s in range(0, len(order), cfg.batch_size):
            b = order[s:s + cfg.batch_size]
            # One-image batches break BatchNorm; skip a trailing singleton.
            if len(b) < 2 and len(order) > 1:
                continue
            x = to_model(images[b])
            x = torch.where(flips[b, None, None, None], x.flip(-1), x)
            loss = torch.nn.functional.mse_loss(judge(x) / AU_MAX, labels[b] / AU_MAX)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(b)
        sched.step()
        losses.append(float(total) / len(order))
        if not math.isfinite(losses[-1]):  # a NaN judge would score every edit with garbage
            raise TrainingDiverged(f"judge: training diverged: its loss is {losses[-1]} in epoch {len(losses) - 1} "
                                   "(lower judge.lr)")
    judge.eval()

    def quality(idx: torch.Tensor) -> dict | None:
        if len(idx) == 0:
            return None
        return au_quality(judge_predict(judge, ds.images[idx], device=device), ds.aus[idx].float(), train_median)

    report = {
        "n_fit": int(len(fit_idx)), "n_heldout": int(len(val_idx)), "n_test": int(len(ds.test_ids)),
        "heldout_by": "identity" if ds.identities is not None else "image id",
        "heldout": quality(val_idx), "test": quality(ds.test_idx), "fit": quality(fit_idx),
        "loss_per_epoch": losses, "seconds": time.perf_counter() - t0, "device": str(device),
        "config": dataclasses.asdict(cfg), "image_size": ds.image_size,
    }
    return judge, report


# ------------------------------------------------------------------------- save, load
def save_judge(path: str | Path, judge: AUJudge, cfg: JudgeConfig, image_size: int) -> None:
    """Plain state dict + config, written atomically (:mod:`dftnet.runtime.atomic`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": JUDGE_FORMAT, "state_dict": {k: v.cpu() for k, v in judge.state_dict().items()},
             "config": dataclasses.asdict(cfg), "image_size": int(image_size)}
    atomic.write_with(path, lambda tmp: torch.save(state, tmp))


def load_judge(path: str | Path, device: str | torch.device = "cpu") -> AUJudge:
    """The judge saved by :func:`save_judge`, in eval mode."""
    path = Path(path)
    state = safeload.load_file(path, "judge checkpoint")
    if state.get("format") != JUDGE_FORMAT:
        raise DataError(f"{path}: not a judge checkpoint of format {JUDGE_FORMAT}")
    safeload.require(state, ("config", "image_size", "state_dict"), path, "judge checkpoint")
    try:
        cfg = from_mapping(JudgeConfig, state["config"], "judge.")
        judge = AUJudge(cfg.base_channels, int(state["image_size"]))
    except (ConfigError, TypeError, ValueError) as err:
        raise DataError(f"{path}: the judge checkpoint's config is not valid ({err})") from None
    safeload.load_weights(judge, state["state_dict"], path, "judge")
    return judge.to(device).eval()
