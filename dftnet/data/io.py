"""The canonical on-disk dataset format, readers for real data and the bad-input contract.

Canonical folder (written by :func:`save_dataset`, read by :func:`load_dataset`, the same for
synthetic and real data)::

    <root>/
      images/<id>.png      RGB uint8, all the same square size
      aus.csv              id,AU01,...,AU45 (OpenFace 0-5 scale, the order of AU_NAMES)
      train_ids.txt        one id per line
      test_ids.txt
      identities.csv       (optional) id,identity
      pairs.csv            (optional) pair_id,source_id,target_id,AU01..AU45 (target AUs)
      gt/<pair_id>.png     (optional) ground truth of every pair
      meta.json            provenance (FaceDataset.meta) + "format_version": 1

Real data enter through :func:`ingest_folder` (a folder of images, an AU table read by
:func:`read_au_table`, and train/test id lists). Every problem with an input stops with one
:class:`DataError` line naming the file and the line, key or column at fault; line numbers
count lines of the file, the header being line 1.
"""

from __future__ import annotations

import codecs
import csv
import json
import math
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np
import PIL
import torch
from PIL import Image, ImageOps

from dftnet.config import FolderConfig
from dftnet.data.aus import AU_MAX, AU_NAMES, N_AUS
from dftnet.data.dataset import EvalPairs, FaceDataset
from dftnet.errors import DataError

FORMAT_VERSION = 1
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")
RESIZE_RULE = "centre-crop to square, then PIL bicubic with antialias (reducing_gap=None)"
ALPHA_RULE = "transparent pixels composited over white"
ID_COLUMNS = ("id", "image", "file")  # a plain AU table names its images in the first one present


class AuRow(NamedTuple):
    """One AU vector read from a table, with where it came from (for error messages)."""

    id: str
    aus: np.ndarray  # float32[17], OpenFace scale [0, 5]
    where: str  # "<file> line 7 (id x)" or "<file> key 'x'"


# ------------------------------------------------------------------------------ ids
def id_from_name(name: str) -> str:
    """An image id from a file name or path: its base name without an image extension.

    ``imgs/N_0000000356_00190.jpg`` -> ``N_0000000356_00190``; a name without an image
    extension (``aus_openface.pkl`` keys, canonical ids) is kept as it is.
    """
    base = name.strip().replace("\\", "/").rsplit("/", 1)[-1]
    stem, ext = os.path.splitext(base)
    return stem if ext.lower() in IMAGE_EXTS else base


def _check_id(id_: str, what: str) -> None:
    """An id becomes a file name (``images/<id>.png``): refuse what cannot be one."""
    bad = (not isinstance(id_, str) or not id_ or id_ != id_.strip() or id_.startswith(".")
           or any(c in id_ for c in "/\\\n\r\t\0"))
    if bad:
        raise DataError(f"{what}: {id_!r} cannot be used as a file name (no '/', leading '.' or surrounding spaces)")


def _index_unique(rows: Iterable[AuRow]) -> dict[str, AuRow]:
    """id -> row, refusing a second row for the same id."""
    table: dict[str, AuRow] = {}
    for row in rows:
        if row.id in table:
            raise DataError(f"{row.where}: duplicate id {row.id} (first at {table[row.id].where})")
        table[row.id] = row
    return table


# ------------------------------------------------------------------------ AU values
def _au_vector(values: Iterable, names: Iterable[str], where: str) -> np.ndarray:
    """float32[17] from the values of AU_NAMES, each a finite number in [0, AU_MAX]."""
    out = np.empty(N_AUS, dtype=np.float32)
    for k, (name, raw) in enumerate(zip(names, values)):
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise DataError(f"{where}: {name} = {raw!r} is not a number") from None
        if not math.isfinite(value) or not 0.0 <= value <= AU_MAX:
            raise DataError(f"{where}: {name} = {value:g} is outside [0, {AU_MAX:g}]")
        out[k] = value
    return out


def _format_au(value: float) -> str:
    """The shortest decimal that reads back to the same float32 (0.65, not 0.6499999762)."""
    return np.format_float_positional(np.float32(value), unique=True, trim="-")


# --------------------------------------------------------------------- CSV reading
def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header (names stripped: OpenFace pads them with a space) and (line, fields) rows."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            lines = list(csv.reader(fh))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: not a readable CSV file ({err})") from None
    if not lines or not any(field.strip() for field in lines[0]):
        raise DataError(f"{path}: empty file, expected a header line")
    header = [name.strip() for name in lines[0]]
    rows = []
    for line, fields in enumerate(lines[1:], start=2):
        if not any(field.strip() for field in fields):
            continue  # blank line
        if len(fields) != len(header):
            raise DataError(f"{path} line {line}: {len(fields)} fields, the header has {len(header)}")
        rows.append((line, [field.strip() for field in fields]))
    return header, rows


def _column(header: list[str], path: Path, *names: str) -> int:
    """Index of the first of ``names`` present in the header."""
    for name in names:
        if name in header:
            return header.index(name)
    raise DataError(f"{path}: missing column {' or '.join(names)}")


def _au_columns(header: list[str], path: Path) -> list[int]:
    """Index of every AU, found by name: ``AU12`` or OpenFace's ``AU12_r``, never by position."""
    return [_column(header, path, name, f"{name}_r") for name in AU_NAMES]


def _is_openface(header: list[str]) -> bool:
    return ("frame" in header or "face" in header) and "AU01_r" in header


def _plain_rows(path: Path) -> list[AuRow]:
    """A plain CSV: an id column (``id``, else ``image`` or ``file``) and AU01..AU45 by name."""
    header, rows = _read_csv(path)
    id_col = _column(header, path, *ID_COLUMNS)
    au_cols = _au_columns(header, path)
    out = []
    for line, fields in rows:
        id_ = fields[id_col]
        where = f"{path} line {line} (id {id_})"
        if not id_:
            raise DataError(f"{path} line {line}: empty {header[id_col]}")
        out.append(AuRow(id_, _au_vector((fields[c] for c in au_cols), AU_NAMES, where), where))
    return out


def _number(fields: list[str], col: int | None, default: float, where: str, name: str) -> float:
    if col is None:
        return default
    try:
        return float(fields[col])
    except ValueError:
        raise DataError(f"{where}: {name} = {fields[col]!r} is not a number") from None


def _openface_rows(path: Path) -> list[AuRow]:
    """One OpenFace CSV, of FeatureExtraction (``frame, [face_id,] timestamp, confidence,
    success, ...``) or FaceLandmarkImg (``face, confidence, ...``).

    Per frame (FaceLandmarkImg: per image) the face with the highest ``confidence`` is kept,
    the first listed on a tie; rows with ``success`` 0 (OpenFace writes AUs of 0 for frames it
    failed to track) are dropped. The id is the file stem; when a FeatureExtraction file holds
    more than one frame, each frame's id is ``<stem>_<frame, 6 digits>`` (``clip_000042``), the
    way frames extracted with ``%06d`` are named. An image without a usable face gets no row.
    """
    header, rows = _read_csv(path)
    au_cols = _au_columns(header, path)
    frame_col = header.index("frame") if "frame" in header else None
    conf_col = header.index("confidence") if "confidence" in header else None
    ok_col = header.index("success") if "success" in header else None
    best: dict[str, tuple[float, int, list[str]]] = {}  # frame -> (confidence, line, fields)
    n_frames = len({fields[frame_col] for _, fields in rows}) if frame_col is not None else 1
    for line, fields in rows:
        where = f"{path} line {line}"
        if _number(fields, ok_col, 1.0, where, "success") == 0:
            continue
        frame = fields[frame_col] if frame_col is not None else ""
        conf = _number(fields, conf_col, 0.0, where, "confidence")
        if frame not in best or conf > best[frame][0]:
            best[frame] = (conf, line, fields)
    out = []
    for frame, (_, line, fields) in best.items():
        id_ = path.stem if n_frames == 1 else f"{path.stem}_{_frame_number(frame, path, line):06d}"
        where = f"{path} line {line} (id {id_})"
        out.append(AuRow(id_, _au_vector((fields[c] for c in au_cols), AU_NAMES, where), where))
    return out


def _frame_number(raw: str, path: Path, line: int) -> int:
    try:
        return int(float(raw))
    except ValueError:
        raise DataError(f"{path} line {line}: frame = {raw!r} is not a number") from None


def _openface_folder_rows(folder: Path) -> list[AuRow]:
    """A folder of OpenFace CSVs, one per image named ``<id>.csv`` (FaceLandmarkImg -fdir)."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".csv")
    if not files:
        raise DataError(f"{folder}: no .csv files (expected OpenFace CSVs, one per image)")
    rows = []
    for path in files:
        header, _ = _read_csv(path)
        if not _is_openface(header):
            raise DataError(f"{path}: not an OpenFace CSV (expected columns frame or face, and AU01_r ...)")
        rows += _openface_rows(path)
    return rows


# ------------------------------------------------------------------ pickle reading
def _latin1_encode(text: str, encoding: str) -> bytes:
    """``_codecs.encode`` as Python 3 uses it to store bytes in a protocol-2 pickle, latin-1 only."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r} (only latin1 is allowed)")
    return codecs.encode(text, "latin1")


def _numpy_globals() -> dict[tuple[str, str], object]:
    """The only globals a pickle of numeric numpy arrays needs, under numpy 1 and 2 names."""
    reconstruct = np.zeros(1).__reduce__()[0]  # protocols 0-4
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]  # protocol 5
    scalar = np.float64(0).__reduce__()[0]
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                              ("_codecs", "encode"): _latin1_encode}
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return allowed


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numeric numpy arrays, and nothing else.

    A pickle can name any importable callable and have it called while loading
    (``os.system``...); ``find_class`` hands out only the globals in :func:`_numpy_globals`.
    """

    def __init__(self, fh, path: Path):
        super().__init__(fh, encoding="latin1")  # latin1: Python 2 numpy pickles (GANimation's)
        self.path = path
        self.allowed = _numpy_globals()

    def find_class(self, module: str, name: str):
        obj = self.allowed.get((module, name))
        if obj is None:
            raise DataError(f"{self.path}: refused to unpickle global {module}.{name} (only numpy arrays are allowed)")
        return obj


def _pickle_rows(path: Path) -> list[AuRow]:
    """GANimation's ``aus_openface.pkl``: dict id -> 17 OpenFace AU intensities."""
    try:
        with open(path, "rb") as fh:
            table = _NumpyOnlyUnpickler(fh, path).load()
    except DataError:
        raise
    except Exception as err:  # a malformed pickle raises almost anything
        raise DataError(f"{path}: not a readable pickle ({type(err).__name__}: {err})") from None
    if not isinstance(table, dict):
        raise DataError(f"{path}: expected a dict of id -> {N_AUS} AU values, got a {type(table).__name__}")
    return [_pickle_row(path, key, value) for key, value in table.items()]


def _pickle_row(path: Path, key: object, value: object) -> AuRow:
    where = f"{path} key {key!r}"
    if not isinstance(key, str) or not key:
        raise DataError(f"{where}: expected a non-empty string id")
    try:
        arr = np.asarray(value)
    except Exception:
        raise DataError(f"{where}: expected {N_AUS} AU values, got a {type(value).__name__}") from None
    if arr.dtype.kind not in "fiu":
        raise DataError(f"{where}: expected {N_AUS} numbers, got an array of {arr.dtype}")
    if arr.shape != (N_AUS,):
        raise DataError(f"{where}: expected {N_AUS} AU values, got shape {arr.shape}")
    return AuRow(key, _au_vector(arr.tolist(), AU_NAMES, where), where)


# ------------------------------------------------------------------- AU table API
def _read_au_rows(path: Path) -> tuple[list[AuRow], str]:
    """Rows of any supported AU table, and the name of the format detected."""
    if path.is_dir():
        return _openface_folder_rows(path), "openface-csv-folder"
    if not path.is_file():
        raise DataError(f"{path}: AU table not found")
    with open(path, "rb") as fh:
        magic = fh.read(1)
    if path.suffix.lower() in (".pkl", ".pickle") or magic == b"\x80":  # \x80: pickle protocol >= 2
        return _pickle_rows(path), "ganimation-pkl"
    header, _ = _read_csv(path)
    if _is_openface(header):
        return _openface_rows(path), "openface-csv"
    return _plain_rows(path), "plain-csv"


def _read_au_table(path: str | Path) -> tuple[dict[str, AuRow], str]:
    path = Path(path)
    rows, fmt = _read_au_rows(path)
    # ids are matched to image stems: "x.jpg" in a table and "x" in another are the same image
    table = _index_unique(AuRow(id_from_name(r.id), r.aus, r.where) for r in rows)
    if not table:
        raise DataError(f"{path}: no AU rows")
    return table, fmt


def read_au_table(path: str | Path) -> dict[str, np.ndarray]:
    """id -> float32[17] AU intensities (OpenFace scale [0, 5], order of AU_NAMES).

    The format is detected:

    * a folder: OpenFace CSVs, one per image, named ``<id>.csv`` (FaceLandmarkImg -fdir);
    * a pickle (``.pkl``/``.pickle`` or protocol >= 2 magic): GANimation's ``aus_openface.pkl``,
      dict id -> 17 values, read with an unpickler that allows numpy arrays only;
    * a CSV with ``frame`` or ``face`` and ``AU01_r`` columns: one OpenFace output file
      (FeatureExtraction or FaceLandmarkImg; see :func:`_openface_rows` for ids and faces);
    * any other CSV: column ``id`` (else ``image`` or ``file``) and columns AU01..AU45
      (``AU01_r`` also accepted).

    Columns are found by name, never by position. Ids are image stems: a directory or an
    image extension in the table (``imgs/x.jpg``) is dropped. A value that is not a finite
    number in [0, 5], a missing column and a duplicate id raise :class:`DataError`.
    """
    table, _ = _read_au_table(path)
    return {id_: row.aus for id_, row in table.items()}


# ---------------------------------------------------------------------- id lists
def _read_id_list(path: Path, normalise: bool) -> list[tuple[str, int]]:
    """(id, line) for each non-blank line; ``normalise`` maps ``x.jpg`` to ``x``."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: id list not found") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a text file ({err})") from None
    entries, seen = [], {}
    for line, raw in enumerate(text.splitlines(), start=1):
        id_ = id_from_name(raw) if normalise else raw.strip()
        if not id_:
            continue
        if id_ in seen:
            raise DataError(f"{path} line {line}: duplicate id {id_} (first on line {seen[id_]})")
        seen[id_] = line
        entries.append((id_, line))
    if not entries:
        raise DataError(f"{path}: empty split, expected one id per line")
    return entries


def _check_splits(train: list[tuple[str, int]], test: list[tuple[str, int]], test_path: Path,
                  train_path: Path) -> None:
    """Train and test share no id."""
    train_lines = dict(train)
    for id_, line in test:
        if id_ in train_lines:
            raise DataError(f"{test_path} line {line}: id {id_} is also in {train_path} (line {train_lines[id_]})")


def _check_known(entries: list[tuple[str, int]], path: Path, known: dict, what: str) -> None:
    for id_, line in entries:
        if id_ not in known:
            raise DataError(f"{path} line {line}: id {id_} has no {what}")


# ------------------------------------------------------------------------ images
def _to_rgb(im: Image.Image, path: Path) -> Image.Image:
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


def _open_image(path: Path) -> Image.Image:
    """Fully decoded image, upright per its EXIF orientation; one DataError if unreadable."""
    try:
        with Image.open(path) as im:
            im.load()
            return ImageOps.exif_transpose(im)
    except FileNotFoundError:
        raise DataError(f"{path}: image not found") from None
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


def _chw(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(im, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def _read_png(path: Path, side: int | None) -> torch.Tensor:
    """A canonical image: RGB, square, ``side`` px when given."""
    im = _open_image(path)
    if im.mode != "RGB":
        raise DataError(f"{path}: mode {im.mode}, the canonical format stores RGB")
    w, h = im.size
    if w != h or (side is not None and w != side):
        expected = f"{side}x{side} like the other images" if side else "a square"
        raise DataError(f"{path}: {w}x{h}, expected {expected}")
    return _chw(im)


def _read_pngs(folder: Path, ids: list[str]) -> torch.Tensor:
    first = _read_png(folder / f"{ids[0]}.png", None)
    side = first.shape[-1]
    images = torch.empty((len(ids), 3, side, side), dtype=torch.uint8)
    images[0] = first
    for n, id_ in enumerate(ids[1:], start=1):
        images[n] = _read_png(folder / f"{id_}.png", side)
    return images


def _write_png(path: Path, image: torch.Tensor) -> None:
    Image.fromarray(image.permute(1, 2, 0).cpu().numpy()).save(path, format="PNG")


# ------------------------------------------------------------- canonical writing
def _check_dataset(ds: FaceDataset) -> None:
    """Refuse to write a dataset that :func:`load_dataset` would refuse to read."""
    n = len(ds.ids)
    shape = tuple(ds.images.shape)
    if ds.images.dtype != torch.uint8 or len(shape) != 4 or shape[:2] != (n, 3) or shape[2] != shape[3]:
        raise DataError(f"dataset images: expected uint8 {n} x 3 x S x S, got {ds.images.dtype} {shape}")
    if tuple(ds.aus.shape) != (n, N_AUS):
        raise DataError(f"dataset aus: expected {n} x {N_AUS}, got {tuple(ds.aus.shape)}")
    for id_, aus in zip(ds.ids, ds.aus.tolist()):
        _check_id(id_, "dataset id")
        _au_vector(aus, AU_NAMES, f"dataset id {id_}")
    _index_unique(AuRow(id_, None, f"dataset id {id_}") for id_ in ds.ids)
    known = set(ds.ids)
    for name, split in (("train_ids", ds.train_ids), ("test_ids", ds.test_ids)):
        if not split:
            raise DataError(f"dataset {name}: empty split")
        unknown = [i for i in split if i not in known]
        if unknown:
            raise DataError(f"dataset {name}: id {unknown[0]} is not in dataset ids")
        if len(set(split)) != len(split):
            raise DataError(f"dataset {name}: duplicate ids")
    both = set(ds.train_ids) & set(ds.test_ids)
    if both:
        raise DataError(f"dataset: id {sorted(both)[0]} is in both train_ids and test_ids")
    if ds.identities is not None and len(ds.identities) != n:
        raise DataError(f"dataset identities: {len(ds.identities)} labels for {n} images")
    if ds.pairs is not None:
        _check_pairs(ds.pairs, known, ds.image_size)


def _check_pairs(pairs: EvalPairs, known: set[str], side: int) -> None:
    p = len(pairs.pair_ids)
    if not (len(pairs.source_ids) == len(pairs.target_ids) == p) or tuple(pairs.target_aus.shape) != (p, N_AUS):
        raise DataError(f"dataset pairs: pair_ids, source_ids, target_ids and target_aus ({p} x {N_AUS}) must agree")
    _index_unique(AuRow(pid, None, f"dataset pair {pid}") for pid in pairs.pair_ids)
    for pid, src, tgt, aus in zip(pairs.pair_ids, pairs.source_ids, pairs.target_ids, pairs.target_aus.tolist()):
        _check_id(pid, "dataset pair id")
        if src not in known or (tgt and tgt not in known):
            raise DataError(f"dataset pair {pid}: source {src!r} or target {tgt!r} is not in dataset ids")
        _au_vector(aus, AU_NAMES, f"dataset pair {pid}")
    gt = pairs.gt
    if gt is not None and (gt.dtype != torch.uint8 or tuple(gt.shape) != (p, 3, side, side)):
        raise DataError(f"dataset pairs.gt: expected uint8 {p} x 3 x {side} x {side}, got {gt.dtype} {tuple(gt.shape)}")


def _write_rows(path: Path, header: list[str], rows: Iterable[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _write_contents(ds: FaceDataset, tmp: Path) -> None:
    (tmp / "images").mkdir()
    for id_, image in zip(ds.ids, ds.images):
        _write_png(tmp / "images" / f"{id_}.png", image)
    _write_rows(tmp / "aus.csv", ["id", *AU_NAMES],
                ([id_, *map(_format_au, aus)] for id_, aus in zip(ds.ids, ds.aus.tolist())))
    (tmp / "train_ids.txt").write_text("".join(f"{i}\n" for i in ds.train_ids), encoding="utf-8")
    (tmp / "test_ids.txt").write_text("".join(f"{i}\n" for i in ds.test_ids), encoding="utf-8")
    if ds.identities is not None:
        _write_rows(tmp / "identities.csv", ["id", "identity"], (list(r) for r in zip(ds.ids, map(str, ds.identities))))
    if ds.pairs is not None:
        _write_pairs(ds.pairs, tmp)
    meta = {**ds.meta, "format_version": FORMAT_VERSION}
    try:
        text = json.dumps(meta, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise DataError(f"dataset meta: not JSON-serialisable ({err})") from None
    (tmp / "meta.json").write_text(text + "\n", encoding="utf-8")


def _write_pairs(pairs: EvalPairs, tmp: Path) -> None:
    rows = ([pid, src, tgt, *map(_format_au, aus)] for pid, src, tgt, aus in
            zip(pairs.pair_ids, pairs.source_ids, pairs.target_ids, pairs.target_aus.tolist()))
    _write_rows(tmp / "pairs.csv", ["pair_id", "source_id", "target_id", *AU_NAMES], rows)
    if pairs.gt is not None:
        (tmp / "gt").mkdir()
        for pid, image in zip(pairs.pair_ids, pairs.gt):
            _write_png(tmp / "gt" / f"{pid}.png", image)


def _swap_into_place(tmp: Path, root: Path) -> None:
    """Rename ``tmp`` to ``root``, replacing an existing dataset folder."""
    if not root.exists():
        os.replace(tmp, root)
        return
    old = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.old-"))
    os.replace(root, old / root.name)
    try:
        os.replace(tmp, root)
    except BaseException:
        os.replace(old / root.name, root)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def save_dataset(ds: FaceDataset, root: str | Path) -> None:
    """Write ``ds`` in the canonical format at ``root``, atomically.

    Everything goes into a temporary sibling folder first, which is then renamed into place;
    on any error the temporary folder is removed and an existing ``root`` is left as it was.
    An existing ``root`` is replaced only when it is empty or holds a ``meta.json`` (a dataset),
    so a mistyped path cannot wipe an unrelated folder. AU values are written as the shortest
    decimals that read back to the same float32, so ``load_dataset(save_dataset(x))`` is exact.
    """
    root = Path(root)
    _check_dataset(ds)
    if root.exists() and not (root.is_dir() and (not any(root.iterdir()) or (root / "meta.json").is_file())):
        raise DataError(f"{root}: exists and is not a dataset folder (no meta.json); refusing to replace it")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.tmp-"))
    try:
        _write_contents(ds, tmp)
        _swap_into_place(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------- canonical reading
def _read_meta(root: Path) -> dict:
    path = root / "meta.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: not found (is {root} a dataset folder?)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object")
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path}: format_version {meta.get('format_version')!r}, this code reads {FORMAT_VERSION}")
    return meta


def _read_identities(path: Path, ids: list[str]) -> list[str]:
    header, rows = _read_csv(path)
    known = set(ids)
    id_col, label_col = _column(header, path, "id"), _column(header, path, "identity")
    labels: dict[str, str] = {}
    for line, fields in rows:
        id_ = fields[id_col]
        if id_ in labels:
            raise DataError(f"{path} line {line}: duplicate id {id_}")
        if id_ not in known:
            raise DataError(f"{path} line {line}: id {id_} is not in aus.csv")
        labels[id_] = fields[label_col]
    missing = [i for i in ids if i not in labels]
    if missing:
        raise DataError(f"{path}: no identity for id {missing[0]}")
    return [labels[i] for i in ids]


def _read_pairs(root: Path, known: dict, side: int) -> EvalPairs:
    path = root / "pairs.csv"
    header, rows = _read_csv(path)
    cols = [_column(header, path, name) for name in ("pair_id", "source_id", "target_id")]
    au_cols = _au_columns(header, path)
    records = []
    for line, fields in rows:
        pid, src, tgt = (fields[c] for c in cols)
        where = f"{path} line {line} (pair {pid})"
        for role, id_ in (("source_id", src), ("target_id", tgt)):
            if (id_ or role == "source_id") and id_ not in known:
                raise DataError(f"{where}: {role} {id_!r} is not in aus.csv")
        records.append(AuRow(pid, _au_vector((fields[c] for c in au_cols), AU_NAMES, where), where))
    _index_unique(records)
    pair_ids = [r.id for r in records]
    gt = _read_pngs(root / "gt", pair_ids) if (root / "gt").is_dir() and pair_ids else None
    if gt is not None and gt.shape[-1] != side:
        raise DataError(f"{root / 'gt'}: {gt.shape[-1]} px ground truth for {side} px images")
    target_aus = torch.from_numpy(np.stack([r.aus for r in records])) if records else torch.zeros(0, N_AUS)
    return EvalPairs(pair_ids=pair_ids, source_ids=[fields[cols[1]] for _, fields in rows],
                     target_ids=[fields[cols[2]] for _, fields in rows], target_aus=target_aus, gt=gt)


def _check_no_stray_images(folder: Path, known: dict) -> None:
    if not folder.is_dir():
        raise DataError(f"{folder}: images folder not found")
    for path in sorted(folder.iterdir()):
        if path.suffix != ".png" or not path.is_file():
            raise DataError(f"{path}: unexpected file, the canonical format stores images/<id>.png only")
        if path.stem not in known:
            raise DataError(f"{path}: image without a row in aus.csv")


def load_dataset(root: str | Path) -> FaceDataset:
    """Read and validate a canonical dataset folder (see the module docstring).

    Row order follows ``aus.csv``. Every id needs ``images/<id>.png`` (RGB, all the same
    square size) and every split id a row in ``aus.csv``; splits are non-empty, without
    duplicates and disjoint. ``meta`` is ``meta.json`` as written, ``format_version`` included.
    """
    root = Path(root)
    meta = _read_meta(root)
    table = _index_unique(_plain_rows(root / "aus.csv"))
    if not table:
        raise DataError(f"{root / 'aus.csv'}: no rows")
    ids = list(table)
    for id_ in ids:
        _check_id(id_, f"{table[id_].where}")
    _check_no_stray_images(root / "images", table)
    images = _read_pngs(root / "images", ids)
    train = _read_id_list(root / "train_ids.txt", normalise=False)
    test = _read_id_list(root / "test_ids.txt", normalise=False)
    _check_known(train, root / "train_ids.txt", table, "row in aus.csv")
    _check_known(test, root / "test_ids.txt", table, "row in aus.csv")
    _check_splits(train, test, root / "test_ids.txt", root / "train_ids.txt")
    identities = _read_identities(root / "identities.csv", ids) if (root / "identities.csv").exists() else None
    pairs = _read_pairs(root, table, images.shape[-1]) if (root / "pairs.csv").exists() else None
    return FaceDataset(ids=ids, images=images, aus=torch.from_numpy(np.stack([table[i].aus for i in ids])),
                       train_ids=[i for i, _ in train], test_ids=[i for i, _ in test],
                       identities=identities, pairs=pairs, meta=meta)


# ----------------------------------------------------------------- real folders
def _image_files(folder: Path) -> dict[str, Path]:
    """id (stem) -> image file; one stem with two extensions is ambiguous and refused."""
    if not folder.is_dir():
        raise DataError(f"{folder}: images folder not found")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_EXTS or not path.is_file():
            continue
        if path.stem in files:
            raise DataError(f"{path}: duplicate id {path.stem} (also {files[path.stem].name})")
        files[path.stem] = path
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_EXTS)})")
    return files


def _load_images(files: list[Path], size: int) -> torch.Tensor:
    images = torch.empty((len(files), 3, size, size), dtype=torch.uint8)
    for n, path in enumerate(files):
        images[n] = _chw(square_resize(_to_rgb(_open_image(path), path), size))
    return images


def make_pairs(test_ids: list[str], test_aus: torch.Tensor, per_image: int, seed: int) -> EvalPairs:
    """``per_image`` edits of each test image towards the AUs of other test images.

    Targets are drawn without replacement from the other test images (with replacement only
    when ``per_image`` exceeds their number), by a numpy Generator seeded with ``seed``.
    Pair ids are ``<source id>_p<k>``; there is no ground truth (gt None).
    """
    if len(test_ids) < 2:
        raise DataError(f"test split: {len(test_ids)} image; evaluation pairs need at least 2 "
                        "(targets come from other test images)")
    rng = np.random.default_rng(seed)
    pair_ids, sources, targets, rows = [], [], [], []
    for i, src in enumerate(test_ids):
        others = [j for j in range(len(test_ids)) if j != i]
        picks = rng.choice(others, size=per_image, replace=per_image > len(others))
        for k, j in enumerate(picks.tolist()):
            pair_ids.append(f"{src}_p{k}")
            sources.append(src)
            targets.append(test_ids[j])
            rows.append(j)
    return EvalPairs(pair_ids=pair_ids, source_ids=sources, target_ids=targets,
                     target_aus=test_aus[torch.tensor(rows)].clone(), gt=None)


def ingest_folder(cfg: FolderConfig, image_size: int) -> FaceDataset:
    """A :class:`FaceDataset` from a folder of face images, an AU table and two id lists.

    * ids are image stems; the id lists may carry extensions (GANimation's ``train_ids.csv``
      lists ``N_0000000356_00190.jpg``), the AU table may lack them. Only the images listed in
      a split are loaded, train first, in list order.
    * images: upright per EXIF, converted to RGB (greyscale, palette, CMYK by PIL; alpha per
      :data:`ALPHA_RULE`), then resized by :data:`RESIZE_RULE` to ``image_size``.
    * pairs: ``cfg.pairs_per_test_image`` per test image, see :func:`make_pairs`.
    * meta records the source paths as given, the AU table format detected, the rules and
      Pillow's version (resampling results may differ between Pillow versions).
    """
    images_dir, aus_path = Path(cfg.images), Path(cfg.aus)
    train_path, test_path = Path(cfg.train_ids), Path(cfg.test_ids)
    files = _image_files(images_dir)
    table, fmt = _read_au_table(aus_path)
    train = _read_id_list(train_path, normalise=True)
    test = _read_id_list(test_path, normalise=True)
    for path, entries in ((train_path, train), (test_path, test)):
        _check_known(entries, path, files, f"image in {images_dir}")
        _check_known(entries, path, table, f"AU row in {aus_path}")
    _check_splits(train, test, test_path, train_path)
    ids = [i for i, _ in train + test]
    aus = torch.from_numpy(np.stack([table[i].aus for i in ids]))
    test_ids = [i for i, _ in test]
    pairs = make_pairs(test_ids, aus[len(train):], cfg.pairs_per_test_image, cfg.seed)
    # paths as given (relative in params.yaml), so the same inputs give the same meta.json anywhere
    meta = {"source": "folder", "images": cfg.images, "aus": cfg.aus, "aus_format": fmt,
            "train_ids_file": cfg.train_ids, "test_ids_file": cfg.test_ids, "image_size": image_size, "resize": RESIZE_RULE, "alpha": ALPHA_RULE, "pillow": PIL.__version__,
            "pairs_per_test_image": cfg.pairs_per_test_image, "seed": cfg.seed}
    return FaceDataset(ids=ids, images=_load_images([files[i] for i in ids], image_size), aus=aus,
                       train_ids=[i for i, _ in train], test_ids=test_ids, identities=None, pairs=pairs, meta=meta)
