"""Identity preservation: dlib's 128-d face-recognition embedding (ResNet, LFW 99.38%).

Protocol (our images are tight face crops, often too small or too tight for dlib's
detector as they are):

1. Detection, once per *source* image: pad the crop by 25% of its side on every edge
   (edge replication), run the frontal HOG detector with one pyramid up-sampling, keep the
   largest face.
2. Where a face was found, each image (the source and every edit of it) is aligned with
   dlib's 5-point shape predictor *inside the source's face box* and cut with
   ``get_face_chip`` (150 x 150, padding 0.25), dlib's documented recipe. An edit
   reuses its source's box so source and edit are always framed by the same rule.
3. Where no face was found, the whole crop is resized to 150 x 150 (bilinear, antialiased,
   rounded to uint8) and fed to ``compute_face_descriptor`` as an aligned chip.

Counts of detected vs whole-crop sources are recorded. Distances are Euclidean; dlib's
same-person threshold is 0.6. The "other person" distance (a source against an image of a
different identity) gives the scale.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as nnf
from tqdm import tqdm

SAME_PERSON_THRESHOLD = 0.6
CHIP_SIZE = 150
RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_MODEL = "shape_predictor_5_face_landmarks.dat"
DETECT_PAD = 0.25  # share of the side added on each edge before detection


def find_dlib_models() -> tuple[Path | None, str | None]:
    """The ``face_recognition_models`` model folder, or None and the reason.

    The package's ``__init__`` imports ``pkg_resources``, absent on new setuptools, so
    its folder is located without importing it.
    """
    try:
        import dlib  # noqa: F401
    except ImportError as err:
        return None, f"dlib not importable ({err}); install dlib-bin"
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None, "face_recognition_models not installed"
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    missing = [f for f in (RECOGNITION_MODEL, SHAPE_MODEL) if not (folder / f).is_file()]
    if missing:
        return None, f"model files not found: looked in {folder} for {', '.join(missing)}"
    return folder, None


def _hwc(image_uint8: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(image_uint8.permute(1, 2, 0).cpu().numpy())


def whole_crop_chip(image_uint8: torch.Tensor) -> np.ndarray:
    """3 x H x W uint8 -> 150 x 150 x 3 uint8 (bilinear, antialiased, rounded)."""
    x = nnf.interpolate(image_uint8[None].float(), size=(CHIP_SIZE, CHIP_SIZE), mode="bilinear",
                      align_corners=False, antialias=True)
    return _hwc(x[0].round().clamp(0, 255).to(torch.uint8))


class IdentityEmbedder:
    """dlib detector, 5-point aligner and face-recognition ResNet, with the protocol above."""

    def __init__(self, models_dir: Path):
        import dlib

        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(models_dir / SHAPE_MODEL))
        self.net = dlib.face_recognition_model_v1(str(models_dir / RECOGNITION_MODEL))

    @staticmethod
    def _pad(img: np.ndarray) -> tuple[np.ndarray, int]:
        p = int(round(DETECT_PAD * img.shape[0]))
        return np.pad(img, ((p, p), (p, p), (0, 0)), mode="edge"), p

    def detect(self, image_uint8: torch.Tensor):
        """The largest face box in the padded image, or None."""
        padded, _ = self._pad(_hwc(image_uint8))
        faces = self.detector(padded, 1)
        return max(faces, key=lambda r: r.area()) if len(faces) else None

    def chip(self, image_uint8: torch.Tensor, box) -> np.ndarray:
        """150 x 150 x 3 chip: aligned inside ``box`` (a detection on the padded source), else whole crop."""
        if box is None:
            return whole_crop_chip(image_uint8)
        padded, _ = self._pad(_hwc(image_uint8))
        return self.dlib.get_face_chip(padded, self.shape(padded, box), size=CHIP_SIZE, padding=0.25)

    def embed(self, chips: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
        out: list[np.ndarray] = []
        for s in range(0, len(chips), batch_size):
            out.extend(np.asarray(d) for d in self.net.compute_face_descriptor(chips[s:s + batch_size]))
        return np.stack(out) if out else np.zeros((0, 128))


def other_person_index(identities: list[str], seed: int = 0) -> list[int]:
    """For each image, the index of a (seeded) random image of a different identity, or -1 if none."""
    rng = np.random.default_rng(seed)
    ids = np.asarray(identities)
    out = []
    for who in ids:
        candidates = np.flatnonzero(ids != who)
        out.append(int(rng.choice(candidates)) if len(candidates) else -1)
    return out


def identity_protocol() -> dict:
    import dlib

    return {"library": f"dlib {dlib.__version__}", "model": RECOGNITION_MODEL,
            "detection": f"frontal HOG detector, 1 up-sampling, on the source padded by {DETECT_PAD:.0%} (edge), largest face",
            "alignment": f"{SHAPE_MODEL} inside the source's box + get_face_chip(150, padding 0.25), same box for the edit",
            "fallback": "no face found: whole crop resized to 150x150 (bilinear, antialias, rounded) as the chip",
            "distance": "Euclidean on 128-d descriptors", "same_person_threshold": SAME_PERSON_THRESHOLD,
            "num_jitters": 0}


def compute_identity(sources_uint8: torch.Tensor, edits_uint8: torch.Tensor, source_of_edit: list[int],
                     other_of_source: list[int] | None = None) -> dict:
    """Identity distances with their protocol; every value None (and ``reason``) without dlib.

    sources_uint8: S x 3 x H x W distinct source images; edits_uint8: P x 3 x H x W;
    source_of_edit[p]: the row of edit p's source; other_of_source[s]: the row of a source
    of a different person (-1: none), for the source-vs-other-person scale.
    """
    out: dict[str, Any] = {"reason": None, "mean_dist": None, "share_same": None, "mean_dist_other": None,
           "share_same_other": None, "per_pair": None, "n_pairs": int(len(edits_uint8))}
    folder, reason = find_dlib_models()
    if folder is None:
        out["reason"] = reason
        return out
    out["protocol"] = identity_protocol()
    emb = IdentityEmbedder(folder)
    boxes = [emb.detect(s) for s in tqdm(sources_uint8, desc="identity detect", leave=False, disable=None)]
    out["n_sources"] = len(boxes)
    out["n_sources_detected"] = sum(b is not None for b in boxes)
    out["n_sources_whole_crop"] = sum(b is None for b in boxes)
    src = emb.embed([emb.chip(s, b) for s, b in zip(sources_uint8, boxes)])
    chips = [emb.chip(e, boxes[j]) for e, j in tqdm(list(zip(edits_uint8, source_of_edit)), desc="identity edits",
                                                     leave=False, disable=None)]
    edit = emb.embed(chips)
    d = np.linalg.norm(edit - src[np.asarray(source_of_edit, dtype=int)], axis=1)
    out.update(mean_dist=float(d.mean()), share_same=float((d < SAME_PERSON_THRESHOLD).mean()), per_pair=d.tolist())
    if other_of_source is not None:
        rows = [(s, o) for s, o in enumerate(other_of_source) if o >= 0]
        if rows:
            a, b = np.asarray(rows).T
            d_other = np.linalg.norm(src[a] - src[b], axis=1)
            out.update(mean_dist_other=float(d_other.mean()),
                       share_same_other=float((d_other < SAME_PERSON_THRESHOLD).mean()), n_other=len(rows))
    return out
