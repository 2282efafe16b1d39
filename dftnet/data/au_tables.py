"""AU tables and id lists, in every format the suite reads: OpenFace CSV (a file or a folder
of per-video files), GANimation's ``aus_openface.pkl`` (through an unpickler that builds numpy
arrays and nothing else), and plain ``id,AU01..AU45`` CSV (the canonical ``aus.csv``).

Every problem stops with one :class:`DataError` line naming the file and the line, key or
column at fault; line numbers count lines of the file, the header being line 1.
"""

from __future__ import annotations

import codecs
import csv
import math
import os
import pickle
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np

from dftnet.data.aus import AU_MAX, AU_NAMES, N_AUS
from dftnet.data.images import IMAGE_EXTS
from dftnet.runtime.errors import DataError


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


def check_id(id_: str, what: str) -> None:
    """An id becomes a file name (``images/<id>.png``): refuse what cannot be one."""
    bad = (not isinstance(id_, str) or not id_ or id_ != id_.strip() or id_.startswith(".")
           or any(c in id_ for c in "/\\\n\r\t\0"))
    if bad:
        raise DataError(f"{what}: {id_!r} cannot be used as a file name (no '/', leading '.' or surrounding spaces)")


def index_unique(rows: Iterable[AuRow]) -> dict[str, AuRow]:
    """id -> row, refusing a second row for the same id."""
    table: dict[str, AuRow] = {}
    for row in rows:
        if row.id in table:
            raise DataError(f"{row.where}: duplicate id {row.id} (first at {table[row.id].where})")
        table[row.id] = row
    return table


# ------------------------------------------------------------------------ AU values
def au_vector(values: Iterable, names: Iterable[str], where: str) -> np.ndarray:
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


def format_au(value: float) -> str:
    """The shortest decimal that reads back to the same float32 (0.65, not 0.6499999762)."""
    return np.format_float_positional(np.float32(value), unique=True, trim="-")


# --------------------------------------------------------------------- CSV reading
def read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
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


def column(header: list[str], path: Path, *names: str) -> int:
    """Index of the first of ``names`` present in the header."""
    for name in names:
        if name in header:
            return header.index(name)
    raise DataError(f"{path}: missing column {' or '.join(names)}")


def au_columns(header: list[str], path: Path) -> list[int]:
    """Index of every AU, found by name: ``AU12`` or OpenFace's ``AU12_r``, never by position."""
    return [column(header, path, name, f"{name}_r") for name in AU_NAMES]


def _is_openface(header: list[str]) -> bool:
    return ("frame" in header or "face" in header) and "AU01_r" in header


def plain_rows(path: Path) -> list[AuRow]:
    """A plain CSV: an id column (``id``, else ``image`` or ``file``) and AU01..AU45 by name."""
    header, rows = read_csv(path)
    id_col = column(header, path, *ID_COLUMNS)
    au_cols = au_columns(header, path)
    out = []
    for line, fields in rows:
        id_ = fields[id_col]
        where = f"{path} line {line} (id {id_})"
        if not id_:
            raise DataError(f"{path} line {line}: empty {header[id_col]}")
        out.append(AuRow(id_, au_vector((fields[c] for c in au_cols), AU_NAMES, where), where))
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
    header, rows = read_csv(path)
    au_cols = au_columns(header, path)
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
        out.append(AuRow(id_, au_vector((fields[c] for c in au_cols), AU_NAMES, where), where))
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
        header, _ = read_csv(path)
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
    return AuRow(key, au_vector(arr.tolist(), AU_NAMES, where), where)


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
    header, _ = read_csv(path)
    if _is_openface(header):
        return _openface_rows(path), "openface-csv"
    return plain_rows(path), "plain-csv"


def au_table_rows(path: str | Path) -> tuple[dict[str, AuRow], str]:
    """id -> row (with where it was read) of any supported AU table, and the format detected."""
    path = Path(path)
    rows, fmt = _read_au_rows(path)
    # ids are matched to image stems: "x.jpg" in a table and "x" in another are the same image
    table = index_unique(AuRow(id_from_name(r.id), r.aus, r.where) for r in rows)
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
    table, _ = au_table_rows(path)
    return {id_: row.aus for id_, row in table.items()}

# ---------------------------------------------------------------------- id lists
def read_id_list(path: Path, normalise: bool) -> list[tuple[str, int]]:
    """(id, line) for each non-blank line; ``normalise`` maps ``x.jpg`` to ``x``."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: id list not found") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a text file ({err})") from None
    entries: list[tuple[str, int]]
    seen: dict[str, int]
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


def check_splits(train: list[tuple[str, int]], test: list[tuple[str, int]], test_path: Path,
                  train_path: Path | str) -> None:
    """Train and test share no id."""
    train_lines = dict(train)
    for id_, line in test:
        if id_ in train_lines:
            raise DataError(f"{test_path} line {line}: id {id_} is also in {train_path} (line {train_lines[id_]})")


def check_known(entries: list[tuple[str, int]], path: Path, known: dict, what: str) -> None:
    for id_, line in entries:
        if id_ not in known:
            raise DataError(f"{path} line {line}: id {id_} has no {what}")
