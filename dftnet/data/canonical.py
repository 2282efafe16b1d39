"""The canonical on-disk dataset format: one folder layout for synthetic and real data.

Canonical folder (written by :func:`save_dataset`, read by :func:`load_dataset`, the same for
synthetic and real data)::

    <root>/
      images/<id>.png      RGB uint8, all the same square size
      aus.csv              id,AU01,...,AU45 (OpenFace 0-5 scale, the order of AU_NAMES)
      train_ids.txt        one id per line
      test_ids.txt
      judge_ids.txt        (optional) the AU judge's own split, disjoint from train and test
      val_ids.txt          (optional) validation split, disjoint from train, test and judge
      identities.csv       (optional) id,identity
      emotions.csv         (optional) id,emotion ("" where unlabelled)
      skipped.csv          (optional) file,reason: input photos with no usable face
      pairs.csv            (optional) pair_id,source_id,target_id,AU01..AU45 (target AUs)
      gt/<pair_id>.png     (optional) ground truth of every pair
      val_pairs.csv        (optional) the validation split's pairs, as pairs.csv
      gt_val/<pair_id>.png (optional) their ground truth
      meta.json            provenance (FaceDataset.meta) + "format_version": 1

Writing is all-or-nothing (a temporary folder swapped into place); reading checks every file
and stops with one :class:`DataError` line naming the file and the line or key at fault.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Iterable, cast

import numpy as np
import torch

from dftnet.data.aus import AU_NAMES, N_AUS
from dftnet.data.dataset import EvalPairs, FaceDataset
from dftnet.runtime.errors import DataError
from dftnet.runtime import atomic
from dftnet.data.au_tables import (AuRow, au_columns, au_vector, check_id, check_known, check_splits, column, format_au,
                                   index_unique, plain_rows, read_csv, read_id_list)
from dftnet.data.images import read_pngs, write_png

FORMAT_VERSION = 1


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
        check_id(id_, "dataset id")
        au_vector(aus, AU_NAMES, f"dataset id {id_}")
    index_unique(AuRow(id_, cast(np.ndarray, None), f"dataset id {id_}") for id_ in ds.ids)  # no AU vector: ids checked only
    known = set(ds.ids)
    split: list[str] | None
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
    others = set(ds.train_ids) | set(ds.test_ids)
    for name, split in (("val_ids", ds.val_ids), ("judge_ids", ds.judge_ids)):
        if split is None:
            continue
        unknown = [i for i in split if i not in known]
        shared = set(split) & others
        if unknown or shared or len(set(split)) != len(split):
            bad = (unknown or sorted(shared) or ["a duplicate"])[0]
            raise DataError(f"dataset {name}: id {bad} is unknown, duplicated or also in another split")
        others |= set(split)
    if (ds.val_pairs is None) != (ds.val_ids is None):
        raise DataError("dataset: val_ids and val_pairs go together")
    if ds.val_pairs is not None:
        assert ds.val_ids is not None  # checked just above: val_ids and val_pairs go together
        _check_pairs(ds.val_pairs, set(ds.val_ids), shape[-1])
    if ds.emotions is not None and len(ds.emotions) != n:
        raise DataError(f"dataset emotions: {len(ds.emotions)} labels for {n} images")
    if ds.identities is not None and len(ds.identities) != n:
        raise DataError(f"dataset identities: {len(ds.identities)} labels for {n} images")
    if ds.pairs is not None:
        _check_pairs(ds.pairs, known, ds.image_size)


def _check_pairs(pairs: EvalPairs, known: set[str], side: int) -> None:
    p = len(pairs.pair_ids)
    if not (len(pairs.source_ids) == len(pairs.target_ids) == p) or tuple(pairs.target_aus.shape) != (p, N_AUS):
        raise DataError(f"dataset pairs: pair_ids, source_ids, target_ids and target_aus ({p} x {N_AUS}) must agree")
    index_unique(AuRow(pid, cast(np.ndarray, None), f"dataset pair {pid}") for pid in pairs.pair_ids)  # no AU vector: ids checked only
    for pid, src, tgt, aus in zip(pairs.pair_ids, pairs.source_ids, pairs.target_ids, pairs.target_aus.tolist()):
        check_id(pid, "dataset pair id")
        if src not in known or (tgt and tgt not in known):
            raise DataError(f"dataset pair {pid}: source {src!r} or target {tgt!r} is not in dataset ids")
        au_vector(aus, AU_NAMES, f"dataset pair {pid}")
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
        write_png(tmp / "images" / f"{id_}.png", image)
    _write_rows(tmp / "aus.csv", ["id", *AU_NAMES],
                ([id_, *map(format_au, aus)] for id_, aus in zip(ds.ids, ds.aus.tolist())))
    (tmp / "train_ids.txt").write_text("".join(f"{i}\n" for i in ds.train_ids), encoding="utf-8")
    (tmp / "test_ids.txt").write_text("".join(f"{i}\n" for i in ds.test_ids), encoding="utf-8")
    if ds.identities is not None:
        _write_rows(tmp / "identities.csv", ["id", "identity"], (list(r) for r in zip(ds.ids, map(str, ds.identities))))
    if ds.judge_ids is not None:
        (tmp / "judge_ids.txt").write_text("".join(f"{i}\n" for i in ds.judge_ids), encoding="utf-8")
    if ds.emotions is not None:
        _write_rows(tmp / "emotions.csv", ["id", "emotion"], (list(r) for r in zip(ds.ids, ds.emotions)))
    if ds.skipped is not None:
        _write_rows(tmp / "skipped.csv", ["file", "reason"], (list(r) for r in ds.skipped))
    if ds.pairs is not None:
        _write_pairs(ds.pairs, tmp)
    if ds.val_ids is not None:
        (tmp / "val_ids.txt").write_text("".join(f"{i}\n" for i in ds.val_ids), encoding="utf-8")
        assert ds.val_pairs is not None  # _check_dataset: val_ids and val_pairs go together
        _write_pairs(ds.val_pairs, tmp, "val_pairs.csv", "gt_val")
    meta = {**ds.meta, "format_version": FORMAT_VERSION}
    try:
        text = json.dumps(meta, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise DataError(f"dataset meta: not JSON-serialisable ({err})") from None
    (tmp / "meta.json").write_text(text + "\n", encoding="utf-8")


def _write_pairs(pairs: EvalPairs, tmp: Path, table: str = "pairs.csv", gt_dir: str = "gt") -> None:
    rows = ([pid, src, tgt, *map(format_au, aus)] for pid, src, tgt, aus in
            zip(pairs.pair_ids, pairs.source_ids, pairs.target_ids, pairs.target_aus.tolist()))
    _write_rows(tmp / table, ["pair_id", "source_id", "target_id", *AU_NAMES], rows)
    if pairs.gt is not None:
        (tmp / gt_dir).mkdir()
        for pid, image in zip(pairs.pair_ids, pairs.gt):
            write_png(tmp / gt_dir / f"{pid}.png", image)


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
    tmp = atomic.temp_dir_beside(root)  # also removes the temporaries of killed runs
    try:
        _write_contents(ds, tmp)
        atomic.swap_dir(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------- canonical reading
def read_meta(root: str | Path) -> dict:
    root = Path(root)
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


def _read_per_id(path: Path, ids: list[str], name: str) -> list[str]:
    """A two-column ``id,<name>`` file with one row per dataset id."""
    header, rows = read_csv(path)
    known = set(ids)
    id_col, label_col = column(header, path, "id"), column(header, path, name)
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
        raise DataError(f"{path}: no {name} for id {missing[0]}")
    return [labels[i] for i in ids]


def _read_pairs(root: Path, known: dict, side: int, table: str = "pairs.csv", gt_dir: str = "gt") -> EvalPairs:
    path = root / table
    header, rows = read_csv(path)
    cols = [column(header, path, name) for name in ("pair_id", "source_id", "target_id")]
    au_cols = au_columns(header, path)
    records = []
    for line, fields in rows:
        pid, src, tgt = (fields[c] for c in cols)
        where = f"{path} line {line} (pair {pid})"
        for role, id_ in (("source_id", src), ("target_id", tgt)):
            if (id_ or role == "source_id") and id_ not in known:
                raise DataError(f"{where}: {role} {id_!r} is not in aus.csv")
        records.append(AuRow(pid, au_vector((fields[c] for c in au_cols), AU_NAMES, where), where))
    index_unique(records)
    pair_ids = [r.id for r in records]
    gt = read_pngs(root / gt_dir, pair_ids) if (root / gt_dir).is_dir() and pair_ids else None
    if gt is not None and gt.shape[-1] != side:
        raise DataError(f"{root / gt_dir}: {gt.shape[-1]} px ground truth for {side} px images")
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
    meta = read_meta(root)
    table = index_unique(plain_rows(root / "aus.csv"))
    if not table:
        raise DataError(f"{root / 'aus.csv'}: no rows")
    ids = list(table)
    for id_ in ids:
        check_id(id_, f"{table[id_].where}")
    _check_no_stray_images(root / "images", table)
    images = read_pngs(root / "images", ids)
    train = read_id_list(root / "train_ids.txt", normalise=False)
    test = read_id_list(root / "test_ids.txt", normalise=False)
    check_known(train, root / "train_ids.txt", table, "row in aus.csv")
    check_known(test, root / "test_ids.txt", table, "row in aus.csv")
    check_splits(train, test, root / "test_ids.txt", root / "train_ids.txt")
    identities = _read_per_id(root / "identities.csv", ids, "identity") if (root / "identities.csv").exists() else None
    emotions = _read_per_id(root / "emotions.csv", ids, "emotion") if (root / "emotions.csv").exists() else None
    judge = None
    if (root / "judge_ids.txt").exists():
        judge = read_id_list(root / "judge_ids.txt", normalise=False)
        check_known(judge, root / "judge_ids.txt", table, "row in aus.csv")
        check_splits(judge, train + test, root / "judge_ids.txt", root / "train_ids.txt and test_ids.txt")
    val, val_pairs = None, None
    if (root / "val_ids.txt").exists():
        val = read_id_list(root / "val_ids.txt", normalise=False)
        check_known(val, root / "val_ids.txt", table, "row in aus.csv")
        check_splits(train + test + (judge or []), val, root / "val_ids.txt", "the train, test or judge ids")
        if not (root / "val_pairs.csv").exists():
            raise DataError(f"{root / 'val_pairs.csv'}: not found (val_ids.txt needs its pairs)")
        val_table = {i: table[i] for i, _ in val}
        val_pairs = _read_pairs(root, val_table, images.shape[-1], "val_pairs.csv", "gt_val")
    skipped = None
    if (root / "skipped.csv").exists():
        header, rows = read_csv(root / "skipped.csv")
        cols = [column(header, root / "skipped.csv", c) for c in ("file", "reason")]
        skipped = [(f[cols[0]], f[cols[1]]) for _, f in rows]
    pairs = _read_pairs(root, table, images.shape[-1]) if (root / "pairs.csv").exists() else None
    return FaceDataset(ids=ids, images=images, aus=torch.from_numpy(np.stack([table[i].aus for i in ids])),
                       train_ids=[i for i, _ in train], test_ids=[i for i, _ in test],
                       identities=identities, pairs=pairs, meta=meta,
                       judge_ids=[i for i, _ in judge] if judge is not None else None, emotions=emotions, skipped=skipped,
                       val_ids=[i for i, _ in val] if val is not None else None, val_pairs=val_pairs)
