"""MediaPipe AU proxies: the suite's 17 AUs read from MediaPipe's blendshapes and landmarks.

These are *proxies*, not OpenFace AUs: each AU is the mean of one or two cues (a blendshape
score, or a landmark distance in eye-distance units), each cue calibrated on a dataset so
that its neutral faces' median reads 0 and its 99th percentile reads 5 (clipped to 0-5).

| AU | FACS name | cues |
|---|---|---|
| AU01 | inner brow raiser | blendshape browInnerUp |
| AU02 | outer brow raiser | blendshapes browOuterUpLeft/Right (mean) |
| AU04 | brow lowerer | blendshapes browDownLeft/Right; geometry: inner brows' height, eye line to brows |
| AU05 | upper lid raiser | blendshapes eyeWideLeft/Right |
| AU06 | cheek raiser | geometry: cheek points' and lower lids' height over the eye line (cheekSquint stays ~0) |
| AU07 | lid tightener | blendshapes eyeSquintLeft/Right |
| AU09 | nose wrinkler | geometry: nose wings to inner eye corners, shorter = more (noseSneer stays ~0) |
| AU10 | upper lip raiser | blendshapes mouthUpperUpLeft/Right |
| AU12 | lip corner puller | blendshapes mouthSmileLeft/Right |
| AU14 | dimpler | blendshapes mouthDimpleLeft/Right |
| AU15 | lip corner depressor | blendshapes mouthFrownLeft/Right |
| AU17 | chin raiser | blendshape mouthShrugLower |
| AU20 | lip stretcher | blendshapes mouthStretchLeft/Right |
| AU23 | lip tightener | blendshapes mouthPressLeft/Right |
| AU25 | lips part | geometry: inner-lip gap (cheekPuff-like scores stay ~0; jawOpen is AU26) |
| AU26 | jaw drop | blendshape jawOpen |
| AU45 | blink | blendshapes eyeBlinkLeft/Right |

The cues were chosen on 1,527 photos of ``faces-gray`` (the validity report's own data, so its
AUCs are not held out): AU06 from cheek height alone gave happiness 0.912 there, with the
lower lids 0.925; browDown alone gave anger 0.56, with the inner brows' height 0.60.

Distances are in units of the eye distance and heights are measured along the face's own
vertical (perpendicular to the eye line), so the cues do not depend on image size or roll.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, cast

import numpy as np

from dftnet.data.aus import AU_MAX, AU_NAMES, N_AUS
from dftnet.data.faces import Face, Landmarker, find_face
from dftnet.runtime.errors import DataError

NAME = "MediaPipe AU proxies"


def _both(name: str) -> Callable[[Face], float]:
    return lambda f: (f.blendshapes[name + "Left"] + f.blendshapes[name + "Right"]) / 2


def _one(name: str) -> Callable[[Face], float]:
    return lambda f: f.blendshapes[name]


def _frame(f: Face) -> tuple[np.ndarray, np.ndarray, float]:
    """Eye midpoint, the face's downward unit vector, eye distance."""
    r_eye, l_eye, _ = f.eyes_mouth
    across = l_eye - r_eye
    eye = float(np.linalg.norm(across))
    down = np.array([-across[1], across[0]]) / eye
    return (r_eye + l_eye) / 2, down, eye


def _height(f: Face, *names: str) -> float:
    """Mean height of landmarks above the eye line, in eye distances (up is positive)."""
    mid, down, eye = _frame(f)
    return float(-np.mean([(f.point(n) - mid) @ down for n in names]) / eye)


def _dist(f: Face, a: str, b: str) -> float:
    return float(np.linalg.norm(f.point(a) - f.point(b)) / _frame(f)[2])


# Each cue reads larger for more of its AU.
CUES: dict[str, Callable[[Face], float]] = {
    "browInnerUp": _one("browInnerUp"),
    "browOuterUp": _both("browOuterUp"),
    "browDown": _both("browDown"),
    "brow_lowered": lambda f: -_height(f, "brow_r_inner", "brow_l_inner"),
    "eyeWide": _both("eyeWide"),
    "cheek_raised": lambda f: _height(f, "cheek_r", "cheek_l"),
    "lower_lid_raised": lambda f: _height(f, "lid_r_lower", "lid_l_lower"),
    "eyeSquint": _both("eyeSquint"),
    "nose_wing_raised": lambda f: -(_dist(f, "nose_wing_r", "eye_r_inner") + _dist(f, "nose_wing_l", "eye_l_inner")) / 2,
    "mouthUpperUp": _both("mouthUpperUp"),
    "mouthSmile": _both("mouthSmile"),
    "mouthDimple": _both("mouthDimple"),
    "mouthFrown": _both("mouthFrown"),
    "mouthShrugLower": _one("mouthShrugLower"),
    "mouthStretch": _both("mouthStretch"),
    "mouthPress": _both("mouthPress"),
    "lip_gap": lambda f: _dist(f, "lip_upper_inner", "lip_lower_inner"),
    "jawOpen": _one("jawOpen"),
    "eyeBlink": _both("eyeBlink"),
}
CUE_NAMES = tuple(CUES)

AU_CUES: dict[str, tuple[str, ...]] = {
    "AU01": ("browInnerUp",), "AU02": ("browOuterUp",), "AU04": ("browDown", "brow_lowered"),
    "AU05": ("eyeWide",), "AU06": ("cheek_raised", "lower_lid_raised"), "AU07": ("eyeSquint",), "AU09": ("nose_wing_raised",),
    "AU10": ("mouthUpperUp",), "AU12": ("mouthSmile",), "AU14": ("mouthDimple",), "AU15": ("mouthFrown",),
    "AU17": ("mouthShrugLower",), "AU20": ("mouthStretch",), "AU23": ("mouthPress",), "AU25": ("lip_gap",),
    "AU26": ("jawOpen",), "AU45": ("eyeBlink",),
}
assert tuple(AU_CUES) == AU_NAMES

ZERO_RULE = "median of the faces labelled neutral (of every face where fewer than MIN_NEUTRAL are labelled)"
FIVE_RULE = "99th percentile of every face"
FIVE_PERCENTILE = 99.0
MIN_NEUTRAL = 20


def read_cues(face: Face) -> np.ndarray:
    """The raw cues of one face, float64 in :data:`CUE_NAMES` order."""
    return np.array([CUES[name](face) for name in CUE_NAMES], dtype=np.float64)


@dataclass(frozen=True)
class Calibration:
    """Per cue: the raw value that reads AU 0 and the one that reads AU 5."""

    zero: dict[str, float]
    five: dict[str, float]
    n_faces: int
    n_neutral: int

    @staticmethod
    def fit(cues: np.ndarray, neutral: np.ndarray | None = None) -> "Calibration":
        """From raw cues (N x len(CUE_NAMES)) and a mask of the neutral faces (or None)."""
        if len(cues) == 0:
            raise DataError("annotator calibration: no faces to calibrate on")
        use_neutral = neutral is not None and int(neutral.sum()) >= MIN_NEUTRAL
        zero = np.median(cues[neutral] if use_neutral else cues, axis=0)
        five = np.percentile(cues, FIVE_PERCENTILE, axis=0)
        return Calibration(dict(zip(CUE_NAMES, zero.tolist())), dict(zip(CUE_NAMES, five.tolist())), len(cues),
                           int(cast(np.ndarray, neutral).sum()) if use_neutral else 0)  # use_neutral: neutral is not None

    def to_dict(self) -> dict:
        return {"name": NAME, "zero_rule": ZERO_RULE, "five_rule": FIVE_RULE, "n_faces": self.n_faces,
                "n_neutral": self.n_neutral, "zero": self.zero, "five": self.five,
                "au_cues": {au: list(c) for au, c in AU_CUES.items()}}

    @staticmethod
    def from_dict(d: object, where: str) -> "Calibration":
        """Read back :meth:`to_dict`; one DataError naming ``where`` and the key at fault."""
        if not isinstance(d, dict):
            raise DataError(f"{where}: annotator calibration is not an object")
        out = {}
        for key in ("zero", "five"):
            table = d.get(key)
            if not isinstance(table, dict):
                raise DataError(f"{where}: annotator calibration has no {key!r} table")
            for name in CUE_NAMES:
                v = table.get(name)
                if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v):
                    raise DataError(f"{where}: annotator calibration {key}.{name}: expected a number, got {v!r}")
            out[key] = {n: float(table[n]) for n in CUE_NAMES}
        counts = [d.get(k) for k in ("n_faces", "n_neutral")]
        if not all(isinstance(c, int) and c >= 0 for c in counts):
            raise DataError(f"{where}: annotator calibration n_faces/n_neutral: expected counts, got {counts}")
        return Calibration(out["zero"], out["five"], *cast("list[int]", counts))  # checked above: counts

    def aus(self, cues: np.ndarray) -> np.ndarray:
        """Raw cues (N x cues) -> AU proxies (N x 17) on the 0-5 scale."""
        zero = np.array([self.zero[n] for n in CUE_NAMES])
        span = np.array([self.five[n] - self.zero[n] for n in CUE_NAMES])
        # A cue that does not vary in the calibration set (span <= 0) reads 0, not a division by 0.
        scaled = np.where(span > 1e-9, (cues - zero) / np.where(span > 1e-9, span, 1.0), 0.0)
        scaled = np.clip(AU_MAX * scaled, 0.0, AU_MAX)
        col = {n: i for i, n in enumerate(CUE_NAMES)}
        return np.stack([scaled[:, [col[c] for c in AU_CUES[au]]].mean(1) for au in AU_NAMES], axis=1)


class Annotator:
    """Reads AU proxies off aligned face crops: a Face Landmarker and a calibration.

    It never gives gradients: it reads uint8 images, as any judge of the suite.
    """

    def __init__(self, bundle: str, calibration: Calibration):
        self.landmarker = Landmarker(bundle)
        self.calibration = calibration

    def close(self) -> None:
        self.landmarker.close()

    def read(self, images: "np.ndarray") -> tuple[np.ndarray, np.ndarray]:
        """uint8 N x 3 x H x W -> (AU proxies N x 17 float32, found: bool N).

        A crop where no plausible face is found reads all zeros (the calibrated neutral face)
        and ``found`` False; callers report the share found beside any number read.
        """
        n = len(images)
        out = np.zeros((n, N_AUS), dtype=np.float32)
        found = np.zeros(n, dtype=bool)
        for i in range(n):
            face, _ = find_face(self.landmarker, np.ascontiguousarray(np.asarray(images[i]).transpose(1, 2, 0)))
            if face is not None:
                out[i] = self.calibration.aus(read_cues(face)[None])[0]
                found[i] = True
        return out, found

