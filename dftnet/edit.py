"""Edit your own photo with a trained run: ``dftnet edit``.

Each photo's face is found and aligned as ``prepare`` does (:mod:`dftnet.data.faces`), its AUs
read (the MediaPipe AU proxies of a prepared photos dataset, else the suite's judge), edited
by the run's generator toward the target, then put back into the photo through a feathered
mask with the inverse of the alignment (or kept as the aligned crop, ``crop``).

What goes back (``paste``):

- ``change`` (the default): only the *change* the generator makes,
  ``photo + mask * upsample(G(x, target) - G(x, source AUs))``. The generator's own rendering of
  the source at its own AUs has the same blur, colour bias and low resolution as its edit, so
  the difference cancels them and the photo keeps its sharpness and colours wherever the edit
  changes nothing.
- ``plain``: the generator's low-resolution rendering itself, warped back and blended in.

``colour``: a model trained on grey photos edits the *luminance* of a colour photo
(``luminance``): it sees the grey version, and its change is added equally to R, G and B,
which moves the luminance and leaves the chroma as it was. ``rgb`` feeds the colour crop.
``auto`` picks ``luminance`` when the run was trained on grey images.

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
from typing import Callable, Sequence, cast

import numpy as np
import torch
from PIL import Image

from dftnet.runtime import atomic
from dftnet.data.aus import AU_INDEX, AU_MAX, AU_NAMES, N_AUS
from dftnet.data.faces import Face, Landmarker, align, eye_distance, find_faces, paste_back
from dftnet.data.images import IMAGE_EXTS, open_image, to_rgb
from dftnet.runtime.errors import DataError

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
            assert like is not None  # edit_photos reads the --like face whenever a like target is given
            return like.copy()
        out = source.copy()
        # without aus and like, __post_init__ leaves the expression: it is a str here
        for name, value in (self.aus or {name: self.strength for name in EXPRESSIONS[cast(str, self.expression)]}).items():
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
    stems: dict[str, Path] = {}
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


AUReader = Callable[[np.ndarray], np.ndarray]  # aligned uint8 N x S x S x 3 crops -> N x 17 AU intensities
PASTES = ("change", "plain")
COLOURS = ("auto", "luminance", "rgb")
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, as PIL's convert("L")


def luminance(rgb: np.ndarray) -> np.ndarray:
    """uint8 ... x 3 -> uint8 ... x 3 with every channel the BT.601 luminance (a grey image in RGB)."""
    y = np.clip(np.rint(rgb.astype(np.float32) @ LUMA), 0, 255).astype(np.uint8)
    return np.repeat(y[..., None], 3, axis=-1)


def is_grey(images: np.ndarray) -> bool:
    """True when every image of uint8 N x ... x 3 has equal channels (a grey dataset stored as RGB)."""
    return bool((images[..., 0] == images[..., 1]).all() and (images[..., 1] == images[..., 2]).all())


def trained_on_grey(data_root: str | Path, sample: int = 64) -> bool | None:
    """Whether the prepared dataset at ``data_root`` (the run's training data) holds grey images:
    ``meta.json``'s ``grey`` where it says, else the first ``sample`` training images read
    (None: no dataset there to tell)."""
    from dftnet.data.canonical import read_meta

    root = Path(data_root)
    if not (root / "meta.json").is_file():
        return None
    meta = read_meta(root)
    if "grey" in meta:
        return bool(meta["grey"])
    ids = (root / "train_ids.txt").read_text().split() if (root / "train_ids.txt").is_file() else []
    files = [root / "images" / f"{i}.png" for i in ids[:sample]]
    files = [p for p in files if p.is_file()]
    if not files:
        return None
    return is_grey(np.stack([np.asarray(to_rgb(open_image(p), p)) for p in files]))


def resolve_colour(colour: str, data_root: str | Path) -> str:
    """``auto`` -> ``luminance`` when the run's training data (``data_root``) are grey, else ``rgb``."""
    if colour not in COLOURS:
        raise DataError(f"--colour: {colour!r} is not one of {', '.join(COLOURS)}")
    if colour != "auto":
        return colour
    return "luminance" if trained_on_grey(data_root) else "rgb"


def paste_change(photo: np.ndarray, change: np.ndarray, face: Face) -> np.ndarray:
    """``photo`` plus ``change`` (float32 S x S x 3 or S x S x 1 in 0-255 units, in the aligned
    crop's frame: edit minus the generator's rendering of the source) warped back with the inverse
    of the alignment (bilinear: the upsampling) and weighted by the feathered paste mask. A
    one-channel change is added to R, G and B alike (a luminance change, chroma kept). Pixels
    where the warped mask is 0 are returned unchanged, bit for bit."""
    import cv2

    from dftnet.data.faces import CANONICAL, paste_mask, similarity

    size = change.shape[0]
    m = similarity(face.eyes_mouth, CANONICAL * size)  # photo -> crop; warpAffine inverts it
    h, w = photo.shape[:2]
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    back = cv2.warpAffine(np.ascontiguousarray(change, np.float32), m, (w, h), flags=flags,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    back = back.reshape(h, w, -1)
    mask = cv2.warpAffine(paste_mask(size), m, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out = photo.astype(np.float32) + mask[..., None] * back
    edited = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return np.where(mask[..., None] > 0, edited, photo)


def generate(G, crops: np.ndarray, aus: np.ndarray, batch_size: int, device) -> np.ndarray:
    """uint8 N x S x S x 3 crops and N x 17 target AUs (0-5) -> uint8 edited crops."""
    from dftnet.data.imageops import aus_to_model, to_model, to_uint8

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
                reader: AUReader | None, landmarker: Landmarker, steps: int = 1,
                gif: bool = False, crop: bool = False, face: str | None = None, batch_size: int = 16,
                device: str | torch.device = "cpu", paste: str = "change", colour: str = "rgb") -> list[Path]:
    """Edit every photo (module docstring); all outputs are written together or not at all.

    ``reader``: uint8 N x S x S x 3 crops -> N x 17 AUs (the source's own reading); None only when
    nothing needs a reading (every AU given, one step, ``paste`` plain). ``paste``: change | plain;
    ``colour``: luminance | rgb (``auto`` is resolved by the caller, who knows the training data).
    Returns the files written.
    """
    if paste not in PASTES:
        raise DataError(f"--paste: {paste!r} is not one of {', '.join(PASTES)}")
    if colour not in COLOURS[1:]:
        raise DataError(f"--colour: {colour!r} is not one of {', '.join(COLOURS[1:])} (auto is resolved by the caller)")
    found = find(paths, landmarker, image_size, face)
    crops = np.stack([f.crop for f in found])
    seen = luminance(crops) if colour == "luminance" else crops  # what the generator and the reader see
    need = target.needs_reading or steps > 1 or paste == "change"
    if need and reader is None:
        raise DataError("edit: the source's AUs must be read (unnamed AUs keep them; the interpolation and the "
                        "change paste start from them) but no AU reader is available: prepare a photos dataset, "
                        "train the judge, or give every AU with --paste plain")
    # reader is not None where need holds (checked above)
    source = cast(AUReader, reader)(seen) if need else np.zeros((len(found), N_AUS), np.float32)
    like = None
    if target.like is not None:
        other = find([target.like], landmarker, image_size, face)[0]
        assert reader is not None  # a --like target leaves AUs unnamed, so need held and the reader was checked
        like = reader(luminance(other.crop[None]) if colour == "luminance" else other.crop[None])[0]
    goal = np.stack([target.resolve(s, like) for s in source]).astype(np.float32)
    w = frame_weights(steps)
    aus = np.concatenate([source + wk * (goal - source) for wk in w]) if steps > 1 else goal
    frames = generate(G, np.tile(seen, (len(w), 1, 1, 1)), aus, batch_size, device)
    frames = frames.reshape(len(w), len(found), *frames.shape[1:])
    base = generate(G, seen, source, batch_size, device) if paste == "change" else None

    def show(frame: np.ndarray, i: int, f: Found) -> np.ndarray:
        if base is None:  # plain: the rendering itself (its luminance, for a grey model)
            frame = luminance(frame) if colour == "luminance" else frame
            return frame if crop else paste_back(f.photo, frame, f.face)
        change = frame.astype(np.float32) - base[i].astype(np.float32)
        if colour == "luminance":
            change = change.mean(-1, keepdims=True)
        if crop:
            return np.clip(np.rint(f.crop.astype(np.float32) + change), 0, 255).astype(np.uint8)
        return paste_change(f.photo, change, f.face)

    written = []
    with atomic.staged(out_dir) as stage:
        for i, f in enumerate(found):
            shown = [show(fr[i], i, f) for fr in frames]
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


# ------------------------------------------------------------- the shipped generator
# `dftnet edit` without --run uses the real-face DFT-Net shipped in the repository: its weights
# (generator.pt), the calibration of the AU proxies it was trained with (meta.json, read like a
# prepared photos dataset's) and where it came from (provenance.json). `dftnet ship` rewrites it.
SHIPPED = Path(__file__).resolve().parents[1] / "models" / "real-faces"
GENERATOR = "generator.pt"


def export_generator(run_dir: str | Path, data_root: str | Path, out_dir: str | Path, provenance: dict) -> list[Path]:
    """A trained run's generator for editing, without the critic and optimiser state (a few
    hundred kB instead of 10 MB): ``generator.pt`` (weights, run config, steps), ``meta.json``
    (the AU proxies' calibration of the run's photos dataset ``data_root`` and whether its images
    are grey) and ``provenance.json`` (``provenance`` as given, e.g. params, commit, metrics).
    All three are written together or not at all."""
    import json

    from dftnet.training.checkpoints import CHECKPOINT, read_checkpoint, require_finished
    from dftnet.data.canonical import read_meta

    require_finished(run_dir)
    ckpt = read_checkpoint(Path(run_dir) / CHECKPOINT)
    meta = read_meta(data_root)
    if meta.get("annotator") is None:
        raise DataError(f"{data_root}/meta.json: not a photos dataset (no AU proxy calibration to ship)")
    shipped_meta = {k: meta[k] for k in ("format_version", "source", "image_size", "annotator", "landmarker", "align")
                    if k in meta}
    shipped_meta["grey"] = bool(trained_on_grey(data_root))
    payload = {"format": "generator", "config": ckpt["config"], "epoch": ckpt["epoch"], "step": ckpt["step"],
               "G": ckpt["G"]}
    out_dir = Path(out_dir)
    with atomic.staged(out_dir) as stage:
        torch.save(payload, stage / GENERATOR)
        (stage / "meta.json").write_text(json.dumps(shipped_meta, indent=1) + "\n")
        (stage / "provenance.json").write_text(json.dumps(provenance, indent=1) + "\n")
    return [out_dir / GENERATOR, out_dir / "meta.json", out_dir / "provenance.json"]


def load_generator(run_dir: str | Path, device: str | torch.device = "cpu"):
    """``(G, run config)`` of a run folder (``checkpoint.pt`` of a finished run) or of an exported
    generator folder (``generator.pt``); loaded without executing code, one-line errors."""
    from dftnet.runtime import safeload
    from dftnet.training.checkpoints import load_trained, require_finished, run_config_of
    from dftnet.nets.generators import build_generator

    path = Path(run_dir) / GENERATOR
    if not path.is_file():
        require_finished(run_dir)
        G, _, run = load_trained(run_dir, device)
        return G, run
    state = safeload.load_file(path, "exported generator")
    safeload.require(state, ("format", "config", "G"), path, "exported generator")
    run = run_config_of(state, path)
    G = build_generator(run.model, run.image_size)
    safeload.load_weights(G, state["G"], path, "generator")
    return G.to(device).eval(), run


def ship(params_path: str | Path, run_dir: str | Path, data_root: str | Path, metrics_path: str | Path,
         out_dir: str | Path = SHIPPED, note: str = "") -> list[Path]:
    """Export ``run_dir`` as the shipped generator, with its provenance: the params file and the
    run's resolved config, the commit, the training data, and the headline metrics it scored
    (``metrics_path``: its ``eval/<variant>/seed<k>/metrics.json``)."""
    import hashlib
    import json
    import subprocess

    from dftnet.training.checkpoints import CHECKPOINT, read_checkpoint
    from dftnet.data.canonical import read_meta

    metrics = json.loads(Path(metrics_path).read_text())
    meta = read_meta(data_root)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                                cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    keys = ("au_mae_mp", "au_mae_mp_source", "au_mae_mp_neutral", "au_raise_mp", "au_raise_mp_neutral", "au_lower_mp",
            "au_mae", "au_mae_source", "au_mae_neutral", "au_raise", "mp_found")
    provenance = {
        "what": "DFT-Net trained on real grey face photos, the generator `dftnet edit` uses when --run is not given",
        "params_file": str(params_path),
        "params_sha256": hashlib.sha256(Path(params_path).read_bytes()).hexdigest(),
        "run": read_checkpoint(Path(run_dir) / CHECKPOINT)["config"],
        "trained_from": str(run_dir),
        "commit_when_shipped": commit,
        "note": note,
        "data": {k: meta.get(k) for k in ("source", "images", "labels", "n_train", "n_val", "n_test", "n_judge",
                                           "image_size", "seed", "mediapipe")},
        "metrics": {"file": str(metrics_path), "n_pairs": metrics["protocol"]["n_pairs"],
                    "summary": {k: metrics["summary"].get(k) for k in keys}},
    }
    return export_generator(run_dir, data_root, out_dir, provenance)
