"""Real data in: a folder of face images, an AU table (:mod:`dftnet.data.au_tables`) and
train/test id lists become a :class:`FaceDataset`, images cropped and resized by one rule
(:data:`dftnet.data.images.RESIZE_RULE`), evaluation pairs drawn among the test images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL
import torch

from dftnet.config import FolderConfig
from dftnet.data.dataset import EvalPairs, FaceDataset
from dftnet.runtime.errors import DataError
from dftnet.data.au_tables import au_table_rows, check_known, check_splits, read_id_list
from dftnet.data.images import ALPHA_RULE, IMAGE_EXTS, RESIZE_RULE, chw, open_image, square_resize, to_rgb

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
        images[n] = chw(square_resize(to_rgb(open_image(path), path), size))
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
    """A :class:`FaceDataset` from a folder of face images, an AU table and two (or three) id lists.

    * ids are image stems; the id lists may carry extensions (GANimation's ``train_ids.csv``
      lists ``N_0000000356_00190.jpg``), the AU table may lack them. Only the images listed in
      a split are loaded, train first, in list order.
    * images: upright per EXIF, converted to RGB (greyscale, palette, CMYK by PIL; alpha per
      :data:`ALPHA_RULE`), then resized by :data:`RESIZE_RULE` to ``image_size``.
    * pairs: ``cfg.pairs_per_test_image`` per test image, see :func:`make_pairs`; as many per
      validation image where ``cfg.val_ids`` lists them (the learning curve reads those).
    * meta records the source paths as given, the AU table format detected, the rules and
      Pillow's version (resampling results may differ between Pillow versions).
    """
    images_dir, aus_path = Path(cfg.images), Path(cfg.aus)
    train_path, test_path = Path(cfg.train_ids), Path(cfg.test_ids)
    files = _image_files(images_dir)
    table, fmt = au_table_rows(aus_path)
    train = read_id_list(train_path, normalise=True)
    test = read_id_list(test_path, normalise=True)
    for path, entries in ((train_path, train), (test_path, test)):
        check_known(entries, path, files, f"image in {images_dir}")
        check_known(entries, path, table, f"AU row in {aus_path}")
    check_splits(train, test, test_path, train_path)
    val: list[tuple[str, int]] = []
    if cfg.val_ids:
        val_path = Path(cfg.val_ids)
        val = read_id_list(val_path, normalise=True)
        check_known(val, val_path, files, f"image in {images_dir}")
        check_known(val, val_path, table, f"AU row in {aus_path}")
        check_splits(train + test, val, val_path, "the train or test ids")
    ids = [i for i, _ in train + test + val]
    aus = torch.from_numpy(np.stack([table[i].aus for i in ids]))
    test_ids, val_ids = [i for i, _ in test], [i for i, _ in val]
    pairs = make_pairs(test_ids, aus[len(train):len(train) + len(test)], cfg.pairs_per_test_image, cfg.seed)
    val_pairs = (make_pairs(val_ids, aus[len(train) + len(test):], cfg.pairs_per_test_image, cfg.seed + 1)
                 if val_ids else None)
    # paths as given (relative in params.yaml), so the same inputs give the same meta.json anywhere
    meta = {"source": "folder", "images": cfg.images, "aus": cfg.aus, "aus_format": fmt,
            "train_ids_file": cfg.train_ids, "test_ids_file": cfg.test_ids, "val_ids_file": cfg.val_ids,
            "image_size": image_size, "resize": RESIZE_RULE, "alpha": ALPHA_RULE, "pillow": PIL.__version__,
            "pairs_per_test_image": cfg.pairs_per_test_image, "seed": cfg.seed}
    return FaceDataset(ids=ids, images=_load_images([files[i] for i in ids], image_size), aus=aus,
                       train_ids=[i for i, _ in train], test_ids=test_ids, identities=None, pairs=pairs, meta=meta,
                       val_ids=val_ids or None, val_pairs=val_pairs)
