"""A folder of raw photos in, the canonical dataset out: faces found, aligned, labelled.

Each photo (any size, colour or grey, any format PIL reads) goes through
:func:`dftnet.data.faces.find_face` (the detection cascade), :func:`dftnet.data.faces.align`
(the crop at ``image_size``), then the annotator reads the *crop*, the very kind of image it
reads at evaluation, and its cues are calibrated on the whole set
(:class:`dftnet.data.annotator.Calibration`). Photos without a usable face are skipped and
listed with the reason in ``skipped.csv``; the stage fails only when too few remain.

Splits are by person (the id up to a trailing ``_<digits>``, LFW's naming): ``test`` holds one
photo of each of ``n_test`` people, ``val`` one photo of each of ``n_val`` other people (the
learning curve reads their pairs), ``judge`` the photos the AU judge trains on (never seen by
a GAN), ``train`` the GANs' photos. At most ``max_per_identity`` photos of one person go to
judge and train, so a few much-photographed people do not dominate.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import torch

from dftnet.config import PhotosConfig
from dftnet.data.annotator import Annotator, Calibration, read_cues
from dftnet.data.au_tables import column, read_csv
from dftnet.data.dataset import FaceDataset
from dftnet.data.faces import ALIGN_RULE, CASCADE, Landmarker, align, check_bundle, find_face
from dftnet.data.images import IMAGE_EXTS, open_image, to_rgb
from dftnet.data.ingest import make_pairs
from dftnet.runtime.errors import DataError

_worker: Landmarker | None = None
MIN_FACES = 4  # a train, a judge and two test photos at the very least


def identity_of(id_: str) -> str:
    """The person of an image id: the id without a trailing ``_<digits>`` (``Ann_Lee_0002`` -> ``Ann_Lee``)."""
    m = re.fullmatch(r"(.+?)_\d+", id_)
    return m.group(1) if m else id_


def prepare_photo(path: Path, size: int, landmarker: Landmarker | None = None) -> tuple:
    """``("ok", crop H x W x 3 uint8, raw cues, cascade step)`` or ``("skip", reason)``.
    ``landmarker``: this process's (a pool worker's own by default)."""
    from dftnet.runtime.errors import BenchError

    lm = landmarker or _worker
    try:
        rgb = np.asarray(to_rgb(open_image(path), path))
    except BenchError as err:
        return ("skip", "unreadable: " + str(err).removeprefix(f"{path}: "))
    assert lm is not None  # the caller's landmarker, or a pool worker's, set by its initializer
    face, why = find_face(lm, rgb)
    if face is None:
        return ("skip", why)
    crop = align(rgb, face, size)
    on_crop, why = find_face(lm, crop)
    if on_crop is None:
        return ("skip", f"face lost in the aligned crop ({why})")
    return ("ok", crop, read_cues(on_crop), face.step)


def _photo_files(folder: Path) -> tuple[dict[str, Path], list[tuple[str, str]]]:
    if not folder.is_dir():
        raise DataError(f"{folder}: photos folder not found (data.photos.images)")
    files: dict[str, Path] = {}
    skipped = []
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        if path.suffix.lower() not in IMAGE_EXTS:
            skipped.append((path.name, f"not an image extension ({', '.join(IMAGE_EXTS)})"))
        elif path.stem in files:
            skipped.append((path.name, f"duplicate id {path.stem} (also {files[path.stem].name})"))
        else:
            files[path.stem] = path
    return files, skipped


def read_labels(path: Path) -> dict[str, str]:
    """``image,emotion`` -> {id: emotion}; ids are image stems, blank emotions left out."""
    header, rows = read_csv(path)
    cols = [column(header, path, name) for name in ("image", "emotion")]
    return {Path(f[cols[0]]).stem: f[cols[1]].lower() for _, f in rows if f[cols[1]]}


def _detect_all(files: list[Path], cfg: PhotosConfig, size: int) -> list[tuple]:
    from tqdm import tqdm

    bar = dict(total=len(files), desc="prepare: faces", unit="photo", file=sys.stderr, mininterval=2.0)
    if cfg.workers <= 1:
        lm = Landmarker(cfg.landmarker)
        try:
            return [prepare_photo(p, size, lm) for p in tqdm(files, **bar)]
        finally:
            lm.close()
    import multiprocessing as mp
    import os

    with mp.get_context("spawn").Pool(cfg.workers, initializer=_init_pool, initargs=(os.getpid(), cfg.landmarker)) as pool:
        return list(tqdm(pool.imap(_prepare_in_worker, [(p, size) for p in files], chunksize=16), **bar))


def _init_pool(parent: int, bundle: str) -> None:
    """Worker start: die with the stage, and open this process's own Face Landmarker."""
    from dftnet.runtime.procs import die_with_parent

    global _worker
    die_with_parent(parent)
    _worker = Landmarker(bundle)


def _prepare_in_worker(job: tuple[Path, int]) -> tuple:
    return prepare_photo(*job)


def suggested_sizes(per_person: dict[str, int], max_per_identity: int) -> str:
    """Split sizes that fit ``per_person`` (photos of each person): a tenth of the people to test,
    a twentieth to validation (at least 2 each), a third of the remaining photos to the judge, the
    rest to training (``n_train: 0``)."""
    n = len(per_person)
    n_test, n_val = max(2, n // 10), max(2, n // 20)
    counts = sorted(min(c, max_per_identity) for c in per_person.values())
    rest = sum(counts[n_test + n_val:])
    return f"n_test: {n_test}, n_val: {n_val}, n_judge: {max(1, rest // 3)}, n_train: 0 (all the rest)"


def split_misfit(per_person: dict[str, int], cfg: PhotosConfig) -> str | None:
    """Why ``cfg``'s split sizes cannot fit ``per_person`` (photos of each person), or None.

    How they fit (:func:`_split`): ``n_test`` and ``n_val`` people give one photo each; the
    judge then takes whole people (at most ``max_per_identity`` photos each) until it holds
    ``n_judge`` photos; training takes the people after that, up to ``n_train`` photos (0: all),
    and needs at least one. Checked on the photo files before detection (an upper bound: a
    photo without a usable face is dropped later) and again on the faces found."""
    n = len(per_person)
    if n < cfg.n_test + cfg.n_val + 2:
        return (f"{n} people, but n_test {cfg.n_test} + n_val {cfg.n_val} people are held out and the judge and "
                f"the GANs need some too")
    counts = sorted(min(c, cfg.max_per_identity) for c in per_person.values())
    rest = sum(counts[cfg.n_test + cfg.n_val:])  # the most photos the judge and training can share
    if rest <= cfg.n_judge:
        return (f"at most {rest} photos remain after the {cfg.n_test + cfg.n_val} held-out people, and n_judge "
                f"{cfg.n_judge} would leave none to train on")
    return None


def _people(ids) -> dict[str, int]:
    per: dict[str, int] = {}
    for id_ in ids:
        per[identity_of(id_)] = per.get(identity_of(id_), 0) + 1
    return per


def _split(ids: list[str], cfg: PhotosConfig) -> tuple[list[str], list[str], list[str], list[str]]:
    """(train, judge, test, val) ids, disjoint by person, seeded (the test people drawn as before
    validation existed: validation takes the people after them)."""
    people: dict[str, list[str]] = {}
    for id_ in ids:
        people.setdefault(identity_of(id_), []).append(id_)
    rng = np.random.default_rng(cfg.seed)
    order = [sorted(people)[i] for i in rng.permutation(len(people))]
    misfit = split_misfit(_people(ids), cfg)
    if misfit is not None:
        raise DataError(f"data.photos: the usable faces do not fit the split sizes: {misfit}. Sizes that fit: "
                        f"{suggested_sizes(_people(ids), cfg.max_per_identity)}")
    test = [people[p][int(rng.integers(len(people[p])))] for p in order[:cfg.n_test]]
    held = cfg.n_test + cfg.n_val
    val = [people[p][int(rng.integers(len(people[p])))] for p in order[cfg.n_test:held]]
    judge: list[str] = []
    train: list[str] = []
    for person in order[held:]:
        photos = people[person][:cfg.max_per_identity]
        if len(judge) < cfg.n_judge:
            judge += photos
        elif cfg.n_train == 0 or len(train) < cfg.n_train:
            train += photos
    if not train:
        raise DataError(f"data.photos: no photos left for the GANs' training split after {len(test)} test and "
                        f"{len(judge)} judge photos; lower n_test or n_judge")
    return train, judge, test, val


def ingest_photos(cfg: PhotosConfig, image_size: int) -> FaceDataset:
    """The canonical dataset from a folder of raw photos (module docstring).

    ``aus`` are the MediaPipe AU proxies of each aligned crop, calibrated on every usable face
    of the folder (neutral faces per ``cfg.labels`` set the zero); the calibration is stored in
    ``meta["annotator"]`` so that the evaluation reads edits with the very same mapping.
    """
    import PIL

    import mediapipe

    if cfg.n_val == 1:  # checked before the detection pass: pairs need a target of another person
        raise DataError("data.photos.n_val: 1 validation person cannot make pairs (targets come from other people); "
                        "use 0 or 2 or more")
    check_bundle(cfg.landmarker)
    files, skipped = _photo_files(Path(cfg.images))
    misfit = split_misfit(_people(files), cfg)
    if misfit is not None:  # before the detection pass, on the files (each at most one usable face)
        raise DataError(f"data.photos: {cfg.images}: {len(files)} photo files cannot fit the split sizes: {misfit}. "
                        f"Sizes that fit: {suggested_sizes(_people(files), cfg.max_per_identity)}")
    labels = read_labels(Path(cfg.labels)) if cfg.labels else {}
    n_files = len(files) + len(skipped)
    results = _detect_all(list(files.values()), cfg, image_size)
    ids, crops, cues, steps = [], [], [], {s: 0 for s in CASCADE}
    for id_, res in zip(files, results):
        if res[0] == "skip":
            skipped.append((files[id_].name, res[1]))
            continue
        ids.append(id_)
        crops.append(res[1])
        cues.append(res[2])
        steps[res[3]] += 1
    skipped.sort()
    print(f"prepare: {len(ids)} faces from {n_files} files; {len(skipped)} skipped", file=sys.stderr)
    if len(ids) < MIN_FACES:
        first = f"; first: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise DataError(f"{cfg.images}: only {len(ids)} usable faces in {n_files} files{first}")
    raw = np.stack(cues)
    emotions = [labels.get(i, "") for i in ids]
    neutral = np.array([e == cfg.neutral_label for e in emotions])
    cal = Calibration.fit(raw, neutral)
    aus = torch.from_numpy(cal.aus(raw).astype(np.float32))
    try:
        train, judge, test, val = _split(ids, cfg)
    except DataError as err:  # no dataset, so no skipped.csv: name the first skipped photos here
        first = "; ".join(f"{name}: {why}" for name, why in skipped[:3])
        raise DataError(f"{err}" + (f" ({len(skipped)} photos skipped, first: {first})" if skipped else "")) from None
    if skipped:
        print(f"prepare: the {len(skipped)} skipped photos are listed with reasons in skipped.csv", file=sys.stderr)
    pos = {i: n for n, i in enumerate(ids)}
    pairs = make_pairs(test, aus[[pos[i] for i in test]], cfg.pairs_per_test_image, cfg.seed)
    val_pairs = make_pairs(val, aus[[pos[i] for i in val]], cfg.pairs_per_test_image, cfg.seed + 1) if val else None
    images = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
    meta = {"source": "photos", "images": cfg.images, "labels": cfg.labels, "landmarker": cfg.landmarker,
            "image_size": image_size, "align": ALIGN_RULE, "cascade": list(CASCADE), "found_by_step": steps,
            "n_files": n_files,
            "n_faces": len(ids), "n_skipped": len(skipped), "seed": cfg.seed, "n_test": cfg.n_test,
            "n_judge": len(judge), "n_train": len(train), "n_val": len(val), "max_per_identity": cfg.max_per_identity,
            "pairs_per_test_image": cfg.pairs_per_test_image, "annotator": cal.to_dict(),
            "mediapipe": mediapipe.__version__, "pillow": PIL.__version__}
    return FaceDataset(ids=ids, images=images, aus=aus, train_ids=train, test_ids=test,
                       identities=[identity_of(i) for i in ids], pairs=pairs, meta=meta, judge_ids=judge or None,
                       emotions=emotions if labels else None, skipped=skipped, val_ids=val or None,
                       val_pairs=val_pairs)


def annotator_for(meta: dict, landmarker: str | None = None, where: str = "dataset meta.json") -> Annotator | None:
    """The annotator a photos dataset was labelled with (the calibration in its ``meta``), else None."""
    if meta.get("annotator") is None:
        return None
    return Annotator(landmarker or meta["landmarker"], Calibration.from_dict(meta["annotator"], where))
