"""Procedural synthetic faces with exact Action Units: the project's embedded default dataset.

Why a renderer: real AU datasets (EmotioNet, BP4D) cannot ship with the benchmark, and their
AU labels are OpenFace estimates. Here the AUs are the renderer's inputs, so they are exact,
and the same identity can be rendered under any AUs: the ground truth of an edit, which lets
the benchmark measure paired errors that no real dataset allows.

Every face is a stack of signed-distance-field (SDF) shapes composited back to front with a
one-pixel antialiased edge (coverage ``clamp(0.5 - d / pixel, 0, 1)``), so one identity
renders consistently at any square size. Coordinates are normalised, ``x`` to the right and
``y`` down, both in [0, 1]. Faces are left-right symmetric: bilateral features (eyes, brows,
cheeks, nostrils, dimples) are drawn once in the mirrored coordinate ``|x - cx|``. Features
that no AU moves are drawn over the whole frame; the rest only inside a fixed window
(``_WINDOWS``), which keeps each AU's effect inside its ``REGIONS`` box and the renderer fast.

What each AU does (intensity a on OpenFace's 0-5 scale, effects linear in a / 5):

=====  ====================  =========================================================
AU01   inner brow raiser     inner brow ends rise (the brow slants up towards the nose)
AU02   outer brow raiser     outer brow ends rise, the arch grows
AU04   brow lowerer          brows lower and draw together; vertical frown lines between them
AU05   upper lid raiser      upper lids rise: white shows above the iris
AU06   cheek raiser          cheeks rise (highlight and infraorbital furrow move up), lower
                             lids push up, crow's-feet creases at the outer eye corners
AU07   lid tightener         lower lids rise and straighten, upper lids drop a little,
                             lower lid line darkens
AU09   nose wrinkler         horizontal wrinkles on the nose bridge, nostrils rise and flare
AU10   upper lip raiser      upper lip rises (upper teeth show), nasolabial folds deepen
AU12   lip corner puller     corners move up and out (smile), nasolabial folds deepen
AU14   dimpler               dimples beside the corners, corners tighten back
AU15   lip corner depressor  corners move down, short creases below them
AU17   chin raiser           lower lip pushed up and out, chin crease deepens, chin dimpling
AU20   lip stretcher         mouth stretches wider and flatter, lips thin a little
AU23   lip tightener         lips thin and the mouth narrows
AU25   lips part             lips separate a little, showing the teeth
AU26   jaw drop              lower lip, chin and jaw move down, opening a dark mouth with
                             upper and lower teeth and the tongue
AU45   blink                 the skin-coloured upper lid slides down to the lower lid; at 5
                             the iris is fully hidden
=====  ====================  =========================================================

Identity (fixed per person, never per render): face shape, skin tone over a light-to-deep
range, skin texture noise, freckles, moles, hair colour and shape, brow thickness and arch,
eye size and iris colour, nose, lip colour and thickness, clothes, background, lighting.
Train and test identities come from disjoint seed streams.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as nnf

from dftnet.data.aus import AU_INDEX, AU_MAX, AU_NAMES, N_AUS

RENDERER_VERSION = 1
_TEX = 64  # side of the per-identity texture (skin noise, freckles); resampled to the render size

AU_MEANINGS: dict[str, str] = {
    "AU01": "inner brow raiser", "AU02": "outer brow raiser", "AU04": "brow lowerer",
    "AU05": "upper lid raiser", "AU06": "cheek raiser", "AU07": "lid tightener",
    "AU09": "nose wrinkler", "AU10": "upper lip raiser", "AU12": "lip corner puller",
    "AU14": "dimpler", "AU15": "lip corner depressor", "AU17": "chin raiser",
    "AU20": "lip stretcher", "AU23": "lip tightener", "AU25": "lips part",
    "AU26": "jaw drop", "AU45": "blink",
}

# Shapes are laid out in "face space"; the image shows it magnified by _ZOOM around _CENTRE,
# so the face fills the frame about as much as in aligned face crops (eyes near y = 0.4).
_ZOOM = 1.15
_CENTRE = (0.5, 0.54)


def _to_image(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """A face-space box in image coordinates (clipped to the frame)."""
    x0, y0 = 0.5 + (box[0] - _CENTRE[0]) * _ZOOM, 0.5 + (box[1] - _CENTRE[1]) * _ZOOM
    x1, y1 = 0.5 + (box[2] - _CENTRE[0]) * _ZOOM, 0.5 + (box[3] - _CENTRE[1]) * _ZOOM
    return cast("tuple[float, float, float, float]", tuple(round(min(max(v, 0.0), 1.0), 3) for v in (x0, y0, x1, y1)))


# Where each AU acts, as face-space boxes (x0, y0, x1, y1): every pixel an AU changes lies
# inside its box for every identity (identity geometry varies little enough for that; the
# tests check it). REGIONS gives them in image coordinates.
_BROWS = (0.28, 0.30, 0.72, 0.46)
_EYES = (0.28, 0.36, 0.72, 0.50)
_CHEEKS = (0.25, 0.39, 0.75, 0.66)
_NOSE = (0.41, 0.43, 0.59, 0.67)
_FACE_REGIONS = {
    "brows": _BROWS, "eyes": _EYES, "cheeks": _CHEEKS, "nose": _NOSE, "mouth": (0.32, 0.57, 0.68, 0.86),
    "AU01": _BROWS, "AU02": _BROWS, "AU04": _BROWS, "AU05": _EYES, "AU06": _CHEEKS, "AU07": _EYES,
    "AU09": _NOSE, "AU10": (0.34, 0.54, 0.66, 0.77), "AU12": (0.32, 0.57, 0.68, 0.83),
    "AU14": (0.33, 0.58, 0.67, 0.83), "AU15": (0.34, 0.58, 0.66, 0.83), "AU17": (0.34, 0.59, 0.66, 0.96),
    "AU20": (0.32, 0.58, 0.68, 0.83), "AU23": (0.34, 0.58, 0.66, 0.83), "AU25": (0.37, 0.62, 0.63, 0.84),
    "AU26": (0.19, 0.62, 0.81, 1.0), "AU45": _EYES,
}
REGIONS: dict[str, tuple[float, float, float, float]] = {k: _to_image(v) for k, v in _FACE_REGIONS.items()}

# Windows the AU-driven features are drawn in (each contains the features it draws).
_WINDOWS = {
    "eyes": (0.26, 0.26, 0.74, 0.52),
    "cheeks": (0.16, 0.40, 0.84, 0.67),
    "nose": (0.38, 0.40, 0.62, 0.67),
    "mouth": (0.26, 0.57, 0.74, 1.00),
}

_SKIN = torch.tensor([[0.98, 0.87, 0.79], [0.94, 0.78, 0.66], [0.84, 0.64, 0.50], [0.70, 0.50, 0.36],
                      [0.54, 0.37, 0.25], [0.40, 0.26, 0.17], [0.30, 0.19, 0.13]])
_HAIR = torch.tensor([[0.07, 0.06, 0.06], [0.20, 0.13, 0.08], [0.38, 0.25, 0.15], [0.78, 0.64, 0.40],
                      [0.55, 0.24, 0.11], [0.66, 0.66, 0.65]])
_HAIR_P = torch.tensor([0.28, 0.26, 0.18, 0.12, 0.08, 0.08])
_IRIS = torch.tensor([[0.36, 0.21, 0.10], [0.20, 0.12, 0.07], [0.45, 0.38, 0.17], [0.30, 0.46, 0.26],
                      [0.30, 0.50, 0.76], [0.47, 0.56, 0.62]])
_IRIS_P = torch.tensor([0.3, 0.2, 0.12, 0.12, 0.16, 0.1])
_WHITE = torch.tensor([0.94, 0.92, 0.89])
_TEETH = torch.tensor([0.95, 0.93, 0.86])
_MOUTH_IN = torch.tensor([0.24, 0.07, 0.08])
_TONGUE = torch.tensor([0.80, 0.38, 0.40])
_LASH = torch.tensor([0.07, 0.05, 0.05])


# ------------------------------------------------------------------------- identities
@dataclass(frozen=True)
class Identity:
    """A batch of n identities; every field is a float32 tensor with leading dimension n.

    Lengths are normalised image units (the frame is 1 x 1). Colours are RGB in [0, 1].
    """

    face: torch.Tensor  # n x 6: centre x, centre y, half width, upper half height, lower half height, chin taper
    skin: torch.Tensor  # n x 3
    texture: torch.Tensor  # n x 2 x _TEX x _TEX: skin noise (zero mean), freckle alpha
    moles: torch.Tensor  # n x 3 x 3: x, y, radius (radius 0 = no mole)
    hair: torch.Tensor  # n x 3 colour
    hair_shape: torch.Tensor  # n x 5: hairline y at the centre, hairline curvature, parting offset, volume, length
    brows: torch.Tensor  # n x 6: inner x (from centre), outer x, y, arch, thickness, darkness
    brow_colour: torch.Tensor  # n x 3
    eyes: torch.Tensor  # n x 5: centre x (from centre), centre y, half width, upper opening, lower opening
    iris: torch.Tensor  # n x 3 colour
    nose: torch.Tensor  # n x 3: tip y, half width, nasolabial fold depth at rest
    mouth: torch.Tensor  # n x 4: centre y, half width, upper lip thickness, lower lip thickness
    lips: torch.Tensor  # n x 3 colour
    background: torch.Tensor  # n x 3 colour
    clothes: torch.Tensor  # n x 3 colour
    light: torch.Tensor  # n x 4: light gradient x, y on the face; background gradient x, y

    def __len__(self) -> int:
        return int(self.face.shape[0])

    def take(self, idx: torch.Tensor) -> "Identity":
        """Select (or repeat) identities by index: ``ident.take(torch.tensor([0, 0, 2]))``."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        return Identity(**{f.name: getattr(self, f.name)[idx] for f in dataclasses.fields(self)})


# The people of each split come from a stream of their own (:func:`stream`).
IDENTITY_STREAMS = {"train": 0, "test": 1, "val": 4, "judge": 5}


def stream(seed: int, tag: int) -> torch.Generator:
    """A generator for one of the renderer's independent random streams of ``seed``.

    Streams: 0 train identities, 1 test identities, 2 expressions, 3 evaluation pairs,
    4 validation identities, 5 the judge's identities, 6 validation and judge expressions,
    7 validation pairs. The mapping is injective, so no two splits share a stream.
    """
    return torch.Generator().manual_seed(int(seed) * 16 + tag)


def _palette(colours: torch.Tensor, probs: torch.Tensor, n: int, jitter: float, g: torch.Generator) -> torch.Tensor:
    pick = torch.multinomial(probs, n, replacement=True, generator=g)
    return (colours[pick] + jitter * (2 * torch.rand(n, 3, generator=g) - 1)).clamp(0, 1)


def _texture(n: int, g: torch.Generator) -> torch.Tensor:
    """Skin noise (three octaves, zero mean) and a freckle alpha map on cheeks and nose."""
    noise = torch.zeros(n, 1, _TEX, _TEX)
    for res, amp in ((8, 0.5), (16, 0.3), (_TEX, 0.35)):
        octave = torch.randn(n, 1, res, res, generator=g)
        noise += amp * nnf.interpolate(octave, size=(_TEX, _TEX), mode="bilinear", align_corners=False)
    c = (torch.arange(_TEX) + 0.5) / _TEX
    x, y = c.view(1, -1), c.view(-1, 1)
    # Freckles gather over the cheekbones and the nose bridge, as they do on sun-exposed skin.
    zone = torch.exp(-(((x - 0.5).abs() - 0.13) ** 2 / 0.006 + (y - 0.56) ** 2 / 0.003))
    zone = zone + torch.exp(-((x - 0.5) ** 2 / 0.001 + (y - 0.53) ** 2 / 0.002))
    has = (torch.rand(n, generator=g) < 0.3).float().view(n, 1, 1, 1)
    density = 0.10 + 0.25 * torch.rand(n, 1, 1, 1, generator=g)
    spots = (torch.rand(n, 1, _TEX, _TEX, generator=g) < density * zone).float()
    freckles = has * spots * (0.35 + 0.3 * torch.rand(n, 1, 1, 1, generator=g))
    return torch.cat([noise, freckles], 1)


def _moles(n: int, g: torch.Generator) -> torch.Tensor:
    """Up to three moles on the cheeks, clear of features no AU edit should move them with."""
    side = torch.where(torch.rand(n, 3, generator=g) < 0.5, -1.0, 1.0)
    x = 0.5 + side * (0.12 + 0.08 * torch.rand(n, 3, generator=g))
    y = 0.53 + 0.11 * torch.rand(n, 3, generator=g)
    present = torch.rand(n, 3, generator=g) < torch.tensor([0.6, 0.3, 0.15])
    r = (0.007 + 0.005 * torch.rand(n, 3, generator=g)) * present
    return torch.stack([x, y, r], -1)


def sample_identities(n: int, seed: int, split: str = "train") -> Identity:
    """``n`` identities of ``split`` (:data:`IDENTITY_STREAMS`); every split has its own stream,
    so no two splits share a person."""
    if split not in IDENTITY_STREAMS:
        raise ValueError(f"split: expected one of {sorted(IDENTITY_STREAMS)}, got {split!r}")
    g = stream(seed, IDENTITY_STREAMS[split])

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, *shape, generator=g)

    t = u(0, 1) * (len(_SKIN) - 1)
    i = t.floor().long().clamp(max=len(_SKIN) - 2)
    f = (t - i).unsqueeze(1)
    skin = (_SKIN[i] * (1 - f) + _SKIN[i + 1] * f + u(-0.02, 0.02, 3)).clamp(0, 1)
    hair = _palette(_HAIR, _HAIR_P, n, 0.04, g)
    # Brows are darker than the hair but never lighter than a mid brown on dark skin.
    brow_colour = torch.minimum(hair * 0.6, skin * 0.33) + 0.02
    lips = (skin * torch.tensor([0.84, 0.58, 0.58]) * u(0.9, 1.05).unsqueeze(1) + torch.tensor([0.06, 0.0, 0.01])).clamp(0, 1)
    background = (0.45 * u(0.15, 0.95, 3) + 0.55 * u(0.35, 0.8).unsqueeze(1)).clamp(0, 1)
    return Identity(
        face=torch.stack([0.5 + u(-0.008, 0.008), 0.5 + u(-0.008, 0.008), u(0.272, 0.298),
                          u(0.345, 0.37), u(0.37, 0.39), u(0.02, 0.14)], 1),
        skin=skin,
        texture=_texture(n, g),
        moles=_moles(n, g),
        hair=hair,
        hair_shape=torch.stack([u(0.17, 0.25), u(1.4, 2.4), u(-0.07, 0.07), u(0.0, 1.0),
                                torch.where(u(0, 1) < 0.45, u(0.25, 0.45), u(0.0, 0.08))], 1),
        brows=torch.stack([u(0.040, 0.050), u(0.165, 0.185), u(0.383, 0.393), u(0.008, 0.018),
                           u(0.013, 0.024), u(0.75, 0.95)], 1),
        brow_colour=brow_colour,
        eyes=torch.stack([u(0.108, 0.118), u(0.443, 0.451), u(0.054, 0.062), u(0.027, 0.033),
                          u(0.017, 0.022)], 1),
        iris=_palette(_IRIS, _IRIS_P, n, 0.04, g),
        nose=torch.stack([u(0.598, 0.612), u(0.036, 0.046), u(0.1, 0.35)], 1),
        mouth=torch.stack([u(0.702, 0.712), u(0.076, 0.088), u(0.014, 0.021), u(0.019, 0.027)], 1),
        lips=lips,
        background=background,
        clothes=u(0.1, 0.85, 3),
        light=torch.stack([u(-0.35, 0.35), u(-0.25, 0.1), u(-0.3, 0.3), u(-0.3, 0.3)], 1),
    )


# ------------------------------------------------------------------------ expressions
# Emotion prototypes (Ekman & Friesen's EMFACS, restricted to the 17 OpenFace AUs), each
# with the relative weight of its AUs; optional AUs join with probability 0.5.
_PROTOTYPES: tuple[tuple[dict[str, float], dict[str, float]], ...] = (
    ({"AU06": 0.8, "AU12": 1.0, "AU25": 0.7}, {"AU26": 0.4}),  # happiness
    ({"AU01": 1.0, "AU02": 1.0, "AU05": 0.8, "AU26": 1.0}, {"AU25": 0.6}),  # surprise
    ({"AU01": 1.0, "AU04": 0.8, "AU15": 1.0}, {"AU17": 0.6}),  # sadness
    ({"AU04": 1.0, "AU05": 0.7, "AU07": 0.9, "AU23": 1.0}, {"AU17": 0.5}),  # anger
    ({"AU09": 1.0, "AU10": 1.0}, {"AU15": 0.5, "AU17": 0.5, "AU25": 0.4}),  # disgust
    ({"AU01": 1.0, "AU02": 0.8, "AU04": 0.8, "AU05": 1.0, "AU07": 0.6, "AU20": 1.0, "AU26": 0.8}, {"AU25": 0.6}),  # fear
    ({"AU12": 0.6, "AU14": 1.0}, {}),  # contempt (drawn symmetric)
    ({"AU45": 1.0}, {}),  # blink
)


def sample_expressions(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` AU vectors (float32 n x 17, OpenFace 0-5): realistic sparse combinations.

    Mixture: 10% neutral, 45% emotion prototypes at a random overall intensity with per-AU
    jitter, 45% random sparse mixes of 1-4 AUs at uniform intensities. Each face then has a
    10% chance of a blink on top and small residual activations (as OpenFace reports on
    real faces). Over a dataset every AU takes values spread over 0..5.
    """
    g = generator
    aus = torch.zeros(n, N_AUS)
    kind = torch.rand(n, generator=g)
    for row in range(n):
        if kind[row] < 0.10:
            continue
        if kind[row] < 0.55:
            core, optional = _PROTOTYPES[int(torch.randint(len(_PROTOTYPES), (1,), generator=g))]
            level = 0.8 + 4.2 * float(torch.rand(1, generator=g))
            members = dict(core)
            members.update({k: w for k, w in optional.items() if float(torch.rand(1, generator=g)) < 0.5})
            for name, w in members.items():
                aus[row, AU_INDEX[name]] = level * w * (0.75 + 0.5 * float(torch.rand(1, generator=g)))
        else:
            k = int(torch.randint(1, 5, (1,), generator=g))
            chosen = torch.randperm(N_AUS, generator=g)[:k]
            aus[row, chosen] = 0.5 + 4.5 * torch.rand(k, generator=g)
    blink = torch.rand(n, generator=g) < 0.10
    aus[blink, AU_INDEX["AU45"]] = torch.maximum(aus[blink, AU_INDEX["AU45"]], 1 + 4 * torch.rand(int(blink.sum()), generator=g))
    residual = (torch.rand(n, N_AUS, generator=g) < 0.15) * 0.6 * torch.rand(n, N_AUS, generator=g)
    return (aus + residual).clamp(0, AU_MAX).float()


# ---------------------------------------------------------------------- SDF helpers
def _cover(d: torch.Tensor, px: float) -> torch.Tensor:
    """Antialiased coverage of the shape ``d < 0`` (``d`` a distance in normalised units)."""
    return (d * (-1.0 / px)).add_(0.5).clamp_(0, 1)


def _b(t: torch.Tensor) -> torch.Tensor:
    """A per-identity scalar (n,) shaped n x 1 x 1, to broadcast over a window's pixels."""
    return t.view(-1, 1, 1)


def _rgb(t: torch.Tensor) -> torch.Tensor:
    """A per-identity colour (n x 3) shaped n x 3 x 1 x 1."""
    return t.view(-1, 3, 1, 1)


def _over(view: torch.Tensor, colour: torch.Tensor, alpha: torch.Tensor) -> None:
    """Composite ``colour`` (n x 3 x 1 x 1 or per pixel) over ``view`` in place with ``alpha`` (n x h x w)."""
    view.lerp_(colour.expand_as(view) if colour.dim() == 4 and colour.shape[-1] != 1 else colour, alpha.unsqueeze(1))


def _coords(start: int, stop: int, size: int, centre: float) -> torch.Tensor:
    """Face-space coordinates of pixel centres start..stop-1 along one axis."""
    return centre + ((torch.arange(start, stop, dtype=torch.float32) + 0.5) / size - 0.5) / _ZOOM


def _slices(size: int, box: tuple[float, float, float, float]) -> tuple[slice, slice]:
    """Row and column slices of the pixels a face-space ``box`` touches."""
    x0, y0, x1, y1 = _to_image(box)
    c0, r0 = max(int(math.floor(x0 * size)), 0), max(int(math.floor(y0 * size)), 0)
    c1, r1 = min(int(math.ceil(x1 * size)), size), min(int(math.ceil(y1 * size)), size)
    return slice(r0, r1), slice(c0, c1)


def _window(img: torch.Tensor, box: tuple[float, float, float, float]):
    """The pixels of ``img`` inside face-space ``box`` as an in-place view, with their face-space x (1 x 1 x w) and y (1 x h x 1)."""
    size = img.shape[-1]
    rows, cols = _slices(size, box)
    x = _coords(cols.start, cols.stop, size, _CENTRE[0]).view(1, 1, -1)
    y = _coords(rows.start, rows.stop, size, _CENTRE[1]).view(1, -1, 1)
    return img[:, :, rows, cols], x, y


def _ellipse(x: torch.Tensor, y: torch.Tensor, rx, ry, with_radius: bool = False):
    """Approximate signed distance to an axis-aligned ellipse centred at 0 (first-order, exact on the rim).

    With ``with_radius`` also the normalised radius k (0 at the centre, 1 on the rim).
    """
    qx, qy = x / rx, y / ry
    k = (qx * qx + qy * qy).sqrt_()
    grad = ((qx / rx) ** 2 + (qy / ry) ** 2).rsqrt_().clamp_max_(1e6)
    d = (k - 1).mul_(k).mul_(grad)
    return (d, k) if with_radius else d


def _segment(x: torch.Tensor, y: torch.Tensor, ax, ay, bx, by, r) -> torch.Tensor:
    """Signed distance to a capsule from (ax, ay) to (bx, by) with radius ``r``."""
    px, py, vx, vy = x - ax, y - ay, bx - ax, by - ay
    h = ((px * vx + py * vy) / (vx * vx + vy * vy)).clamp(0, 1)
    return torch.sqrt((px - vx * h) ** 2 + (py - vy * h) ** 2) - r


def _crease(w: float, px: float) -> float:
    """Half-width of a crease line: ``w`` but never under half a pixel, so creases stay visible at 64 px."""
    return max(w, 0.5 * px)


def _band(y: torch.Tensor, centre: torch.Tensor, half: torch.Tensor | float, slope: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Signed distance to the band |y - centre(x)| < half around a curve of slope ``slope``."""
    return ((y - centre).abs() - half) / torch.sqrt(1 + torch.as_tensor(slope) ** 2)


# ----------------------------------------------------------------------- face layers
def _background(ident: Identity, size: int) -> torch.Tensor:
    c = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    x, y = c.view(1, 1, -1) - 0.5, c.view(1, -1, 1) - 0.5
    shade = 1 + _b(ident.light[:, 2]) * x + _b(ident.light[:, 3]) * y
    return _rgb(ident.background) * shade.unsqueeze(1)


def _strands(x: torch.Tensor) -> torch.Tensor:
    """Vertical light and dark strands (1 x 1 x 1 x w): hair reads as hair, not as a flat cap."""
    return (1 + 0.08 * torch.sin(95 * x) + 0.04 * torch.sin(233 * x)).unsqueeze(1)


def _hair_back(img: torch.Tensor, ident: Identity, x, y, px: float) -> None:
    """Hair behind the head: a cap around the skull and, for long hair, a fall to the shoulders."""
    cx, cy, rx, ry_top = (_b(ident.face[:, i]) for i in range(4))
    vol, length = _b(ident.hair_shape[:, 3]), _b(ident.hair_shape[:, 4])
    cap = _ellipse(x - cx, y - (cy - 0.03), rx + 0.03 + 0.04 * vol, ry_top + 0.035 + 0.03 * vol)
    # Long hair: a rounded box from the temples down to length; length 0 keeps it hidden behind the face.
    hw, top = rx + 0.02 + 0.035 * vol, cy - 0.05
    qx, qy = (x - cx).abs() - hw, (y - (top + length / 2)).abs() - length / 2
    fall = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2) + torch.maximum(qx, qy).clamp(max=0) - 0.03
    # Short hair stops above the ears; long hair falls from there.
    d = torch.minimum(torch.maximum(cap, y - (cy - 0.04)), fall)
    _over(img, _rgb(ident.hair) * _strands(x), _cover(d, px))


def _neck_and_clothes(img: torch.Tensor, ident: Identity, px: float) -> None:
    view, x, y = _window(img, (0.0, 0.62, 1.0, 1.0))
    cx = _b(ident.face[:, 0])
    qx, qy = (x - cx).abs() - 0.1, (y - 0.86).abs() - 0.2
    neck = torch.maximum(qx, qy)
    # The chin casts a shadow onto the top of the neck.
    shade = 0.78 + 0.12 * ((y - 0.8) / 0.15).clamp(0, 1)
    _over(view, _rgb(ident.skin) * shade.unsqueeze(1), _cover(neck, px))
    body = _ellipse(x - cx, y - 1.2, 0.45, 0.3)
    neckline = _ellipse(x - cx, y - 0.9, 0.1, 0.07)
    _over(view, _rgb(ident.clothes), _cover(torch.maximum(body, -neckline), px))


def _ears(img: torch.Tensor, ident: Identity, px: float) -> None:
    view, x, y = _window(img, (0.12, 0.36, 0.88, 0.62))
    cx, rx = _b(ident.face[:, 0]), _b(ident.face[:, 2])
    xm = (x - cx).abs()
    ear = _ellipse(xm - (rx - 0.005), y - (_b(ident.eyes[:, 1]) + 0.045), 0.032, 0.058)
    _over(view, _rgb(ident.skin) * 0.86, _cover(ear, px))
    inner = _ellipse(xm - (rx + 0.004), y - (_b(ident.eyes[:, 1]) + 0.048), 0.014, 0.035)
    _over(view, _rgb(ident.skin) * 0.68, _cover(inner, px) * 0.6)


def _jaw_drop(ident: Identity, a: dict) -> torch.Tensor:
    """How far (n x 1 x 1) AU26 moves the lower lip, chin and jaw down."""
    return 0.07 * a["AU26"]


def _face_sdf(ident: Identity, a: dict, x, y):
    """Signed distance to the face, and its normalised radius for shading.

    The lower half is taller than the upper and tapers towards the chin. AU26 stretches it
    only below the mouth (the drop ramps in between y = 0.64 and 0.78), so the jaw drop
    changes nothing above the mouth.
    """
    cx, cy, rx, ry_top, ry_bot, taper = (_b(ident.face[:, i]) for i in range(6))
    dy = y - cy
    lower = (dy > 0).float()
    ramp = ((y - 0.64) / 0.14).clamp(0, 1)
    ry = ry_top + lower * (ry_bot - ry_top + _jaw_drop(ident, a) * ramp)
    rxx = rx * (1 - taper * (dy / ry_bot).clamp(0, 1) ** 2)
    return _ellipse(x - cx, dy, rxx, ry, with_radius=True)


_MARKS_BOX = (0.24, 0.40, 0.76, 0.70)  # holds the freckle zone and every mole


def _skin(img: torch.Tensor, ident: Identity, a: dict, x, y, px: float) -> None:
    """Face skin: shading towards the rim, texture noise, freckles and moles."""
    d, k = _face_sdf(ident, a, x, y)
    size = img.shape[-1]
    tex = nnf.interpolate(ident.texture, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    # Rim darkening reads as a rounded head; the noise is fixed per identity.
    shade = (1 - 0.22 * k.clamp(max=1.1) ** 6 + 0.04 * tex[:, 0]).unsqueeze(1)
    _over(img, _rgb(ident.skin) * shade, _cover(d, px))
    # Freckles and moles lie on the mid face only; drawing them there saves most of the frame.
    view, wx, wy = _window(img, _MARKS_BOX)
    freckles = tex[:, 1][(slice(None),) + _slices(size, _MARKS_BOX)]
    _over(view, _rgb(ident.skin) * torch.tensor([0.72, 0.58, 0.5]).view(1, 3, 1, 1), freckles)
    mole = None
    for m in range(ident.moles.shape[1]):
        mx, my, mr = (_b(ident.moles[:, m, j]) for j in range(3))
        dm = torch.sqrt((wx - mx) ** 2 + (wy - my) ** 2) - mr
        dm = torch.where(mr > 0, dm, torch.ones_like(dm))
        mole = dm if mole is None else torch.minimum(mole, dm)
    assert mole is not None  # ident.moles has three mole slots (n x 3 x 3)
    _over(view, _rgb(ident.skin) * 0.38, _cover(mole, px) * 0.9)


def _hair_front(img: torch.Tensor, ident: Identity, px: float) -> None:
    """Hair over the forehead down to a curved hairline (with a parting offset); stays above the brows."""
    view, x, y = _window(img, (0.0, 0.0, 1.0, 0.46))
    cx, cy, rx, ry_top = (_b(ident.face[:, i]) for i in range(4))
    line, curve, part, vol = (_b(ident.hair_shape[:, i]) for i in range(4))
    cap = _ellipse(x - cx, y - (cy - 0.03), rx + 0.03 + 0.04 * vol, ry_top + 0.035 + 0.03 * vol)
    t = x - cx - part
    hairline = line + curve * t * t
    d = torch.maximum(cap, _band(y, hairline - 1.0, 1.0, 2 * curve * t))
    _over(view, _rgb(ident.hair) * _strands(x), _cover(d, px * 1.3))


# ---------------------------------------------------------------- AU-driven features
def _eyes_and_brows(img: torch.Tensor, ident: Identity, a: dict, px: float) -> None:
    """Brows (AU01, AU02, AU04), lids and eyes (AU05, AU07, AU45, and AU06's lower-lid push)."""
    view, x, y = _window(img, _WINDOWS["eyes"])
    xm = (x - _b(ident.face[:, 0])).abs()
    skin = _rgb(ident.skin)

    # Brows: a tapered band along y(t) = y_in + (y_out - y_in) t - 4 arch t (1 - t).
    b_in, b_out, b_y, arch, thick, dark = (_b(ident.brows[:, i]) for i in range(6))
    b_in = b_in - 0.02 * a["AU04"]  # AU04 draws the brows together
    y_in = b_y - 0.036 * a["AU01"] + 0.018 * a["AU04"]
    y_out = b_y + 0.004 - 0.032 * a["AU02"] + 0.008 * a["AU04"]
    arch = arch + 0.008 * a["AU02"] - 0.004 * a["AU04"]
    span = b_out - b_in
    t = ((xm - b_in) / span).clamp(0, 1)
    centre = y_in + (y_out - y_in) * t - 4 * arch * t * (1 - t)
    slope = ((y_out - y_in) - 4 * arch * (1 - 2 * t)) / span
    dy = _band(y, centre, thick * (0.62 - 0.3 * t * t), slope)
    dx = torch.maximum(xm - b_out, b_in - xm)
    d = torch.sqrt(dx.clamp(min=0) ** 2 + dy.clamp(min=0) ** 2) + torch.maximum(dx, dy).clamp(max=0)
    _over(view, _rgb(ident.brow_colour), _cover(d, px * 1.2) * dark)
    # AU04: vertical frown lines between the lowered brows.
    frown = _segment(xm, y, 0.014, b_y - 0.005, 0.017, b_y + 0.04, _crease(0.0025, px))
    _over(view, skin * 0.62, _cover(frown, px) * 0.85 * a["AU04"])

    # Lids: parabolic upper and lower edges y = ey -/+ h (1 - s^2), s across the eye.
    ex, ey, ew, h_up, h_lo = (_b(ident.eyes[:, i]) for i in range(5))
    s = (xm - ex) / ew
    bump = (1 - s * s).clamp(min=0)
    lower = h_lo - 0.011 * a["AU07"] - 0.006 * a["AU06"]
    upper = h_up + 0.018 * a["AU05"] - 0.007 * a["AU07"]
    blink = a["AU45"]
    upper = upper * (1 - blink) - lower * blink  # at AU45 = 5 the upper lid meets the lower lid
    y_up, y_lo = ey - upper * bump, ey + lower * bump
    # Crease and upper lid: the lid skin between them grows as the lid slides down.
    crease = ey - (h_up + 0.014 + 0.006 * a["AU05"]) * (1 - (s / 1.1) ** 2).clamp(min=0)
    d_lid = torch.maximum(torch.maximum(crease - y, y - (ey + lower * bump)), (s.abs() - 1.1) * ew)
    _over(view, skin * 0.9, _cover(d_lid, px) * 0.45)
    d_cr = torch.maximum(_band(y, crease, 0.0022), (s.abs() - 1.0) * ew)
    _over(view, skin * 0.62, _cover(d_cr, px) * 0.55)
    # The eye opening; its coverage is capped by its height so a closing eye fades to nothing.
    d_open = torch.maximum(torch.maximum(y_up - y, y - y_lo), (s.abs() - 1) * ew)
    opening = torch.minimum(0.5 - d_open / px, (y_lo - y_up) / px).clamp_(0, 1)
    lid_shadow = 1 - 0.3 * (1 - (y - y_up) / 0.02).clamp(0, 1)
    _over(view, _WHITE.view(1, 3, 1, 1) * lid_shadow.unsqueeze(1), opening)
    ri = 0.46 * ew
    r = torch.sqrt((xm - ex) ** 2 + (y - ey + 0.002) ** 2)
    iris = _rgb(ident.iris) * (0.7 + 0.45 * (r / ri).clamp(max=1)).unsqueeze(1)
    _over(view, iris, _cover(r - ri, px) * opening)
    _over(view, _LASH.view(1, 3, 1, 1), _cover(r - 0.42 * ri, px) * opening)
    glint = torch.sqrt((xm - ex + 0.3 * ri) ** 2 + (y - ey + 0.35 * ri) ** 2)
    _over(view, _WHITE.view(1, 3, 1, 1), _cover(glint - 0.22 * ri, px) * opening * 0.85)
    # Lash line along the upper lid edge (it marks the closed eye at AU45 = 5).
    outer = 1.05 + 0.1 * (s > 0).float()
    d_lash = torch.maximum(_band(y, y_up - 0.0015, 0.0035, 2 * upper * s / ew), (s.abs() - outer) * ew)
    _over(view, _LASH.view(1, 3, 1, 1), _cover(d_lash, px) * 0.9)
    # Lower lid line: faint at rest, pronounced when tightened (AU07).
    d_low = torch.maximum(_band(y, y_lo + 0.002, 0.0018 + 0.0015 * a["AU07"]), (s.abs() - 1) * ew)
    _over(view, skin * 0.55, _cover(d_low, px) * (0.35 + 0.5 * a["AU07"]))
    bulge = torch.maximum(_band(y, y_lo + 0.011, 0.002), (s.abs() - 0.8) * ew)
    _over(view, skin * 0.7, _cover(bulge, px) * 0.6 * a["AU07"])


def _cheeks(img: torch.Tensor, ident: Identity, a: dict, px: float) -> None:
    """AU06: the cheeks rise (a highlight and the furrow above it move up) and crow's feet appear."""
    view, x, y = _window(img, _WINDOWS["cheeks"])
    xm = (x - _b(ident.face[:, 0])).abs()
    skin = _rgb(ident.skin)
    ex, ey, ew = (_b(ident.eyes[:, i]) for i in range(3))
    lift = 0.03 * a["AU06"]
    apple = _ellipse(xm - (ex + 0.01), y - (ey + 0.12 - lift), 0.065, 0.045)
    _over(view, (skin * torch.tensor([1.1, 1.02, 1.0]).view(1, 3, 1, 1)).clamp(max=1),
          _cover(apple, 0.04) * (0.35 + 0.5 * a["AU06"]))
    furrow = torch.maximum(_band(y, ey + 0.055 - 0.016 * a["AU06"] + 4 * (xm - ex) ** 2, 0.003), (xm - ex).abs() - 0.05)
    _over(view, skin * 0.68, _cover(furrow, px * 1.5) * 0.75 * a["AU06"])
    # Crow's feet: three creases fanning out from the outer eye corner.
    cx0 = ex + ew + 0.012
    for angle in (-0.45, 0.0, 0.45):
        dx, dy = math.cos(angle), math.sin(angle)
        d = _segment(xm, y, cx0, ey + 0.012 * dy, cx0 + 0.03 * dx, ey + 0.03 * dy, _crease(0.0022, px))
        _over(view, skin * 0.5, _cover(d, px) * 0.85 * a["AU06"])


def _nose(img: torch.Tensor, ident: Identity, a: dict, px: float) -> None:
    """Nose bridge, tip, alae and nostrils; AU09 wrinkles the bridge and lifts the nostrils."""
    view, x, y = _window(img, _WINDOWS["nose"])
    xm = (x - _b(ident.face[:, 0])).abs()
    skin = _rgb(ident.skin)
    tip, nw = _b(ident.nose[:, 0]), _b(ident.nose[:, 1])
    ey = _b(ident.eyes[:, 1])
    lift = 0.008 * a["AU09"] + 0.003 * a["AU10"]
    nw = nw + 0.006 * a["AU09"]
    side = torch.maximum(_band(xm, 0.02 + 0.15 * (y - ey), 0.004), (y - (tip - 0.035)).abs() - 0.035)
    _over(view, skin * 0.8, _cover(side, px * 2.5) * 0.35)
    _over(view, (skin * 1.1).clamp(max=1), _cover(_ellipse(xm, y - (tip - 0.012 - lift), 0.016, 0.014), px * 3) * 0.5)
    ala = _ellipse(xm - 0.72 * nw, y - (tip - lift + 0.002), 0.3 * nw, 0.35 * nw)
    _over(view, skin * 0.72, _cover(ala.abs() - 0.002, px) * 0.6)
    shadow = _ellipse(xm, y - (tip + 0.017 - lift), nw * 0.9, 0.01)
    _over(view, skin * 0.75, _cover(shadow, px * 3) * 0.5)
    nostril = _ellipse(xm - 0.42 * nw, y - (tip + 0.011 - lift), 0.011, 0.005)
    _over(view, skin * 0.4, _cover(nostril, px) * 0.8)
    # AU09: short horizontal wrinkles across the bridge, between the eyes.
    for k in range(3):
        d = torch.maximum(_band(y, ey + 0.012 + 0.014 * k + 0.5 * xm * xm, _crease(0.0022, px)), xm - 0.03)
        _over(view, skin * 0.5, _cover(d, px) * 0.85 * a["AU09"])


def _mouth(img: torch.Tensor, ident: Identity, a: dict, px: float) -> None:
    """Lips, mouth interior, nasolabial folds, dimples and chin.

    The lips are the region between an upper outer edge and a lower outer edge; the opening
    between their inner edges shows the interior (dark), teeth and tongue. With s the
    position across the mouth (-1 at a corner, 0 at the centre) the mouth line is
    ``y = my - c s^2``: corners above the centre (c > 0, AU12) smile, below (AU15) frown.
    """
    view, x, y = _window(img, _WINDOWS["mouth"])
    xm = (x - _b(ident.face[:, 0])).abs()
    skin, lips = _rgb(ident.skin), _rgb(ident.lips)
    my, mw, th_up, th_lo = (_b(ident.mouth[:, i]) for i in range(4))
    drop = _jaw_drop(ident, a)
    mw = mw + 0.03 * a["AU20"] + 0.014 * a["AU12"] + 0.006 * a["AU14"] - 0.014 * a["AU23"]
    c = 0.032 * a["AU12"] - 0.03 * a["AU15"] - 0.006 * a["AU20"] + 0.003 * a["AU14"]
    thin = 1 - 0.6 * a["AU23"] - 0.2 * a["AU20"]
    my = my - 0.004 * a["AU17"]
    s = (xm / mw).clamp(max=1.2)
    body = (1 - s * s).clamp(min=0)
    round_ = torch.sqrt(body)
    mid = my - c * s * s
    lift10 = 0.02 * a["AU10"] * body
    push17 = 0.01 * a["AU17"] * body
    in_up = mid - (0.006 * a["AU25"] + 0.004 * a["AU26"]) * body - lift10
    in_lo = mid + (0.007 * a["AU25"] + drop) * round_ - push17
    bow = 0.004 * torch.exp(-((s - 0.22) / 0.16) ** 2)  # Cupid's bow peaks either side of the philtrum
    out_up = in_up - th_up * thin * round_ - bow * thin - 0.004 * a["AU10"] * body
    out_lo = in_lo + (th_lo * thin + 0.007 * a["AU17"]) * round_
    d_side = (s - 1) * mw
    slope = 2 * c * s / mw

    # Nasolabial folds: from the nose wing to just outside the mouth corner.
    tip, nw = _b(ident.nose[:, 0]), _b(ident.nose[:, 1])
    corner_y = mid.new_zeros(1) + my - c
    fold_depth = (_b(ident.nose[:, 2]) + 0.6 * a["AU10"] + 0.6 * a["AU12"]).clamp(max=1)
    fold = _segment(xm, y, nw + 0.016, tip - 0.002, mw + 0.026, corner_y + 0.006, 0.0025)
    _over(view, skin * 0.7, _cover(fold, px * 1.5) * fold_depth * 0.8)
    # AU17: the chin boss rises; the crease under the lower lip deepens and the chin dimples.
    chin_y = _b(ident.face[:, 1]) + _b(ident.face[:, 4]) + drop
    sulcus_y = my + th_lo + 0.022 + drop - 0.008 * a["AU17"] + 3 * xm * xm
    sulcus = torch.maximum(_band(y, sulcus_y, _crease(0.003, px)), xm - 0.045)
    _over(view, skin * 0.55, _cover(sulcus, px * 1.5) * (0.2 + 0.7 * a["AU17"]))
    boss = _ellipse(xm, y - (chin_y - 0.05 - 0.008 * a["AU17"]), 0.05, 0.028)
    _over(view, (skin * 1.12).clamp(max=1), _cover(boss, 0.02) * 0.5 * a["AU17"])
    dimpling = 0.5 + 0.5 * torch.sin(x * 380) * torch.sin(y * 380)
    _over(view, skin * 0.7, _cover(boss, px * 2) * dimpling * 0.45 * a["AU17"])
    # AU14: dimples just outside the corners.
    dimple = _segment(xm, y, mw + 0.012, corner_y - 0.012, mw + 0.018, corner_y + 0.012, _crease(0.0035, px))
    _over(view, skin * 0.45, _cover(dimple, px) * 0.95 * a["AU14"])
    # AU15: short creases running down from the lowered corners.
    sad = _segment(xm, y, mw + 0.004, corner_y + 0.008, mw + 0.014, corner_y + 0.035, _crease(0.0025, px))
    _over(view, skin * 0.62, _cover(sad, px) * 0.8 * a["AU15"])

    # Lips, then the interior over them where the mouth is open.
    d_lips = torch.maximum(torch.maximum(out_up - y, y - out_lo), d_side)
    lip_shade = torch.where(y < mid, 0.82, 1.0) * (1 + 0.12 * (1 - ((y - (in_lo + out_lo) / 2) / 0.008).abs()).clamp(min=0))
    _over(view, lips * lip_shade.unsqueeze(1), _cover(d_lips, px))
    d_in = torch.maximum(torch.maximum(in_up - y, y - in_lo), d_side)
    gap = in_lo - in_up
    opening = torch.minimum(0.5 - d_in / px, gap / px).clamp_(0, 1)
    _over(view, _MOUTH_IN.view(1, 3, 1, 1), opening)
    tongue = _ellipse(xm, y - (in_lo - 0.004), 0.6 * mw, 0.022)
    _over(view, _TONGUE.view(1, 3, 1, 1) * lips / lips.mean(1, keepdim=True).clamp(min=0.2) * 0.55 + 0.15,
          _cover(tongue, px) * opening)
    teeth_up = torch.maximum(y - (in_up + 0.014 * round_ + 0.002), s - 0.78)
    _over(view, _TEETH.view(1, 3, 1, 1), _cover(teeth_up * 1.0, px) * opening)
    teeth_lo = torch.maximum(in_lo - 0.009 * round_ - y, s - 0.7)
    _over(view, _TEETH.view(1, 3, 1, 1) * 0.9, _cover(teeth_lo, px) * opening)
    # The closed lip line and the corners' shadow.
    line = torch.maximum(_band(y, mid, 0.0018, slope), d_side)
    _over(view, lips * 0.45, _cover(line, px) * 0.8 * (1 - (gap / 0.004).clamp(0, 1)))
    # The corners' shadow; AU14 tucks the corners in, deepening it.
    corner = torch.sqrt((xm - mw) ** 2 + (y - (my - c)) ** 2) - 0.005 - 0.003 * a["AU14"]
    _over(view, lips * 0.5, _cover(corner, px * 2) * (0.5 + 0.4 * a["AU14"]))


def _lighting(img: torch.Tensor, ident: Identity, x, y) -> None:
    """A soft directional light over the whole portrait."""
    g = 1 + _b(ident.light[:, 0]) * (x - 0.5) + _b(ident.light[:, 1]) * (y - 0.5)
    img.mul_(g.unsqueeze(1))


# -------------------------------------------------------------------------- rendering
_CHUNK = 16  # faces per internal pass: keeps every temporary in cache (3x faster than 64 on 2 cores)


def render(identity: Identity, aus: torch.Tensor, size: int) -> torch.Tensor:
    """Render ``identity`` (n) under ``aus`` (n x 17, OpenFace 0-5) as float32 n x 3 x size x size in [0, 1].

    Deterministic and batch-independent: a face's pixels depend only on its identity and AUs.
    """
    n = len(identity)
    if aus.dim() != 2 or tuple(aus.shape) != (n, N_AUS):
        raise ValueError(f"aus: expected shape ({n}, {N_AUS}) (one row of {N_AUS} AUs per identity), got {tuple(aus.shape)}")
    if int(size) < 8:
        raise ValueError(f"size: expected a square side of at least 8 px, got {size}")
    au = aus.detach().float().cpu().clamp(0, AU_MAX) / AU_MAX
    out = torch.empty(n, 3, int(size), int(size))
    for i in range(0, n, _CHUNK):
        idx = torch.arange(i, min(i + _CHUNK, n))
        out[idx] = _render_chunk(identity.take(idx), au[idx], int(size))
    return out


def _render_chunk(ident: Identity, au: torch.Tensor, size: int) -> torch.Tensor:
    """Composite the layers back to front; ``au`` is already scaled to [0, 1]."""
    px = 1.0 / (size * _ZOOM)  # one pixel in face-space units
    a = {name: au[:, i].view(-1, 1, 1) for i, name in enumerate(AU_NAMES)}
    x = _coords(0, size, size, _CENTRE[0]).view(1, 1, -1)
    y = _coords(0, size, size, _CENTRE[1]).view(1, -1, 1)
    img = _background(ident, size)
    _hair_back(img, ident, x, y, px)
    _neck_and_clothes(img, ident, px)
    _ears(img, ident, px)
    _skin(img, ident, a, x, y, px)
    _hair_front(img, ident, px)
    _eyes_and_brows(img, ident, a, px)
    _cheeks(img, ident, a, px)
    _nose(img, ident, a, px)
    _mouth(img, ident, a, px)
    _lighting(img, ident, x, y)
    return img.clamp_(0, 1)


def render_uint8(identity: Identity, aus: torch.Tensor, size: int) -> torch.Tensor:
    """:func:`render` quantised as a PNG would store it: uint8 ``round(x * 255)``.

    Renders in blocks so a whole dataset never needs its float32 copy in memory.
    """
    out = torch.empty(len(identity), 3, int(size), int(size), dtype=torch.uint8)
    for i in range(0, len(identity), 256):
        idx = torch.arange(i, min(i + 256, len(identity)))
        out[idx] = render(identity.take(idx), aus[idx], size).mul_(255).round_().to(torch.uint8)
    return out
