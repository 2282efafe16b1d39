"""Faces in photos: MediaPipe's Face Landmarker finds them, a similarity transform aligns them.

One face per photo, found in a cascade (:data:`CASCADE`): the photo as is, then padded, then
upscaled. A step's answer counts only when it is exactly one *plausible* face
(:func:`implausible`); otherwise the next step tries. On the GANimation sample one face is
read twice as is (a second, tiny false face) and once, correctly, when padded.

Alignment (:func:`align`): the eye centres and the mouth centre are mapped by the
least-squares similarity transform (rotation, uniform scale, shift) onto :data:`CANONICAL`,
the same three points for every image, and the crop is cut at ``image_size``.

The landmark indices used anywhere in the suite are named here, once (:data:`LM`).
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dftnet.runtime.errors import DataError

# MediaPipe's C++ side logs to stderr on every start; only errors are worth a line.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Face-mesh indices (478-point MediaPipe topology); "right"/"left" are the subject's.
LM = {
    "eye_r_outer": 33, "eye_r_inner": 133, "eye_l_inner": 362, "eye_l_outer": 263,
    "lid_r_upper": 159, "lid_r_lower": 145, "lid_l_upper": 386, "lid_l_lower": 374,
    "brow_r_inner": 55, "brow_l_inner": 285,
    "mouth_r": 61, "mouth_l": 291, "lip_upper_inner": 13, "lip_lower_inner": 14,
    "nose_wing_r": 129, "nose_wing_l": 358, "cheek_r": 50, "cheek_l": 280,
}
N_LANDMARKS = 478

# Where the eye centres and the mouth centre land in every crop, as fractions of its side:
# the eyes level, 0.37 apart, the mouth centred below them (faces-gray's and the GANimation
# sample's own proportions: mouth-to-eye-line distance about 1.13 x the eye distance).
CANONICAL = np.array([[0.315, 0.36], [0.685, 0.36], [0.5, 0.78]])
ALIGN_RULE = ("similarity transform (least squares) of eye centres and mouth centre onto "
              f"{CANONICAL.tolist()} x side; bilinear warp with replicated border at an integer multiple "
              "of the side, then PIL bicubic with antialias down to it")

CASCADE = ("as is", "padded", "upscaled")
PAD_FRACTION = 0.5  # each side, in image sides: a face touching the border gets context
UPSCALE_TO = 512  # px, shorter side, for small photos and crops

# Plausibility: a real face's eyes are a sane fraction of the photo apart, and its mouth sits
# below them at a face-like distance.
MIN_EYE_FRACTION = 0.1  # of the shorter side of the photo; tiny "faces" in texture are false
MAX_EYE_FRACTION = 0.9
MOUTH_RATIO = (0.6, 2.0)  # mouth-to-eye-midpoint distance over eye distance
MAX_ROLL_DEG = 60.0

# The three tflite models a Face Landmarker bundle holds (a .task file is a zip).
BUNDLE_MEMBERS = ("face_detector.tflite", "face_landmarks_detector.tflite", "face_blendshapes.tflite")


@contextlib.contextmanager
def _quiet_stderr():
    """File descriptor 2 to /dev/null for the duration (C++ logging bypasses ``sys.stderr``)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@dataclass
class Face:
    landmarks: np.ndarray  # float32 478 x 2, pixels of the image it was found in
    blendshapes: dict[str, float]  # MediaPipe's 52 scores in [0, 1]
    step: str = "as is"  # the cascade step that found it

    def point(self, name: str) -> np.ndarray:
        return self.landmarks[LM[name]]

    @property
    def eyes_mouth(self) -> np.ndarray:
        """3 x 2: right eye centre, left eye centre, mouth centre (pixels)."""
        p = self.point
        return np.stack([(p("eye_r_outer") + p("eye_r_inner")) / 2, (p("eye_l_inner") + p("eye_l_outer")) / 2,
                         (p("mouth_r") + p("mouth_l")) / 2])


def check_bundle(path: str | Path) -> Path:
    """The Face Landmarker bundle, or one DataError naming it: missing, or not such a bundle."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: MediaPipe Face Landmarker bundle not found (data.photos.landmarker)")
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(f"{path}: not a MediaPipe Face Landmarker bundle (.task zip): {err}") from None
    missing = [m for m in BUNDLE_MEMBERS if m not in names]
    if missing:
        raise DataError(f"{path}: not a Face Landmarker bundle with blendshapes (no {missing[0]} inside)")
    return path


class Landmarker:
    """MediaPipe's Face Landmarker (IMAGE mode, blendshapes on, up to ``max_faces`` faces: 2 are
    enough to tell several faces from one). One per process: it is not shareable across workers."""

    def __init__(self, bundle: str | Path, max_faces: int = 2):
        path = check_bundle(bundle)
        from mediapipe.tasks.python import BaseOptions, vision

        opts = vision.FaceLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(path)),
                                            output_face_blendshapes=True, num_faces=max_faces,
                                            running_mode=vision.RunningMode.IMAGE)
        with _quiet_stderr():  # MediaPipe's C++ start-up chatter, unaffected by GLOG_minloglevel
            try:
                self._task = vision.FaceLandmarker.create_from_options(opts)
            except Exception as err:  # a zip with the right names but broken models
                raise DataError(f"{path}: MediaPipe cannot load this Face Landmarker bundle ({err})") from None
            self.detect(np.zeros((64, 64, 3), np.uint8))  # the first call logs too
        self._closed = False
        atexit.register(self._forget)

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Faces in an RGB uint8 H x W x 3 array (grey photos must be converted first:
        MediaPipe's graph expects three channels)."""
        import mediapipe as mp

        h, w = rgb.shape[:2]
        result = self._task.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
        faces = []
        for marks, shapes in zip(result.face_landmarks, result.face_blendshapes):
            xy = np.array([[q.x * w, q.y * h] for q in marks], dtype=np.float32)
            faces.append(Face(xy, {c.category_name: float(c.score) for c in shapes}))
        return faces

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._task.close()
            atexit.unregister(self._forget)

    def __enter__(self) -> "Landmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _forget(self) -> None:
        """At interpreter exit, a task not closed is dropped without its finaliser: MediaPipe's
        ``close()`` then needs a thread pool that Python has already shut (an error per task)."""
        self._task._handle = None


def implausible(face: Face, width: int, height: int) -> str | None:
    """Why ``face`` cannot be a real face of this photo, or None."""
    r_eye, l_eye, mouth = face.eyes_mouth
    eye = eye_distance(face)
    side = min(width, height)
    if not MIN_EYE_FRACTION * side <= eye <= MAX_EYE_FRACTION * side:
        return f"implausible face: eyes {eye / side:.2f} of the image side apart"
    ratio = float(np.linalg.norm(mouth - (r_eye + l_eye) / 2)) / eye
    if not MOUTH_RATIO[0] <= ratio <= MOUTH_RATIO[1]:
        return f"implausible face: mouth {ratio:.2f} eye distances from the eyes"
    dx, dy = l_eye - r_eye
    roll = math.degrees(math.atan2(dy, dx))
    if abs(roll) > MAX_ROLL_DEG:
        return f"implausible face: rolled {roll:.0f} degrees"
    return None


def _padded(rgb: np.ndarray) -> tuple[np.ndarray, float, float]:
    h, w = rgb.shape[:2]
    py, px = int(h * PAD_FRACTION), int(w * PAD_FRACTION)
    return np.pad(rgb, ((py, py), (px, px), (0, 0)), mode="edge"), px, py


def _cascade(landmarker: Landmarker, rgb: np.ndarray):
    """(step, faces with landmarks in ``rgb``'s pixels) for each step of :data:`CASCADE`."""
    h, w = rgb.shape[:2]
    for step in CASCADE:
        if step == "as is":
            image, scale, shift = rgb, 1.0, (0.0, 0.0)
        elif step == "padded":
            image, px, py = _padded(rgb)
            scale, shift = 1.0, (px, py)
        else:
            scale = UPSCALE_TO / min(h, w)
            if scale <= 1.0:
                continue
            image = np.asarray(Image.fromarray(rgb).resize((round(w * scale), round(h * scale)),
                                                           Image.Resampling.BICUBIC))
            shift = (0.0, 0.0)
        faces = landmarker.detect(image)
        for f in faces:  # back to the photo's pixels
            # np.float32 of a pair is a float32 array of two; numpy's stubs take scalars only
            f.landmarks = (f.landmarks - np.float32(shift)) / np.float32(scale)  # type: ignore[arg-type]
            f.step = step
        yield step, faces


def find_face(landmarker: Landmarker, rgb: np.ndarray) -> tuple[Face | None, str]:
    """The one plausible face of ``rgb`` (landmarks in its pixels) and the cascade step that
    found it, or ``(None, reason)`` with the first step's reason (no face, n faces, implausible)."""
    h, w = rgb.shape[:2]
    first_reason = ""
    for step, faces in _cascade(landmarker, rgb):
        if len(faces) == 1:
            reason = implausible(faces[0], w, h)
            if reason is None:
                return faces[0], step
        else:
            reason = "no face found" if not faces else f"{len(faces)} faces"
        first_reason = first_reason or reason
    return None, first_reason


def find_faces(landmarker: Landmarker, rgb: np.ndarray) -> list[Face]:
    """Every plausible face of ``rgb`` at the first cascade step that finds any, left to right
    (up to the landmarker's ``max_faces``); [] when there is none."""
    h, w = rgb.shape[:2]
    for _, faces in _cascade(landmarker, rgb):
        good = [f for f in faces if implausible(f, w, h) is None]
        if good:
            return sorted(good, key=lambda f: float(f.eyes_mouth[:, 0].mean()))
    return []


def eye_distance(face: Face) -> float:
    r_eye, l_eye, _ = face.eyes_mouth
    return float(np.linalg.norm(l_eye - r_eye))


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2 x 3 matrix of the least-squares similarity transform taking points ``src`` to ``dst``
    (Umeyama, without reflection)."""
    src, dst = np.asarray(src, float), np.asarray(dst, float)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(sig) @ sign) / s.var(0).sum())
    return np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])


def align(rgb: np.ndarray, face: Face, size: int) -> np.ndarray:
    """The ``size`` x ``size`` RGB crop with ``face``'s eyes and mouth at :data:`CANONICAL`
    (:data:`ALIGN_RULE`). Downscaling is done by PIL with antialias, not by the warp."""
    import cv2

    m = similarity(face.eyes_mouth, CANONICAL * size)
    scale = float(np.hypot(*m[:, 0]))
    k = max(1, math.ceil(1.0 / scale))  # warp at k x size so that no photo pixel is skipped
    big = cv2.warpAffine(rgb, m * np.array([[k], [k]]), (size * k, size * k), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    if k == 1:
        return big
    return np.asarray(Image.fromarray(big).resize((size, size), Image.Resampling.BICUBIC, reducing_gap=None))


# The paste-back mask: an ellipse over the face in crop coordinates (fractions of the side),
# 1 inside, falling linearly to exactly 0 at its rim, so pixels beyond it stay as they were.
PASTE_ELLIPSE: dict[str, Any] = {"centre": (0.5, 0.56), "radii": (0.40, 0.50), "feather": 0.25}


def paste_mask(size: int) -> np.ndarray:
    """float32 size x size: 1 on the face, a linear feather over the outer quarter of the ellipse, 0 beyond."""
    (cx, cy), (rx, ry), feather = PASTE_ELLIPSE["centre"], PASTE_ELLIPSE["radii"], PASTE_ELLIPSE["feather"]
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    r = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    return np.clip((1.0 - r) / feather, 0.0, 1.0).astype(np.float32)


def paste_back(photo: np.ndarray, crop: np.ndarray, face: Face) -> np.ndarray:
    """``crop`` (an edit of ``align(photo, face, side)``) put back into ``photo``: warped with the
    inverse of the alignment and blended through :func:`paste_mask`. Pixels where the warped mask
    is 0 are returned unchanged, bit for bit."""
    import cv2

    size = crop.shape[0]
    m = similarity(face.eyes_mouth, CANONICAL * size)  # photo -> crop; warpAffine inverts it
    h, w = photo.shape[:2]
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    back = cv2.warpAffine(crop, m, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    mask = cv2.warpAffine(paste_mask(size), m, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out = photo.astype(np.float32) + mask[..., None] * (back - photo.astype(np.float32))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
