"""Is the annotator valid? The MediaPipe AU proxies against emotion labels and OpenFace.

On a prepared photos dataset with emotion labels, each expression is told from neutral by the
sum of its prototypical AUs (:data:`PROTOTYPES`, after Ekman and Friesen's EMFACS); the ROC
AUC and its bootstrap 95% CI say how well. :data:`TARGETS` are the bars this suite holds the
annotator to; the other expressions are reported as they come. Beside them: each AU's own AUC,
per-AU distributions per expression, and the agreement with OpenFace's AUs on a few photos
that have them (the GANimation sample). An AU that no labelled expression tests is named
*unvalidated*.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dftnet.data.aus import AU_INDEX, AU_NAMES
from dftnet.data.dataset import FaceDataset
from dftnet.runtime.errors import DataError
from dftnet.reporting.results import md_table

PROTOTYPES: dict[str, tuple[str, ...]] = {
    "happiness": ("AU06", "AU12"),
    "surprise": ("AU01", "AU02", "AU05", "AU26"),
    "anger": ("AU04", "AU07", "AU23"),
    "sadness": ("AU01", "AU04", "AU15"),
}
TARGETS = {"happiness": 0.90, "surprise": 0.85}
VALID_AU_AUC = 0.70  # an AU counts as validated where its own AUC for one of its expressions reaches this
MIN_FACES = 10  # per expression, for an AUC to be reported


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    n1, n0 = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auc_ci(scores: np.ndarray, positive: np.ndarray, n_resamples: int, seed: int) -> tuple[float, float]:
    """Bootstrap 95% CI, positives and negatives resampled separately (stratified)."""
    rng = np.random.default_rng(seed)
    pos, neg = scores[positive], scores[~positive]
    labels = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
    draws = [roc_auc(np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))], labels) for _ in range(n_resamples)]
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return float(lo), float(hi)


def expression_validity(ds: FaceDataset, neutral: str, n_resamples: int, seed: int) -> dict:
    """Per expression: N, AUC of its prototype sum vs neutral, CI, each AU's own AUC."""
    if ds.emotions is None:
        raise DataError(f"{ds.meta.get('images', 'dataset')}: no emotion labels (data.photos.labels); "
                        "the annotator's validity needs them")
    emo = np.array(ds.emotions)
    aus = ds.aus.numpy().astype(np.float64)
    out = {}
    for expr, proto in PROTOTYPES.items():
        keep = (emo == expr) | (emo == neutral)
        n_pos, n_neg = int((emo == expr).sum()), int((emo == neutral).sum())
        row: dict[str, Any] = {"prototype": list(proto), "n": n_pos, "n_neutral": n_neg, "target": TARGETS.get(expr)}
        if min(n_pos, n_neg) < MIN_FACES:
            out[expr] = {**row, "auc": None, "ci": None, "per_au": {}}
            continue
        positive = emo[keep] == expr
        score = aus[keep][:, [AU_INDEX[a] for a in proto]].sum(1)
        row["auc"] = roc_auc(score, positive)
        row["ci"] = list(auc_ci(score, positive, n_resamples, seed))
        row["per_au"] = {a: roc_auc(aus[keep][:, AU_INDEX[a]], positive) for a in proto}
        row["passed"] = None if expr not in TARGETS else row["auc"] >= TARGETS[expr]
        out[expr] = row
    return out


def distributions(ds: FaceDataset, neutral: str) -> dict:
    """Per AU and per labelled expression (and all faces): mean, median, 90th percentile."""
    emo = np.array(ds.emotions or [""] * len(ds))
    groups = {"all faces": np.ones(len(ds), bool), neutral: emo == neutral,
              **{e: emo == e for e in PROTOTYPES if (emo == e).sum() >= MIN_FACES}}
    aus = ds.aus.numpy()
    return {au: {g: {"mean": float(aus[m, i].mean()), "median": float(np.median(aus[m, i])),
                     "p90": float(np.percentile(aus[m, i], 90))} for g, m in groups.items() if m.any()}
            for i, au in enumerate(AU_NAMES)}


def openface_agreement(read: np.ndarray, openface: np.ndarray, ids: list[str]) -> dict:
    """MediaPipe proxies vs OpenFace AUs on the same photos: MAE per AU, and Pearson r over all values."""
    err = np.abs(read - openface)
    flat_r = float(np.corrcoef(read.ravel(), openface.ravel())[0, 1]) if read.std() > 0 and openface.std() > 0 else None
    return {"n_photos": len(ids), "ids": ids, "mae": float(err.mean()),
            "mae_per_au": dict(zip(AU_NAMES, err.mean(0).tolist())), "pearson_r_all_values": flat_r}


def unvalidated(expr: dict) -> list[str]:
    ok = {a for row in expr.values() for a, auc in row.get("per_au", {}).items() if auc >= VALID_AU_AUC}
    return [a for a in AU_NAMES if a not in ok]


def markdown(expr: dict, dist: dict, agreement: dict | None, ds: FaceDataset, machine: str) -> str:
    """``reports/annotator.md``."""
    meta = ds.meta
    cal = meta.get("annotator", {})
    lines = ["# MediaPipe AU proxies: validity", "",
             "The annotator (`dftnet/data/annotator.py`) reads the suite's 17 AUs off MediaPipe's "
             "blendshapes and landmark geometry, calibrated on this dataset. These are **MediaPipe AU proxies, not "
             "OpenFace AUs**.", "",
             f"Data: `{meta.get('images')}`, {meta.get('n_faces')} faces found in {meta.get('n_files')} files "
             f"({meta.get('n_skipped')} skipped, listed in `skipped.csv`; found by cascade step: "
             f"{meta.get('found_by_step')}), aligned at {ds.image_size} px and read off the aligned crop. "
             f"Calibration: zero = {cal.get('zero_rule')} ({cal.get('n_neutral')} neutral faces), "
             f"five = {cal.get('five_rule')} ({cal.get('n_faces')} faces). Machine: {machine}.", "",
             "## Each expression against neutral", "",
             "Score: the sum of the expression's prototypical AUs. ROC AUC with a bootstrap 95% CI "
             "(positives and neutrals resampled separately).", ""]
    rows = []
    for e, r in expr.items():
        auc = "n/a (under %d faces)" % MIN_FACES if r["auc"] is None else f"{r['auc']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]"
        target = "-" if r["target"] is None else f">= {r['target']:.2f}: " + ("met" if r.get("passed") else "**not met**")
        per_au = ", ".join(f"{a} {v:.2f}" for a, v in r.get("per_au", {}).items()) or "-"
        rows.append([e, " + ".join(r["prototype"]), str(r["n"]), str(r["n_neutral"]), auc, target, per_au])
    lines += [md_table(["expression", "prototypical AUs", "N", "N neutral", "AUC [95% CI]", "target", "each AU's AUC"], rows), ""]
    weak = [e for e, r in expr.items() if r["target"] is None and r["auc"] is not None and r["auc"] < 0.75]
    if weak:
        lines += [f"Weak (no target set, reported as measured): {', '.join(weak)}. MediaPipe's brow-down and "
                  "frown blendshapes barely move on these photos; AU04 adds the inner brows' height to browDown.", ""]
    lines += [f"**Unvalidated AUs** (no labelled expression gives them an AUC of {VALID_AU_AUC} or more): "
              f"{', '.join(unvalidated(expr))}. Read numbers on these AUs as unvalidated.", "",
              "## Per-AU distributions (0-5)", ""]
    groups = list(next(iter(dist.values())))
    lines += [md_table(["AU", *[f"{g} mean / p90" for g in groups]],
                       [[au, *[f"{d[g]['mean']:.2f} / {d[g]['p90']:.2f}" for g in groups]] for au, d in dist.items()]), ""]
    lines += ["## Agreement with OpenFace", ""]
    if agreement is None:
        lines += ["Not measured (no photos with OpenFace AUs given: data.photos.openface_images / openface_aus).", ""]
    else:
        r = agreement["pearson_r_all_values"]
        lines += [f"On {agreement['n_photos']} photos with OpenFace AUs (the GANimation sample): MAE "
                  f"{agreement['mae']:.2f} AU units over all 17 AUs, Pearson r over all values "
                  f"{'n/a' if r is None else f'{r:.2f}'}. {agreement['n_photos']} photos say little: this is a "
                  "sanity check, not a validation.", "",
                  md_table(["AU", "MAE vs OpenFace"], [[a, f"{v:.2f}"] for a, v in agreement["mae_per_au"].items()]), ""]
    return "\n".join(lines)


def read_openface_sample(images: str | Path, aus: str | Path, annotator, size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Align and read each photo of an OpenFace-annotated folder: (proxies, OpenFace AUs, ids)."""
    from dftnet.data.au_tables import au_table_rows
    from dftnet.data.photos import prepare_photo

    table, _ = au_table_rows(aus)
    read, ref, ids = [], [], []
    for path in sorted(Path(images).iterdir()):
        if path.stem not in table:
            continue
        res = prepare_photo(path, size, annotator.landmarker)
        if res[0] != "ok":
            continue
        read.append(annotator.calibration.aus(res[2][None])[0])
        ref.append(table[path.stem].aus)
        ids.append(path.stem)
    if not ids:
        raise DataError(f"{images}: no photo with an OpenFace AU row in {aus} and a face MediaPipe finds")
    return np.stack(read), np.stack(ref).astype(np.float64), ids
