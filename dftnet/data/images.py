"""Reading and writing face images: any common format in, square RGB uint8 out.

Odd modes (greyscale, palette, RGBA, CMYK, 16-bit) become RGB; a corrupt or unreadable file
stops with one :class:`DataError` line naming it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from dftnet.runtime.errors import DataError


IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")
RESIZE_RULE = "centre-crop to square, then PIL bicubic with antialias (reducing_gap=None)"
# Largest image decoded (width x height). Pillow only warns below twice its own limit (89 MP),
# so a decompression bomb just under it would be decoded; faces need far fewer pixels.
MAX_PIXELS = 40_000_000
ALPHA_RULE = "transparent pixels composited over white"


# ------------------------------------------------------------------------ images
def to_rgb(im: Image.Image, path: Path) -> Image.Image:
    """Greyscale, palette, CMYK, ... -> RGB; transparent pixels are composited over white
    (dropping alpha would expose whatever colour an editor left under them, often black)."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        raise DataError(f"{path}: {im.mode} (16-bit or float) images are not supported; convert to 8-bit")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return im.convert("RGB")
    except ValueError as err:
        raise DataError(f"{path}: cannot convert mode {im.mode} to RGB ({err})") from None


def open_image(path: Path) -> Image.Image:
    """Fully decoded image, upright per its EXIF orientation; one DataError if unreadable or
    larger than :data:`MAX_PIXELS` (checked from the header, before anything is decoded)."""
    try:
        with warnings.catch_warnings():  # our own size check below covers Pillow's bomb warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            if im.width * im.height > MAX_PIXELS:
                raise DataError(f"{path}: image is {im.width} x {im.height} px, more than the "
                                f"{MAX_PIXELS:,} px this suite decodes (a face photo needs far fewer)")
            im.load()
            return ImageOps.exif_transpose(im)
    except FileNotFoundError:
        raise DataError(f"{path}: image not found") from None
    except DataError:
        raise
    except Exception as err:  # decoders of malformed files raise OSError, SyntaxError, struct.error...
        raise DataError(f"{path}: corrupt or truncated image ({type(err).__name__}: {err})") from None


def square_resize(im: Image.Image, size: int) -> Image.Image:
    """The one resize rule (:data:`RESIZE_RULE`): centre-crop the largest square, then PIL
    bicubic with antialias (``reducing_gap=None``: exact filtering, no two-step reduce() shortcut)."""
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    im = im.crop((left, top, left + side, top + side))
    if side != size:
        im = im.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=None)
    return im


def chw(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(im, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def _read_png(path: Path, side: int | None) -> torch.Tensor:
    """A canonical image: RGB, square, ``side`` px when given."""
    im = open_image(path)
    if im.mode != "RGB":
        raise DataError(f"{path}: mode {im.mode}, the canonical format stores RGB")
    w, h = im.size
    if w != h or (side is not None and w != side):
        expected = f"{side}x{side} like the other images" if side else "a square"
        raise DataError(f"{path}: {w}x{h}, expected {expected}")
    return chw(im)


def read_pngs(folder: Path, ids: list[str]) -> torch.Tensor:
    first = _read_png(folder / f"{ids[0]}.png", None)
    side = first.shape[-1]
    images = torch.empty((len(ids), 3, side, side), dtype=torch.uint8)
    images[0] = first
    for n, id_ in enumerate(ids[1:], start=1):
        images[n] = _read_png(folder / f"{id_}.png", side)
    return images


def write_png(path: Path, image: torch.Tensor) -> None:
    Image.fromarray(image.permute(1, 2, 0).cpu().numpy()).save(path, format="PNG")
