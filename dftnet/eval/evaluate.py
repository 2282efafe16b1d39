"""Evaluate one trained generator on the test pairs: every metric, each with its protocol.

One image path: every source is edited toward its pair's target AUs in batches (eval mode,
no grad) and the edit is quantised to uint8 exactly as a real image is stored (``to_uint8``);
every metric then reads uint8 images, as it would read PNG files.

Metrics (each None with its reason where its network or library is unavailable):

- AU error: the independent judge's reading of the edit vs the target AUs (MAE, RMSE, per
  AU); beside it the same error for the unedited source (the "changed nothing" floor), for
  the neutral face (the source person with every AU at 0, "erased the expression"; on photos,
  where none can be rendered, an all-zero reading, which is what the calibrated neutral face
  reads), for the ground truth (the judge's ceiling), and the critic D's own reading of the
  edit (not independent: the generator was trained on it).
- Signed AU response: raise and lower progress of the asked AUs (:mod:`dftnet.eval.response`),
  for the edit, the source, the neutral face and the ground truth.
  On real photos also the MediaPipe AU proxies of the edit (the annotator that labelled the
  dataset; never a source of gradients), with the share of edits it found a face in.
- FID: edits vs the real test images (pytorch-fid, 2048-d pool3).
- LPIPS: source vs edit; edit vs ground truth where there is one.
- Identity: dlib embedding distance source vs edit, and source vs another person.
- Paired: L1/PSNR/SSIM vs ground truth, whole image and eye/mouth regions; L1 on the raise
  mask and on the unchanged region, each beside the source's and the neutral face's (synthetic only).

Keys, names and directions: :mod:`dftnet.eval.schema`. Inference time is not here: it is a
property of the architecture, measured once per variant by the ``timing`` stage.
"""

from __future__ import annotations

import math
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from dftnet.runtime import numerics
from dftnet.nets.blocks import eval_mode
from dftnet.config import EvalConfig
from dftnet.data.aus import AU_MAX, AU_NAMES
from dftnet.data.dataset import EvalPairs, FaceDataset
from dftnet.data.synth_dataset import neutral_faces
from dftnet.runtime.errors import DataError
from dftnet.eval.fid import compute_fid
from dftnet.eval.identity import compute_identity, other_person_index
from dftnet.eval.judge import judge_predict
from dftnet.eval.lpips_metric import compute_lpips
from dftnet.eval.paired import compute_paired
from dftnet.eval.response import mask_l1, masks, nanmean, progress, unchanged_parts
from dftnet.eval.identity import SAME_PERSON_THRESHOLD
from dftnet.eval.schema import EYELID_AU, METRICS, PER_PAIR_KEYS, RUN_METRICS
from dftnet.eval.stats import bootstrap_ci
from dftnet.eval.timing import device_name
from dftnet.data.imageops import aus_to_model, to_model, to_uint8

SUMMARY_KEYS = tuple(m.key for m in RUN_METRICS)  # the schema's metrics, every one in every file (null if unavailable)


def library_versions() -> dict:
    out: dict[str, str | None] = {}
    for name in ("torch", "torchvision", "torchmetrics", "pytorch-fid", "lpips", "dlib-bin", "numpy", "scipy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


@torch.inference_mode()
def edit_pairs(gen, ds: FaceDataset, batch_size: int, device: str | torch.device = "cpu",
               pairs: EvalPairs | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(sources, edits), uint8 P x 3 x H x W: every pair's source edited toward its target AUs
    (``pairs``: default the test pairs; the learning study passes the validation pairs)."""
    pairs = ds.pairs if pairs is None else pairs
    assert pairs is not None  # evaluate checks ds.pairs first; the learning study passes its validation pairs
    sources = ds.images[ds.index(pairs.source_ids)]
    edits = []
    with eval_mode(gen):
        for s in tqdm(range(0, len(pairs), batch_size), desc="editing", leave=False, disable=None):
            x = to_model(sources[s:s + batch_size].to(device))
            aus = aus_to_model(pairs.target_aus[s:s + batch_size]).to(device)
            edits.append(to_uint8(gen(x, aus).image).cpu())
    return sources, torch.cat(edits)


@torch.inference_mode()
def critic_read_aus(critic, images_uint8: torch.Tensor, batch_size: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """The critic's AU regression of uint8 images, on the 0-5 scale (its output is [0, 1])."""
    with eval_mode(critic):
        out = [critic(to_model(images_uint8[s:s + batch_size].to(device)))[1].float().cpu() * AU_MAX
               for s in range(0, len(images_uint8), batch_size)]
    return torch.cat(out)


def au_errors(pred: torch.Tensor, target: torch.Tensor) -> dict:
    """MAE and RMSE of AU readings (P x 17, 0-5), overall and per AU, and per pair (MAE)."""
    err = pred.double() - target.double()
    return {"mae": float(err.abs().mean()), "rmse": float(err.pow(2).mean().sqrt()),
            "per_au": {n: {"mae": float(err[:, i].abs().mean()), "rmse": float(err[:, i].pow(2).mean().sqrt())}
                       for i, n in enumerate(AU_NAMES)},
            "per_pair_mae": err.abs().mean(1).tolist(),
            "per_pair_per_au": {n: err[:, i].abs().tolist() for i, n in enumerate(AU_NAMES)}}


def _references(read, sources: torch.Tensor, edits: torch.Tensor, target: torch.Tensor, source_labels: torch.Tensor,
                neutral: torch.Tensor | None, gt: torch.Tensor | None) -> tuple[dict, dict]:
    """AU errors and signed response of one reader (``read``: uint8 images -> P x 17) for the edit
    and its references: the source, the neutral face (an all-zero reading where none is given)
    and the ground truth (where given). Returns (that block, the readings themselves)."""
    readings = {"edit": read(edits), "source": read(sources)}
    readings["neutral"] = read(neutral) if neutral is not None else torch.zeros_like(readings["source"])
    if gt is not None:
        readings["gt"] = read(gt)
    out: dict[str, Any] = {k: au_errors(v, target) for k, v in readings.items()}
    out["progress"] = {k: progress(v, readings["source"], target, source_labels) for k, v in readings.items()}
    out["neutral_rule"] = ("the source person rendered with every AU at 0" if neutral is not None
                           else "an all-zero AU reading (what the calibrated neutral face reads)")
    return out, readings


def evaluate_au(judge, critic, sources: torch.Tensor, edits: torch.Tensor, target: torch.Tensor,
                source_labels: torch.Tensor, batch_size: int, device, neutral: torch.Tensor | None = None,
                gt: torch.Tensor | None = None) -> dict:
    out: dict = {"reason": None, "edit": None, "source": None, "critic": None, "judge_on_sources": None,
                 "critic_reason": None}
    if judge is None:
        out["reason"] = "no AU judge given"
    else:
        block, readings = _references(lambda x: judge_predict(judge, x, batch_size, device), sources, edits, target,
                                      source_labels, neutral, gt)
        out.update(block)
        # How well the judge reads these very sources against their own labels: the floor
        # below which an edit's AU error cannot be told apart from judge error.
        out["judge_on_sources"] = au_errors(readings["source"], source_labels)
    if critic is None:
        out["critic_reason"] = "no critic given"
    else:
        out["critic"] = au_errors(critic_read_aus(critic, edits, batch_size, device), target)
    return out


def evaluate_annotator(annotator, sources: torch.Tensor, edits: torch.Tensor, target: torch.Tensor,
                       source_labels: torch.Tensor) -> dict:
    """The MediaPipe AU proxies (:mod:`dftnet.data.annotator`) read off the edits and the sources.

    An image where MediaPipe finds no face reads the calibrated neutral face (all 0) and counts
    in ``found``; the share found is reported beside the error (metric ``mp_found``).
    """
    if annotator is None:
        return {"reason": "not a photos dataset: MediaPipe AU proxies are calibrated on real photos (data.source: photos)"}
    hits = []  # face found, per image: the edits' first, then the sources' (the order _references reads them)

    def read(images: torch.Tensor) -> torch.Tensor:
        aus, hit = annotator.read(images.numpy())
        hits.append(hit)
        return torch.from_numpy(aus)

    out, _ = _references(read, sources, edits, target, source_labels, None, None)
    return {"reason": None, "name": "MediaPipe AU proxies", **out, "found": hits[0].astype(float).tolist(),
            "found_sources": float(hits[1].mean())}


def evaluate_identity(ds: FaceDataset, sources: torch.Tensor, edits: torch.Tensor, seed: int) -> dict:
    """dlib distances; each distinct source is embedded once, its "other person" drawn among the other sources."""
    assert ds.pairs is not None  # evaluate checks the test pairs before it calls this
    unique = list(dict.fromkeys(ds.pairs.source_ids))
    row = {sid: i for i, sid in enumerate(unique)}
    first: dict[str, int] = {}
    for p, sid in enumerate(ds.pairs.source_ids):
        first.setdefault(sid, p)
    who_of = dict(zip(ds.ids, ds.identities)) if ds.identities is not None else {i: i for i in ds.ids}
    others = other_person_index([who_of[s] for s in unique], seed)
    out = compute_identity(sources[[first[s] for s in unique]], edits, [row[s] for s in ds.pairs.source_ids], others)
    out["other_rule"] = ("a seeded random test source of a different identity" if ds.identities is not None
                         else "a seeded random other test source (identities unknown: assumed a different person)")
    return out


_REF_SUFFIX = {"edit": "", "source": "_source", "neutral": "_neutral", "gt": "_gt"}


def _reader_pairs(block: dict, tag: str) -> dict:
    """Per-pair AU error and raise/lower progress of one reader, for the edit and each reference."""
    pp = {}
    for ref, suffix in _REF_SUFFIX.items():
        if block.get(ref) is None:
            continue
        pp[f"au_mae{tag}{suffix}"] = block[ref]["per_pair_mae"]
        for way in ("raise", "lower"):
            pp[f"au_{way}{tag}{suffix}"] = block["progress"][ref][way]["per_pair"]
    return pp


def _per_pair(au: dict, mp: dict, lp: dict, ident: dict, paired: dict, paired_source: dict | None,
              masked: dict | None = None) -> dict:
    """``{schema key: one value per test pair, in pair order, or None}`` (NaN inside a list: the
    pair has no value, e.g. it asks no raise)."""
    pp: dict = dict.fromkeys(PER_PAIR_KEYS)
    if mp["reason"] is None:
        pp.update(_reader_pairs(mp, "_mp"))
        pp["mp_found"] = mp["found"]
    if au["edit"] is not None:
        pp.update(_reader_pairs(au, ""))
        pp.update({f"au_mae_{EYELID_AU}": au["edit"]["per_pair_per_au"][EYELID_AU],
                   f"au_mae_{EYELID_AU}_source": au["source"]["per_pair_per_au"][EYELID_AU]})
    pp.update(masked or {})
    if au["critic"] is not None:
        pp["au_mae_critic"] = au["critic"]["per_pair_mae"]
    pp["lpips"] = lp["source_edit"]["per_image"]
    pp["lpips_gt"] = (lp.get("edit_gt") or {}).get("per_image")
    if ident.get("per_pair") is not None:
        pp["id_dist"] = ident["per_pair"]
        pp["id_share_same"] = [float(d < SAME_PERSON_THRESHOLD) for d in ident["per_pair"]]
    for block, suffix in ((paired, ""), (paired_source, "_source")):
        for name, values in ((block or {}).get("per_image") or {}).items():
            kind, _, region = name.partition("_")  # l1, psnr, ssim; eyes, mouth
            pp[f"{kind}_gt" + (f"_{region}" if region else "") + suffix] = values
    unknown = set(pp) - set(METRICS)
    assert not unknown, f"per-pair values without a schema entry: {sorted(unknown)}"
    return pp


def _summary(au: dict, fid: dict, ident: dict, per_pair: dict) -> dict:
    """``{schema key: value or None}``: the mean of the per-pair values where there are any."""
    s: dict = dict.fromkeys(SUMMARY_KEYS)
    s.update({k: nanmean(v) for k, v in per_pair.items() if v})
    s["au_rmse"] = au["edit"]["rmse"] if au["edit"] is not None else None
    s["fid"] = fid["value"]
    s["id_dist_other"] = ident.get("mean_dist_other")
    return s


def evaluate_run(gen, critic, ds: FaceDataset, judge, cfg: EvalConfig, device: str | torch.device = "cpu",
                 regions: dict | None = None, fid_model=None, lpips_model=None,
                 annotator=None) -> tuple[dict, torch.Tensor]:
    """Every metric for ``gen`` on ``ds.pairs``: ``(metrics, edits)``, metrics JSON-serialisable,
    edits uint8 P x 3 x H x W in pair order.

    regions: normalised eye/mouth boxes for the paired errors (default: the synthetic
    renderer's). annotator: the MediaPipe AU proxies of a photos dataset
    (:func:`dftnet.data.photos.annotator_for`), or None. fid_model, lpips_model: networks the caller built, used instead of loading the
    pretrained weights (recorded in ``protocol.injected_networks``; the pipeline never injects).
    """
    if ds.pairs is None or len(ds.pairs) == 0:
        raise DataError("evaluate: the dataset has no evaluation pairs (pairs.csv)")
    device = torch.device(device)
    pairs = ds.pairs
    sources, edits = edit_pairs(gen, ds, cfg.batch_size, device)
    source_labels = ds.aus[ds.index(pairs.source_ids)].float()
    neutral = neutral_faces(ds, pairs.source_ids)
    au = evaluate_au(judge, critic, sources, edits, pairs.target_aus.float(), source_labels, cfg.batch_size, device,
                     neutral, pairs.gt)
    mp = evaluate_annotator(annotator, sources, edits, pairs.target_aus.float(), source_labels)
    fid = compute_fid(ds.images[ds.test_idx], edits, cfg.fid_weights, device, 50, fid_model)
    lp_sets = {"source_edit": (sources, edits)}
    if pairs.gt is not None:
        lp_sets["edit_gt"] = (edits, pairs.gt)
    lp = compute_lpips(lp_sets, cfg.lpips_weights, device, cfg.batch_size, lpips_model)
    ident = (evaluate_identity(ds, sources, edits, cfg.seed) if cfg.identity
             else {"reason": "disabled (eval.identity: false)", "per_pair": None})
    paired = compute_paired(edits, pairs.gt, regions)
    # The "changed nothing" reference: the unedited source against the ground truth.
    paired_source = compute_paired(sources, pairs.gt, regions) if pairs.gt is not None else None
    if paired_source is not None:
        paired["source_floor"] = paired_source["mean"]
    parts_reason: str | None
    masked, parts_reason = None, "no ground truth: the unchanged region needs one (synthetic data only)"
    if pairs.gt is not None and neutral is not None:
        raise_mask, unchanged = masks(pairs.gt, sources, neutral)
        masked = {f"l1_{name}{suffix}": mask_l1(images, pairs.gt, mask)
                  for name, mask in (("raise", raise_mask), ("unchanged", unchanged))
                  for suffix, images in (("", edits), ("_source", sources), ("_neutral", neutral))}
        parts, parts_reason = unchanged_parts(gen, sources, pairs.target_aus, pairs.gt, unchanged, edits,
                                              cfg.batch_size, device)
        masked.update(parts)
        paired["masks"] = {"raise_share": float(raise_mask.float().mean()), "unchanged_share": float(unchanged.float().mean())}
    per_pair = _per_pair(au, mp, lp, ident, paired, paired_source, masked)
    summary = _summary(au, fid, ident, per_pair)
    # Each run's own 95% CI of each mean over its test pairs (the report's claims pair runs instead).
    ci = {k: bootstrap_ci(v, cfg.bootstrap, cfg.seed) for k, v in per_pair.items() if v}
    unavailable = {k: v for k, v in {"au": au["reason"], "au_critic": au["critic_reason"], "annotator": mp["reason"],
                                     "fid": fid["reason"],
                                     "lpips": lp["reason"], "identity": ident.get("reason"),
                                     "paired": paired["reason"], "parts": parts_reason}.items() if v}
    protocol = {
        "n_pairs": len(pairs), "n_sources": len(set(pairs.source_ids)), "n_test_images": len(ds.test_ids),
        "image_size": ds.image_size, "seed": cfg.seed, "bootstrap_resamples": cfg.bootstrap,
        "image_format": "PNG-equivalent uint8 (edits quantised with to_uint8: round, clamp)",
        "resize": "none except inside a metric: FID bilinear to 299 (pytorch-fid); identity chips to 150 (dlib)",
        "au_scale": "OpenFace 0-5; critic outputs [0,1] multiplied by 5",
        "versions": library_versions(), "device": str(device), "device_name": device_name(device),
        "numerics": numerics.record(),
        "dataset": {k: v for k, v in ds.meta.items() if isinstance(v, (str, int, float, bool, type(None)))},
        "unavailable": unavailable,
        "injected_networks": [k for k, m in (("fid", fid_model), ("lpips", lpips_model)) if m is not None],
    }
    # Which person each pair's source is: the claims resample people (and all their pairs), not pairs.
    who_of = dict(zip(ds.ids, ds.identities)) if ds.identities is not None else {}
    pair_index = {"pair_id": list(pairs.pair_ids), "source_identity": [who_of.get(s, s) for s in pairs.source_ids]}
    metrics = {"summary": summary, "ci": ci, "per_pair": per_pair, "pairs": pair_index, "au": au, "annotator": mp,
               "fid": fid, "lpips": lp, "identity": ident, "paired": paired, "protocol": protocol}
    return _finite_or_none(metrics), edits


def _finite_or_none(obj):
    """NaN/inf -> None so that the metrics are strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return _finite_or_none(obj.item())
    return obj
