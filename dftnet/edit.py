"""Edit your own photo with a trained run: ``dftnet edit``.

Each photo's face is found and aligned as ``prepare`` does (:mod:`dftnet.data.faces`), its AUs
read (the MediaPipe AU proxies of a prepared photos dataset, else the suite's judge), edited
by the run's generator toward the target, then warped back into the photo with the inverse
transform and blended in through a feathered mask (or kept as the aligned crop, ``crop``).

Targets: explicit AUs (those not named keep the source's own reading), a named expression
(:data:`EXPRESSIONS`, its prototypical AUs set to ``strength``), or another photo's AUs
(the paper's Fig. 5). ``steps`` > 1 adds the interpolation from the source's AUs to the target
as a strip (and a GIF); its first frame is the edit at the source's own AUs.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from dftnet import atomic
from dftnet.data.aus import AU_INDEX, AU_MAX, AU_NAMES, N_AUS
from dftnet.data.faces import Face, Landmarker, align, eye_distance, find_faces, paste_back
from dftnet.data.images import IMAGE_EXTS, open_image, to_rgb
from dftnet.errors import DataError

# Prototypical AUs of each basic expression (Ekman and Friesen's EMFACS), within the suite's 17
# AUs: disgust's AU16 and the unilateral R12/R14 of contempt have no channel here.
EXPRESSIONS: dict[str, tuple[str, ...]] = {
    "happiness": ("AU06", "AU12"),
    "sadness": ("AU01", "AU04", "AU15"),
    "surprise": ("AU01", "AU02", "AU05", "AU26"),
    "fear": ("AU01", "AU02", "AU04", "AU05", "AU07", "AU20", "AU26"),
    "anger": ("AU04", "AU05", "AU07", "AU23"),
    "disgust": ("AU09", "AU15", "AU17"),
    "contempt": ("AU12", "AU14"),
}


def parse_aus(text: str) -> dict[str, float]:
    """``"AU12=3,AU06=2"`` -> {"AU12": 3.0, "AU06": 2.0}; one DataError naming what is wrong."""
    out: dict[str, float] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        m = re.fullmatch(r"(AU\d+)\s*=\s*([-+0-9.eE]+)", item, flags=re.IGNORECASE)
        if not m:
            raise DataError(f"--aus: {item!r} is not AU<nn>=<intensity> (e.g. AU12=3)")
        name = "AU%02d" % int(m.group(1)[2:])
        if name not in AU_INDEX:
            raise DataError(f"--aus: {m.group(1)} is not one of the suite's 17 AUs ({', '.join(AU_NAMES)})")
        try:
            value = float(m.group(2))
        except ValueError:
            raise DataError(f"--aus: {item!r}: {m.group(2)!r} is not a number") from None
        if not 0.0 <= value <= AU_MAX:
            raise DataError(f"--aus: {name}={m.group(2)} is outside the AU scale 0-{AU_MAX:g}")
        if name in out:
            raise DataError(f"--aus: {name} given twice")
        out[name] = value
    if not out:
        raise DataError("--aus: no AU given (e.g. --aus AU12=3,AU06=2)")
    return out


@dataclass(frozen=True)
class Target:
    """What to edit toward: exactly one of ``aus``, ``expression``, ``like``."""

    aus: dict | None = None
    expression: str | None = None
    strength: float = 3.0
    like: Path | None = None

    def __post_init__(self):
        if sum(x is not None for x in (self.aus, self.expression, self.like)) != 1:
            raise DataError("edit: give exactly one target: --aus, --expression or --like")
        if self.expression is not None and self.expression not in EXPRESSIONS:
            raise DataError(f"--expression: {self.expression!r} is not one of {', '.join(EXPRESSIONS)}")
        if not 0.0 <= self.strength <= AU_MAX:
            raise DataError(f"--strength: {self.strength:g} is outside the AU scale 0-{AU_MAX:g}")

    @property
    def needs_reading(self) -> bool:
        """False only when every AU is given: nothing is read off the source."""
        return not (self.aus is not None and len(self.aus) == N_AUS)

    def resolve(self, source: np.ndarray, like: np.ndarray | None) -> np.ndarray:
        """The target AUs (17) for a source whose own reading is ``source``."""
        if self.like is not None:
            return like.copy()
        out = source.copy()
        for name, value in (self.aus or {name: self.strength for name in EXPRESSIONS[self.expression]}).items():
            out[AU_INDEX[name]] = value
        return out


@dataclass
class Found:
    path: Path
    photo: np.ndarray  # RGB uint8 H x W x 3
    face: Face
    crop: np.ndarray  # aligned, image_size


def photo_paths(items: Sequence[str | Path]) -> list[Path]:
    """Files as given; a folder stands for its image files, sorted."""
    out: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            files = sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
            if not files:
                raise DataError(f"{item}: no photos ({', '.join(IMAGE_EXTS)})")
            out += files
        else:
            out.append(item)
    stems = {}
    for p in out:
        if p.stem in stems:
            raise DataError(f"{p}: same name as {stems[p.stem]}; the outputs would overwrite each other")
        stems[p.stem] = p
    return out


def choose_face(faces: list[Face], which: str | None, path: Path) -> Face:
    """The face to edit: the only one, the largest, or the N-th from the left (1-based)."""
    if not faces:
        raise DataError(f"{path}: no face found")
    if which is None:
        if len(faces) > 1:
            raise DataError(f"{path}: {len(faces)} faces found; choose one with --face largest or --face N "
                            "(1 = leftmost)")
        return faces[0]
    if which == "largest":
        return max(faces, key=eye_distance)
    if not which.isdigit() or not 1 <= int(which) <= len(faces):
        raise DataError(f"--face: {which!r} is not 'largest' or a face number 1-{len(faces)} for {path}")
    return faces[int(which) - 1]


def find(paths: list[Path], landmarker: Landmarker, size: int, which: str | None) -> list[Found]:
    """Every photo read, its face found and aligned; the first problem stops everything."""
    from tqdm import tqdm

    found = []
    for path in tqdm(paths, desc="edit: faces", unit="photo", file=sys.stderr, disable=len(paths) < 2):
        photo = np.asarray(to_rgb(open_image(path), path))
        face = choose_face(find_faces(landmarker, photo), which, path)
        found.append(Found(path, photo, face, align(photo, face, size)))
    return found


def generate(G, crops: np.ndarray, aus: np.ndarray, batch_size: int, device) -> np.ndarray:
    """uint8 N x S x S x 3 crops and N x 17 target AUs (0-5) -> uint8 edited crops."""
    from dftnet.imageops import aus_to_model, to_model, to_uint8

    out = []
    with torch.no_grad():
        for s in range(0, len(crops), batch_size):
            x = to_model(torch.from_numpy(crops[s:s + batch_size]).permute(0, 3, 1, 2).to(device))
            a = aus_to_model(torch.from_numpy(aus[s:s + batch_size]).float().to(device))
            out.append(to_uint8(G(x, a).image).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out)


def frame_weights(steps: int) -> np.ndarray:
    """Interpolation weights toward the target: [1] for one step, else 0 ... 1 in ``steps``."""
    return np.ones(1) if steps <= 1 else np.linspace(0.0, 1.0, steps)


def edit_photos(paths: list[Path], G, image_size: int, target: Target, out_dir: Path,
                reader: Callable[[np.ndarray], np.ndarray] | None, landmarker: Landmarker, steps: int = 1,
                gif: bool = False, crop: bool = False, face: str | None = None, batch_size: int = 16,
                device: str | torch.device = "cpu") -> list[Path]:
    """Edit every photo (module docstring); all outputs are written together or not at all.

    ``reader``: uint8 N x S x S x 3 crops -> N x 17 AUs (the source's own reading); None only when
    ``target`` needs no reading. Returns the files written.
    """
    found = find(paths, landmarker, image_size, face)
    crops = np.stack([f.crop for f in found])
    need = target.needs_reading or steps > 1
    if need and reader is None:
        raise DataError("edit: the source's AUs must be read (unnamed AUs keep them; the interpolation starts "
                        "from them) but no AU reader is available: prepare a photos dataset or train the judge")
    source = reader(crops) if need else np.zeros((len(found), N_AUS), np.float32)
    like = None
    if target.like is not None:
        other = find([target.like], landmarker, image_size, face)[0]
        like = reader(other.crop[None])[0]
    goal = np.stack([target.resolve(s, like) for s in source]).astype(np.float32)
    w = frame_weights(steps)
    aus = np.concatenate([source + wk * (goal - source) for wk in w]) if steps > 1 else goal
    frames = generate(G, np.tile(crops, (len(w), 1, 1, 1)), aus, batch_size, device)
    frames = frames.reshape(len(w), len(found), *frames.shape[1:])
    written = []
    with atomic.staged(out_dir) as stage:
        for i, f in enumerate(found):
            shown = [fr[i] if crop else paste_back(f.photo, fr[i], f.face) for fr in frames]
            name = f.path.stem + ("_crop" if crop else "")
            Image.fromarray(shown[-1]).save(stage / f"{name}_edit.png")
            written.append(out_dir / f"{name}_edit.png")
            if steps > 1:
                Image.fromarray(np.concatenate(shown, axis=1)).save(stage / f"{name}_strip.png")
                written.append(out_dir / f"{name}_strip.png")
                if gif:
                    ims = [Image.fromarray(x) for x in shown + shown[-2:0:-1]]  # there and back, ends once
                    ims[0].save(stage / f"{name}.gif", save_all=True, append_images=ims[1:], duration=80, loop=0)
                    written.append(out_dir / f"{name}.gif")
    return written
